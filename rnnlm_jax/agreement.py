"""Agreement probes: sentences of the built-in language whose main verb
agrees in number with a distant subject, with the verb's wrong form.

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
