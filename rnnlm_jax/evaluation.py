"""Metrics of saved runs over whole splits, for any task; a recurrent
language model's also with the neural cache or dynamic evaluation, their
hyperparameters searched on valid."""

import dataclasses

import jax

from rnnlm_jax import backends
from rnnlm_jax import config as config_lib
from rnnlm_jax import corpus as corpus_lib
from rnnlm_jax import dynamic_eval
from rnnlm_jax import embeddings
from rnnlm_jax.errors import DataError
from rnnlm_jax import metrics as metrics_lib
from rnnlm_jax import neural_cache
from rnnlm_jax import ngram
from rnnlm_jax import rundir
from rnnlm_jax import tasks as tasks_lib
from rnnlm_jax.tasks import lm
from rnnlm_jax.tasks import sentences

split_metrics = lm.split_metrics


def counted_report(
    model: ngram.NGramLM,
    corpus: corpus_lib.Corpus,
    bpc: bool,
    splits=("valid", "test"),
) -> dict:
  """The language model's report for a count-based n-gram model: the same
  tokens, each predicted once after a leading boundary token, in the
  model's history mode."""

  def nll(split):
    total, count = model.score(corpus.ids[split], corpus.start_id)
    return -total / count, count

  return lm.report(nll, corpus, bpc, splits)


def evaluate_run(
    workdir: str,
    slot: str = "best",
    splits=None,
    batch_size: int | None = None,
    data_dir: str | None = None,
    backend: str | None = None,
) -> dict:
  """Metrics of a run directory's checkpoint on the given splits; for a
  recurrent model, with the implementation path that computed them
  ("path"), which ``backend`` ("auto" or "reference") may choose. The
  splits default to valid and test (the sentence tasks': valid and their
  final split, "dev" or "test")."""
  trained = rundir.load_trained(workdir, slot)
  cfg = trained.cfg
  known = corpus_lib.SPLITS
  if cfg.task in ("classify", "tag"):
    known = ("train", "valid", sentences.final_split(cfg))
  splits = splits or (known[1], known[2])
  for split in splits:
    if split not in known:
      raise DataError(f"unknown split {split!r}; choose from {list(known)}")
  if data_dir:
    cfg = config_lib.replace(cfg, data={"dir": data_dir, "source": "files"})
  if backend:
    cfg = config_lib.replace(cfg, model={"backend": backend})
  if trained.counts is not None:
    corpus = corpus_lib.load_corpus(cfg.data, trained.vocab)
    return counted_report(
        trained.counts, corpus, lm.reports_bpc(cfg.data), splits
    )
  task = tasks_lib.make_task(cfg, trained.vocab, batch_size)
  if cfg.model.kind == "ppmi_svd":
    words, vectors = embeddings.run_vectors(workdir)
    return embeddings.evaluate(
        words, vectors, task.simlex_file, task.analogy_file
    )
  path = {}
  if cfg.model.kind == "rnn":
    path = {"path": backends.resolve(cfg.model).describe()}
  return {
      "step": int(trained.record["step"]),
      "eval_batch_size": task.eval_batch_size,
      **task.report(trained.params, splits),
      **path,
  }


def _load_recurrent_lm(workdir, slot, batch_size, data_dir, backend, what):
  """(trained run, its config, corpus, eval batch size) of a recurrent
  language model's run in stream mode; a ConfigError (one line) for any
  other run, raised before its checkpoint is read."""
  cfg = rundir.load_run_config(workdir)
  if cfg.task != "lm" or cfg.model.kind != "rnn":
    raise config_lib.ConfigError(
        f"{what} needs a recurrent language model (task='lm', "
        f"model.kind='rnn'); {workdir} holds task={cfg.task!r}, "
        f"model.kind={cfg.model.kind!r}"
    )
  if cfg.data.mode != "stream":
    raise config_lib.ConfigError(
        f"{what} needs a stream-mode run (data.mode='stream'); {workdir} "
        f"has data.mode={cfg.data.mode!r}"
    )
  trained = rundir.load_trained(workdir, slot)
  cfg = trained.cfg
  if data_dir:
    cfg = config_lib.replace(cfg, data={"dir": data_dir, "source": "files"})
  if backend:
    cfg = config_lib.replace(cfg, model={"backend": backend})
  corpus = corpus_lib.load_corpus(cfg.data, trained.vocab)
  cfg = lm.with_vocab_size(cfg, len(corpus.vocab))
  return trained, cfg, corpus, batch_size or cfg.data.eval_batch_size


def _split_batches(corpus, cfg, split, batch_size, bptt=None):
  data = cfg.data
  if bptt:
    data = config_lib.replace(cfg, data={"bptt": bptt}).data
  return jax.device_put(
      corpus_lib.eval_batches(corpus, data, split, batch_size)
  )


def _mode_report(found: dict, prefix: str, names: dict, bpc: bool) -> dict:
  """The flat report of a search: static and the mode's valid and test
  metrics, and the chosen hyperparameters ({report key: found key})."""
  out = {}
  for split in ("valid", "test"):
    static = split_metrics(found[f"static_{split}_nll"], split, bpc)
    mode = split_metrics(found[f"{split}_nll"], split, bpc)
    out.update({f"static_{k}": v for k, v in static.items()})
    out.update({f"{prefix}_{k}": v for k, v in mode.items()})
  out.update({key: found[name] for key, name in names.items()})
  return out


def evaluate_cache(
    workdir: str,
    size: int,
    thetas,
    lambdas,
    slot: str = "best",
    batch_size: int | None = None,
    data_dir: str | None = None,
    backend: str | None = None,
) -> dict:
  """A recurrent language model's run with the neural cache
  (rnnlm_jax.neural_cache): the (theta, lambda) of the lists with the
  lowest valid perplexity, and valid and test perplexity with it beside
  the static model's. "grid" lists every pair's valid perplexity."""
  trained, cfg, corpus, batch_size = _load_recurrent_lm(
      workdir, slot, batch_size, data_dir, backend, "the neural cache"
  )
  if size < 1:
    raise config_lib.ConfigError(f"cache size must be positive, got {size}")
  if not thetas or not lambdas:
    raise config_lib.ConfigError("the cache needs a theta and a lambda")
  if any(not 0.0 <= l <= 1.0 for l in lambdas):
    raise config_lib.ConfigError(f"cache lambdas must be in [0, 1]: {lambdas}")
  found = neural_cache.search(
      trained.params,
      cfg.model,
      _split_batches(corpus, cfg, "valid", batch_size),
      _split_batches(corpus, cfg, "test", batch_size),
      size,
      thetas,
      lambdas,
  )
  names = {"cache_theta": "theta", "cache_lambda": "lambda"}
  return {
      "step": int(trained.record["step"]),
      "eval_batch_size": batch_size,
      "cache_size": size,
      **_mode_report(found, "cache", names, lm.reports_bpc(cfg.data)),
      "grid": [
          {"theta": t, "lambda": l, "valid_ppl": metrics_lib.perplexity(n)}
          for t, l, n in found["grid"]
      ],
      "path": backends.resolve(cfg.model).describe(),
  }


def evaluate_dynamic(
    workdir: str,
    variant: str,
    lrs,
    decays,
    bptt: int | None = None,
    ms_tokens: int = 0,
    slot: str = "best",
    batch_size: int | None = None,
    data_dir: str | None = None,
    backend: str | None = None,
    eps: float = dynamic_eval.EPSILON,
) -> dict:
  """A recurrent language model's run under dynamic evaluation
  (rnnlm_jax.dynamic_eval) with segments of ``bptt`` tokens (the run's by
  default): the (lr, decay) of the lists with the lowest valid perplexity,
  and valid and test perplexity with it beside the static model's.
  rmsprop's MS comes from the first ``ms_tokens`` training tokens (0: all
  of them). "grid" lists every pair's valid perplexity."""
  trained, cfg, corpus, batch_size = _load_recurrent_lm(
      workdir, slot, batch_size, data_dir, backend, "dynamic evaluation"
  )
  if variant not in dynamic_eval.VARIANTS:
    raise config_lib.ConfigError(
        f"unknown dynamic evaluation {variant!r}; choose from "
        f"{list(dynamic_eval.VARIANTS)}"
    )
  if not lrs or not decays:
    raise config_lib.ConfigError("dynamic evaluation needs an lr and a decay")
  bptt = bptt or cfg.data.bptt
  train = None
  if variant == "rmsprop":
    ids = corpus.ids["train"]
    if ms_tokens:
      ids = ids[:ms_tokens]
    part = dataclasses.replace(corpus, ids={**corpus.ids, "train": ids})
    train = _split_batches(part, cfg, "train", batch_size, bptt)
  found = dynamic_eval.search(
      trained.params,
      cfg.model,
      variant,
      _split_batches(corpus, cfg, "valid", batch_size, bptt),
      _split_batches(corpus, cfg, "test", batch_size, bptt),
      lrs,
      decays,
      train,
      eps,
  )
  names = {"dynamic_lr": "lr", "dynamic_decay": "decay"}
  return {
      "step": int(trained.record["step"]),
      "eval_batch_size": batch_size,
      "dynamic": variant,
      "dynamic_bptt": bptt,
      **_mode_report(found, "dynamic", names, lm.reports_bpc(cfg.data)),
      "grid": [
          {"lr": l, "decay": d, "valid_ppl": metrics_lib.perplexity(n)}
          for l, d, n in found["grid"]
      ],
      "path": backends.resolve(cfg.model).describe(),
  }
