"""SST-2 sentence classifiers: cell x direction, 3 seeds each.

  RNNLM_DATA=../shared/data python -m launch.sweep \
      --sweep=experiments/sweeps/sst2_cells.py --parallel=2
  python -m launch.sweep --sweep=experiments/sweeps/sst2_cells.py --status
  python -m experiments.tables --runs=runs/sweeps/sst2_cells \
      --metric=valid_acc --metric=dev_acc

experiments/configs/sst2.py's model (300-dim embeddings, 150 units per
direction, the ends pooled) as a bidirectional LSTM, a unidirectional LSTM, a
bidirectional GRU and a bidirectional tanh RNN, with train.seed in {0, 1, 2}.
Runtime and result: see docs/sentences.md.
"""

from launch.sweeps import Sweep


def get_sweep():
  return Sweep(
      name="sst2_cells",
      config="experiments/configs/sst2.py:bilstm",
      axes=[
          {"model.cell": "lstm", "model.bidirectional": True},
          {"model.cell": "lstm", "model.bidirectional": False},
          {"model.cell": "gru", "model.bidirectional": True},
          {"model.cell": "rnn_tanh", "model.bidirectional": True},
      ],
      seeds=[0, 1, 2],
  )
