"""Word embeddings as a task: word2vec's skip-gram and CBOW with negative
sampling (rnnlm_jax.word2vec), trained by the same loop, checkpoints,
resume, sweeps and tables as every other model.

The text is any word-level corpus (data.source files or hub); each line is a
sentence. Every epoch subsamples the train words afresh and draws each
centre's window (batches_change_each_epoch). The step is plain SGD written
as a sparse update (``sgd_update``; rnnlm_jax.steps takes it instead of a
dense gradient), so a batch touches only its own rows of the two tables.

Model selection uses the held-out negative-sampling loss per positive pair
on valid (every word a centre with its full window, the negatives drawn from
a fixed key). The final report adds the input vectors' SimLex-999 Spearman
rho and Google-analogy accuracy (rnnlm_jax.embeddings), with coverage.
"""

import dataclasses
import math
import os

import jax
import jax.numpy as jnp
import numpy as np

from rnnlm_jax import backends
from rnnlm_jax import embeddings
from rnnlm_jax import sources
from rnnlm_jax import word2vec
from rnnlm_jax.config import Config
from rnnlm_jax.errors import DataError
from rnnlm_jax.vocab import Vocab
from rnnlm_jax.vocab import build_vocab

SIMLEX = os.path.join("simlex-999", "SimLex-999.txt")
ANALOGIES = os.path.join("word-analogy", "questions-words.txt")
# The fixed key of the held-out loss's negatives.
_EVAL_KEY = 1234


@dataclasses.dataclass(frozen=True)
class EmbedData:
  vocab: Vocab  # descending count order
  ids: dict  # split -> in-vocabulary word ids [N]
  lines: dict  # split -> their line numbers [N]
  raw_words: int  # train words before the vocabulary's cut
  text: dict  # split -> its lines, as read


def _source(cfg: Config) -> dict:
  d = cfg.data
  if d.source == "files" and d.dir:
    return {
        "dir": d.dir,
        "encoding_errors": d.encoding_errors,
        "split_fractions": tuple(d.split_fractions) or None,
    }
  if d.source == "hub":
    return {
        "hf_path": d.hf_path,
        "hf_name": d.hf_name,
        "text_column": d.text_column,
    }
  raise DataError(
      "task='embed' reads data.source='files' with data.dir (or the "
      "RNNLM_DATA environment variable), or data.source='hub'"
  )


def load_data(cfg: Config, saved_vocab: Vocab | None = None) -> EmbedData:
  """The corpus's lines, a vocabulary of the train words seen at least
  data.vocab_min_count times (or a run's), and each split's words."""
  text = sources.load_text_splits(_source(cfg))
  train_words = sum(len(line.split()) for line in text["train"])
  vocab = saved_vocab or build_vocab(
      (line.split() for line in text["train"]),
      cfg.data.vocab_max_size,
      cfg.data.vocab_min_count,
      specials=(),
  )
  index = {w: i for i, w in enumerate(vocab.tokens)}
  ids, lines = {}, {}
  for split, split_lines in text.items():
    ids[split], lines[split] = word2vec.encode_lines(split_lines, index)
  if not len(ids["train"]):
    raise DataError("no train word is in the vocabulary")
  return EmbedData(vocab, ids, lines, train_words, text)


def evaluation_files(cfg: Config) -> tuple[str, str]:
  """SimLex-999 and the analogy questions: data.simlex_file and
  data.analogy_file, by default the staged sets beside the corpus's folder
  (data.dir/../simlex-999, ../word-analogy; data.dir is $RNNLM_DATA/
  data.local_name when the command line names no folder)."""
  d = cfg.data
  roots = [os.path.dirname(os.path.normpath(d.dir))] if d.dir else []
  found = []
  for given, default, key in (
      (d.simlex_file, SIMLEX, "data.simlex_file"),
      (d.analogy_file, ANALOGIES, "data.analogy_file"),
  ):
    candidates = (
        [given] if given else [os.path.join(r, default) for r in roots if r]
    )
    path = next((p for p in candidates if os.path.isfile(p)), None)
    if path is None:
      raise DataError(
          f"{key}: no file at {' or '.join(candidates) or default!r}; point "
          f"--config.{key} at it"
      )
    found.append(path)
  return found[0], found[1]


class EmbeddingTask:
  """word2vec over one corpus (rnnlm_jax.tasks.Task)."""

  def __init__(self, cfg: Config, data: EmbedData, eval_batch_size=None):
    self.cfg, self.data, self.vocab = cfg, data, data.vocab
    m = cfg.model
    counts = np.bincount(data.ids["train"], minlength=len(data.vocab))
    self.keep = word2vec.keep_probability(counts, cfg.data.subsample)
    noise = word2vec.noise_distribution(counts, m.ns_exponent)
    self.table = tuple(map(jnp.asarray, word2vec.alias_table(noise)))
    self.eval_batch_size = eval_batch_size or cfg.data.eval_batch_size
    self.selection_metric = "valid_loss"
    # A pair's loss starts at (K + 1) log 2 (all scores 0); ten times that
    # is a run that no longer learns.
    self.max_train_loss = 10 * (m.negatives + 1) * math.log(2)
    self.simlex_file, self.analogy_file = evaluation_files(cfg)
    self._update = (
        word2vec.skipgram_update
        if m.kind == "skipgram"
        else word2vec.cbow_update
    )
    self._loss = (
        word2vec.skipgram_loss if m.kind == "skipgram" else word2vec.cbow_loss
    )
    # The step's implementation: the C++ one where it runs and was checked
    # to compute the JAX update (rnnlm_jax.backends), which the run says.
    self.kernel, self.path = backends.word2vec_kernel(m)
    self._eval = {}
    self._eval_sums = jax.jit(self._batch_sums)

  def init_params(self, key):
    return word2vec.init_params(key, len(self.vocab), self.cfg.model.embed_dim)

  def init_carry(self):
    return ()

  def init_hparams(self) -> dict:
    return {"dropout": jnp.float32(0.0)}

  def train_batches(self, epoch: int) -> dict:
    rng = np.random.default_rng([self.cfg.train.seed, epoch])
    return word2vec.epoch_batches(
        self.data.ids["train"],
        self.data.lines["train"],
        self.keep,
        self.cfg.model.window,
        self.cfg.data.batch_size,
        rng,
    )

  def batches_change_each_epoch(self) -> bool:
    return True

  def loss(self, params, carry, batch, key, hparams):
    """The summed negative-sampling loss of a batch: what sgd_update
    descends (tests compare the two)."""
    del hparams
    loss, count = self._loss(
        params, batch, key, self.table, self.cfg.model.negatives
    )
    return loss, (carry, {"loss": loss, "count": count.astype(jnp.float32)})

  def sgd_update(self, params, batch, key, lr):
    """One SGD step of rate ``lr`` on a batch's loss, written only to the
    rows the batch touches: (params, sums)."""
    return self._update(
        params,
        batch,
        key,
        self.table,
        self.cfg.model.negatives,
        lr,
        kernel=self.kernel,
    )

  def summarise(self, sums: dict, split: str = "train") -> dict:
    return {
        f"{split}_loss": float(sums["loss"]) / max(float(sums["count"]), 1.0)
    }

  def _batch_sums(self, params, batch, key):
    loss, count = self._loss(
        params, batch, key, self.table, self.cfg.model.negatives
    )
    return loss, count

  def evaluate(self, params, split: str, k: int = 1) -> list[dict]:
    """The held-out loss per positive pair of each trial."""
    if split not in self._eval:
      self._eval[split] = word2vec.eval_batches(
          self.data.ids[split],
          self.data.lines[split],
          self.cfg.model.window,
          self.eval_batch_size,
      )
    batches = self._eval[split]
    trials = (
        [params]
        if k == 1
        else [jax.tree.map(lambda a, i=i: a[i], params) for i in range(k)]
    )
    out = []
    for p in trials:
      total = count = 0.0
      for s in range(batches["centre"].shape[0]):
        batch = jax.tree.map(lambda a: a[s], batches)
        key = jax.random.fold_in(jax.random.key(_EVAL_KEY), s)
        loss, n = jax.device_get(self._eval_sums(p, batch, key))
        total, count = total + float(loss), count + float(n)
      out.append(self.summarise({"loss": total, "count": count}, split))
    return out

  def vectors(self, params, which: str = "input") -> np.ndarray:
    return np.asarray(jax.device_get(params[which]))

  def report(self, params, splits=("valid", "test")) -> dict:
    """The held-out losses, and the input vectors on SimLex-999 and the
    analogy questions."""
    results = {}
    for split in splits:
      results.update(self.evaluate(params, split)[0])
    scores = embeddings.evaluate(
        list(self.vocab.tokens),
        self.vectors(params),
        self.simlex_file,
        self.analogy_file,
    )
    return {**results, **scores}

  def describe(self) -> str:
    d, m = self.data, self.cfg.model
    counts = np.bincount(d.ids["train"], minlength=len(d.vocab))
    kept = int(np.rint(counts * self.keep).sum())
    return (
        f"{m.kind}: {d.raw_words:,} train words, {len(d.ids['train']):,} in "
        f"a vocabulary of {len(d.vocab):,} (min count "
        f"{self.cfg.data.vocab_min_count}), {kept:,} kept per epoch "
        f"by subsampling {self.cfg.data.subsample:g}; window {m.window}, "
        f"{m.negatives} negatives; {self.path}"
    )

  def decode(self, params, word: str, k: int = 10):
    """The ``k`` nearest neighbours of ``word`` by cosine."""
    return embeddings.neighbours(
        list(self.vocab.tokens), self.vectors(params), word, k
    )


def make_tasks(
    cfgs: list[Config], saved_vocab: Vocab | None = None
) -> list[EmbeddingTask]:
  data = load_data(cfgs[0], saved_vocab)
  return [
      EmbeddingTask(
          dataclasses.replace(
              c, model=dataclasses.replace(c.model, vocab_size=len(data.vocab))
          ),
          data,
      )
      for c in cfgs
  ]
