"""Tests of the synthetic corpus: exactness of probabilities and entropies,
determinism, vocabulary coverage and the agreement dependencies."""

import collections
import math

import numpy as np
import pytest

from rnnlm_jax import synthetic

# A finite, unambiguous toy language.
FINITE = synthetic.Grammar(
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
RECURSIVE = synthetic.Grammar(
    {
        "S": ((0.3, ("a", "T", "b")), (0.5, ("c",)), (0.2, ("d", "e"))),
        "T": ((1.0, ("S",)),),
    }
)

# An ambiguous one: "a a a" has two derivations.
AMBIGUOUS = synthetic.Grammar({"S": ((0.3, ("S", "S")), (0.7, ("a",)))})


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


@pytest.fixture(scope="module")
def grammar():
  return synthetic.default_grammar()


@pytest.fixture(scope="module")
def corpus():
  return synthetic.make_corpus(20000, 2000, 2000, 0)


def test_finite_toy_language_is_exact():
  sentences, dropped = enumerate_sentences(FINITE, 0.0)
  assert dropped == 0.0
  assert math.isclose(sum(sentences.values()), 1.0, abs_tol=1e-9)
  assert math.isclose(
      synthetic.entropy_per_token(FINITE),
      brute_force_entropy_per_token(sentences),
      rel_tol=1e-9,
  )
  for words, prob in sentences.items():
    assert math.isclose(
        synthetic.sentence_logprob(FINITE, list(words)),
        math.log(prob),
        rel_tol=1e-9,
    )
  rng = np.random.default_rng(0)
  for _ in range(50):
    words, logprob = synthetic.sample_sentence(FINITE, rng)
    assert math.isclose(
        logprob, math.log(sentences[tuple(words)]), rel_tol=1e-9
    )


def test_recursive_toy_language_is_exact():
  sentences, dropped = enumerate_sentences(RECURSIVE, 1e-16)
  assert dropped < 1e-10
  assert math.isclose(sum(sentences.values()) + dropped, 1.0, abs_tol=1e-9)
  assert math.isclose(
      synthetic.entropy_per_token(RECURSIVE),
      brute_force_entropy_per_token(sentences),
      rel_tol=1e-6,
  )
  assert math.isclose(
      synthetic.mean_sentence_length(RECURSIVE),
      sum(p * len(s) for s, p in sentences.items()),
      rel_tol=1e-6,
  )
  for words, prob in sorted(sentences.items(), key=lambda kv: -kv[1])[:200]:
    assert math.isclose(
        synthetic.sentence_logprob(RECURSIVE, list(words)),
        math.log(prob),
        rel_tol=1e-9,
    )


def test_inside_sums_over_all_derivations_of_an_ambiguous_grammar():
  sentences, _ = enumerate_sentences(AMBIGUOUS, 1e-5)
  assert math.isclose(sentences[("a", "a", "a")], 2 * 0.3**2 * 0.7**3)
  for words, prob in sentences.items():
    assert math.isclose(
        synthetic.sentence_logprob(AMBIGUOUS, list(words)),
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
    assert synthetic.sentence_logprob(FINITE, words) == -math.inf


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
    synthetic.Grammar(rules).validate()


def test_default_grammar_shape(grammar):
  grammar.validate()
  assert 100 <= len(synthetic.vocabulary(grammar)) <= 300
  assert 8.0 <= synthetic.mean_sentence_length(grammar) <= 14.0


def test_parsed_logprob_equals_sampled_logprob(grammar):
  # Equality also shows that each sampled sentence has a single derivation:
  # a second one would add to the parsed probability.
  rng = np.random.default_rng(1)
  for _ in range(200):
    words, logprob = synthetic.sample_sentence(grammar, rng)
    assert math.isclose(
        synthetic.sentence_logprob(grammar, words), logprob, rel_tol=1e-9
    )


def test_monte_carlo_entropy_matches_exact_entropy(grammar):
  rng = np.random.default_rng(2)
  nll, tokens = 0.0, 0
  for _ in range(20000):
    words, logprob = synthetic.sample_sentence(grammar, rng)
    nll -= logprob
    tokens += len(words) + 1
  assert math.isclose(
      nll / tokens, synthetic.entropy_per_token(grammar), rel_tol=0.02
  )
  assert math.isclose(
      tokens / 20000 - 1, synthetic.mean_sentence_length(grammar), rel_tol=0.02
  )


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
      sum(synthetic.sentence_logprob(grammar, w) for w in valid),
      first["logprob"]["valid"],
      rel_tol=1e-9,
  )


def test_every_word_appears_in_train(grammar, corpus):
  seen = {w for line in corpus["train"] for w in line.split()}
  assert seen == set(synthetic.vocabulary(grammar))


def test_floor_perplexity_matches_entropy(grammar, corpus):
  exact = math.exp(synthetic.entropy_per_token(grammar))
  floor = synthetic.floor_perplexity(
      corpus["logprob"]["test"], corpus["num_tokens"]["test"]
  )
  assert math.isclose(floor, exact, rel_tol=0.05)


def test_verb_agreement_is_enforced(grammar):
  probes = synthetic.agreement_probes(grammar, 300, seed=3)
  assert len(probes) == 300
  assert probes == synthetic.agreement_probes(grammar, 300, seed=3)
  assert max(p["distance"] for p in probes) >= 6
  assert min(p["distance"] for p in probes) >= 1
  assert any(p["attractors"] for p in probes)
  for p in probes:
    assert p["correct"] != p["wrong"]
    right = p["prefix"] + [p["correct"]] + p["suffix"]
    wrong = p["prefix"] + [p["wrong"]] + p["suffix"]
    assert synthetic.sentence_logprob(grammar, right) > -math.inf
    assert synthetic.sentence_logprob(grammar, wrong) == -math.inf


def test_pronoun_agrees_with_distant_subject(grammar):
  rng = np.random.default_rng(4)
  pronouns = ("he", "she", "it", "they")
  checked = 0
  while checked < 100:
    words, _ = synthetic.sample_sentence(grammar, rng)
    where = [i for i, w in enumerate(words) if w in pronouns]
    if not where:
      continue
    checked += 1
    for other in pronouns:
      swapped = list(words)
      swapped[where[0]] = other
      logprob = synthetic.sentence_logprob(grammar, swapped)
      assert (logprob > -math.inf) == (other == words[where[0]])
