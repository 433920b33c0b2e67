"""train_and_evaluate(config, workdir): the training loop.

The loop is thin: one compiled train step per segment, metrics fetched from
the device every ``log_every`` steps (the only host syncs), a validation pass
and checkpoints at each epoch end, and automatic resumption from the run
directory's latest checkpoint.
"""

import dataclasses
import json
import os
import time
from typing import Callable

import jax
import numpy as np

from rnnlm_jax import checkpoint
from rnnlm_jax import config as config_lib
from rnnlm_jax import corpus as corpus_lib
from rnnlm_jax import data
from rnnlm_jax import metrics as metrics_lib
from rnnlm_jax import models
from rnnlm_jax import optim
from rnnlm_jax import steps
from rnnlm_jax.config import Config

CONFIG_FILE = "config.json"
VOCAB_FILE = "vocab.json"
RESULTS_FILE = "results.json"
# Keys that may differ between a run directory's config and a resumed run.
_RESUMABLE_CHANGES = ("train.num_epochs", "train.max_steps", "train.log_every",
                      "train.checkpoint_every")


class TrainingDiverged(FloatingPointError):
  """The loss became NaN or Inf."""


class IncompatibleRun(ValueError):
  """The run directory was made by a config this run cannot continue."""


def _flatten(d, prefix=""):
  out = {}
  for k, v in d.items():
    if isinstance(v, dict):
      out.update(_flatten(v, f"{prefix}{k}."))
    else:
      out[prefix + k] = list(v) if isinstance(v, tuple) else v
  return out


def write_json_atomic(path: str, obj) -> None:
  tmp = path + ".tmp"
  with open(tmp, "w", encoding="utf-8") as f:
    json.dump(obj, f, indent=2, sort_keys=True)
  os.replace(tmp, path)


def load_run_config(workdir: str) -> Config:
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    raise FileNotFoundError(f"{workdir} is not a run directory (no {CONFIG_FILE})")
  with open(path, encoding="utf-8") as f:
    return config_lib.from_dict(json.load(f))


def check_compatible(old: Config, new: Config) -> None:
  """Raises IncompatibleRun naming the first differing key."""
  a, b = _flatten(config_lib.to_dict(old)), _flatten(config_lib.to_dict(new))
  for key in sorted(set(a) | set(b)):
    if key == "model.vocab_size" and b.get(key) == 0:
      continue  # Taken from the saved vocabulary.
    if key not in _RESUMABLE_CHANGES and a.get(key) != b.get(key):
      raise IncompatibleRun(
          f"the run directory was made by a different config: {key} is "
          f"{a.get(key)!r} there and {b.get(key)!r} now; use a new --workdir")


def prepare_workdir(workdir: str, cfg: Config) -> data.Vocab | None:
  """Creates the run directory or checks that it can be continued.

  Returns the saved vocabulary when the directory already holds one.
  """
  os.makedirs(workdir, exist_ok=True)
  config_path = os.path.join(workdir, CONFIG_FILE)
  if os.path.exists(config_path):
    check_compatible(load_run_config(workdir), cfg)
  vocab_path = os.path.join(workdir, VOCAB_FILE)
  return data.Vocab.load(vocab_path) if os.path.exists(vocab_path) else None


def with_vocab_size(cfg: Config, vocab_size: int) -> Config:
  if cfg.model.vocab_size not in (0, vocab_size):
    raise config_lib.ConfigError(
        f"model.vocab_size={cfg.model.vocab_size} but the vocabulary has "
        f"{vocab_size} tokens")
  return config_lib.replace(cfg, model={"vocab_size": vocab_size})


@dataclasses.dataclass
class _Progress:
  """Host-side bookkeeping between metric fetches."""
  pending: list
  first_step: int
  t0: float
  tokens: int = 0


def _check_finite(fetched, first_step: int) -> None:
  for i, m in enumerate(fetched):
    if not np.isfinite(m["nll"]):
      raise TrainingDiverged(
          f"non-finite training loss at step {first_step + i + 1} (checked "
          f"steps {first_step + 1}-{first_step + len(fetched)}); the update "
          f"was skipped and training stopped: lower the learning rate or "
          f"enable clipping")


class Evaluator:
  """Compiled evaluation over whole splits, the batches kept on device."""

  def __init__(self, cfg: Config, corpus: corpus_lib.Corpus,
               batch_size: int | None = None):
    self.cfg = cfg
    self.batch_size = batch_size or cfg.data.eval_batch_size
    self.fn = steps.make_evaluate(cfg.model)
    self.corpus = corpus
    self.batches = {}

  def _batches(self, split: str):
    if split not in self.batches:
      self.batches[split] = jax.device_put(corpus_lib.eval_batches(
          self.corpus, self.cfg.data, split, self.batch_size))
    return self.batches[split]

  def nll(self, params, split: str) -> tuple[float, int]:
    """(mean nll per token, number of tokens) over the whole split."""
    carry = models.init_carry(self.cfg.model, self.batch_size)
    total, count, _ = jax.device_get(self.fn(params, carry, self._batches(split)))
    return float(total) / max(float(count), 1.0), int(count)


def split_metrics(nll: float, split: str, level: str) -> dict:
  out = {f"{split}_loss": nll, f"{split}_ppl": metrics_lib.perplexity(nll)}
  if level == "char":
    out[f"{split}_bpc"] = metrics_lib.bits(nll)
  return out


def _fmt_time(seconds: float) -> str:
  seconds = int(max(seconds, 0))
  return f"{seconds // 3600}h{seconds // 60 % 60:02d}m{seconds % 60:02d}s"


def train_and_evaluate(cfg: Config, workdir: str,
                       log: Callable[[str], None] = print) -> dict:
  """Trains (or resumes) the run in ``workdir`` and evaluates its best
  checkpoint on valid and test.

  Returns:
    The final metrics (also written to workdir/results.json).
  """
  saved_vocab = prepare_workdir(workdir, cfg)
  corpus = corpus_lib.load_corpus(cfg.data, saved_vocab)
  cfg = with_vocab_size(cfg, len(corpus.vocab))
  if saved_vocab is None:
    corpus.vocab.save(os.path.join(workdir, VOCAB_FILE))
  write_json_atomic(os.path.join(workdir, CONFIG_FILE), config_lib.to_dict(cfg))

  epoch_batches = lambda e: jax.device_put(
      corpus_lib.train_batches(corpus, cfg.data, e, cfg.train.seed))
  batches = epoch_batches(0)
  steps_per_epoch, batch_size = batches["x"].shape[:2]
  tokens_per_step = int(batches["mask"][0].sum())
  total_steps = steps_per_epoch * cfg.train.num_epochs
  if cfg.train.max_steps:
    total_steps = min(total_steps, cfg.train.max_steps)

  tx, schedule = optim.make_optimizer(cfg.optim, steps_per_epoch,
                                      cfg.train.num_epochs)
  accum = optim.accum_steps(cfg.optim, steps_per_epoch)
  state = steps.init_train_state(jax.random.key(cfg.train.seed), cfg.model,
                                 tx, batch_size)
  writer = metrics_lib.JsonlWriter(os.path.join(workdir, "metrics.jsonl"))
  best_nll = float("inf")
  if checkpoint.latest_step(workdir, "latest") is not None:
    state, record = checkpoint.restore(workdir, "latest", state)
    best_nll = record["best_valid_loss"]
    writer.truncate_after(int(state.step))
    log(f"resumed from step {int(state.step)} (epoch {record['epoch']}, "
        f"segment {record['segment']})")
  start_step = int(state.step)
  log(f"{cfg.name}: {sum(x.size for x in jax.tree.leaves(state.params)):,} "
      f"parameters, vocab {len(corpus.vocab):,}, {len(corpus.ids['train']):,} "
      f"train tokens, {steps_per_epoch} steps/epoch, {total_steps} steps")

  if cfg.data.mode == "sentence" and start_step % steps_per_epoch:
    batches = epoch_batches(start_step // steps_per_epoch)
  # Compiled ahead of time: a later call with other shapes would be an error,
  # never a silent recompile.
  t0 = time.perf_counter()
  train_step = steps.make_train_step(cfg.model, tx, cfg.optim.loss_reduction
                                     ).lower(state, batches).compile()
  log(f"compiled the train step in {time.perf_counter() - t0:.1f}s")
  evaluator = Evaluator(cfg, corpus)

  def save(slot):
    checkpoint.save(workdir, slot, state, {
        "step": int(state.step), "epoch": int(state.step) // steps_per_epoch,
        "segment": int(state.step) % steps_per_epoch,
        "best_valid_loss": best_nll, "vocab_size": len(corpus.vocab)})

  progress = _Progress([], start_step, time.perf_counter())
  run_start = time.perf_counter()
  for step in range(start_step, total_steps):
    if step % steps_per_epoch == 0 and step > 0:
      state = state.replace(carry=models.init_carry(cfg.model, batch_size))
      if cfg.data.mode == "sentence":
        batches = epoch_batches(step // steps_per_epoch)
    state, m = train_step(state, batches)
    progress.pending.append(m)
    done = step + 1
    epoch_end = done % steps_per_epoch == 0
    if done % cfg.train.log_every == 0 or epoch_end or done == total_steps:
      fetched = jax.device_get(progress.pending)
      _check_finite(fetched, progress.first_step)
      elapsed = time.perf_counter() - progress.t0
      nll = sum(float(f["nll"]) for f in fetched) / max(
          sum(float(f["count"]) for f in fetched), 1.0)
      rate = len(fetched) / max(elapsed, 1e-9)
      lr = float(schedule(done // accum))
      record = {"step": done, "epoch": done / steps_per_epoch, "train_loss": nll,
                "train_ppl": metrics_lib.perplexity(nll), "lr": lr,
                "grad_norm": float(fetched[-1]["grad_norm"]),
                "tokens_per_s": rate * tokens_per_step}
      writer.write(record)
      log(f"step {done}/{total_steps} epoch {record['epoch']:.2f} loss "
          f"{nll:.4f} ppl {record['train_ppl']:.2f} lr {lr:.4g} tok/s "
          f"{record['tokens_per_s']:,.0f} eta "
          f"{_fmt_time((total_steps - done) / max(rate, 1e-9))}")
      progress = _Progress([], done, time.perf_counter())
    if epoch_end:
      valid_nll, _ = evaluator.nll(state.params, "valid")
      writer.write({"step": done, "epoch": done / steps_per_epoch,
                    **split_metrics(valid_nll, "valid", cfg.data.level)})
      log(f"epoch {done / steps_per_epoch:.2f} valid loss {valid_nll:.4f} "
          f"ppl {metrics_lib.perplexity(valid_nll):.2f}")
      if valid_nll < best_nll:
        best_nll = valid_nll
        save("best")
      save("latest")
      progress.t0 = time.perf_counter()
    elif done % cfg.train.checkpoint_every == 0 or done == total_steps:
      save("latest")
      progress.t0 = time.perf_counter()

  results = final_evaluation(cfg, workdir, corpus, evaluator, state)
  results["train_seconds_this_process"] = time.perf_counter() - run_start
  write_json_atomic(os.path.join(workdir, RESULTS_FILE), results)
  return results


def init_run_from_params(cfg: Config, workdir: str, params,
                         vocab: data.Vocab) -> None:
  """A run directory holding given parameters (imported weights, say) as its
  step-0 'best' and 'latest' checkpoints, so that evaluation and sampling
  treat it like any trained run."""
  if os.path.exists(os.path.join(workdir, CONFIG_FILE)):
    raise IncompatibleRun(f"{workdir} already holds a run; use a new --workdir")
  cfg = with_vocab_size(cfg, len(vocab))
  prepare_workdir(workdir, cfg)
  vocab.save(os.path.join(workdir, VOCAB_FILE))
  write_json_atomic(os.path.join(workdir, CONFIG_FILE), config_lib.to_dict(cfg))
  tx, _ = optim.make_optimizer(cfg.optim, 1, 1)
  state = steps.init_train_state(jax.random.key(cfg.train.seed), cfg.model,
                                 tx, cfg.data.batch_size)
  state = state.replace(params=params, opt_state=tx.init(params))
  record = {"step": 0, "epoch": 0, "segment": 0,
            "best_valid_loss": float("inf"), "vocab_size": len(vocab)}
  for slot in checkpoint.SLOTS:
    checkpoint.save(workdir, slot, state, record)


def final_evaluation(cfg: Config, workdir: str, corpus, evaluator, state) -> dict:
  """valid/test metrics of the best checkpoint (the latest state if the run
  never validated), with the synthetic corpus's floor."""
  if checkpoint.latest_step(workdir, "best") is not None:
    state, _ = checkpoint.restore(workdir, "best", state)
  results = {"step": int(state.step)}
  for split in ("valid", "test"):
    nll, count = evaluator.nll(state.params, split)
    results.update(split_metrics(nll, split, cfg.data.level))
    results[f"{split}_tokens"] = count
  if corpus.floor_ppl:
    results["floor_ppl"] = corpus.floor_ppl["test"]
    results["valid_floor_ppl"] = corpus.floor_ppl["valid"]
  return results


def summary_line(results: dict) -> str:
  keys = ["valid_ppl", "test_ppl", "floor_ppl", "valid_bpc", "test_bpc"]
  return " ".join(f"{k}={results[k]:.4f}" for k in keys if k in results)
