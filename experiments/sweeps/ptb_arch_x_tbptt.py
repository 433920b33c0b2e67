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

Runtime, reduced grid: a 1 x 200 LSTM ran at 1,100-1,600 tok/s at bptt 5
and at bptt 35 on this project's 2-core CPU while other jobs loaded it (load
average 9; 300 steps of each), so one epoch of PTB's 929,589 training tokens
is 10-14 min there and the 30 runs 5-7 hours one at a time; an unloaded
machine should be about twice as fast (the 2 x 200 LSTM reached 2,200-3,300
tok/s, experiments/configs/ptb_lstm.py). Not yet run as a sweep.
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
