"""The built-in corpus: sentences of a PCFG (by default the English-like
language of :mod:`rnnlm_jax.english`), with the exact perplexity of the true
generator on each split, the floor that no model can beat in expectation.

No data to download; the same seed gives the same corpus.
"""

import math

import numpy as np

from rnnlm_jax import english
from rnnlm_jax.pcfg import Grammar, sample_sentence

SPLITS = ("train", "valid", "test")


def make_corpus(
    num_train: int,
    num_valid: int,
    num_test: int,
    seed: int,
    grammar: Grammar | None = None,
) -> dict:
  """Samples the three splits of the synthetic corpus.

  Each split has its own generator spawned from ``seed``, so a split does not
  change when the size of another one does.

  Args:
    num_train, num_valid, num_test: sentences per split.
    seed: the seed; equal seeds give equal corpora.
    grammar: defaults to ``english.default_grammar()``.

  Returns:
    {"train": [...], "valid": [...], "test": [...]}, each a list of sentences
    as space-joined words (no end marker); "logprob": split -> sum of the
    exact log-probabilities of its sentences; "num_tokens": split -> words
    plus one end-of-sentence token per sentence.
  """
  grammar = english.default_grammar() if grammar is None else grammar
  sizes = dict(zip(SPLITS, (num_train, num_valid, num_test)))
  seeds = np.random.SeedSequence(seed).spawn(len(SPLITS))
  corpus = {"logprob": {}, "num_tokens": {}}
  for split, split_seed in zip(SPLITS, seeds):
    sentences, logprob, tokens = _sample_split(
        grammar, np.random.default_rng(split_seed), sizes[split]
    )
    corpus[split] = sentences
    corpus["logprob"][split] = logprob
    corpus["num_tokens"][split] = tokens
  return corpus


def _sample_split(
    grammar: Grammar, rng: np.random.Generator, size: int
) -> tuple[list[str], float, int]:
  sentences, logprob, tokens = [], 0.0, 0
  for _ in range(size):
    words, lp = sample_sentence(grammar, rng)
    sentences.append(" ".join(words))
    logprob += lp
    tokens += len(words) + 1
  return sentences, logprob, tokens


def floor_perplexity(logprob: float, num_tokens: int) -> float:
  """Perplexity of the true generator on a split.

  Args:
    logprob: the split's summed exact log-probability (``make_corpus``).
    num_tokens: the split's token count, end-of-sentence tokens included.

  Returns:
    exp(-logprob / num_tokens), the floor that no model beats in expectation.
  """
  return math.exp(-logprob / num_tokens)
