"""Vanishing and exploding gradients, by cell, before and after training.

For each cell (rnn_tanh, rnn_sigmoid, gru, lstm; hidden 64, 1 layer) the
study takes an untrained model (the trained run's initial parameters) and one
trained for one epoch (or Settings.steps) on the built-in synthetic corpus, in
<out>/runs/<cell>, and measures the mean norm ||d J_t / d h_{t-d}|| of the
gradient of the loss at step t with respect to the hidden state d steps
earlier, averaged over positions t and over 16 sequences of 50 tokens from the
valid split (rnnlm_jax.gradients; float64, so that tiny norms do not
underflow). Given run directories are measured as well (trained only),
and so is the clipping study's model before training ("rnn_tanh init 1.0").

Clipping: a tanh RNN with a large init (init_scale 1.0) is trained by SGD at
lr 10 for 400 steps with global-norm clipping at 1.0 and without (in
<out>/runs/clip_1 and clip_0). A run that stops with TrainingDiverged (a NaN
loss) is plotted up to there; with tanh's bounded states neither run did in
the default study: unclipped, the first update (gradient norm ~2e4) throws
the units into saturation, after which the gradient is ~1 and the loss stays
high (valid ppl 517 against 89 with clipping).

Every run directory under <out>/runs is deleted and trained afresh. The
command line is experiments/gradient_study.py.

Writes into <out>: gradients.png (norm against distance, log scale),
clipping.png (training loss and gradient norm against step) and gradients.md
and clipping.md (the tables), and returns the tables.
"""

import dataclasses
import json
import os
import shutil
from typing import NamedTuple

import jax
import numpy as np
import optax

from rnnlm_jax import checkpoint
from rnnlm_jax import config as config_lib
from rnnlm_jax import corpus as corpus_lib
from rnnlm_jax import figures
from rnnlm_jax import gradients
from rnnlm_jax import rundir
from rnnlm_jax import steps
from rnnlm_jax import train
from rnnlm_jax.errors import DataError


class Settings(NamedTuple):
  cells: tuple = ("rnn_tanh", "rnn_sigmoid", "gru", "lstm")
  hidden: int = 64
  steps: int = 0  # 0: one epoch.
  sentences: tuple = (20000, 2000, 2000)
  batch_size: int = 32  # Training.
  bptt: int = 35
  seq_len: int = 50  # T of the measured sequences.
  batch: int = 16
  distances: tuple = (1, 10, 30)  # Table columns.
  clip_steps: int = 400
  clip_lr: float = 10.0
  log_every: int = 5


DEFAULT = Settings()
QUICK = Settings(
    hidden=8,
    steps=4,
    sentences=(150, 30, 30),
    batch_size=4,
    bptt=8,
    seq_len=12,
    batch=4,
    distances=(1, 10),
    clip_steps=10,
)
COLORS = {"rnn_tanh": "C0", "rnn_sigmoid": "C1", "gru": "C2", "lstm": "C3"}


def cell_config(
    cell: str, s: Settings, base: config_lib.Config, **changes
) -> config_lib.Config:
  """``base`` (experiments/configs/default.py in the study) with one small
  layer of ``cell``, trained on the settings' synthetic corpus."""
  cfg = dataclasses.replace(base, name=f"gradients_{cell}")
  cfg = config_lib.replace(
      cfg,
      model={"cell": cell, "hidden": s.hidden, "num_layers": 1},
      data={
          "synthetic_sentences": s.sentences,
          "batch_size": s.batch_size,
          "bptt": s.bptt,
      },
      train={
          "num_epochs": 1,
          "max_steps": s.steps,
          "log_every": s.log_every,
          "checkpoint_every": 100 * s.log_every,
      },
  )
  return config_lib.replace(cfg, **changes) if changes else cfg


def fresh_run(cfg: config_lib.Config, workdir: str) -> tuple[dict, bool]:
  """Trains cfg from scratch in workdir: (results, diverged)."""
  shutil.rmtree(workdir, ignore_errors=True)
  log = lambda line: print(f"[{os.path.basename(workdir)}] {line}")
  try:
    return train.train_and_evaluate(cfg, workdir, log=log), False
  except train.TrainingDiverged as e:
    log(f"diverged: {e}")
    return {}, True


def measure(params, model_cfg, x_BT, y_BT) -> dict:
  """Gradient norm by distance and recurrent spectrum, in float64."""
  with jax.enable_x64(True):
    p64 = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    norms = gradients.gradient_norm_by_distance(p64, model_cfg, x_BT, y_BT)
    return {"norms": norms, **gradients.recurrent_spectrum(p64, model_cfg)}


def valid_sequences(corpus, s: Settings):
  """s.batch consecutive windows of s.seq_len + 1 valid tokens: (x, y)."""
  n = s.batch * (s.seq_len + 1)
  ids = corpus.ids["valid"]
  if len(ids) < n:
    raise DataError(f"the valid split has fewer than {n} tokens")
  w = ids[:n].reshape(s.batch, s.seq_len + 1)
  return w[:, :-1], w[:, 1:]


def _initial_params(cfg: config_lib.Config):
  """A run's initial parameters (the same seed and key split as training)."""
  tx = optax.identity()
  return steps.init_train_state(
      jax.random.key(cfg.train.seed), cfg.model, tx, 1
  ).params


def _measured_config(cfg: config_lib.Config, s: Settings):
  """(cfg with the vocabulary size, measured inputs x, targets y)."""
  corpus = corpus_lib.load_corpus(cfg.data)
  x, y = valid_sequences(corpus, s)
  return train.with_vocab_size(cfg, len(corpus.vocab)), x, y


def cell_rows(out: str, s: Settings, base: config_lib.Config) -> list[dict]:
  rows = []
  for cell in s.cells:
    cfg, x, y = _measured_config(cell_config(cell, s, base), s)
    init = measure(_initial_params(cfg), cfg.model, x, y)
    rows.append({"model": cell, "trained": False, **init})
    workdir = os.path.join(out, "runs", cell)
    results, _ = fresh_run(cfg, workdir)
    params, _ = checkpoint.restore_params(workdir, "latest")
    rows.append(
        {
            "model": cell,
            "trained": True,
            "valid_ppl": results.get("valid_ppl"),
            **measure(params, cfg.model, x, y),
        }
    )
  return rows


def workdir_rows(workdirs, labels, s: Settings) -> list[dict]:
  rows = []
  for workdir, label in zip(workdirs, labels):
    slot = "best" if checkpoint.latest_step(workdir, "best") else "latest"
    trained = rundir.load_trained(workdir, slot)
    cfg, params = trained.cfg, trained.params
    corpus = corpus_lib.load_corpus(cfg.data, trained.vocab)
    x, y = valid_sequences(corpus, s)
    results = os.path.join(workdir, rundir.RESULTS_FILE)
    ppl = None
    if os.path.exists(results):
      with open(results) as f:
        ppl = json.load(f).get("valid_ppl")
    rows.append(
        {
            "model": label,
            "trained": True,
            "valid_ppl": ppl,
            **measure(params, cfg.model, x, y),
        }
    )
  return rows


def clipping_config(
    s: Settings, base: config_lib.Config, clip: float
) -> config_lib.Config:
  return cell_config(
      "rnn_tanh",
      s,
      base,
      model={"init_scale": 1.0},
      optim={
          "name": "sgd",
          "learning_rate": s.clip_lr,
          "schedule": "constant",
          "clip_norm": clip,
      },
      # Every step logged, so that the first steps' gradients show.
      train={
          "num_epochs": 100,
          "max_steps": s.clip_steps,
          "log_every": 1,
          "checkpoint_every": 1000,
      },
  )


def large_init_row(s: Settings, base: config_lib.Config) -> dict:
  """The clipping study's tanh RNN (init_scale 1.0) before training."""
  cfg, x, y = _measured_config(clipping_config(s, base, 0.0), s)
  init = measure(_initial_params(cfg), cfg.model, x, y)
  return {"model": "rnn_tanh init 1.0", "trained": False, **init}


def clipping_runs(out: str, s: Settings, base: config_lib.Config) -> list[dict]:
  """The tanh RNN with a large init, with and without clipping."""
  runs = []
  for clip in (1.0, 0.0):
    workdir = os.path.join(out, "runs", f"clip_{clip:g}")
    results, diverged = fresh_run(clipping_config(s, base, clip), workdir)
    with open(os.path.join(workdir, rundir.METRICS_FILE)) as f:
      records = [json.loads(line) for line in f if line.strip()]
    records = [r for r in records if "train_loss" in r]
    runs.append(
        {
            "clip": clip,
            "diverged": diverged,
            "valid_ppl": results.get("valid_ppl"),
            "step": [r["step"] for r in records],
            "loss": [r["train_loss"] for r in records],
            "grad_norm": [r["grad_norm"] for r in records],
        }
    )
  return runs


def _fmt(v) -> str:
  return "-" if v is None else f"{v:.3g}"


def gradient_table(rows, s: Settings) -> str:
  ds = [d for d in s.distances if d < s.seq_len]
  lines = [
      f"Mean ||dJ_t/dh_(t-d)|| over {s.batch} valid sequences of"
      f" {s.seq_len} tokens and the positions t >= d. Spectrum of the"
      " recurrent matrix (gated cells: its candidate block; stacked: all of"
      " w_hh).",
      "",
      "| model | trained | valid ppl | spectral radius | largest singular"
      " value | largest singular value (stacked) | "
      + " | ".join(f"norm d={d}" for d in ds)
      + f" | ratio d={ds[-1]}/d=1 |",
      "|" + "---|" * (len(ds) + 7),
  ]
  for r in rows:
    n = r["norms"]
    lines.append(
        f"| {r['model']} | {'yes' if r['trained'] else 'no'} |"
        f" {_fmt(r.get('valid_ppl'))} | {r['spectral_radius']:.3f} |"
        f" {r['max_singular']:.3f} | {r['max_singular_stacked']:.3f} | "
        + " | ".join(f"{n[d]:.3g}" for d in ds)
        + f" | {n[ds[-1]] / n[1]:.3g} |"
    )
  return "\n".join(lines) + "\n"


def clipping_table(runs, s: Settings) -> str:
  lines = [
      f"tanh RNN, init_scale 1.0, SGD lr {s.clip_lr:g}, up to"
      f" {s.clip_steps} steps.",
      "",
      "| clip_norm | last logged step | last train loss | max grad norm |"
      " diverged | valid ppl |",
      "|---|---|---|---|---|---|",
  ]
  for r in runs:
    lines.append(
        f"| {r['clip']:g} | {r['step'][-1] if r['step'] else 0} |"
        f" {_fmt(r['loss'][-1] if r['loss'] else None)} |"
        f" {_fmt(max(r['grad_norm'], default=None))} |"
        f" {'yes' if r['diverged'] else 'no'} | {_fmt(r['valid_ppl'])} |"
    )
  return "\n".join(lines) + "\n"


def plot_gradients(rows, s: Settings):
  plt = figures.pyplot()
  fig, ax = plt.subplots(figsize=(7, 4.5))
  for i, r in enumerate(rows):
    n = np.asarray(r["norms"])
    d = np.arange(len(n))
    keep = n > 0
    ax.plot(
        d[keep],
        n[keep],
        color=COLORS.get(r["model"], f"C{4 + i % 6}"),
        linestyle="-" if r["trained"] else "--",
        label=f"{r['model']} ({'trained' if r['trained'] else 'untrained'})",
    )
  ax.set_yscale("log")
  ax.set_xlabel("distance d = t - k (steps)")
  ax.set_ylabel("mean ||dJ_t / dh_k||")
  ax.set_title(f"Gradient norm through time (hidden {s.hidden}, 1 layer)")
  ax.legend(fontsize=7, ncol=2)
  fig.tight_layout()
  return fig


def plot_clipping(runs, s: Settings):
  plt = figures.pyplot()
  fig, (ax_l, ax_g) = plt.subplots(1, 2, figsize=(10, 4))
  for r in runs:
    label = f"clip_norm {r['clip']:g}" if r["clip"] else "no clipping"
    if r["diverged"]:
      last = r["step"][-1] if r["step"] else 0
      label += f" (NaN at step {last + 1})"
    for ax, key in ((ax_l, "loss"), (ax_g, "grad_norm")):
      (line,) = ax.plot(r["step"], r[key], label=label)
      if r["diverged"] and r["step"]:
        ax.plot(r["step"][-1], r[key][-1], "x", color=line.get_color(), ms=10)
  ax_l.set_ylabel("training loss (nats/token)")
  ax_g.set_ylabel("gradient norm (before clipping)")
  ax_g.set_yscale("log")
  for ax in (ax_l, ax_g):
    ax.set_xlabel("step")
    ax.legend()
  fig.suptitle(
      f"tanh RNN, init_scale 1.0, SGD lr {s.clip_lr:g}: clipping vs none"
  )
  fig.tight_layout()
  return fig


def run_study(
    out: str, s: Settings, base: config_lib.Config, workdirs=(), labels=()
) -> str:
  """Runs everything, writes gradients.{md,png} and clipping.{md,png} into
  out and returns both tables. ``base``: the config every run starts from.
  """
  rows = cell_rows(out, s, base) + workdir_rows(workdirs, labels, s)
  rows.append(large_init_row(s, base))
  runs = clipping_runs(out, s, base)
  grads, clips = gradient_table(rows, s), clipping_table(runs, s)
  os.makedirs(out, exist_ok=True)
  for name, text, fig in (
      ("gradients", grads, plot_gradients(rows, s)),
      ("clipping", clips, plot_clipping(runs, s)),
  ):
    rundir.write_text_atomic(os.path.join(out, f"{name}.md"), text)
    figures.save_figure(out, name, fig)
  return f"{grads}\n{clips}"
