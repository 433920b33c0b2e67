"""Tests for rnnlm_jax.agreement: probes are reproducible, and only the
correct verb form makes a sentence of the language."""

import math

import numpy as np
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


def test_pronoun_agreement_is_enforced(grammar):
  probes = agreement.sample_pronoun_probes(grammar, 300, seed=3)
  assert len(probes) == 300
  assert probes == agreement.sample_pronoun_probes(grammar, 300, seed=3)
  # The verb and the conjunction always come between noun and pronoun.
  assert min(p["distance"] for p in probes) >= 2
  assert max(p["distance"] for p in probes) >= 10
  assert any(p["attractors"] for p in probes)
  pronouns = {"he", "she", "it", "they"}
  for p in probes:
    assert p["correct"] in pronouns
    assert sorted([p["correct"], *p["wrong"]]) == sorted(pronouns)
    right = p["prefix"] + [p["correct"]] + p["suffix"]
    assert pcfg.sentence_logprob(grammar, right) > -math.inf
    # Each wrong form differs from the sentence in the pronoun alone.
    for w in p["wrong"]:
      wrong = p["prefix"] + [w] + p["suffix"]
      assert pcfg.sentence_logprob(grammar, wrong) == -math.inf
      assert sum(a != b for a, b in zip(right, wrong)) == 1


def test_pronoun_distance_counts_the_words_between(grammar):
  probes = agreement.sample_pronoun_probes(grammar, 200, seed=4)
  nouns = {
      rhs[0]
      for s in ("N_sm", "N_sf", "N_sn", "N_pl")
      for _, rhs in grammar.rules[s]
  }
  for p in probes:
    # The subject's head is the first noun; the distance counts the words
    # after it up to the pronoun, which ends the prefix.
    head = next(i for i, w in enumerate(p["prefix"]) if w in nouns)
    assert p["distance"] == len(p["prefix"]) - head - 1
  skipped = agreement.sample_pronoun_probes(grammar, 50, 4, min_distance=6)
  assert min(p["distance"] for p in skipped) >= 6


def test_pronoun_attractors_are_nouns_of_another_class(grammar):
  (p,) = [
      q
      for q in agreement.sample_pronoun_probes(grammar, 400, seed=5)
      if q["correct"] == "he" and q["attractors"]
  ][:1]
  between = p["prefix"][len(p["prefix"]) - p["distance"] :]
  male = {rhs[0] for _, rhs in grammar.rules["N_sm"]}
  others = {
      rhs[0] for s in ("N_sf", "N_sn", "N_pl") for _, rhs in grammar.rules[s]
  }
  assert p["attractors"] == sum(w in others - male for w in between)


class _Vocab:

  def __init__(self, words):
    self.ids = {w: i for i, w in enumerate(sorted(words))}

  def id(self, word):
    return self.ids[word]

  def encode(self, words):
    return np.array([self.ids[w] for w in words])


def test_pronoun_study_scores_against_every_wrong_form(
    grammar, monkeypatch, tmp_path
):
  from experiments import agreement as study

  probes = agreement.sample_pronoun_probes(grammar, 40, seed=6)
  vocab = _Vocab(pcfg.vocabulary(grammar))
  # A fake model: "she" always wins; "he" beats "it" and "they".
  prefer = {"she": -0.1, "he": -1.0, "it": -2.0, "they": -3.0}
  inverse = {i: w for w, i in vocab.ids.items()}

  def score(seqs):
    return [
        np.array([0.0] * (len(s) - 1) + [prefer[inverse[s[-1]]]]) for s in seqs
    ]

  monkeypatch.setattr(
      study.scoring, "load_scorer", lambda workdir: (score, vocab, None)
  )
  correct = study.form_correct("unused", probes)
  np.testing.assert_array_equal(
      correct, [p["correct"] == "she" for p in probes]
  )
  rows = study.accuracy_table(
      np.array([p["distance"] for p in probes]),
      {"m": correct},
      study.PRONOUN_BUCKETS,
  )
  assert sum(r[1] for r in rows) == 40
  by_pronoun = study.pronoun_table(probes, {"m": correct})
  assert {r[0]: r[2] for r in by_pronoun}.get("she", 1.0) == 1.0
  assert all(r[2] == 0.0 for r in by_pronoun if r[0] != "she")
  study.write_outputs(str(tmp_path), rows, ["m"], rows, by_pronoun)
  text = (tmp_path / "agreement.md").read_text()
  assert "Pronoun agreement" in text and "| correct pronoun |" in text
