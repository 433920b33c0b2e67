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

  reduced  one layer of 200 units, one epoch (so the learning rate never
           decays), seeds {0, 1}; runs in runs/sweeps/ptb_arch_x_tbptt
  full     the paper's 2 x 200, 13 epochs, decay 0.5 after epoch 4, seeds
           {0, 1, 2}; runs in runs/sweeps/ptb_arch_x_tbptt_full

Runtime: the 2 x 200 LSTM takes about 5 min per epoch on a 2-core CPU
(experiments/configs/ptb_lstm.py), so a reduced run is a few minutes and the
reduced grid a few hours there; not yet run as a sweep.
"""

from launch.sweeps import Sweep, product

AXES = {
    "model.cell": ["rnn_tanh", "gru", "lstm"],
    "data.bptt": [5, 10, 20, 35, 70],
}


def get_sweep(variant: str = "reduced"):
  if variant == "reduced":
    return Sweep(
        name="ptb_arch_x_tbptt",
        config="experiments/configs/ptb_lstm.py:small",
        axes=product(AXES),
        seeds=[0, 1],
        fixed={
            "model.hidden": 200,
            "model.num_layers": 1,
            "train.num_epochs": 1,
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
