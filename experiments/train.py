"""Trains a language model: python -m experiments.train [--config=FILE[:VARIANT]]

  python -m experiments.train                     # built-in synthetic corpus
  python -m experiments.train --config=experiments/configs/ptb_lstm.py:small \
      --config.data.dir=../shared/data/ptb

The run directory (--workdir, default runs/<name>-<config hash>) receives the
resolved config, the command, metrics.jsonl, the vocabulary and checkpoints.
Running the same command again resumes from the latest checkpoint.
"""

import os
import sys

from absl import app
from absl import flags
from ml_collections import config_flags

from experiments import common
from rnnlm_jax import train

_CONFIG = config_flags.DEFINE_config_file(
    "config",
    os.path.join(common.CONFIG_DIR, "default.py"),
    "Experiment config file, optionally with :variant.",
    lock_config=True,
)
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Run directory; default runs/<config name>-<config hash>."
)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  with common.one_line_errors():
    cfg = common.resolve_config(_CONFIG.value)
    workdir = _WORKDIR.value or common.default_workdir(cfg)
    print(f"run directory: {workdir}", flush=True)
    command = common.command_line(
        "experiments.train", sys.argv[1:], workdir, _WORKDIR.present
    )
    results = train.train_and_evaluate(
        cfg, workdir, log=lambda s: print(s, flush=True), command=command
    )
  print(train.summary_line(results), flush=True)


if __name__ == "__main__":
  app.run(main)
