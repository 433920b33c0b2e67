"""Validation loss against three clocks: optimizer updates, training tokens
read, and training seconds. Runs that turn the same data into updates in
different ways (the first lecture's online, minibatch and full-batch
gradient descent) rank differently on each clock, so one figure shows all
three."""

import dataclasses
import os

import numpy as np

from rnnlm_jax import figures
from rnnlm_jax import metrics
from rnnlm_jax import rundir
from rnnlm_jax.errors import DataError

CLOCKS = (
    ("updates", "optimizer updates"),
    ("tokens", "training tokens read"),
    ("seconds", "training seconds (no evaluation)"),
)


@dataclasses.dataclass(frozen=True)
class Curve:
  """One run's validation points; each array has one entry per point."""

  label: str
  updates: np.ndarray
  tokens: np.ndarray
  seconds: np.ndarray
  valid_loss: np.ndarray


def updates_per_step(accum: int, steps_per_epoch: int) -> int:
  """Train steps per optimizer update: optim.grad_accum_steps, where -1
  is a whole epoch."""
  return steps_per_epoch if accum == -1 else accum


def curve_of(records: list[dict], accum: int, label: str) -> Curve:
  """The curve of one run's metrics records (metrics.jsonl, in order).

  A validation point at step s counts the tokens and seconds of the train
  records up to s: a train record covers the steps since the one before
  it, window_s seconds at tokens_per_s tokens a second."""
  train = [r for r in records if "window_s" in r]
  valid = [r for r in records if "valid_loss" in r]
  if not valid:
    raise DataError(f"{label}: no validation records")
  if not train:
    raise DataError(f"{label}: no train records with window_s")
  step_T = np.array([r["step"] for r in train])
  tokens_T = np.cumsum([r["tokens_per_s"] * r["window_s"] for r in train])
  seconds_T = np.cumsum([r["window_s"] for r in train])
  per_epoch = round(train[0]["step"] / train[0]["epoch"])
  step_V = np.array([r["step"] for r in valid])
  # The last train record at or before each validation step.
  at = np.searchsorted(step_T, step_V, side="right") - 1
  if (at < 0).any():
    raise DataError(f"{label}: a validation record precedes every train one")
  return Curve(
      label,
      step_V // updates_per_step(accum, per_epoch),
      tokens_T[at],
      seconds_T[at],
      np.array([r["valid_loss"] for r in valid]),
  )


def read_curve(workdir: str, label: str) -> Curve:
  """The curve of a run directory's metrics.jsonl and config."""
  path = os.path.join(workdir, rundir.METRICS_FILE)
  if not os.path.exists(path):
    raise DataError(f"{path} not found: is {workdir} a run directory?")
  cfg = rundir.load_run_config(workdir)
  return curve_of(metrics.read_jsonl(path), cfg.optim.grad_accum_steps, label)


def table(curves: list[Curve]) -> str:
  """Markdown: per run, the best validation loss and the clocks at which
  it was first reached, and where each run ends."""
  lines = [
      "| run | best valid loss | updates | tokens | seconds | final"
      " updates | final tokens | final seconds |",
      "|---|---:|---:|---:|---:|---:|---:|---:|",
  ]
  for c in curves:
    b = int(np.argmin(c.valid_loss))
    lines.append(
        f"| {c.label} | {c.valid_loss[b]:.4f} | {c.updates[b]:,} |"
        f" {c.tokens[b]:,.0f} | {c.seconds[b]:.1f} | {c.updates[-1]:,} |"
        f" {c.tokens[-1]:,.0f} | {c.seconds[-1]:.1f} |"
    )
  return "\n".join(lines)


def figure(curves: list[Curve], title: str):
  """Three panels, validation loss against each clock (log x)."""
  plt = figures.pyplot()
  fig, axes = plt.subplots(1, 3, figsize=(14, 4.2), sharey=True)
  for ax, (clock, xlabel) in zip(axes, CLOCKS):
    for c in curves:
      ax.plot(getattr(c, clock), c.valid_loss, marker=".", label=c.label)
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.grid(alpha=0.3)
  axes[0].set_ylabel("validation loss (nats per token)")
  axes[0].legend()
  fig.suptitle(title)
  fig.tight_layout()
  return fig
