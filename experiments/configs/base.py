"""The library's defaults as a ConfigDict: every config file starts here, so
each default is written once (rnnlm_jax/config.py) and every key a file may
override exists."""

import dataclasses

import ml_collections

from rnnlm_jax import config as config_lib


def get_base_config() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dataclasses.asdict(config_lib.Config()))
