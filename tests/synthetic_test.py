"""Tests for rnnlm_jax.synthetic: the corpus is deterministic per split,
covers the vocabulary, and its floor matches the exact entropy."""

import math

import pytest

from rnnlm_jax import english
from rnnlm_jax import pcfg
from rnnlm_jax import synthetic


@pytest.fixture(scope="module")
def grammar():
  return english.default_grammar()


@pytest.fixture(scope="module")
def corpus():
  return synthetic.make_corpus(20000, 2000, 2000, 0)


def test_make_corpus_is_deterministic_and_consistent(grammar):
  first = synthetic.make_corpus(300, 40, 40, seed=7)
  assert first == synthetic.make_corpus(300, 40, 40, seed=7)
  other = synthetic.make_corpus(300, 40, 40, seed=8)
  for split in synthetic.SPLITS:
    assert first[split] != other[split]
  assert len(first["train"]) == 300 and len(first["test"]) == 40
  # A split does not depend on the sizes of the others.
  assert synthetic.make_corpus(10, 40, 5, seed=7)["valid"] == first["valid"]
  valid = [line.split() for line in first["valid"]]
  assert first["num_tokens"]["valid"] == sum(len(w) + 1 for w in valid)
  assert math.isclose(
      sum(pcfg.sentence_logprob(grammar, w) for w in valid),
      first["logprob"]["valid"],
      rel_tol=1e-9,
  )


def test_every_word_appears_in_train(grammar, corpus):
  seen = {w for line in corpus["train"] for w in line.split()}
  assert seen == set(pcfg.vocabulary(grammar))


def test_floor_perplexity_matches_entropy(grammar, corpus):
  exact = math.exp(pcfg.entropy_per_token(grammar))
  floor = synthetic.floor_perplexity(
      corpus["logprob"]["test"], corpus["num_tokens"]["test"]
  )
  assert math.isclose(floor, exact, rel_tol=0.05)
