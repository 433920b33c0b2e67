"""Log-probabilities of given token sequences under any trained model.

A sequence is scored as a sentence: after the boundary token (<eos>, or a
newline for characters), every token predicted once from a fresh state,
exactly as the training loss computes it. ``load_scorer(workdir)`` returns
one function for every model family:

  score(sequences: list of id lists) -> list of float64 arrays of per-token
  natural-log probabilities.
"""

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from rnnlm_jax.vocab import Vocab, tokenize_word
from rnnlm_jax import losses
from rnnlm_jax import models
from rnnlm_jax import ngram
from rnnlm_jax import rundir
from rnnlm_jax.config import Config
from rnnlm_jax.config import ModelConfig

Scorer = Callable[[list], list]


def _bucket(n: int) -> int:
  """Padded length: the next power of two (few distinct compiled shapes)."""
  return max(8, 1 << (max(n, 1) - 1).bit_length())


def _neural_logprobs(params, cfg: ModelConfig, x_BL, y_BL):
  logits, _ = models.apply_lm(
      params, cfg, models.init_carry(cfg, x_BL.shape[0]), x_BL
  )
  return -losses.token_nll(logits, y_BL)


_neural_logprobs_jit = jax.jit(_neural_logprobs, static_argnames="cfg")


def neural_token_logprobs(
    params, cfg: ModelConfig, sequences: list, start_id: int, batch: int = 64
) -> list:
  """Per-token log p of each sequence after start_id, in padded batches."""
  out = []
  for i in range(0, len(sequences), batch):
    chunk = [list(s) for s in sequences[i : i + batch]]
    L = _bucket(max(len(s) for s in chunk))
    B = _bucket(len(chunk))
    x = np.full((B, L), start_id, np.int32)
    y = np.zeros((B, L), np.int32)
    for b, s in enumerate(chunk):
      x[b, 1 : len(s)] = s[:-1]
      y[b, : len(s)] = s
    lp = np.asarray(
        jax.device_get(
            _neural_logprobs_jit(params, cfg, jnp.asarray(x), jnp.asarray(y))
        ),
        np.float64,
    )
    out.extend(lp[b, : len(s)] for b, s in enumerate(chunk))
  return out


def counted_token_logprobs(
    model: ngram.NGramLM, sequences: list, start_id: int
) -> list:
  return [
      model.token_logprobs(np.asarray(s, np.int64), start_id, reset_at_eos=True)
      if len(s)
      else np.zeros(0)
      for s in sequences
  ]


def load_scorer(
    workdir: str, slot: str = "best"
) -> tuple[Scorer, Vocab, Config]:
  """(score function, vocabulary, config) of a run directory."""
  t = rundir.load_trained(workdir, slot)
  start = t.vocab.boundary_id
  if t.counts is not None:
    return (
        lambda seqs: counted_token_logprobs(t.counts, seqs, start),
        t.vocab,
        t.cfg,
    )
  return (
      lambda seqs: neural_token_logprobs(t.params, t.cfg.model, seqs, start),
      t.vocab,
      t.cfg,
  )


def encode_sentence(vocab: Vocab, level: str, text: str) -> list[int]:
  """A sentence's ids, ending with the boundary token (<eos> at word level,
  the newline at character level) so that its end is scored too."""
  if level == "char":
    return vocab.encode(list(text) + ["\n"]).tolist()
  return vocab.encode(tokenize_word(text)).tolist()
