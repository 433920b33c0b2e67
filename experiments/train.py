"""Trains a language model: python -m experiments.train [--config=FILE[:VARIANT]]

  python -m experiments.train                     # built-in synthetic corpus
  python -m experiments.train --config=experiments/configs/ptb_lstm.py:small \
      --config.data.dir=../shared/data/ptb

The run directory (--workdir, default runs/<config name>, followed by
+KEY=VALUE for each --config.KEY=VALUE that differs from the config file,
locations left out) receives the resolved config, the command,
metrics.jsonl, the vocabulary and checkpoints. Running the same command
again resumes from the latest checkpoint; a run already trained past the
command's train.max_steps or train.num_epochs is refused, not reported.
--config_help lists every config key with its value, default and meaning.

Vectorised trials train K runs that differ only in their seed, learning
rate, clipping norm, dropout rate or init scale as one compiled program
(rnnlm_jax.trials): each --trials flag gives one value per trial (several
flags are zipped), and --workdir then lists K run directories:

  python -m experiments.train --trials=train.seed=0,1,2 \
      --workdir=runs/s0,runs/s1,runs/s2

Each trial's directory is that of a separate run; its cmd.sh holds the
equivalent single-run command.
"""

import ast
import copy
import sys

from absl import app
from absl import flags

from experiments import common
from rnnlm_jax import config as config_lib
from rnnlm_jax import train

_CONFIG = common.define_config()
_WORKDIR = flags.DEFINE_string(
    "workdir",
    None,
    "Run directory; default runs/<config name>[+KEY=VALUE...] for the"
    " --config.KEY=VALUE overrides. With --trials, a comma-separated list of"
    " one directory per trial.",
)
_TRIALS = flags.DEFINE_multi_string(
    "trials",
    [],
    "KEY=V1,V2,...: one value of a config key per vectorised trial.",
)


def _parse_value(text: str):
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text


def parse_trials(specs: list[str]) -> list[dict]:
  """['train.seed=0,1', 'optim.learning_rate=.1,.2'] -> one {key: value}
  per trial."""
  columns = {}
  for spec in specs:
    key, sep, values = spec.partition("=")
    if not sep or not key or not values:
      raise config_lib.ConfigError(
          f"--trials={spec!r} must look like KEY=V1,V2,..."
      )
    if key in columns:
      raise config_lib.ConfigError(f"--trials gives {key} twice")
    columns[key] = [_parse_value(v) for v in values.split(",")]
  lengths = {len(v) for v in columns.values()}
  if len(lengths) > 1:
    raise config_lib.ConfigError(
        f"--trials flags give different numbers of values: {sorted(lengths)}"
    )
  (k,) = lengths
  return [{key: col[i] for key, col in columns.items()} for i in range(k)]


def _with_overrides(config_dict, overrides: dict):
  c = copy.deepcopy(config_dict)
  for key, value in overrides.items():
    *path, last = key.split(".")
    node = c
    try:
      for part in path:
        node = node[part]
      if last not in node:
        raise KeyError(last)
      node[last] = value
    except (KeyError, TypeError, AttributeError) as e:
      raise config_lib.ConfigError(
          f"--trials: cannot set {key}={value!r} ({e})"
      ) from None
  return c


def _single_run_command(argv: list[str], overrides: dict, workdir: str):
  """argv without its --trials and --workdir flags (either form: --flag=V or
  --flag V), plus the trial's overrides and run directory."""
  kept, skip = [], False
  for a in argv:
    if skip:
      skip = False
    elif a in ("--trials", "--workdir"):
      skip = True
    elif not a.startswith(("--trials=", "--workdir=")):
      kept.append(a)
  sets = [f"--config.{k}={v}" for k, v in overrides.items()]
  return common.command_line("experiments.train", kept + sets, workdir, False)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  with common.one_line_errors():
    if not _TRIALS.value:
      cfg = common.resolve_config(_CONFIG.value)
      workdir = _WORKDIR.value or common.default_workdir(
          cfg, common.config_overrides()
      )
      print(f"run directory: {workdir}", flush=True)
      command = common.command_line(
          "experiments.train", sys.argv[1:], workdir, _WORKDIR.present
      )
      results = train.train_and_evaluate(
          cfg, workdir, log=lambda s: print(s, flush=True), command=command
      )
      print(train.summary_line(results), flush=True)
      return
    trials = parse_trials(_TRIALS.value)
    cfgs = [
        common.resolve_config(_with_overrides(_CONFIG.value, t)) for t in trials
    ]
    if _WORKDIR.value:
      workdirs = _WORKDIR.value.split(",")
    else:
      overrides = common.config_overrides()
      workdirs = [
          common.default_workdir(c, {**overrides, **t})
          for c, t in zip(cfgs, trials)
      ]
    if len(workdirs) != len(cfgs):
      raise config_lib.ConfigError(
          f"--workdir lists {len(workdirs)} directories for {len(cfgs)} trials"
      )
    print(f"run directories: {','.join(workdirs)}", flush=True)
    commands = [
        _single_run_command(sys.argv[1:], t, w)
        for t, w in zip(trials, workdirs)
    ]
    results = train.train_trials(
        cfgs, workdirs, log=lambda s: print(s, flush=True), commands=commands
    )
  for w, r in zip(workdirs, results):
    print(f"{w}: {train.summary_line(r)}", flush=True)


if __name__ == "__main__":
  app.run(main, flags_parser=common.parse_flags)
