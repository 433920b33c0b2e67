"""Input embeddings taken from a trained language-model run of this project
(model.init_embeddings_from): each word of the new vocabulary that the run's
vocabulary holds gets the run's row; the others keep their random rows."""

import collections
import dataclasses

import numpy as np

from rnnlm_jax import rundir
from rnnlm_jax.config import ConfigError
from rnnlm_jax.vocab import Vocab


@dataclasses.dataclass(frozen=True)
class Embeddings:
  """The rows found for a vocabulary, and how much of it they cover."""

  source: str  # the run directory
  rows_VE: np.ndarray  # the run's row for each word found (others zero)
  found_V: np.ndarray  # bool: the word is in the run's vocabulary
  token_coverage: float  # share of the train tokens whose word was found

  def apply(self, embed_VE):
    """embed_VE with the found words' rows replaced."""
    return np.where(self.found_V[:, None], self.rows_VE, np.asarray(embed_VE))

  def describe(self) -> str:
    return (
        f"embeddings from {self.source}: {self.found_V.sum():,} of "
        f"{self.found_V.size:,} words ({100 * self.found_V.mean():.1f}%), "
        f"{100 * self.token_coverage:.1f}% of train tokens"
    )


def embeddings_from_run(
    workdir: str, vocab: Vocab, train_tokens, dim: int | None = None
) -> Embeddings:
  """The embedding rows of ``workdir``'s best checkpoint for ``vocab``'s
  words (the special tokens, <unk> among them, are not mapped); ``dim``:
  the width the rows must have."""
  trained = rundir.load_trained(workdir)
  if trained.params is None or "embed" not in trained.params:
    raise ConfigError(
        f"model.init_embeddings_from={workdir} has no input embedding"
    )
  source = np.asarray(trained.params["embed"], np.float32)
  if dim is not None and source.shape[1] != dim:
    raise ConfigError(
        f"model.init_embeddings_from={workdir} has embeddings of width "
        f"{source.shape[1]}, this model's model.embed_dim is {dim}"
    )
  found = np.zeros(len(vocab), bool)
  rows = np.zeros((len(vocab), source.shape[1]), np.float32)
  for i, word in enumerate(vocab.tokens):
    if word in trained.vocab and not word.startswith("<"):
      found[i], rows[i] = True, source[trained.vocab.id(word)]
  counts = collections.Counter(w for s in train_tokens for w in s)
  hit = sum(c for w, c in counts.items() if w in vocab and found[vocab.id(w)])
  return Embeddings(workdir, rows, found, hit / max(sum(counts.values()), 1))
