"""Sweeps as data, and the pure logic of launching them.

A sweep file (experiments/sweeps/*.py) defines get_sweep() returning a Sweep:

  Sweep(
      name="arch_x_tbptt",
      config="experiments/configs/default.py",     # FILE or FILE:VARIANT
      axes=product({"model.cell": ["gru", "lstm"], "data.bptt": [5, 35]}),
      seeds=[0, 1, 2],                              # train.seed
      fixed={"train.num_epochs": 2},                # the same for every run
  )

expand() turns a sweep into Runs, each named by its varying overrides
(`cell=gru+bptt=5+seed=1`: the last component of each dotted key, parts
joined by NAME_SEP). group() gathers runs that differ only in vectorisable
keys (VECTORIZABLE) and resume from one checkpoint step into one process of
experiments.train's --trials form.
run_state(), select() and summary() decide what a launch does from what the
run directories hold. Nothing here starts a process.
"""

import dataclasses
import importlib.util
import json
import os
import re
import shlex
from typing import Any, Sequence

SEED_KEY = "train.seed"
# Keys experiments.train can vary across the trials of one vmapped process.
VECTORIZABLE = (
    "train.seed",
    "optim.learning_rate",
    "model.init_scale",
    "model.dropout",
    "optim.clip_norm",
)
# Not ",": the --trials form of experiments.train takes a comma-separated
# list of run directories, so a run's name must not contain one.
NAME_SEP = "+"
TRAIN_MODULE = "experiments.train"
RESULTS_FILE = "results.json"  # Written by experiments.train when a run ends.
RECORD_FILE = "launch.json"  # The launcher's status of one run.
LOG_FILE = "launch.log"  # stdout + stderr of a run launched alone.
EXIT_FILE = "launch.exit"  # Exit status written by a SLURM task itself.
# Where experiments.train keeps the checkpoint a run resumes from.
CHECKPOINT_SLOT = ("checkpoints", "latest")
STATES = ("done", "running", "failed", "pending")


class SweepError(ValueError):
  """A sweep definition or a launch request that cannot be carried out."""


Overrides = dict[str, Any]


def _check_key(key: str) -> None:
  if not isinstance(key, str) or not re.fullmatch(r"\w+(\.\w+)+", key):
    raise SweepError(f"override key {key!r} is not a dotted config key")


def _points(factor) -> list[Overrides]:
  """A product factor as a list of override dicts."""
  if isinstance(factor, dict):
    points = [{}]
    for key, values in factor.items():
      _check_key(key)
      if isinstance(values, (str, bytes)) or not isinstance(
          values, (list, tuple)
      ):
        raise SweepError(f"axis {key}: give a list of values, got {values!r}")
      if not values:
        raise SweepError(f"axis {key} has no values")
      points = [{**p, key: v} for p in points for v in values]
    return points
  if isinstance(factor, (list, tuple)) and all(
      isinstance(p, dict) for p in factor
  ):
    for p in factor:
      for key in p:
        _check_key(key)
    return [dict(p) for p in factor]
  raise SweepError(
      "a product factor is {key: [values]} or a list of override dicts, got "
      f"{factor!r}"
  )


def product(*factors) -> list[Overrides]:
  """The Cartesian product of factors, the last varying fastest.

  Args:
    *factors: each either {key: [values, ...]} (the product over its keys, in
      order) or a list of override dicts (for instance from zip_()).

  Returns:
    One override dict per point.
  """
  points = [{}]
  for factor in factors:
    options = _points(factor)
    both = sorted(
        set().union(*map(set, points)) & set().union(*map(set, options))
    )
    if both:
      raise SweepError(f"key {both[0]} is given by two product factors")
    points = [{**p, **o} for p in points for o in options]
  return points


def zip_(spec: dict[str, Sequence]) -> list[Overrides]:
  """Keys that vary together: zip_({"a": [1, 2], "b": [3, 4]}) gives
  [{"a": 1, "b": 3}, {"a": 2, "b": 4}]; every list has the same length."""
  for key in spec:
    _check_key(key)
  lengths = {key: len(values) for key, values in spec.items()}
  if len(set(lengths.values())) > 1:
    raise SweepError(f"zip_ needs lists of one length, got {lengths}")
  keys = list(spec)
  return [dict(zip(keys, values)) for values in zip(*spec.values())]


@dataclasses.dataclass(frozen=True)
class Sweep:
  """A base config and the overrides that make each run.

  Attributes:
    name: the sweep's name (its default root is runs/sweeps/<name>).
    config: the config file relative to the repository root, optionally with
      :VARIANT, as experiments.train's --config takes it.
    axes: one override dict per point (product(), zip_() or a plain list).
    seeds: values of train.seed, crossed with every point; empty leaves the
      config's seed alone.
    fixed: overrides applied to every run (not part of run names).
  """

  name: str
  config: str
  axes: Sequence[Overrides] = (dict(),)
  seeds: Sequence[int] = ()
  fixed: Overrides = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Run:
  """One run of a sweep.

  Attributes:
    name: readable, filesystem-safe, unique within the sweep.
    overrides: every --config.KEY=VALUE of the run, fixed ones first.
    varying: the keys of overrides that name the run, in name order.
  """

  name: str
  overrides: Overrides
  varying: tuple[str, ...]


def format_value(value) -> str:
  """A value as an absl config override parses it back."""
  if isinstance(value, bool):
    return "True" if value else "False"
  if isinstance(value, (int, float, str)):
    return str(value) if not isinstance(value, float) else repr(value)
  if isinstance(value, (list, tuple)):
    return "(" + ",".join(format_value(v) for v in value) + ")"
  raise SweepError(f"cannot pass {value!r} as a config override")


def _short_names(keys: Sequence[str]) -> dict[str, str]:
  """Last component of each dotted key, the whole key where two collide."""
  last = [k.rsplit(".", 1)[-1] for k in keys]
  return {k: (s if last.count(s) == 1 else k) for k, s in zip(keys, last)}


def _safe(text: str) -> str:
  return re.sub(r"[^A-Za-z0-9._=+-]", "_", text)


def expand(sweep: Sweep) -> list[Run]:
  """The runs of a sweep: every point of its axes crossed with every seed.

  Raises:
    SweepError: a key both fixed and swept, or two runs with one name.
  """
  if not re.fullmatch(r"[A-Za-z0-9._-]+", sweep.name or ""):
    raise SweepError(f"sweep name {sweep.name!r} is not a plain word")
  for key in sweep.fixed:
    _check_key(key)
  points = list(sweep.axes) or [{}]
  seeds = list(sweep.seeds)
  swept = []  # Keys in the order they first appear, the seed last.
  for p in points:
    swept += [k for k in p if k not in swept]
  if seeds:
    if SEED_KEY in swept:
      raise SweepError(f"{SEED_KEY} is swept both by seeds and by axes")
    swept.append(SEED_KEY)
  both = sorted(set(swept) & set(sweep.fixed))
  if both:
    raise SweepError(f"key {both[0]} is both fixed and swept")
  short = _short_names(swept)
  runs = []
  for p in points:
    for seed in seeds or [None]:
      point = dict(p) if seed is None else {**p, SEED_KEY: seed}
      varying = tuple(k for k in swept if k in point)
      name = NAME_SEP.join(
          _safe(f"{short[k]}={format_value(point[k])}") for k in varying
      )
      runs.append(Run(name or "base", {**sweep.fixed, **point}, varying))
  names = [r.name for r in runs]
  for name in names:
    if names.count(name) > 1:
      raise SweepError(f"two runs of sweep {sweep.name} are named {name}")
  return runs


def load_sweep(spec: str) -> Sweep:
  """The Sweep that get_sweep() of FILE returns; FILE:VARIANT passes the
  variant to get_sweep(variant), as config files take theirs."""
  path, variant = spec, None
  head, sep, tail = spec.rpartition(":")
  if sep and head.endswith(".py") and "/" not in tail:
    path, variant = head, tail
  if not os.path.isfile(path):
    raise SweepError(f"no sweep file {path}")
  module_spec = importlib.util.spec_from_file_location("_sweep_file", path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  if not hasattr(module, "get_sweep"):
    raise SweepError(f"sweep file {path} defines no get_sweep()")
  sweep = module.get_sweep() if variant is None else module.get_sweep(variant)
  if not isinstance(sweep, Sweep):
    raise SweepError(f"get_sweep() of {spec} did not return a Sweep")
  return sweep


# ---------------------------------------------------------------------------
# Command lines.


def override_args(overrides: Overrides) -> list[str]:
  return [f"--config.{k}={format_value(v)}" for k, v in overrides.items()]


def train_command(
    python: str, config: str, overrides: Overrides, workdir: str
) -> list[str]:
  """The single-run command of experiments.train."""
  return [
      python,
      "-m",
      TRAIN_MODULE,
      f"--config={config}",
      *override_args(overrides),
      f"--workdir={workdir}",
  ]


@dataclasses.dataclass(frozen=True)
class Group:
  """Runs trained together in one process (experiments.train --trials).

  Attributes:
    name: the runs' name without their vectorisable parts ("all" if none).
    runs: the members, in sweep order.
    shared: overrides common to every member.
    trials: key -> one value per member, for the keys that differ.
  """

  name: str
  runs: tuple[Run, ...]
  shared: Overrides
  trials: dict[str, tuple]


def checkpoint_step(run_dir: str) -> int:
  """The step of a run's latest checkpoint; 0 when it has none.

  Read from the names of the integer folders under checkpoints/latest/
  (rnnlm_jax.checkpoint's layout; orbax renames a checkpoint's temporary
  folder to its step when complete), so the launcher needs no orbax.
  """
  try:
    names = os.listdir(os.path.join(run_dir, *CHECKPOINT_SLOT))
  except OSError:
    return 0
  steps = [
      int(n)
      for n in names
      if n.isdigit()
      and os.path.isdir(os.path.join(run_dir, *CHECKPOINT_SLOT, n))
  ]
  return max(steps, default=0)


def _alone(run: Run) -> bool:
  """A run that experiments.train --trials would refuse to vectorise.

  Only the overrides are known here (reading the base config's values would
  import the config file, and with it jax): a base config that is itself a
  count n-gram is not seen, and --trials then fails with its own error.
  """
  return run.overrides.get("model.kind") == "count_ngram"


def group(
    runs: Sequence[Run],
    vectorizable: Sequence[str] = VECTORIZABLE,
    steps: dict[str, int] | None = None,
) -> list[Group]:
  """Gathers runs that differ only in vectorisable keys, in sweep order.

  Runs go together when they set the same keys and agree on every key that
  is not vectorisable, on the sign of model.init_scale (> 0 against <= 0:
  two kinds of initialisation, one compiled program each) and on the step
  of their latest checkpoint (a group resumes from one step; steps maps a
  run's name to it, missing: 0). A vectorisable key on which the members
  agree is a shared override, the others become --trials. Count n-gram runs
  go alone. A group of one is named by its run.
  """
  steps = steps or {}
  buckets: dict[tuple, dict[tuple, list[Run]]] = {}
  for i, run in enumerate(runs):
    fixed = tuple(
        (k, format_value(v))
        for k, v in run.overrides.items()
        if k not in vectorizable
    )
    keys = tuple(sorted(k for k in run.overrides if k in vectorizable))
    scale = run.overrides.get("model.init_scale")
    split = (
        steps.get(run.name, 0),
        None if scale is None else scale > 0,
        i if _alone(run) else None,
    )
    buckets.setdefault((fixed, keys), {}).setdefault(split, []).append(run)
  groups = []
  for parts in buckets.values():
    for (step, positive, _), members in parts.items():
      if len(members) == 1:
        run = members[0]
        groups.append(Group(run.name, (run,), dict(run.overrides), {}))
        continue
      first = members[0]
      shared, trials = {}, {}
      for key, value in first.overrides.items():
        values = tuple(m.overrides[key] for m in members)
        if len(set(map(format_value, values))) == 1:
          shared[key] = value
        else:
          trials[key] = values
      short = _short_names(first.varying)
      name = [
          _safe(f"{short[k]}={format_value(first.overrides[k])}")
          for k in first.varying
          if k not in vectorizable
      ]
      # Parts of one bucket need names of their own (their logs).
      if len({s for s, _, _ in parts}) > 1:
        name.append(f"step={step}")
      if len({p for _, p, _ in parts}) > 1:
        name.append("init_scale=" + ("pos" if positive else "nonpos"))
      groups.append(
          Group(NAME_SEP.join(name) or "all", tuple(members), shared, trials)
      )
  order = {run.name: i for i, run in enumerate(runs)}
  groups.sort(key=lambda g: order[g.runs[0].name])
  names = [g.name for g in groups]
  for g in groups:
    if names.count(g.name) > 1:
      # Runs that set different vectorisable keys (axes given as a list).
      raise SweepError(f"two vectorised groups are named {g.name}")
  return groups


def group_command(
    python: str, config: str, grp: Group, workdirs: Sequence[str]
) -> list[str]:
  """experiments.train's --trials form for a group (the single-run form for
  a group of one)."""
  if len(grp.runs) == 1:
    return train_command(python, config, grp.runs[0].overrides, workdirs[0])
  for w in workdirs:
    if "," in w:
      raise SweepError(f"run directory {w} contains a comma")
  trials = [
      f"--trials={k}=" + ",".join(format_value(v) for v in values)
      for k, values in grp.trials.items()
  ]
  return [
      python,
      "-m",
      TRAIN_MODULE,
      f"--config={config}",
      *override_args(grp.shared),
      *trials,
      "--workdir=" + ",".join(workdirs),
  ]


def shell(argv: Sequence[str]) -> str:
  return shlex.join(argv)


# ---------------------------------------------------------------------------
# Run states.


def run_state(
    done: bool, record: dict | None, alive: bool | None, exit_code=None
) -> str:
  """The state of a run: 'done', 'running', 'failed' or 'pending'.

  Args:
    done: the run directory holds results.json.
    record: the launcher's record of the run (launch.json), if any.
    alive: whether the recorded process or job is alive now (None: unknown,
      taken as not alive).
    exit_code: an exit status learnt elsewhere (a SLURM task's exit file or
      sacct) for a record that has none.

  A record that says the run was started but whose process is gone without
  an exit status (a killed launcher, a lost node) is pending: launching it
  again resumes it from its checkpoints.
  """
  if done:
    return "done"
  if record is None:
    return "pending"
  if alive:
    return "running"
  code = record.get("exit_code")
  if code is None:
    code = exit_code
  # A zero exit without results.json is a failure too (nothing to show).
  return "pending" if code is None else "failed"


def select(
    states: dict[str, str], only: Sequence[str] = (), retry_failed=False
) -> list[str]:
  """The runs a launch starts, in sweep order.

  Pending runs always; failed runs with retry_failed or when named in only;
  never done or running ones. only restricts the launch to those names.
  """
  unknown = [n for n in only if n not in states]
  if unknown:
    raise SweepError(f"--only: no run named {unknown[0]} in this sweep")
  chosen = []
  for name, state in states.items():
    if only and name not in only:
      continue
    if state == "pending" or (
        state == "failed" and (retry_failed or name in only)
    ):
      chosen.append(name)
  return chosen


def summary(
    sweep_name: str,
    states: dict[str, str],
    failures: dict[str, str] | None = None,
) -> str:
  """Counts and names per state; each failure with its detail (exit status,
  log path and the log's tail)."""
  failures = failures or {}
  by_state = {s: [n for n, st in states.items() if st == s] for s in STATES}
  counts = ", ".join(f"{len(by_state[s])} {s}" for s in STATES)
  lines = [f"sweep {sweep_name}: {len(states)} runs: {counts}"]
  for s in ("running", "pending"):
    if by_state[s]:
      lines.append(f"{s}: " + " ".join(by_state[s]))
  for name in by_state["failed"]:
    lines.append(f"failed: {name}")
    detail = failures.get(name, "").rstrip("\n")
    lines += ["  | " + line for line in detail.splitlines()]
  return "\n".join(lines)


# ---------------------------------------------------------------------------
# Small file helpers for run directories.


def write_json_atomic(path: str, obj) -> None:
  tmp = f"{path}.{os.getpid()}.tmp"
  with open(tmp, "w", encoding="utf-8") as f:
    json.dump(obj, f, indent=2, sort_keys=True)
    f.write("\n")
  os.replace(tmp, path)


def read_json(path: str) -> dict | None:
  """The JSON object in path; None if it is missing or unreadable."""
  try:
    with open(path, encoding="utf-8") as f:
      value = json.load(f)
  except (OSError, ValueError):
    return None
  return value if isinstance(value, dict) else None


def update_record(run_dir: str, **fields) -> dict:
  """Merges fields into the run's launch.json (atomically); returns it."""
  path = os.path.join(run_dir, RECORD_FILE)
  record = {**(read_json(path) or {}), **fields}
  write_json_atomic(path, record)
  return record


def log_tail(path: str | None, lines: int = 12) -> str:
  if not path:
    return ""
  try:
    with open(path, "rb") as f:
      f.seek(0, os.SEEK_END)
      f.seek(max(0, f.tell() - 8192))
      text = f.read().decode("utf-8", "replace")
  except OSError:
    return f"(no log at {path})"
  return "\n".join(text.splitlines()[-lines:])
