"""Perplexity over whole splits, for the training loop and for saved runs."""

import jax

from rnnlm_jax import config as config_lib
from rnnlm_jax import corpus as corpus_lib
from rnnlm_jax.errors import DataError
from rnnlm_jax import metrics as metrics_lib
from rnnlm_jax import models
from rnnlm_jax import ngram
from rnnlm_jax import rundir
from rnnlm_jax import steps
from rnnlm_jax.config import Config


class Evaluator:
  """Compiled evaluation over whole splits; each split's batches are put on
  the device once, on first use."""

  def __init__(
      self,
      cfg: Config,
      corpus: corpus_lib.Corpus,
      batch_size: int | None = None,
  ):
    self.cfg = cfg
    self.corpus = corpus
    self.batch_size = batch_size or cfg.data.eval_batch_size
    self.fn = steps.make_evaluate(cfg.model)
    # Over K trials' stacked parameters, sharing the batches.
    self.stacked_fn = jax.jit(jax.vmap(self.fn, in_axes=(0, None, None)))
    self.batches = {}

  def _batches(self, split: str):
    if split not in self.batches:
      self.batches[split] = jax.device_put(
          corpus_lib.eval_batches(
              self.corpus, self.cfg.data, split, self.batch_size
          )
      )
    return self.batches[split]

  def nll(self, params, split: str) -> tuple[float, int]:
    """(mean nll per token, number of tokens) over the whole split."""
    carry = models.init_carry(self.cfg.model, self.batch_size)
    total, count, _ = jax.device_get(
        self.fn(params, carry, self._batches(split))
    )
    return float(total) / max(float(count), 1.0), int(count)

  def nlls(self, params, split: str, stacked: bool) -> list[float]:
    """Mean nll per token over the split for each trial of stacked
    parameters (stacked) or for one model's parameters."""
    if not stacked:
      return [self.nll(params, split)[0]]
    carry = models.init_carry(self.cfg.model, self.batch_size)
    total_K, count_K, _ = jax.device_get(
        self.stacked_fn(params, carry, self._batches(split))
    )
    return [float(t) / max(float(c), 1.0) for t, c in zip(total_K, count_K)]

  def report(self, params, splits=("valid", "test")) -> dict:
    """Loss, perplexity, bits per character (char level), token counts and
    the synthetic corpus's floor."""
    return _report(
        lambda split: self.nll(params, split),
        self.corpus,
        self.cfg.data.level,
        splits,
    )


def counted_report(
    model: ngram.NGramLM,
    corpus: corpus_lib.Corpus,
    level: str,
    splits=("valid", "test"),
) -> dict:
  """Evaluator.report for a count-based n-gram model: the same tokens, each
  predicted once after a leading boundary token, in the model's history
  mode."""

  def nll(split):
    total, count = model.score(corpus.ids[split], corpus.start_id)
    return -total / count, count

  return _report(nll, corpus, level, splits)


def _report(nll_fn, corpus: corpus_lib.Corpus, level: str, splits) -> dict:
  results = {}
  for split in splits:
    nll, count = nll_fn(split)
    results.update(split_metrics(nll, split, level))
    results[f"{split}_tokens"] = count
  if corpus.floor_ppl:
    results["floor_ppl"] = corpus.floor_ppl["test"]
    results["valid_floor_ppl"] = corpus.floor_ppl["valid"]
  return results


def split_metrics(nll: float, split: str, level: str) -> dict:
  out = {f"{split}_loss": nll, f"{split}_ppl": metrics_lib.perplexity(nll)}
  if level == "char":
    out[f"{split}_bpc"] = metrics_lib.bits(nll)
  return out


def evaluate_run(
    workdir: str,
    slot: str = "best",
    splits=("valid", "test"),
    batch_size: int | None = None,
    data_dir: str | None = None,
) -> dict:
  """Metrics of a run directory's checkpoint on the given splits."""
  for split in splits:
    if split not in corpus_lib.SPLITS:
      raise DataError(
          f"unknown split {split!r}; choose from {list(corpus_lib.SPLITS)}"
      )
  trained = rundir.load_trained(workdir, slot)
  cfg = trained.cfg
  if data_dir:
    cfg = config_lib.replace(cfg, data={"dir": data_dir, "source": "files"})
  corpus = corpus_lib.load_corpus(cfg.data, trained.vocab)
  if trained.counts is not None:
    return counted_report(trained.counts, corpus, cfg.data.level, splits)
  params, record = trained.params, trained.record
  evaluator = Evaluator(cfg, corpus, batch_size)
  return {
      "step": record["step"],
      "eval_batch_size": evaluator.batch_size,
      **evaluator.report(params, splits),
  }
