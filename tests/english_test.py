"""Tests for rnnlm_jax.english: the built-in language is unambiguous, its
exact entropy matches sampling, and pronouns agree with their subject."""

import math

import numpy as np
import pytest

from rnnlm_jax import english
from rnnlm_jax import pcfg


@pytest.fixture(scope="module")
def grammar():
  return english.default_grammar()


def test_default_grammar_shape(grammar):
  grammar.validate()
  assert 100 <= len(pcfg.vocabulary(grammar)) <= 300
  assert 8.0 <= pcfg.mean_sentence_length(grammar) <= 14.0


def test_parsed_logprob_equals_sampled_logprob(grammar):
  # Equality also shows that each sampled sentence has a single derivation:
  # a second one would add to the parsed probability.
  rng = np.random.default_rng(1)
  for _ in range(200):
    words, logprob = pcfg.sample_sentence(grammar, rng)
    assert math.isclose(
        pcfg.sentence_logprob(grammar, words), logprob, rel_tol=1e-9
    )


def test_monte_carlo_entropy_matches_exact_entropy(grammar):
  rng = np.random.default_rng(2)
  nll, tokens = 0.0, 0
  for _ in range(20000):
    words, logprob = pcfg.sample_sentence(grammar, rng)
    nll -= logprob
    tokens += len(words) + 1
  assert math.isclose(
      nll / tokens, pcfg.entropy_per_token(grammar), rel_tol=0.02
  )
  assert math.isclose(
      tokens / 20000 - 1, pcfg.mean_sentence_length(grammar), rel_tol=0.02
  )


def test_pronoun_agrees_with_distant_subject(grammar):
  rng = np.random.default_rng(4)
  pronouns = ("he", "she", "it", "they")
  checked = 0
  while checked < 100:
    words, _ = pcfg.sample_sentence(grammar, rng)
    where = [i for i, w in enumerate(words) if w in pronouns]
    if not where:
      continue
    checked += 1
    for other in pronouns:
      swapped = list(words)
      swapped[where[0]] = other
      logprob = pcfg.sentence_logprob(grammar, swapped)
      assert (logprob > -math.inf) == (other == words[where[0]])
