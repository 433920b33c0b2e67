"""An Elman tanh RNN with Zaremba's small settings on Penn Treebank.

  python -m experiments.train --config=experiments/configs/ptb_rnn.py:small \
      --config.data.dir=../shared/data/ptb

Variants: small, medium, large as in ptb_lstm.py, with the tanh cell and a
lower learning rate (0.5) and tighter clipping (0.5), since a plain RNN
trained with lr 1 / clip 5 diverges more easily. No published target is
claimed for this exact recipe.
Measured results: see RESULTS.
"""

from experiments.configs import ptb_lstm

RESULTS = {
    "small": "not yet run",
    "medium": "not yet run",
    "large": "not yet run",
}

# Not the same recipe: Mikolov's RNN (Mikolov 2012).
PUBLISHED = {"small": "124.7 (Mikolov's RNN, not this recipe)"}


def get_config(variant: str = "small"):
  c = ptb_lstm.ptb_config(variant, "rnn_tanh")
  c.optim.learning_rate = 0.5
  c.optim.clip_norm = 0.5
  return c
