"""Ablation tables and figures from run directories alone.

Every folder under a root that holds a config.json (or only the sweep
launcher's launch.json: a run not yet started) is a run. Runs are grouped
by their config without train.seed and IGNORED_KEYS (logging, checkpointing,
the device count), so each group is one configuration trained with several
seeds. The table's columns are the config keys that vary across groups, the
number of seeds n, and mean ± sample standard deviation over seeds of each
metric of results.json. Runs without results.json (unfinished or failed)
are listed as incomplete and left out of the means.

:func:`build_tables` writes table.md, table.csv, table.tex (booktabs),
valid_curves.png (validation perplexity per epoch), and, when the runs vary
model.cell and data.bptt, ppl_vs_bptt.png; pivot.md when exactly two keys
vary. The command line is experiments/tables.py.
"""

import dataclasses
import io
import json
import math
import os

import numpy as np

from rnnlm_jax import config as config_lib
from rnnlm_jax import figures
from rnnlm_jax import provenance
from rnnlm_jax import rundir

# Keys that say nothing about what a run is: the seed (averaged over), how
# often it logs and checkpoints, how many devices share its batches (the
# losses of one device), the vocabulary size (taken from the data) and where
# token ids are cached. Not all of rundir.RESUMABLE_CHANGES: a run of more
# epochs or steps is another configuration, though it may resume from one of
# fewer.
IGNORED_KEYS = (
    "train.seed",
    "model.vocab_size",
    "data.cache_dir",
    "train.log_every",
    "train.checkpoint_every",
    "train.num_devices",
)
SEED_KEY = "train.seed"
# The metrics shown when none is asked for, where every run has them.
DEFAULT_METRICS = ("valid_ppl", "test_ppl", "valid_bpc", "test_bpc")
# The true generator's perplexity: a property of the corpus, not of the
# model, shown as a plain value (and a line in the figure).
FLOOR = "floor_ppl"
LOWER_IS_BETTER = ("_ppl", "_bpc", "_loss")
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


def _sort_key(value):
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
          by_values.items(), key=lambda kv: [_sort_key(v) for v in kv[0]]
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


def format_value(v) -> str:
  """A config value as a table cell."""
  if isinstance(v, tuple):
    return "(" + ", ".join(map(str, v)) + ")"
  if isinstance(v, float):
    return f"{v:g}"
  return str(v)


def _decimals(x: float) -> int:
  return 3 if abs(x) < 10 else (2 if abs(x) < 1000 else 0)


def format_number(x: float, like: float | None = None) -> str:
  """x with as many decimals as suit `like` (default x): 3 below 10, 2 below
  1000, none above (with thousands separators)."""
  if not math.isfinite(x):
    return str(x)
  ref = x if like is None or not math.isfinite(like) else like
  return f"{x:,.{_decimals(ref)}f}"


def format_stat(mean: float, std: float, tex: bool = False) -> str:
  """'mean ± std'; '-' for the std of one seed (just the mean in LaTeX)."""
  pm = " $\\pm$ " if tex else " ± "
  if math.isnan(std):
    return format_number(mean) + ("" if tex else pm + "-")
  return format_number(mean) + pm + format_number(std, like=mean)


def _header(summary: Summary) -> list[str]:
  cols = [*summary.grouping.names, "n", *summary.metrics]
  return cols + [FLOOR] if summary.has_floor else cols


def lower_is_better(metric: str) -> bool:
  return metric.endswith(LOWER_IS_BETTER)


def best_mean(summary: Summary, metric: str) -> float | None:
  """The lowest mean of a lower-is-better metric over two or more rows."""
  if len(summary.rows) < 2 or not lower_is_better(metric):
    return None
  return min(r.stats[metric][0] for r in summary.rows)


def _cells(summary: Summary, row: Row, tex: bool = False) -> list[str]:
  cells = [format_value(v) for v in row.values] + [str(row.n)]
  if not tex:  # A '|' in a value would end a markdown cell.
    cells = [c.replace("|", "\\|") for c in cells]
  for m in summary.metrics:
    mean, std = row.stats[m]
    cell = format_stat(mean, std, tex)
    if mean == best_mean(summary, m):
      cell = f"\\textbf{{{cell}}}" if tex else f"**{cell}**"
    cells.append(cell)
  if summary.has_floor:
    cells.append(format_number(row.floor))
  return cells


def _plural(n: int, word: str) -> str:
  return f"{n} {word}" + ("" if n == 1 else "s")


def notes(summary: Summary) -> list[str]:
  """The paragraphs a reader of the table needs: averaging, pooled keys,
  repeated seeds, and the runs left out."""
  g = summary.grouping
  runs = sum(r.n for r in summary.rows)
  first = [
      f"Mean ± sample standard deviation over seeds ({SEED_KEY}) of "
      f"{_plural(runs, 'finished run')} in "
      f"{_plural(len(summary.rows), 'row' if g.pooled else 'configuration')}; "
      '"-" where one seed.'
  ]
  if any(best_mean(summary, m) is not None for m in summary.metrics):
    first.append("Bold: the lowest mean of each column.")
  if summary.has_floor:
    first.append(f"{FLOOR}: test perplexity of the true generator.")
  if g.pooled:
    first.append(
        "Pooled within a row (not in --group_by): "
        + ", ".join(f"`{k}`" for k in g.pooled)
        + "."
    )
  for row in summary.rows:
    if row.repeats:
      label = _label(g.names, row.values) or "The one row"
      first.append(
          f"{label}: {_plural(row.repeats, 'run')} with the config and seed "
          "of another, counted as separate seeds."
      )
  out = [" ".join(first)]
  made_by = provenance_note(summary)
  if made_by:
    out.append(made_by)
  if g.incomplete:
    out.append(
        f"Incomplete, not in the means ({_plural(len(g.incomplete), 'run')}):"
        "\n\n" + "\n".join(f"- `{r.label}`: {r.problem}" for r in g.incomplete)
    )
  return out


def provenance_note(summary: Summary) -> str | None:
  """Which code and device made the finished runs, from provenance.jsonl:
  'Made by 1af0f6d on cpu (44 runs); ...'. None when no run has a record."""
  runs = [r for g in summary.grouping.groups for r in g.runs]
  counts = {}
  for r in runs:
    for what in dict.fromkeys(r.made_by):
      counts[what] = counts.get(what, 0) + 1
  if not counts:
    return None
  parts = [f"{what} ({_plural(n, 'run')})" for what, n in counts.items()]
  bare = sum(not r.made_by for r in runs)
  if bare:
    parts.append(f"not recorded ({_plural(bare, 'run')})")
  return "Made (or resumed) by " + "; ".join(parts) + "."


def to_markdown(summary: Summary) -> str:
  """The table with right-aligned numbers, then the notes."""
  header = _header(summary)
  keys = len(summary.grouping.names)
  lines = [
      "| " + " | ".join(header) + " |",
      "|"
      + "".join("---|" if i < keys else "---:|" for i in range(len(header))),
  ]
  for row in summary.rows:
    lines.append("| " + " | ".join(_cells(summary, row)) + " |")
  return "\n".join(lines) + "\n\n" + "\n\n".join(notes(summary)) + "\n"


def _csv_number(x: float | None) -> str:
  return "" if x is None or math.isnan(x) else repr(float(x))


def to_csv(summary: Summary) -> str:
  """One row per group: the keys' values, n, <metric>_mean, <metric>_std
  (empty for one seed), floor_ppl; numbers at full precision."""
  import csv  # pylint: disable=g-import-not-at-top

  buf = io.StringIO()
  w = csv.writer(buf, lineterminator="\n")
  header = [*summary.grouping.names, "n"]
  for m in summary.metrics:
    header += [f"{m}_mean", f"{m}_std"]
  w.writerow(header + ([FLOOR] if summary.has_floor else []))
  for row in summary.rows:
    cells = [format_value(v) for v in row.values] + [row.n]
    for m in summary.metrics:
      cells += [_csv_number(x) for x in row.stats[m]]
    if summary.has_floor:
      cells.append(_csv_number(row.floor))
    w.writerow(cells)
  return buf.getvalue()


_TEX_ESCAPES = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def tex_escape(s: str) -> str:
  return "".join(_TEX_ESCAPES.get(c, c) for c in s)


def to_latex(summary: Summary) -> str:
  """A booktabs tabular (needs \\usepackage{booktabs})."""
  header = _header(summary)
  keys = len(summary.grouping.names)
  spec = "l" * keys + "r" * (len(header) - keys)
  lines = [
      f"\\begin{{tabular}}{{{spec}}}",
      "\\toprule",
      " & ".join(tex_escape(h) for h in header) + " \\\\",
      "\\midrule",
  ]
  for row in summary.rows:
    cells = _cells(summary, row, tex=True)
    # Only config values need escaping; the numbers are LaTeX already.
    cells[:keys] = map(tex_escape, cells[:keys])
    lines.append(" & ".join(cells) + " \\\\")
  lines += ["\\bottomrule", "\\end{tabular}"]
  return "\n".join(lines) + "\n"


def _pivot_axes(summary: Summary) -> tuple[int, int]:
  """(row key index, column key index): columns are the truncation length,
  else the one numeric key, else the second key."""
  keys = summary.grouping.keys
  if BPTT_KEY in keys:
    col = keys.index(BPTT_KEY)
  else:
    numeric = [
        i
        for i in range(2)
        if all(isinstance(r.values[i], (int, float)) for r in summary.rows)
    ]
    col = numeric[0] if len(numeric) == 1 else 1
  return 1 - col, col


def to_pivot(summary: Summary) -> str | None:
  """Per metric, a table of 'mean ± std' with one key down and the other
  across; None unless exactly two keys vary."""
  g = summary.grouping
  if len(g.keys) != 2:
    return None
  ri, ci = _pivot_axes(summary)
  row_vals = sorted({r.values[ri] for r in summary.rows}, key=_sort_key)
  col_vals = sorted({r.values[ci] for r in summary.rows}, key=_sort_key)
  by = {(r.values[ri], r.values[ci]): r for r in summary.rows}
  parts = []
  for m in summary.metrics:
    lines = [
        f"{m}, mean ± std over seeds (n in parentheses); "
        f"rows: {g.names[ri]}, columns: {g.names[ci]}",
        "",
        f"| {g.names[ri]} \\ {g.names[ci]} | "
        + " | ".join(format_value(c) for c in col_vals)
        + " |",
        "|---|" + "---:|" * len(col_vals),
    ]
    for rv in row_vals:
      cells = []
      for cv in col_vals:
        row = by.get((rv, cv))
        if row is None:
          cells.append("-")
        else:
          cells.append(f"{format_stat(*row.stats[m])} ({row.n})")
      lines.append(f"| {format_value(rv)} | " + " | ".join(cells) + " |")
    parts.append("\n".join(lines))
  return "\n\n".join(parts) + "\n"


def _label(names, values) -> str:
  return ", ".join(f"{n}={format_value(v)}" for n, v in zip(names, values))


MAX_PANELS = 6


def _panel_index(keys) -> int | None:
  """The key that splits the curves into panels (the cell where it varies
  beside other keys, else the first of two or more keys), or None."""
  if len(keys) < 2:
    return None
  return keys.index(CELL_KEY) if CELL_KEY in keys else 0


def valid_curves_figure(grouping: Grouping):
  """Validation perplexity against epoch, per group: the mean over seeds at
  the epochs every seed reached, with a band of ± one std. One panel per
  cell (or per value of the first key) when two or more keys vary, so that
  a grid of configurations stays readable. None when no run logged
  validation (count-based models)."""
  curves = [
      (g, [{round(e, 6): y for e, y in r.curve} for r in g.runs])
      for g in grouping.groups
      if all(r.curve for r in g.runs)
  ]
  if not curves:
    return None
  plt = figures.pyplot()
  import matplotlib.ticker  # pylint: disable=g-import-not-at-top

  pi = _panel_index(grouping.keys)
  panel_values = [None]
  if pi is not None:
    panel_values = sorted({g.values[pi] for g, _ in curves}, key=_sort_key)
    if len(panel_values) > MAX_PANELS:
      pi, panel_values = None, [None]
  line_keys = [i for i in range(len(grouping.keys)) if i != pi]
  fig, axes = plt.subplots(
      1,
      len(panel_values),
      figsize=(4.2 * len(panel_values) + 2.5, 4.5),
      sharey=True,
      squeeze=False,
  )
  for ax, panel in zip(axes[0], panel_values):
    mine = [c for c in curves if pi is None or c[0].values[pi] == panel]
    colours = plt.get_cmap("tab10" if len(mine) <= 10 else "tab20")
    for i, (g, per_seed) in enumerate(mine):
      epochs = sorted(set.intersection(*(set(c) for c in per_seed)))
      y_SE = np.array([[c[e] for e in epochs] for c in per_seed])
      mean = y_SE.mean(0)
      label = _label(
          [grouping.names[k] for k in line_keys],
          [g.values[k] for k in line_keys],
      )
      colour = colours(i % colours.N)
      ax.plot(
          epochs,
          mean,
          marker=".",
          color=colour,
          label=f"{label or 'all runs'} (n={len(per_seed)})",
      )
      if len(per_seed) > 1:
        std = y_SE.std(0, ddof=1)
        ax.fill_between(epochs, mean - std, mean + std, color=colour, alpha=0.2)
    if pi is not None:
      ax.set_title(f"{grouping.names[pi]}={format_value(panel)}")
    ax.set_yscale("log")
    plain = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}")
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(plain)
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
  lo, hi = axes[0][0].get_ylim()
  if hi > 10 * lo:  # Labels at every minor tick would crowd several decades.
    axes[0][0].yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
  axes[0][0].set_ylabel("validation perplexity (log scale)")
  fig.suptitle("Validation perplexity per epoch (mean over seeds, band: ± std)")
  fig.tight_layout()
  return fig


def ppl_vs_bptt_figure(summary: Summary, metric: str = "test_ppl"):
  """metric against the truncation length, one line per cell (and per value
  of any other varying key), error bars of ± std over seeds, log x axis; a
  dashed line at the true floor. None unless cell and bptt both vary."""
  g = summary.grouping
  if not {CELL_KEY, BPTT_KEY} <= set(g.keys) or metric not in summary.metrics:
    return None
  bi = g.keys.index(BPTT_KEY)
  others = [i for i in range(len(g.keys)) if i != bi]
  lines = {}
  for row in summary.rows:
    lines.setdefault(tuple(row.values[i] for i in others), []).append(row)
  plt = figures.pyplot()
  import matplotlib.ticker  # pylint: disable=g-import-not-at-top

  fig, ax = plt.subplots(figsize=(7, 4.5))
  for values, rows in lines.items():
    rows = sorted(rows, key=lambda r: r.values[bi])
    x = [r.values[bi] for r in rows]
    mean = [r.stats[metric][0] for r in rows]
    err = [
        0.0 if math.isnan(r.stats[metric][1]) else r.stats[metric][1]
        for r in rows
    ]
    label = _label([g.names[i] for i in others], values)
    if len(others) == 1:
      label = format_value(values[0])  # The legend's title names the key.
    ax.errorbar(x, mean, yerr=err, marker="o", capsize=3, label=label)
  if summary.has_floor:
    floor = float(np.mean([r.floor for r in summary.rows]))
    ax.axhline(
        floor, color="grey", linestyle="--", label=f"true floor ({floor:.2f})"
    )
  bptts = sorted({r.values[bi] for r in summary.rows})
  ax.set_xscale("log")
  ax.set_xticks(bptts)
  ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
  ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
  ax.set_xlabel("truncation length (data.bptt, tokens)")
  what = metric.replace("_ppl", " perplexity").replace("_", " ")
  ax.set_ylabel(what)
  ax.set_title(
      f"{what[0].upper() + what[1:]} vs truncation length "
      "(mean ± std over seeds)"
  )
  ax.grid(True, alpha=0.3)
  ax.legend(fontsize=8, title=g.names[others[0]] if len(others) == 1 else None)
  fig.tight_layout()
  return fig


def write_outputs(out: str, summary: Summary) -> list[str]:
  """Writes the tables and figures into out; returns the paths written."""
  os.makedirs(out, exist_ok=True)
  texts = {
      "table.md": to_markdown(summary),
      "table.csv": to_csv(summary),
      "table.tex": to_latex(summary),
  }
  pivot = to_pivot(summary)
  if pivot is not None:
    texts["pivot.md"] = pivot
  written = []
  for name, text in texts.items():
    path = os.path.join(out, name)
    rundir.write_text_atomic(path, text)
    written.append(path)
  made = {
      "valid_curves": valid_curves_figure(summary.grouping),
      "ppl_vs_bptt": ppl_vs_bptt_figure(summary),
  }
  for name, fig in made.items():
    if fig is not None:
      written.append(figures.save_figure(out, name, fig))
  return written


def build_tables(
    roots: list[str],
    out: str | None = None,
    metrics=None,
    group_by=None,
) -> tuple[Summary, list[str]]:
  """find_runs, group_runs, summarise and write_outputs in one call.

  Raises:
    FileNotFoundError: a root is not a folder.
    ConfigError: no run directory, no finished run, or a missing metric.
  """
  runs = []
  for root in roots:
    found = find_runs(root)
    if len(roots) > 1:
      base = os.path.basename(os.path.abspath(root))
      found = [dataclasses.replace(r, label=f"{base}/{r.label}") for r in found]
    runs += found
  if not runs:
    raise config_lib.ConfigError(
        f"no run directories (folders with {rundir.CONFIG_FILE}) under "
        + ", ".join(roots)
    )
  grouping = group_runs(runs, group_by)
  if not grouping.groups:
    raise config_lib.ConfigError(
        f"none of the {len(runs)} run directories under {', '.join(roots)} "
        f"has a {rundir.RESULTS_FILE} (unfinished or failed runs)"
    )
  summary = summarise(grouping, metrics or available_metrics(grouping))
  out = out or os.path.join(roots[0], "tables")
  return summary, write_outputs(out, summary)
