"""The library's defaults as a ConfigDict: every config file starts here, so
each default is written once (rnnlm_jax/config.py) and every key a file may
override exists."""

import dataclasses

import ml_collections

from rnnlm_jax import config as config_lib


def get_base_config() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dataclasses.asdict(config_lib.Config()))


def sentence_smoke(c: ml_collections.ConfigDict, embed_dim: int):
  """The sentence tasks' smoke variant of config c, for the tests: a tiny
  model without dropout at a high learning rate, for one epoch in small
  batches, logged and checkpointed every few steps."""
  c.model.dropout = 0.0
  c.optim.learning_rate = 1e-2
  c.model.embed_dim = embed_dim
  c.model.hidden = 8
  c.data.batch_size = 4
  c.data.eval_batch_size = 8
  c.data.num_buckets = 2
  c.train.num_epochs = 1
  c.train.log_every = 2
  c.train.checkpoint_every = 4
  c.train.eval_every = 0
  return c
