"""Ablation of AWD-LSTM's techniques on the CPU-sized recipe: each one off
alone, one seed each, and the full recipe at two more seeds for the noise.

  RNNLM_DATA=../shared/data python -m launch.sweep \
      --sweep=experiments/sweeps/ptb_awd_ablation.py
  python -m experiments.tables --runs=runs/sweeps/ptb_awd_ablation \
      --metric=test_ppl --metric=valid_ppl

experiments/configs/ptb_awd.py:cpu (2 x 200 tied, 20 epochs); its baseline
at the same size and epochs is ptb_awd.py:cpu_zaremba. Runs: base (every
technique on), weight drop off, locked masks replaced by a fresh mask per
step, embedding dropout off, AR and TAR off, fixed-length BPTT, plain SGD
instead of NT-ASGD; base at seeds 1 and 2.
"""

from launch.sweeps import Sweep

OFF = [
    {},
    {"model.weight_drop": 0.0},
    {"model.dropout_mask": "step"},
    {"model.dropout_embed": 0.0},
    {"model.ar_alpha": 0.0, "model.tar_beta": 0.0},
    {"data.variable_bptt": False},
    {"optim.averaging": "none"},
    {"train.seed": 1},
    {"train.seed": 2},
]


def get_sweep():
  return Sweep(
      name="ptb_awd_ablation",
      config="experiments/configs/ptb_awd.py:cpu",
      axes=OFF,
  )
