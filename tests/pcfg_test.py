"""Tests for rnnlm_jax.pcfg: exact probabilities and entropies against
brute-force enumeration of toy languages, and validation."""

import collections
import math

import numpy as np
import pytest

from rnnlm_jax import pcfg

# A finite, unambiguous toy language.
FINITE = pcfg.Grammar(
    {
        "S": ((1.0, ("NP", "VP")),),
        "NP": ((0.6, ("the", "N")), (0.3, ("a", "N")), (0.1, ("she",))),
        "N": ((0.5, ("cat",)), (0.3, ("dog",)), (0.2, ("big", "N2"))),
        "N2": ((0.5, ("cat",)), (0.5, ("dog",))),
        "VP": ((0.7, ("runs",)), (0.3, ("sees", "NP"))),
    }
)

# An infinite, unambiguous toy language whose probabilities decay
# geometrically with depth (mean offspring 0.3).
RECURSIVE = pcfg.Grammar(
    {
        "S": ((0.3, ("a", "T", "b")), (0.5, ("c",)), (0.2, ("d", "e"))),
        "T": ((1.0, ("S",)),),
    }
)

# An ambiguous one: "a a a" has two derivations.
AMBIGUOUS = pcfg.Grammar({"S": ((0.3, ("S", "S")), (0.7, ("a",)))})


def enumerate_sentences(grammar, min_prob):
  """Sums derivation probabilities per sentence over all leftmost
  derivations whose probability is at least ``min_prob``.

  Returns:
    ({sentence tuple: probability}, probability mass left out).
  """
  sentences = collections.defaultdict(float)
  dropped = 0.0
  todo = [((), (grammar.start,), 1.0)]
  while todo:
    words, rest, prob = todo.pop()
    if not rest:
      sentences[words] += prob
    elif rest[0] not in grammar.rules:
      todo.append((words + (rest[0],), rest[1:], prob))
    else:
      for p, rhs in grammar.rules[rest[0]]:
        if prob * p < min_prob:
          dropped += prob * p
        else:
          todo.append((words, tuple(rhs) + rest[1:], prob * p))
  return dict(sentences), dropped


def brute_force_entropy_per_token(sentences):
  entropy = -sum(p * math.log(p) for p in sentences.values())
  length = sum(p * len(s) for s, p in sentences.items())
  return entropy / (length + 1.0)


def test_finite_toy_language_is_exact():
  sentences, dropped = enumerate_sentences(FINITE, 0.0)
  assert dropped == 0.0
  assert math.isclose(sum(sentences.values()), 1.0, abs_tol=1e-9)
  assert math.isclose(
      pcfg.entropy_per_token(FINITE),
      brute_force_entropy_per_token(sentences),
      rel_tol=1e-9,
  )
  for words, prob in sentences.items():
    assert math.isclose(
        pcfg.sentence_logprob(FINITE, list(words)),
        math.log(prob),
        rel_tol=1e-9,
    )
  rng = np.random.default_rng(0)
  for _ in range(50):
    words, logprob = pcfg.sample_sentence(FINITE, rng)
    assert math.isclose(
        logprob, math.log(sentences[tuple(words)]), rel_tol=1e-9
    )


def test_recursive_toy_language_is_exact():
  sentences, dropped = enumerate_sentences(RECURSIVE, 1e-16)
  assert dropped < 1e-10
  assert math.isclose(sum(sentences.values()) + dropped, 1.0, abs_tol=1e-9)
  assert math.isclose(
      pcfg.entropy_per_token(RECURSIVE),
      brute_force_entropy_per_token(sentences),
      rel_tol=1e-6,
  )
  assert math.isclose(
      pcfg.mean_sentence_length(RECURSIVE),
      sum(p * len(s) for s, p in sentences.items()),
      rel_tol=1e-6,
  )
  for words, prob in sorted(sentences.items(), key=lambda kv: -kv[1])[:200]:
    assert math.isclose(
        pcfg.sentence_logprob(RECURSIVE, list(words)),
        math.log(prob),
        rel_tol=1e-9,
    )


def test_inside_sums_over_all_derivations_of_an_ambiguous_grammar():
  sentences, _ = enumerate_sentences(AMBIGUOUS, 1e-5)
  assert math.isclose(sentences[("a", "a", "a")], 2 * 0.3**2 * 0.7**3)
  for words, prob in sentences.items():
    assert math.isclose(
        pcfg.sentence_logprob(AMBIGUOUS, list(words)),
        math.log(prob),
        rel_tol=1e-9,
    )


def test_ungenerable_sentences_have_minus_infinite_logprob():
  for words in (
      [],
      ["the"],
      ["the", "cat"],
      ["runs", "the", "cat"],
      ["the", "cow", "runs"],
  ):
    assert pcfg.sentence_logprob(FINITE, words) == -math.inf


@pytest.mark.parametrize(
    "rules, message",
    [
        ({"S": ((0.5, ("a",)), (0.4, ("b",)))}, "sum to"),
        ({"S": ((1.0, ("NP", "runs")),)}, "undefined"),
        ({"S": ((1.0, ()),)}, "empty"),
        ({"S": ((1.5, ("a",)), (-0.5, ("b",)))}, "outside"),
        ({"S": ((0.5, ("a",)), (0.5, ("a",)))}, "twice"),
        ({"S": ((1.0, ("a",)),), "T": ((1.0, ("b",)),)}, "unreachable"),
        ({"S": ((0.5, ("T",)), (0.5, ("a",))), "T": ((1.0, ("S",)),)}, "cycle"),
        ({"S": ((0.6, ("S", "S")), (0.4, ("a",)))}, "subcritical"),
    ],
)
def test_validate_rejects_bad_grammars(rules, message):
  with pytest.raises(ValueError, match=message):
    pcfg.Grammar(rules).validate()


def test_derivation_choices_replay_to_the_sentence():
  rng = np.random.default_rng(5)
  for _ in range(50):
    words, logprob, choices = pcfg.sample_derivation(RECURSIVE, rng)
    steps = iter(choices)
    replayed, total = [], 0.0

    def expand(symbol):
      nonlocal total
      if symbol not in RECURSIVE.rules:
        replayed.append(symbol)
        return
      lhs, k = next(steps)
      assert lhs == symbol
      p, rhs = RECURSIVE.rules[symbol][k]
      total += math.log(p)
      for s in rhs:
        expand(s)

    expand(RECURSIVE.start)
    assert next(steps, None) is None
    assert replayed == words and math.isclose(total, logprob, rel_tol=1e-12)
