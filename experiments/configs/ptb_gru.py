"""A GRU with Zaremba's small/medium/large settings on Penn Treebank.

  python -m experiments.train --config=experiments/configs/ptb_gru.py:small \
      --config.data.dir=../shared/data/ptb

The recipe is the LSTM's (experiments/configs/ptb_lstm.py), cell swapped.
Measured results: see RESULTS.
"""

from experiments.configs import ptb_lstm

RESULTS = {
    "small": "not yet run",
    "medium": "not yet run",
    "large": "not yet run",
}


def get_config(variant: str = "small"):
  return ptb_lstm.ptb_config(variant, "gru")
