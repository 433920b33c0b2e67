"""Metrics of saved runs over whole splits, for any task."""

from rnnlm_jax import backends
from rnnlm_jax import config as config_lib
from rnnlm_jax import corpus as corpus_lib
from rnnlm_jax import embeddings
from rnnlm_jax.errors import DataError
from rnnlm_jax import ngram
from rnnlm_jax import rundir
from rnnlm_jax import tasks as tasks_lib
from rnnlm_jax.tasks import lm
from rnnlm_jax.tasks import sentences

split_metrics = lm.split_metrics


def counted_report(
    model: ngram.NGramLM,
    corpus: corpus_lib.Corpus,
    level: str,
    splits=("valid", "test"),
) -> dict:
  """The language model's report for a count-based n-gram model: the same
  tokens, each predicted once after a leading boundary token, in the
  model's history mode."""

  def nll(split):
    total, count = model.score(corpus.ids[split], corpus.start_id)
    return -total / count, count

  return lm.report(nll, corpus, level, splits)


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
    return counted_report(trained.counts, corpus, cfg.data.level, splits)
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
