"""Cell x truncation length on Penn Treebank.

  # reduced grid, for a CPU: 15 cells x 2 seeds
  RNNLM_DATA=path/to/data python -m launch.sweep \
      --sweep=experiments/sweeps/ptb_arch_x_tbptt.py
  # the full Zaremba-small grid, for GPUs: 15 cells x 3 seeds
  RNNLM_DATA=path/to/data python -m launch.sweep \
      --sweep=experiments/sweeps/ptb_arch_x_tbptt.py:full --parallel=8

(or pass the corpus with a fixed override: the corpus folder is read from
$RNNLM_DATA/ptb, see experiments/configs/ptb_lstm.py.)

Both take experiments/configs/ptb_lstm.py:small (batch 20, SGD lr 1, loss
summed over time, clipping at 5, init +-0.1) with model.cell in {rnn_tanh,
gru, lstm} and data.bptt in {5, 10, 20, 35, 70}.

  reduced  one layer of 200 units and the same budget of about a quarter of
           an epoch (232,400 training tokens: train.max_steps = 11,620 /
           bptt) for every truncation length; Adam at 2e-3 on the mean
           token loss, clipping at 1, for every cell (SGD at lr 1 with the
           loss summed over time, the LSTM's recipe, sends the tanh RNN's
           training loss above that of a uniform guess, and would give each
           bptt another effective learning rate); seeds {0, 1}; runs in
           runs/sweeps/ptb_arch_x_tbptt
  full     the paper's 2 x 200, 13 epochs, decay 0.5 after epoch 4, seeds
           {0, 1, 2}; runs in runs/sweeps/ptb_arch_x_tbptt_full

Runtime: the 1 x 200 model trains at about 1,100-1,600 tokens/s per process
on a loaded 2-core CPU, so a full epoch per run would make the reduced grid
5-7 hours there; with the quarter-epoch budget it is under an hour and a
half (measured: see the README's sweep section). The full grid is for GPUs.
"""

from launch.sweeps import Sweep, product, zip_

# The reduced grid's budget: the same number of training tokens (about a
# quarter of PTB's 929,589) at every truncation length.
TOKENS = 232_400
BATCH = 20
AXES = {
    "model.cell": ["rnn_tanh", "gru", "lstm"],
    "data.bptt": [5, 10, 20, 35, 70],
}


def get_sweep(variant: str = "reduced"):
  if variant == "reduced":
    budget = TOKENS // BATCH
    return Sweep(
        name="ptb_arch_x_tbptt",
        config="experiments/configs/ptb_lstm.py:small",
        axes=product(
            {"model.cell": AXES["model.cell"]},
            zip_(
                {
                    "data.bptt": AXES["data.bptt"],
                    "train.max_steps": [budget // t for t in AXES["data.bptt"]],
                }
            ),
        ),
        seeds=[0, 1],
        fixed={
            "model.hidden": 200,
            "model.num_layers": 1,
            "train.num_epochs": 1,
            "optim.name": "adam",
            "optim.learning_rate": 2e-3,
            "optim.clip_norm": 1.0,
            "optim.schedule": "constant",
            "optim.loss_reduction": "mean",
        },
    )
  if variant == "full":
    return Sweep(
        name="ptb_arch_x_tbptt_full",
        config="experiments/configs/ptb_lstm.py:small",
        axes=product(AXES),
        seeds=[0, 1, 2],
    )
  raise ValueError(f"unknown variant {variant!r}; choose reduced or full")
