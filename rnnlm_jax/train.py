"""train_and_evaluate(config, workdir): the training loop.

The loop is thin: one compiled train step per segment, metrics fetched from
the device every ``log_every`` steps (the only host syncs besides
checkpoints), a validation pass and checkpoints at each epoch end, and
automatic resumption from the run directory's latest checkpoint.
"""

import dataclasses
import os
import time
from typing import Callable

import jax
import numpy as np

from rnnlm_jax import checkpoint
from rnnlm_jax import config as config_lib
from rnnlm_jax import corpus as corpus_lib
from rnnlm_jax import data
from rnnlm_jax import evaluation
from rnnlm_jax import metrics as metrics_lib
from rnnlm_jax import models
from rnnlm_jax import ngram
from rnnlm_jax import optim
from rnnlm_jax import rundir
from rnnlm_jax import steps
from rnnlm_jax.config import Config

IncompatibleRun = rundir.IncompatibleRun


class TrainingDiverged(FloatingPointError):
  """The loss or the gradients became NaN or Inf."""


def with_vocab_size(cfg: Config, vocab_size: int) -> Config:
  if cfg.model.vocab_size not in (0, vocab_size):
    raise config_lib.ConfigError(
        f"model.vocab_size={cfg.model.vocab_size} but the vocabulary has "
        f"{vocab_size} tokens"
    )
  return config_lib.replace(cfg, model={"vocab_size": vocab_size})


def _check_finite(fetched, first_step: int) -> None:
  for i, m in enumerate(fetched):
    if not (np.isfinite(m["nll"]) and np.isfinite(m["grad_norm"])):
      what = "loss" if not np.isfinite(m["nll"]) else "gradient"
      raise TrainingDiverged(
          f"non-finite training {what} at step {first_step + i + 1} (checked "
          f"steps {first_step + 1}-{first_step + len(fetched)}); the update "
          f"was skipped and training stopped: lower the learning rate or "
          f"enable clipping"
      )


def _fmt_time(seconds: float) -> str:
  seconds = int(max(seconds, 0))
  return f"{seconds // 3600}h{seconds // 60 % 60:02d}m{seconds % 60:02d}s"


@dataclasses.dataclass
class _Window:
  """Metrics since the last fetch."""

  first_step: int
  t0: float
  pending: list = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class _Plan:
  steps_per_epoch: int
  total_steps: int
  tokens_per_step: int
  accum: int


def _summarise(window: _Window, done: int, plan: _Plan, lr: float) -> dict:
  fetched = jax.device_get(window.pending)
  _check_finite(fetched, window.first_step)
  elapsed = time.perf_counter() - window.t0
  nll = sum(float(f["nll"]) for f in fetched) / max(
      sum(float(f["count"]) for f in fetched), 1.0
  )
  rate = len(fetched) / max(elapsed, 1e-9)
  return {
      "step": done,
      "epoch": done / plan.steps_per_epoch,
      "train_loss": nll,
      "train_ppl": metrics_lib.perplexity(nll),
      "lr": lr,
      "grad_norm": float(fetched[-1]["grad_norm"]),
      "tokens_per_s": rate * plan.tokens_per_step,
      "eta_s": (plan.total_steps - done) / max(rate, 1e-9),
  }


def _progress_line(r: dict, total_steps: int) -> str:
  return (
      f"step {r['step']}/{total_steps} epoch {r['epoch']:.2f} loss "
      f"{r['train_loss']:.4f} ppl {r['train_ppl']:.2f} lr {r['lr']:.4g} "
      f"tok/s {r['tokens_per_s']:,.0f} eta {_fmt_time(r['eta_s'])}"
  )


def train_and_evaluate(
    cfg: Config,
    workdir: str,
    log: Callable[[str], None] = print,
    command: str | None = None,
) -> dict:
  """Trains (or resumes) the run in ``workdir`` and evaluates its best
  checkpoint on valid and test.

  Args:
    cfg: the experiment's config.
    workdir: the run directory (created, or continued if it holds a run).
    log: where progress lines go.
    command: the command line, recorded in workdir/cmd.sh.

  Returns:
    The final metrics (also written to workdir/results.json).
  """
  saved_vocab = rundir.existing_vocab(workdir, cfg)
  corpus = corpus_lib.load_corpus(cfg.data, saved_vocab)
  cfg = with_vocab_size(cfg, len(corpus.vocab))
  if cfg.model.kind == "count_ngram":
    return count_and_evaluate(cfg, corpus, workdir, log, command)
  epoch_batches = lambda e: jax.device_put(
      corpus_lib.train_batches(corpus, cfg.data, e, cfg.train.seed)
  )
  batches = epoch_batches(0)
  rundir.write_run_files(workdir, cfg, corpus.vocab, command)

  steps_per_epoch, batch_size = batches["x"].shape[:2]
  total_steps = steps_per_epoch * cfg.train.num_epochs
  if cfg.train.max_steps:
    total_steps = min(total_steps, cfg.train.max_steps)
  plan = _Plan(
      steps_per_epoch,
      total_steps,
      int(batches["mask"][0].sum()),
      optim.accum_steps(cfg.optim, steps_per_epoch),
  )
  tx, schedule = optim.make_optimizer(
      cfg.optim, steps_per_epoch, cfg.train.num_epochs
  )
  plateau_tx = optim.make_plateau(cfg.optim)
  state = steps.init_train_state(
      jax.random.key(cfg.train.seed), cfg.model, tx, batch_size, plateau_tx
  )
  writer = metrics_lib.JsonlWriter(os.path.join(workdir, rundir.METRICS_FILE))
  best_nll = float("inf")
  if checkpoint.latest_step(workdir, "latest") is not None:
    state, record = checkpoint.restore(workdir, "latest", state)
    best_nll = record["best_valid_loss"]
    writer.truncate_after(record["step"])
    log(
        f"resumed from step {record['step']} (epoch {record['epoch']}, "
        f"segment {record['segment']})"
    )
  start_step = int(jax.device_get(state.step))
  log(
      f"{cfg.name}: {sum(x.size for x in jax.tree.leaves(state.params)):,} "
      f"parameters, vocab {len(corpus.vocab):,}, {len(corpus.ids['train']):,} "
      f"train tokens, {steps_per_epoch} steps/epoch, {total_steps} steps"
  )

  if cfg.data.mode == "sentence" and start_step % steps_per_epoch:
    batches = epoch_batches(start_step // steps_per_epoch)
  # Compiled ahead of time: a later call with other shapes would be an error,
  # never a silent recompile.
  t0 = time.perf_counter()
  train_step = (
      steps.make_train_step(cfg.model, tx, cfg.optim.loss_reduction)
      .lower(state, batches)
      .compile()
  )
  log(f"compiled the train step in {time.perf_counter() - t0:.1f}s")
  evaluator = evaluation.Evaluator(cfg, corpus)

  def save(slot, step):
    checkpoint.save(
        workdir,
        slot,
        state,
        {
            "step": step,
            "epoch": step // steps_per_epoch,
            "segment": step % steps_per_epoch,
            "best_valid_loss": best_nll,
            "vocab": list(corpus.vocab.tokens),
        },
    )

  def learning_rate(done):
    scale = float(jax.device_get(state.plateau.scale))
    return float(schedule(done // plan.accum)) * scale

  window = _Window(start_step, time.perf_counter())
  run_start = time.perf_counter()
  for step in range(start_step, total_steps):
    if step % steps_per_epoch == 0 and step > 0:
      state = state.replace(carry=models.init_carry(cfg.model, batch_size))
      if cfg.data.mode == "sentence":
        batches = epoch_batches(step // steps_per_epoch)
    state, m = train_step(state, batches)
    window.pending.append(m)
    done = step + 1
    epoch_end = done % steps_per_epoch == 0
    if done % cfg.train.log_every == 0 or epoch_end or done == total_steps:
      record = _summarise(window, done, plan, learning_rate(done))
      writer.write(record)
      log(_progress_line(record, total_steps))
      window = _Window(done, time.perf_counter())
    if epoch_end:
      valid_nll, _ = evaluator.nll(state.params, "valid")
      if not np.isfinite(valid_nll):
        raise TrainingDiverged(f"non-finite validation loss after step {done}")
      writer.write(
          {
              "step": done,
              "epoch": done / steps_per_epoch,
              **evaluation.split_metrics(valid_nll, "valid", cfg.data.level),
          }
      )
      log(
          f"epoch {done / steps_per_epoch:.2f} valid loss {valid_nll:.4f} "
          f"ppl {metrics_lib.perplexity(valid_nll):.2f}"
      )
      if cfg.optim.schedule == "plateau":
        state = steps.step_plateau(state, plateau_tx, valid_nll)
      if valid_nll < best_nll:
        best_nll = valid_nll
        save("best", done)
      save("latest", done)
      window.t0 = time.perf_counter()
    elif done % cfg.train.checkpoint_every == 0 or done == total_steps:
      save("latest", done)
      window.t0 = time.perf_counter()

  if checkpoint.latest_step(workdir, "best") is not None:
    state, _ = checkpoint.restore(workdir, "best", state)
  results = {
      "step": int(jax.device_get(state.step)),
      **evaluator.report(state.params),
      "train_seconds_this_process": time.perf_counter() - run_start,
  }
  rundir.write_json_atomic(os.path.join(workdir, rundir.RESULTS_FILE), results)
  return results


def count_and_evaluate(
    cfg: Config,
    corpus: corpus_lib.Corpus,
    workdir: str,
    log: Callable[[str], None] = print,
    command: str | None = None,
) -> dict:
  """train_and_evaluate for the count-based n-gram model: training is
  counting (histories cut at <eos> when data.reset_at_eos), the counts are
  the run's checkpoint, and a finished run is loaded rather than counted
  again."""
  rundir.write_run_files(workdir, cfg, corpus.vocab, command)
  path = os.path.join(workdir, rundir.NGRAM_FILE)
  m = cfg.model
  t0 = time.perf_counter()
  if os.path.exists(path):
    model = ngram.load(path)
    log(f"loaded the counts of {path}")
  else:
    model = ngram.fit(
        corpus.ids["train"],
        m.order,
        m.vocab_size,
        m.smoothing,
        m.delta,
        start_id=corpus.start_id,
        reset_at_eos=cfg.data.reset_at_eos,
    )
    model.save(path)
  grams = sum(g.size for g in model.gram_keys)
  log(
      f"{cfg.name}: {m.smoothing} {m.order}-gram, vocab {len(corpus.vocab):,}, "
      f"{len(corpus.ids['train']):,} train tokens, {grams:,} n-grams, "
      f"{model.nbytes() / 2**20:.1f} MiB, {time.perf_counter() - t0:.1f}s"
  )
  results = {
      "step": 0,
      **evaluation.counted_report(model, corpus, cfg.data.level),
      "train_seconds_this_process": time.perf_counter() - t0,
      "ngram_mib": model.nbytes() / 2**20,
  }
  rundir.write_json_atomic(os.path.join(workdir, rundir.RESULTS_FILE), results)
  return results


def init_run_from_params(
    cfg: Config,
    workdir: str,
    params,
    vocab: data.Vocab,
    command: str | None = None,
) -> None:
  """A run directory holding given parameters (imported weights, say) as its
  step-0 'best' and 'latest' checkpoints, so that evaluation and sampling
  treat it like any trained run."""
  if os.path.exists(os.path.join(workdir, rundir.CONFIG_FILE)):
    raise IncompatibleRun(f"{workdir} already holds a run; use a new --workdir")
  cfg = with_vocab_size(cfg, len(vocab))
  rundir.existing_vocab(workdir, cfg)
  rundir.write_run_files(workdir, cfg, vocab, command)
  tx, _ = optim.make_optimizer(cfg.optim, 1, 1)
  state = steps.init_train_state(
      jax.random.key(cfg.train.seed), cfg.model, tx, cfg.data.batch_size
  )
  state = state.replace(params=params, opt_state=tx.init(params))
  record = {
      "step": 0,
      "epoch": 0,
      "segment": 0,
      "best_valid_loss": float("inf"),
      "vocab": list(vocab.tokens),
  }
  for slot in checkpoint.SLOTS:
    checkpoint.save(workdir, slot, state, record)


def summary_line(results: dict) -> str:
  keys = ["valid_ppl", "test_ppl", "floor_ppl", "valid_bpc", "test_bpc"]
  return " ".join(f"{k}={results[k]:.4f}" for k in keys if k in results)
