"""Runs of an ablation, from run directories alone: found, grouped into
configurations and summarised over seeds.

Every folder under a root that holds a config.json (or only the sweep
launcher's launch.json: a run not yet started) is a run. Runs are grouped
by their config without train.seed and IGNORED_KEYS (logging, checkpointing,
the device count), so each group is one configuration trained with several
seeds. A summary holds, per group, the number of seeds and the mean and
sample standard deviation over seeds of each metric of results.json. Runs
without results.json (unfinished or failed) are listed as incomplete and
left out of the means.
"""

import dataclasses
import json
import math
import os

import numpy as np

from rnnlm_jax import config as config_lib
from rnnlm_jax import metrics
from rnnlm_jax import provenance
from rnnlm_jax import rundir

# Keys that say nothing about what a run is: the seed (averaged over), how
# often it logs, checkpoints and samples, how many devices share its batches
# (the losses of one device), the vocabulary size (taken from the data) and
# where token ids are cached. Not all of rundir.RESUMABLE_CHANGES: a run of more
# epochs or steps is another configuration, though it may resume from one of
# fewer.
IGNORED_KEYS = (
    "train.seed",
    "model.vocab_size",
    "model.num_classes",
    "model.num_features",
    "data.labels",
    "data.features",
    "data.cache_dir",
    "train.log_every",
    "train.checkpoint_every",
    "train.num_devices",
    "train.sample_every",
    "train.sample_prompt",
    "train.sample_temperature",
    "train.sample_length",
    "train.sample_count",
)
SEED_KEY = "train.seed"
# The metrics shown when none is asked for, where every run has them.
DEFAULT_METRICS = tuple(m for m in metrics.HEADLINE if m != "floor_ppl")
# The true generator's perplexity: a property of the corpus, not of the
# model, shown as a plain value (and a line in the figure).
FLOOR = "floor_ppl"
LOWER_IS_BETTER = ("_ppl", "_bpc", "_loss", "_error")
HIGHER_IS_BETTER = (
    "_acc",
    "_acc_mul",
    "_f1",
    "_precision",
    "_recall",
    "_bleu",
    "_chrf",
    "_rho",
)
CELL_KEY, BPTT_KEY = "model.cell", "data.bptt"
# What the sweep launcher writes into a run directory before the run starts
# (status, exit code): a folder with only this file is a run not yet begun.
LAUNCH_RECORD = "launch.json"
# Column order: what the model is, then what it reads, then how it learns.
SECTION_ORDER = ("name", "model", "data", "optim", "train")


@dataclasses.dataclass(frozen=True)
class Run:
  """One run directory.

  Attributes:
    path: the run directory.
    label: its path relative to the folder it was found in.
    config: the flattened resolved config ({"model.cell": "lstm", ...}), or
      None when config.json cannot be read.
    results: results.json, or None for an unfinished or failed run.
    curve: (epoch, valid_ppl) of each validation record of metrics.jsonl.
    problem: why the run is incomplete (None for a finished run).
    made_by: one "commit (+ uncommitted changes) on device" per process that
      started or resumed the run (provenance.jsonl).
  """

  path: str
  label: str
  config: dict | None
  results: dict | None
  curve: tuple = ()
  problem: str | None = None
  made_by: tuple = ()


@dataclasses.dataclass(frozen=True)
class Group:
  """Runs of one configuration. values: the grouping keys' values."""

  values: tuple
  runs: tuple


@dataclasses.dataclass(frozen=True)
class Grouping:
  """keys: the keys that tell groups apart (table columns), in order;
  names: their short names; pooled: keys (besides the seed) that vary inside
  groups because group_by left them out."""

  keys: tuple
  names: tuple
  groups: tuple
  incomplete: tuple
  pooled: tuple = ()


@dataclasses.dataclass(frozen=True)
class Row:
  values: tuple
  n: int
  seeds: tuple
  stats: dict  # metric -> (mean, sample std or nan for one seed)
  floor: float | None
  repeats: int = 0  # Runs with the config and seed of another in the row.


@dataclasses.dataclass(frozen=True)
class Summary:
  grouping: Grouping
  metrics: tuple
  rows: tuple
  has_floor: bool
  # (key, metric) where tune() kept, of the rows that differ only in key,
  # the one with the best mean metric.
  tuned: tuple = ()


def _hashable(v):
  return tuple(v) if isinstance(v, list) else v


def _read_json(path: str):
  with open(path, encoding="utf-8") as f:
    return json.load(f)


def _valid_curve(path: str) -> tuple:
  metrics_path = os.path.join(path, rundir.METRICS_FILE)
  if not os.path.exists(metrics_path):
    return ()
  curve = []
  with open(metrics_path, encoding="utf-8") as f:
    for line in f:
      if '"valid_ppl"' not in line:
        continue
      try:
        r = json.loads(line)
      except json.JSONDecodeError:
        continue  # A line cut short by a killed run.
      curve.append((float(r["epoch"]), float(r["valid_ppl"])))
  return tuple(curve)


def _made_by(path: str) -> tuple:
  try:
    records = provenance.read(path)
  except (ValueError, OSError):
    return ()
  out = []
  for r in records:
    commit = (r.get("git_commit") or "unknown commit")[:7]
    dirty = " + uncommitted changes" if r.get("git_dirty") else ""
    device = r.get("device_kind") or r.get("backend") or "unknown device"
    out.append(f"{commit}{dirty} on {device}")
  return tuple(out)


def _launch_state(path: str) -> str:
  """', launcher: failed (exit 1)' from the sweep launcher's record, if any."""
  try:
    rec = _read_json(os.path.join(path, LAUNCH_RECORD))
  except (ValueError, OSError):
    return ""
  if not isinstance(rec, dict) or not rec.get("status"):
    return ""
  code = rec.get("exit_code")
  return f", launcher: {rec['status']}" + (
      f" (exit {code})" if code is not None else ""
  )


def load_run(path: str, label: str) -> Run:
  """Reads a run directory; a run that cannot be used says why."""
  if not os.path.exists(os.path.join(path, rundir.CONFIG_FILE)):
    return Run(
        path, label, None, None, problem="not started" + _launch_state(path)
    )
  try:
    values = _read_json(os.path.join(path, rundir.CONFIG_FILE))
    if not isinstance(values, dict):
      raise config_lib.ConfigError("is not a JSON object")
    config = rundir.flatten(config_lib.from_dict(values))
  except (ValueError, OSError) as e:
    # The reason without the path: the label already says which run.
    why = f"not valid JSON ({e})" if isinstance(e, json.JSONDecodeError) else e
    return Run(path, label, None, None, problem=f"config.json {why}")
  config = {k: _hashable(v) for k, v in config.items()}
  curve = _valid_curve(path)
  results_path = os.path.join(path, rundir.RESULTS_FILE)
  if not os.path.exists(results_path):
    last = f", last validation at epoch {curve[-1][0]:g}" if curve else ""
    problem = f"no results.json{last}{_launch_state(path)}"
    return Run(path, label, config, None, curve, problem)
  try:
    results = _read_json(results_path)
  except (ValueError, OSError) as e:
    return Run(path, label, config, None, curve, f"bad results.json: {e}")
  return Run(path, label, config, results, curve, made_by=_made_by(path))


def find_runs(root: str) -> list[Run]:
  """The run directories under root (root itself if it is one), sorted: the
  folders holding a config.json, or a sweep launcher's record of a run not
  yet started.

  Raises:
    FileNotFoundError: root is not a folder.
  """
  if not os.path.isdir(root):
    raise FileNotFoundError(f"--runs {root}: no such folder")
  runs = []
  for path, dirs, files in os.walk(root):
    dirs.sort()
    if rundir.CONFIG_FILE in files or LAUNCH_RECORD in files:
      dirs[:] = []  # A run's own subfolders (checkpoints) hold no runs.
      label = os.path.relpath(path, root)
      if label == ".":
        label = os.path.basename(os.path.abspath(root))
      runs.append(load_run(path, label))
  return runs


def short_names(keys) -> tuple:
  """The shortest dotted suffix of each key that no other key ends with:
  'model.cell' -> 'cell', but 'optim.name' stays whole beside 'name'."""
  split = [k.split(".") for k in keys]
  names = []
  for parts in split:
    for n in range(1, len(parts) + 1):
      suffix = parts[-n:]
      if sum(p[-n:] == suffix for p in split) == 1:
        break
    names.append(".".join(suffix))
  return tuple(names)


def sort_key(value):
  """Orders config values: numbers by value, before strings."""
  if isinstance(value, (int, float)):
    return (0, value, "")
  return (1, 0, str(value))


def _key_order(key: str):
  section = key.split(".")[0]
  rank = SECTION_ORDER.index(section) if section in SECTION_ORDER else 99
  return (rank, key)


def _varying(configs: list[dict], keys) -> list[str]:
  return [k for k in keys if len({c.get(k) for c in configs}) > 1]


def _resolve_keys(group_by, all_keys) -> list[str]:
  """Full keys for --group_by entries given as full or short names."""
  out = []
  for name in group_by:
    if name in all_keys:
      out.append(name)
      continue
    matches = [k for k in all_keys if k.endswith("." + name)]
    if len(matches) != 1:
      what = "is ambiguous" if matches else "is not a config key"
      raise config_lib.ConfigError(f"--group_by {name!r} {what}")
    out.append(matches[0])
  return out


def group_runs(runs: list[Run], group_by=None) -> Grouping:
  """Groups finished runs by config; the rest are incomplete.

  Args:
    runs: from find_runs.
    group_by: keys (full or short names) that define the groups; default:
      every key that varies across the finished runs, the seed and
      IGNORED_KEYS excepted.

  Returns:
    The groups, sorted by their keys' values (numbers numerically); the
    keys in --group_by's order, else model, data, optim, train keys.
  """
  done = [r for r in runs if r.results is not None]
  incomplete = tuple(r for r in runs if r.results is None)
  configs = [r.config for r in done]
  all_keys = sorted(
      {k for c in configs for k in c} - set(IGNORED_KEYS), key=_key_order
  )
  if group_by:
    keys = _resolve_keys(group_by, all_keys)
  else:
    keys = _varying(configs, all_keys)
  by_values = {}
  for r in done:
    by_values.setdefault(tuple(r.config.get(k) for k in keys), []).append(r)
  groups = tuple(
      Group(values, tuple(members))
      for values, members in sorted(
          by_values.items(), key=lambda kv: [sort_key(v) for v in kv[0]]
      )
  )
  pooled = sorted(
      {
          k
          for g in groups
          for k in _varying([r.config for r in g.runs], all_keys)
      }
  )
  return Grouping(
      tuple(keys), short_names(keys), groups, incomplete, tuple(pooled)
  )


def _identity(config: dict) -> tuple:
  """What makes a run a repeat of another: its config, the seed included."""
  return tuple(
      sorted(
          (k, v)
          for k, v in config.items()
          if k == SEED_KEY or k not in IGNORED_KEYS
      )
  )


def available_metrics(grouping: Grouping) -> tuple:
  """DEFAULT_METRICS that every finished run reports."""
  runs = [r for g in grouping.groups for r in g.runs]
  return tuple(
      m for m in DEFAULT_METRICS if runs and all(m in r.results for r in runs)
  )


def summarise(grouping: Grouping, metrics) -> Summary:
  """Mean and sample std (ddof=1; nan for one seed) of each metric per group.

  Raises:
    ConfigError: a finished run lacks one of the metrics.
  """
  if not metrics:
    raise config_lib.ConfigError(
        f"the finished runs share none of {', '.join(DEFAULT_METRICS)}; "
        "name one with --metric"
    )
  rows = []
  runs = [r for g in grouping.groups for r in g.runs]
  has_floor = bool(runs) and all(FLOOR in r.results for r in runs)
  for g in grouping.groups:
    stats = {}
    for m in metrics:
      lacking = [r.label for r in g.runs if m not in r.results]
      if lacking:
        raise config_lib.ConfigError(
            f"metric {m!r} is not in {lacking[0]}/{rundir.RESULTS_FILE}"
        )
      x = np.array([float(r.results[m]) for r in g.runs])
      std = float(np.std(x, ddof=1)) if len(x) > 1 else math.nan
      stats[m] = (float(np.mean(x)), std)
    floor = (
        float(np.mean([r.results[FLOOR] for r in g.runs]))
        if has_floor
        else None
    )
    seeds = tuple(r.config.get(SEED_KEY) for r in g.runs)
    repeats = len(g.runs) - len({_identity(r.config) for r in g.runs})
    rows.append(Row(g.values, len(g.runs), seeds, stats, floor, repeats))
  return Summary(grouping, tuple(metrics), tuple(rows), has_floor)


def tune(summary: Summary, key: str, metric: str) -> Summary:
  """The summary with one row per combination of the other grouping keys:
  the row whose mean ``metric`` is best (lowest for perplexities and
  losses, highest for accuracies), so that a hyperparameter such as the
  learning rate is chosen per cell on validation while the table reports
  every metric of the chosen row. The tuned key's column shows the value
  chosen; ties keep the first row in the table's order.

  Raises:
    ConfigError: key is not a grouping key, or metric is not summarised.
  """
  g = summary.grouping
  matches = [k for k in g.keys if k == key or k.endswith("." + key)]
  if len(matches) != 1:
    raise config_lib.ConfigError(
        f"--tune {key!r} is not one of the table's keys ({', '.join(g.keys)})"
    )
  (full,) = matches
  if metric not in summary.metrics:
    raise config_lib.ConfigError(
        f"--tune_metric {metric!r} is not one of the table's metrics "
        f"({', '.join(summary.metrics)})"
    )
  i = g.keys.index(full)
  sign = 1.0 if metric.endswith(LOWER_IS_BETTER) else -1.0
  best = {}
  for row in summary.rows:
    others = row.values[:i] + row.values[i + 1 :]
    score = sign * row.stats[metric][0]
    if others not in best or score < best[others][0]:
      best[others] = (score, row)
  kept = {id(row) for _, row in best.values()}
  rows = tuple(r for r in summary.rows if id(r) in kept)
  return dataclasses.replace(
      summary, rows=rows, tuned=summary.tuned + ((full, metric),)
  )


def format_value(v) -> str:
  """A config value as a table cell."""
  if isinstance(v, tuple):
    return "(" + ", ".join(map(str, v)) + ")"
  if isinstance(v, float):
    return f"{v:g}"
  return str(v)


def label(names, values) -> str:
  """A group as "name=value, ..." (notes and legends)."""
  return ", ".join(f"{n}={format_value(v)}" for n, v in zip(names, values))
