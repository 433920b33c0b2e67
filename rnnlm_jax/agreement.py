"""Agreement probes: sentences of the built-in language whose main verb
agrees in number with a distant subject, with the verb's wrong form
(``sample_probes``), and sentences whose pronoun refers back to a distant
subject, with the pronouns of the other agreement classes
(``sample_pronoun_probes``).

A model that prefers the correct form over the wrong one at the verb has
learnt the dependency; the distance and the attractors (nouns of the other
number in between) say how hard each probe is.
"""

from typing import NamedTuple

import numpy as np

from rnnlm_jax import pcfg
from rnnlm_jax.pcfg import Grammar


class _Node(NamedTuple):
  symbol: str
  rule: int  # index of the alternative used; -1 for a word
  children: tuple
  start: int  # first word position of the yield
  end: int  # one past the last


def _tree(grammar: Grammar, choices) -> _Node:
  """Rebuilds the derivation tree from its preorder list of choices."""
  steps = iter(choices)
  position = 0

  def build(symbol):
    nonlocal position
    if symbol not in grammar.rules:
      position += 1
      return _Node(symbol, -1, (), position - 1, position)
    _, k = next(steps)
    start = position
    children = tuple(build(s) for s in grammar.rules[symbol][k][1])
    return _Node(symbol, k, children, start, position)

  return build(grammar.start)


def _child(node: _Node, prefix: str) -> _Node:
  for child in node.children:
    if child.symbol.startswith(prefix):
      return child
  raise ValueError(
      f"{node.symbol} has no {prefix}* child: agreement probes "
      "need the default grammar's naming conventions"
  )


def _other_number(symbol: str) -> str:
  stem, number = symbol.rsplit("_", 1)
  if number not in ("sg", "pl"):
    raise ValueError(f"the main verb's preterminal {symbol} has no number")
  return f"{stem}_{'pl' if number == 'sg' else 'sg'}"


def _probe(grammar: Grammar, words: list[str], root: _Node) -> dict:
  # Conventions of the default grammar: S -> CLAUSE_x -> SUBJ_x PRED_n ...;
  # the subject's head noun is SUBJ_x -> NOM_x -> N_x; the main verb is the
  # first word of PRED_n, and its other-number form has the same alternative
  # index in the twin preterminal (VI_sg / VI_pl, ...).
  clause = _child(root, "CLAUSE_")
  noun = _child(_child(_child(clause, "SUBJ_"), "NOM_"), "N_")
  verb = _child(clause, "PRED_").children[0]
  other = _other_number(verb.symbol)
  return {
      "prefix": words[: verb.start],
      "correct": words[verb.start],
      "wrong": grammar.rules[other][verb.rule][1][0],
      "distance": verb.start - noun.start - 1,
      "attractors": _count_nouns(root, other[-2:], noun.end, verb.start),
      "suffix": words[verb.start + 1 :],
  }


def _count_nouns(node: _Node, number: str, start: int, end: int) -> int:
  """Nouns of ``number`` (preterminals N*_sg / N*_pl) inside [start, end)."""
  if node.end <= start or node.start >= end:
    return 0
  if node.symbol.startswith("N") and node.symbol.endswith("_" + number):
    if not node.symbol.startswith("NOM"):
      return 1
  return sum(_count_nouns(c, number, start, end) for c in node.children)


def _pronoun_probe(grammar: Grammar, words: list[str], root: _Node):
  # Conventions of the default grammar: the pronoun is the one word among
  # CLAUSE_x's children (CLAUSE_x -> SUBJ_x PRED_n CONJ pronoun PRED2_n), and
  # the same alternative of every other CLAUSE_y holds y's pronoun at the
  # same place. Clauses without a pronoun give None.
  clause = _child(root, "CLAUSE_")
  places = [i for i, c in enumerate(clause.children) if c.rule == -1]
  if not places:
    return None
  (i,) = places
  pronoun = clause.children[i]
  noun = _child(_child(_child(clause, "SUBJ_"), "NOM_"), "N_")
  correct = words[pronoun.start]
  classes = [
      s[len("CLAUSE_") :] for s in grammar.rules if s.startswith("CLAUSE_")
  ]
  wrong = sorted(
      {grammar.rules[f"CLAUSE_{y}"][clause.rule][1][i] for y in classes}
      - {correct}
  )
  own = clause.symbol[len("CLAUSE_") :]
  others = {
      rhs[0] for y in classes if y != own for _, rhs in grammar.rules[f"N_{y}"]
  } - {rhs[0] for _, rhs in grammar.rules[f"N_{own}"]}
  return {
      "prefix": words[: pronoun.start],
      "correct": correct,
      "wrong": wrong,
      "distance": pronoun.start - noun.start - 1,
      "attractors": sum(w in others for w in words[noun.end : pronoun.start]),
      "suffix": words[pronoun.start + 1 :],
  }


def sample_pronoun_probes(
    grammar: Grammar, n: int, seed: int, min_distance: int = 0
) -> list[dict]:
  """Sentences whose pronoun refers back to the subject.

  Sentences are sampled in turn; those without a pronoun clause (60% of the
  default grammar's) or whose distance falls short of ``min_distance`` are
  skipped.

  Args:
    grammar: the default grammar, or one that follows its naming conventions
      (CLAUSE_x with one alternative holding x's pronoun as its only word
      child, SUBJ_x, NOM_x, and N_x for the subject's head noun).
    n: number of probes.
    seed: the seed of the sampler.
    min_distance: the least distance kept.

  Returns:
    n dicts with "prefix" (the words before the pronoun), "correct" (the
    pronoun used), "wrong" (the sorted list of the other classes'
    pronouns), "distance" (words strictly between the subject's head noun
    and the pronoun), "attractors" (nouns among those words that a subject
    of another agreement class would have as its head: another number or
    gender; nouns no subject can have, such as "house", are not counted)
    and "suffix" (the words after the pronoun).
  """
  rng = np.random.default_rng(seed)
  probes = []
  while len(probes) < n:
    words, _, choices = pcfg.sample_derivation(grammar, rng)
    probe = _pronoun_probe(grammar, words, _tree(grammar, choices))
    if probe is not None and probe["distance"] >= min_distance:
      probes.append(probe)
  return probes


def sample_probes(
    grammar: Grammar, n: int, seed: int, min_distance: int = 1
) -> list[dict]:
  """Sentences whose main verb agrees with a distant subject.

  Sentences are sampled in turn and those whose distance falls short of
  ``min_distance`` are skipped (about 40% of default-grammar sentences have
  the verb right after the head noun; pass 0 to keep them as a baseline).

  Args:
    grammar: the default grammar, or one that follows its naming conventions
      (CLAUSE_*, SUBJ_*, NOM_*, N_*, PRED_*, noun and verb preterminals named
      *_sg / *_pl).
    n: number of probes.
    seed: the seed of the sampler.
    min_distance: the least distance kept.

  Returns:
    n dicts with "prefix" (the words before the main verb), "correct" (the
    verb form used), "wrong" (the same verb in the other number), "distance"
    (words strictly between the subject's head noun and the verb),
    "attractors" (nouns of the other number among those words) and "suffix"
    (the words after the verb).
  """
  rng = np.random.default_rng(seed)
  probes = []
  while len(probes) < n:
    words, _, choices = pcfg.sample_derivation(grammar, rng)
    probe = _probe(grammar, words, _tree(grammar, choices))
    if probe["distance"] >= min_distance:
      probes.append(probe)
  return probes
