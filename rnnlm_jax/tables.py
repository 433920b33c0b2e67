"""Ablation tables: markdown, CSV, LaTeX (booktabs) and a pivot of a
summary (rnnlm_jax.ablation), written with the figures
(rnnlm_jax.ablation_figures).

:func:`build_tables` writes table.md, table.csv, table.tex,
valid_curves.png (validation perplexity per epoch), and, when the runs vary
model.cell and data.bptt, ppl_vs_bptt.png; pivot.md when exactly two keys
vary. The command line is experiments/tables.py.
"""

import dataclasses
import io
import math
import os

from rnnlm_jax import ablation
from rnnlm_jax import ablation_figures
from rnnlm_jax import config as config_lib
from rnnlm_jax import figures
from rnnlm_jax import rundir
from rnnlm_jax.ablation import BPTT_KEY, FLOOR, LOWER_IS_BETTER, SEED_KEY
from rnnlm_jax.ablation import Row, Summary
from rnnlm_jax.ablation import format_value, sort_key


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
  """The best mean over two or more rows: the lowest of a lower-is-better
  metric, the highest of an accuracy or F1."""
  if len(summary.rows) < 2:
    return None
  means = [r.stats[metric][0] for r in summary.rows]
  if lower_is_better(metric):
    return min(means)
  if metric.endswith(ablation.HIGHER_IS_BETTER):
    return max(means)
  return None


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
    first.append(
        "Bold: the best mean of each column (the lowest perplexity or "
        "loss, the highest accuracy, F1, BLEU, chrF or Spearman rho)."
    )
  if summary.has_floor:
    first.append(f"{FLOOR}: test perplexity of the true generator.")
  for key, metric in summary.tuned:
    first.append(
        f"`{key}` tuned: of the rows that differ only in it, the one with "
        f"the best mean {metric} is shown."
    )
  if g.pooled:
    first.append(
        "Pooled within a row (not in --group_by): "
        + ", ".join(f"`{k}`" for k in g.pooled)
        + "."
    )
  for row in summary.rows:
    if row.repeats:
      label = ablation.label(g.names, row.values) or "The one row"
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
  row_vals = sorted({r.values[ri] for r in summary.rows}, key=sort_key)
  col_vals = sorted({r.values[ci] for r in summary.rows}, key=sort_key)
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
      "valid_curves": ablation_figures.valid_curves_figure(summary.grouping),
      "ppl_vs_bptt": ablation_figures.ppl_vs_bptt_figure(summary),
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
    tune=None,
) -> tuple[Summary, list[str]]:
  """find_runs, group_runs, summarise and write_outputs in one call;
  ``tune=(key, metric)`` keeps the best row over key (ablation.tune).

  Raises:
    FileNotFoundError: a root is not a folder.
    ConfigError: no run directory, no finished run, or a missing metric.
  """
  runs = []
  for root in roots:
    found = ablation.find_runs(root)
    if len(roots) > 1:
      base = os.path.basename(os.path.abspath(root))
      found = [dataclasses.replace(r, label=f"{base}/{r.label}") for r in found]
    runs += found
  if not runs:
    raise config_lib.ConfigError(
        f"no run directories (folders with {rundir.CONFIG_FILE}) under "
        + ", ".join(roots)
    )
  grouping = ablation.group_runs(runs, group_by)
  if not grouping.groups:
    raise config_lib.ConfigError(
        f"none of the {len(runs)} run directories under {', '.join(roots)} "
        f"has a {rundir.RESULTS_FILE} (unfinished or failed runs)"
    )
  summary = ablation.summarise(
      grouping, metrics or ablation.available_metrics(grouping)
  )
  if tune:
    summary = ablation.tune(summary, *tune)
  out = out or os.path.join(roots[0], "tables")
  return summary, write_outputs(out, summary)
