"""The results table of a set of run directories: per finished run, the
config it came from (file and variant, and the command's other settings),
the corpus, its test figure beside the published one, the command that
made it, and its training time.

Everything is read from the run directory (cmd.sh, config.json,
results.json, metrics.jsonl); the published figures come from the config
files' ``PUBLISHED``, looked up by the caller (experiments/tables.py).
"""

import dataclasses
import os
import shlex
from typing import Callable

from rnnlm_jax import ablation
from rnnlm_jax import metrics
from rnnlm_jax import rundir
from rnnlm_jax.errors import DataError

# The figure a row shows: the first of these that the run's results have.
METRICS = ("test_bpc", "test_ppl", "test_bleu", "test_f1", "test_acc")
# Settings of a command that say where things are, not what was run.
WHERE = ("data.dir", "data.cache_dir")


@dataclasses.dataclass(frozen=True)
class Entry:
  """One finished run.

  Attributes:
    config: "<config file stem>" or "<stem>:<variant>" ("ptb_lstm:small").
    settings: the command's --config.KEY=VALUE settings but WHERE's.
    corpus: data.local_name, or the data source ("synthetic").
    metric: the reported metric (one of METRICS).
    value: its value.
    command: the command that made the run (cmd.sh).
    seconds: training seconds (the train records' windows; a run from
      before they were recorded: its last process's seconds).
    path: the run directory.
    floor: the synthetic corpus's true test perplexity, or None.
  """

  config: str
  settings: tuple
  corpus: str
  metric: str
  value: float
  command: str
  seconds: float
  path: str
  floor: float | None = None

  @property
  def config_file(self) -> str:
    return self.config.split(":")[0]

  @property
  def variant(self) -> str:
    return self.config.partition(":")[2]


def parse_command(command: str) -> tuple[str, tuple]:
  """(config, settings) of a train command: its --config=FILE[:VARIANT] as
  "stem[:variant]" ("default" when absent) and its --config.KEY=VALUE
  settings but WHERE's."""
  config, settings = "default", []
  for arg in shlex.split(command):
    if arg.startswith("--config="):
      path, _, variant = arg.removeprefix("--config=").partition(":")
      stem = os.path.splitext(os.path.basename(path))[0]
      config = f"{stem}:{variant}" if variant else stem
    elif arg.startswith("--config."):
      setting = arg.removeprefix("--config.")
      if setting.split("=")[0] not in WHERE:
        settings.append(setting)
  return config, tuple(settings)


def _command(path: str) -> str:
  cmd = os.path.join(path, rundir.COMMAND_FILE)
  try:
    with open(cmd, encoding="utf-8") as f:
      lines = [l for l in f.read().splitlines() if l and not l.startswith("#")]
  except FileNotFoundError:
    raise DataError(f"{cmd} not found: not a run directory") from None
  if not lines:
    raise DataError(f"{cmd} holds no command")
  return lines[-1]


def training_seconds(path: str, results: dict) -> float:
  records = metrics.read_jsonl(os.path.join(path, rundir.METRICS_FILE))
  windows = [r["window_s"] for r in records if "window_s" in r]
  if windows:
    return float(sum(windows))
  return float(results.get("train_seconds_this_process", float("nan")))


def entry(run: ablation.Run) -> Entry | None:
  """The entry of a finished run; None for an unfinished one or one with
  none of METRICS."""
  if run.results is None or run.config is None:
    return None
  metric = next((m for m in METRICS if m in run.results), None)
  if metric is None:
    return None
  command = _command(run.path)
  config, settings = parse_command(command)
  c = run.config
  corpus = c.get("data.local_name") or c.get("data.source", "")
  return Entry(
      config,
      settings,
      corpus,
      metric,
      float(run.results[metric]),
      command,
      training_seconds(run.path, run.results),
      run.path,
      run.results.get("floor_ppl"),
  )


def entries(root: str) -> list[Entry]:
  """The finished runs under root, sorted by config, then settings."""
  found = [entry(r) for r in ablation.find_runs(root)]
  return sorted(
      (e for e in found if e is not None), key=lambda e: (e.config, e.settings)
  )


def _duration(seconds: float) -> str:
  if seconds != seconds:  # NaN: not recorded.
    return "?"
  minutes = seconds / 60
  return f"{seconds:.0f} s" if minutes < 2 else f"{minutes:.0f} min"


def to_markdown(found: list[Entry], published: Callable[[Entry], str]) -> str:
  """One row per entry; ``published(entry)`` is the published figure and
  its source ("" where none is claimed: the true floor stands there for
  the synthetic corpus)."""
  lines = [
      "| config | settings | corpus | test | published | training time |"
      " command |",
      "|---|---|---|---:|---|---:|---|",
  ]
  for e in found:
    metric = e.metric.removeprefix("test_")
    settings = ", ".join(f"`{s}`" for s in e.settings)
    claimed = published(e)
    if not claimed and e.floor:
      claimed = f"true floor {e.floor:.2f}"
    lines.append(
        f"| `{e.config}` | {settings} | {e.corpus} |"
        f" {e.value:.2f} {metric} | {claimed} |"
        f" {_duration(e.seconds)} | `{e.command}` |"
    )
  return "\n".join(lines) + "\n"
