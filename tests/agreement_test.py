"""Tests for rnnlm_jax.agreement: probes are reproducible, and only the
correct verb form makes a sentence of the language."""

import math

import pytest

from rnnlm_jax import agreement
from rnnlm_jax import english
from rnnlm_jax import pcfg


@pytest.fixture(scope="module")
def grammar():
  return english.default_grammar()


def test_verb_agreement_is_enforced(grammar):
  probes = agreement.sample_probes(grammar, 300, seed=3)
  assert len(probes) == 300
  assert probes == agreement.sample_probes(grammar, 300, seed=3)
  assert max(p["distance"] for p in probes) >= 6
  assert min(p["distance"] for p in probes) >= 1
  assert any(p["attractors"] for p in probes)
  for p in probes:
    assert p["correct"] != p["wrong"]
    right = p["prefix"] + [p["correct"]] + p["suffix"]
    wrong = p["prefix"] + [p["wrong"]] + p["suffix"]
    assert pcfg.sentence_logprob(grammar, right) > -math.inf
    assert pcfg.sentence_logprob(grammar, wrong) == -math.inf
