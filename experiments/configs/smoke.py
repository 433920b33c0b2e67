"""Smoke test: a tiny LSTM on a small synthetic corpus, a few seconds.

  python -m experiments.train --config=experiments/configs/smoke.py

Used by the tests; its numbers mean nothing.
"""

from experiments.configs import base

RESULTS = "none: a smoke test for the test suite"


def get_config():
  c = base.get_base_config()
  c.name = "smoke"
  c.data.synthetic_sentences = (400, 60, 60)
  c.data.batch_size = 4
  c.data.bptt = 8
  c.data.eval_batch_size = 3
  c.model.hidden = 16
  c.model.num_layers = 2
  c.model.dropout = 0.1
  c.optim.name = "adam"
  c.optim.learning_rate = 0.01
  c.train.num_epochs = 2
  c.train.log_every = 20
  c.train.checkpoint_every = 40
  return c
