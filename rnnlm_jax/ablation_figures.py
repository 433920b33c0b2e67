"""The figures of an ablation: validation curves per configuration, and
perplexity against the truncation length per cell."""

import math

import numpy as np

from rnnlm_jax import ablation
from rnnlm_jax import figures
from rnnlm_jax.ablation import BPTT_KEY, CELL_KEY, Grouping, Summary
from rnnlm_jax.ablation import format_value, sort_key

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
    panel_values = sorted({g.values[pi] for g, _ in curves}, key=sort_key)
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
      label = ablation.label(
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
    label = ablation.label([g.names[i] for i in others], values)
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
