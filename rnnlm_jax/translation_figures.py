"""Figures of the translation task: an attention heat-map of one sentence,
and BLEU against source length (the bottleneck of the encoder-decoder
without attention)."""

import numpy as np

from rnnlm_jax import figures


def attention_heatmap(weights_TS, src_tokens, tgt_tokens, title: str = ""):
  """A heat-map of attention weights: a row per output token (its <eos>
  last), a column per source token."""
  plt = figures.pyplot()
  weights_TS = np.asarray(weights_TS)
  rows, cols = weights_TS.shape
  fig, ax = plt.subplots(
      figsize=(1.0 + 0.45 * max(cols, 4), 1.0 + 0.4 * max(rows, 4))
  )
  image = ax.imshow(weights_TS, cmap="Greys", vmin=0.0, vmax=1.0)
  ax.set_xticks(range(cols), labels=list(src_tokens), rotation=60, ha="right")
  ax.set_yticks(range(rows), labels=list(tgt_tokens))
  ax.set_xlabel("source")
  ax.set_ylabel("output")
  if title:
    ax.set_title(title, fontsize=9)
  fig.colorbar(image, ax=ax, fraction=0.04)
  fig.tight_layout()
  return fig


def bleu_by_length_figure(runs: dict, title: str = ""):
  """BLEU per source-length bin of each run: {label: {"low-high": {"bleu",
  "sentences"}}} (a run's results.json test_bleu_by_length)."""
  plt = figures.pyplot()
  fig, ax = plt.subplots(figsize=(6.5, 4.0))
  bins = []
  for by_length in runs.values():
    bins += [b for b in by_length if b not in bins]
  bins.sort(key=lambda b: int(b.split("-")[0]))
  for label, by_length in runs.items():
    xs = [i for i, b in enumerate(bins) if b in by_length]
    ax.plot(xs, [by_length[bins[i]]["bleu"] for i in xs], marker="o",
            label=label)
  ax.set_xticks(range(len(bins)), labels=bins)
  ax.set_xlabel("source length (tokens)")
  ax.set_ylabel("BLEU")
  ax.grid(alpha=0.3)
  ax.legend()
  if title:
    ax.set_title(title, fontsize=9)
  fig.tight_layout()
  return fig


def length_table(runs: dict) -> str:
  """A markdown table of BLEU per source-length bin, a column per run."""
  bins = []
  for by_length in runs.values():
    bins += [b for b in by_length if b not in bins]
  bins.sort(key=lambda b: int(b.split("-")[0]))
  labels = list(runs)
  lines = [
      "| source tokens | sentences | " + " | ".join(labels) + " |",
      "|---|---:|" + "---:|" * len(labels),
  ]
  for b in bins:
    first = next(r[b] for r in runs.values() if b in r)
    cells = [
        f"{runs[l][b]['bleu']:.1f}" if b in runs[l] else "" for l in labels
    ]
    lines.append(f"| {b} | {first['sentences']} | " + " | ".join(cells) + " |")
  return "\n".join(lines)
