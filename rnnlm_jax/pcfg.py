"""Probabilistic context-free grammars: validation, sampling, exact parsing
and exact expectations.

A :class:`Grammar` maps nonterminals to weighted alternatives. For an
unambiguous grammar (every sentence has exactly one derivation) the
probability of a sentence is the product of the rule probabilities of its
derivation, known exactly at sampling time and recomputable by parsing
(:func:`sentence_logprob`, an inside pass that sums over all derivations). Its
expectation, the entropy per token, follows in closed form from two linear
systems over the nonterminals (expected derivation entropy and expected
yield length), because for an unambiguous grammar the entropy of the
derivation equals the entropy of the sentence.
"""

import bisect
import dataclasses
import functools
import math
import numbers
import types
from collections.abc import Mapping, Sequence

import numpy as np

Rule = tuple[float, tuple[str, ...]]

_SUM_TOLERANCE = 1e-9

# Uniform draws are fetched from the generator in blocks: one numpy call per
# word would dominate the sampling time.
_DRAW_BLOCK = 64

# Each matched word multiplies the inside value by this constant and the log
# of the result is corrected at the end; without it the probability of a
# long sentence would underflow float64.
_WORD_SCALE = math.exp(3.0)


@dataclasses.dataclass(frozen=True)
class Grammar:
  """A probabilistic context-free grammar.

  ``rules`` maps each nonterminal to its alternatives, each a pair
  (probability, right-hand side as a tuple of symbols). A symbol that is a key
  of ``rules`` is a nonterminal, any other symbol is a terminal word. Terminal
  words must not begin with an upper-case letter: such a symbol is read as a
  nonterminal whose rules are missing, so that a misspelt name is reported by
  ``validate`` instead of silently becoming a word.
  """

  rules: Mapping[str, tuple[Rule, ...]]
  start: str = "S"

  def __post_init__(self):
    # A private copy: the compiled tables below must not go stale.
    object.__setattr__(self, "rules", types.MappingProxyType(dict(self.rules)))

  def validate(self) -> None:
    """Checks that the grammar defines a proper, finite-length language that
    the parser can handle.

    Raises:
      ValueError: if the start symbol has no rules; an alternative is
        malformed (probability outside (0, 1], empty right-hand side, a symbol
        that is empty or holds white space); a nonterminal's probabilities do
        not sum to 1 (within 1e-9) or it lists the same right-hand side twice;
        a symbol is undefined (upper-case initial, no rules); a nonterminal is
        unreachable from the start symbol; unit rules form a cycle; or the
        recursion is not subcritical (expected sentence length infinite).
    """
    if self.start not in self.rules:
      raise ValueError(f"the start symbol {self.start!r} has no rules")
    for lhs, alternatives in self.rules.items():
      _check_alternatives(self.rules, lhs, alternatives)
    _check_reachable(self.rules, self.start)
    _check_unit_cycles(self.rules)
    _check_subcritical(self.rules)

  @functools.cached_property
  def _tables(self) -> "_Tables":
    self.validate()
    return _compile(self)


# ----------------------------------------------------------------------------
# Validation.


def _check_alternatives(rules, lhs, alternatives) -> None:
  if not isinstance(lhs, str) or not lhs:
    raise ValueError(f"nonterminal names must be non-empty strings: {lhs!r}")
  if (
      isinstance(alternatives, (str, bytes))
      or not isinstance(alternatives, Sequence)
      or not alternatives
  ):
    raise ValueError(f"{lhs}: alternatives must be a non-empty tuple")
  total, seen = 0.0, set()
  for alternative in alternatives:
    prob, rhs = _unpack_alternative(lhs, alternative)
    for symbol in rhs:
      _check_symbol(rules, lhs, symbol)
    if rhs in seen:
      raise ValueError(f"{lhs}: right-hand side {rhs} is listed twice")
    seen.add(rhs)
    total += prob
  if abs(total - 1.0) > _SUM_TOLERANCE:
    raise ValueError(f"{lhs}: probabilities sum to {total!r}, not 1")


def _unpack_alternative(lhs, alternative) -> tuple[float, tuple[str, ...]]:
  try:
    prob, rhs = alternative
  except (TypeError, ValueError):
    raise ValueError(
        f"{lhs}: {alternative!r} is not a pair "
        "(probability, right-hand side)"
    ) from None
  if isinstance(rhs, (str, bytes)) or not isinstance(rhs, Sequence):
    raise ValueError(f"{lhs}: right-hand side {rhs!r} is not a tuple")
  if not rhs:
    # Empty right-hand sides would let a nonterminal span no words, which the
    # span-based parser does not handle.
    raise ValueError(f"{lhs}: empty right-hand side")
  if isinstance(prob, bool) or not isinstance(prob, numbers.Real):
    raise ValueError(f"{lhs}: probability {prob!r} is not a number")
  if not 0.0 < prob <= 1.0:
    raise ValueError(f"{lhs}: probability {prob!r} is outside (0, 1]")
  return float(prob), tuple(rhs)


def _check_symbol(rules, lhs, symbol) -> None:
  if not isinstance(symbol, str) or not symbol or symbol.split() != [symbol]:
    raise ValueError(
        f"{lhs}: bad symbol {symbol!r} (an empty string or one "
        "holding white space)"
    )
  if symbol not in rules and symbol[0].isupper():
    raise ValueError(f"{lhs}: undefined nonterminal {symbol!r}")


def _check_reachable(rules, start) -> None:
  unreachable = set(rules) - _reachable(rules, start)
  if unreachable:
    raise ValueError(f"unreachable nonterminals: {sorted(unreachable)}")


def _reachable(rules, start) -> set:
  seen, todo = {start}, [start]
  while todo:
    for _, rhs in rules[todo.pop()]:
      for symbol in rhs:
        if symbol in rules and symbol not in seen:
          seen.add(symbol)
          todo.append(symbol)
  return seen


def _check_unit_cycles(rules) -> None:
  # A cycle of unit rules (A -> B, B -> A) would give a span infinitely many
  # derivations of itself.
  units = {
      lhs: {rhs[0] for _, rhs in alts if len(rhs) == 1 and rhs[0] in rules}
      for lhs, alts in rules.items()
  }
  for lhs in units:
    if lhs in _closure(units, lhs):
      raise ValueError(f"unit rules form a cycle through {lhs!r}")


def _closure(graph, node) -> set:
  """Nodes reachable from ``node`` in one or more steps."""
  seen, todo = set(), list(graph[node])
  while todo:
    nxt = todo.pop()
    if nxt not in seen:
      seen.add(nxt)
      todo.extend(graph[nxt])
  return seen


def _check_subcritical(rules) -> None:
  # The expected number of copies of each nonterminal in a derivation is
  # finite iff the spectral radius of the mean matrix is below 1; only then
  # are sentences finite with a finite mean length.
  names = sorted(rules)
  radius = max(abs(np.linalg.eigvals(_mean_matrix(rules, names))))
  if radius >= 1.0 - 1e-9:
    raise ValueError(
        f"the recursion is not subcritical (spectral radius "
        f"{radius:.4f} >= 1): sentences would be infinite"
    )


def _mean_matrix(rules, names) -> np.ndarray:
  """M[a, b]: expected number of b's on the right-hand side expanding a."""
  index = {name: i for i, name in enumerate(names)}
  mean = np.zeros((len(names), len(names)))
  for lhs, alternatives in rules.items():
    for prob, rhs in alternatives:
      for symbol in rhs:
        if symbol in rules:
          mean[index[lhs], index[symbol]] += prob
  return mean


# ----------------------------------------------------------------------------
# Compiled tables for sampling and parsing.


@dataclasses.dataclass(frozen=True)
class _Tables:
  start: str
  sampling: dict  # nonterminal -> (cumulative probs, reversed rhs, log probs)
  alternatives: dict  # nonterminal -> ((prob, rule id), ...)
  rhs: tuple  # rule id -> right-hand side
  rest_min: tuple  # rule id -> min yield length of rhs[k:], per k
  rest_max: tuple  # rule id -> max yield length of rhs[k:], per k
  lexicon: dict  # nonterminal with single-word rules only -> {word: prob}
  first: dict  # nonterminal -> words that can begin its yield
  last: dict  # nonterminal -> words that can end its yield
  min_len: dict
  max_len: dict  # math.inf for recursive nonterminals
  vocabulary: frozenset


def _compile(grammar: Grammar) -> _Tables:
  rules = grammar.rules
  rhs = tuple(tuple(r) for alts in rules.values() for _, r in alts)
  alternatives, rule_id = {}, 0
  for lhs, alts in rules.items():
    alternatives[lhs] = tuple(
        (float(p), rule_id + k) for k, (p, _) in enumerate(alts)
    )
    rule_id += len(alts)
  min_len, max_len = _min_lengths(rules), _max_lengths(rules)
  return _Tables(
      start=grammar.start,
      sampling={lhs: _sampling_entry(alts) for lhs, alts in rules.items()},
      alternatives=alternatives,
      rhs=rhs,
      rest_min=tuple(_suffix_lengths(rules, min_len, r) for r in rhs),
      rest_max=tuple(_suffix_lengths(rules, max_len, r) for r in rhs),
      lexicon=_lexicon(rules),
      first=_edge_words(rules, 0),
      last=_edge_words(rules, -1),
      min_len=min_len,
      max_len=max_len,
      vocabulary=frozenset(s for r in rhs for s in r if s not in rules),
  )


def _suffix_lengths(rules, lengths: dict, rhs: tuple) -> tuple:
  """Bounds on the yield length of rhs[k:] for k = 0 .. len(rhs)."""
  per_symbol = [lengths[s] if s in rules else 1 for s in rhs]
  return tuple(sum(per_symbol[k:]) for k in range(len(rhs) + 1))


def _sampling_entry(alternatives) -> tuple:
  probs = [float(p) for p, _ in alternatives]
  # The last boundary is left out: a draw past every other boundary picks the
  # last alternative, whatever rounding did to the running sum.
  cumulative = np.cumsum(probs)[:-1].tolist()
  reversed_rhs = [tuple(reversed(r)) for _, r in alternatives]
  return cumulative, reversed_rhs, [math.log(p) for p in probs]


def _lexicon(rules) -> dict:
  lexicon = {}
  for lhs, alts in rules.items():
    if all(len(r) == 1 and r[0] not in rules for _, r in alts):
      lexicon[lhs] = {r[0]: float(p) for p, r in alts}
  return lexicon


def _edge_words(rules, edge: int) -> dict:
  """Words that can stand first (edge 0) or last (edge -1) in each
  nonterminal's yield; empty right-hand sides are excluded by validate."""
  words = {lhs: set() for lhs in rules}
  changed = True
  while changed:
    changed = False
    for lhs, alts in rules.items():
      for _, rhs in alts:
        symbol = rhs[edge]
        new = words[symbol] if symbol in rules else {symbol}
        if not new <= words[lhs]:
          words[lhs] |= new
          changed = True
  return {lhs: frozenset(w) for lhs, w in words.items()}


def _min_lengths(rules) -> dict:
  lengths = {lhs: math.inf for lhs in rules}
  changed = True
  while changed:
    changed = False
    for lhs, alts in rules.items():
      best = min(
          sum(lengths[s] if s in rules else 1 for s in rhs) for _, rhs in alts
      )
      if best < lengths[lhs]:
        lengths[lhs] = best
        changed = True
  return lengths


def _max_lengths(rules) -> dict:
  graph = {
      lhs: {s for _, rhs in alts for s in rhs if s in rules}
      for lhs, alts in rules.items()
  }
  cyclic = {lhs for lhs in graph if lhs in _closure(graph, lhs)}
  lengths = {}
  for lhs in rules:
    reach = _closure(graph, lhs) | {lhs}
    if reach & cyclic:
      lengths[lhs] = math.inf
  for lhs in rules:
    _max_length(rules, lhs, lengths)
  return lengths


def _max_length(rules, lhs, lengths) -> float:
  if lhs not in lengths:
    # Only acyclic nonterminals get here, so the recursion terminates.
    lengths[lhs] = max(
        sum(_max_length(rules, s, lengths) if s in rules else 1 for s in rhs)
        for _, rhs in rules[lhs]
    )
  return lengths[lhs]


# ----------------------------------------------------------------------------
# Sampling.


def _derive(tables: _Tables, rng: np.random.Generator):
  """Samples a leftmost derivation.

  Returns:
    (words, log probability, choices), where choices lists the
    (nonterminal, alternative index) expansions in preorder.
  """
  words, choices, logprob = [], [], 0.0
  draws = iter(())
  stack = [tables.start]
  while stack:
    symbol = stack.pop()
    entry = tables.sampling.get(symbol)
    if entry is None:
      words.append(symbol)
      continue
    cumulative, reversed_rhs, logps = entry
    k = 0
    if cumulative:
      u = next(draws, None)
      if u is None:
        draws = iter(rng.random(_DRAW_BLOCK).tolist())
        u = next(draws)
      k = bisect.bisect_right(cumulative, u)
    choices.append((symbol, k))
    logprob += logps[k]
    stack.extend(reversed_rhs[k])
  return words, logprob, choices


def sample_derivation(
    grammar: Grammar, rng: np.random.Generator
) -> tuple[list[str], float, list[tuple[str, int]]]:
  """Samples one sentence with its derivation.

  Args:
    grammar: a valid grammar (checked on first use).
    rng: the source of randomness.

  Returns:
    (words, logprob, choices): as :func:`sample_sentence`, plus the
    (nonterminal, alternative index) expansions of the leftmost derivation
    in preorder.
  """
  return _derive(grammar._tables, rng)


def sample_sentence(
    grammar: Grammar, rng: np.random.Generator
) -> tuple[list[str], float]:
  """Samples one sentence.

  Args:
    grammar: a valid grammar (checked on first use).
    rng: the source of randomness.

  Returns:
    (words, logprob): the sentence without an end marker, and the natural log
    of the product of the probabilities of the rules used to generate it
    (for an unambiguous grammar, the exact log-probability of the sentence).
  """
  words, logprob, _ = _derive(grammar._tables, rng)
  return words, logprob


# ----------------------------------------------------------------------------
# Parsing.


def sentence_logprob(grammar: Grammar, words: Sequence[str]) -> float:
  """Exact log-probability of a sentence under the grammar.

  The inside algorithm sums over all derivations, so the value stays exact
  even for an ambiguous grammar; for an unambiguous one it equals the value
  ``sample_sentence`` returned for the same sentence.

  Args:
    grammar: a valid grammar.
    words: the sentence, without an end marker.

  Returns:
    The natural log of the sentence's probability, or -inf if the grammar
    cannot generate it.
  """
  tables = grammar._tables
  words = tuple(words)
  if not words or not tables.vocabulary.issuperset(words):
    return -math.inf
  value = _inside(tables, words)
  if value <= 0.0:
    return -math.inf
  return math.log(value) - len(words) * math.log(_WORD_SCALE)


def _inside(tables: _Tables, words: tuple) -> float:
  """Scaled inside probability of the start symbol over the whole sentence:
  a memoised top-down computation over spans, pruned by the words that can
  begin and end each nonterminal and by its yield-length bounds."""
  sampling, lexicon, rhs_of = tables.sampling, tables.lexicon, tables.rhs
  first, last = tables.first, tables.last
  min_len, max_len = tables.min_len, tables.max_len
  rest_min, rest_max = tables.rest_min, tables.rest_max
  span_memo, seq_memo = {}, {}

  def span(symbol, i, j):
    """Scaled probability that nonterminal ``symbol`` yields words[i:j]."""
    key = (symbol, i, j)
    value = span_memo.get(key)
    if value is not None:
      return value
    value = 0.0
    if (
        min_len[symbol] <= j - i <= max_len[symbol]
        and words[i] in first[symbol]
        and words[j - 1] in last[symbol]
    ):
      lex = lexicon.get(symbol)
      if lex is not None:
        value = lex.get(words[i], 0.0) * _WORD_SCALE
      else:
        for prob, rule in tables.alternatives[symbol]:
          value += prob * seq(rule, 0, i, j)
    span_memo[key] = value
    return value

  def seq(rule, k, i, j):
    """Scaled probability that rhs[k:] of ``rule`` yields words[i:j]."""
    rhs = rhs_of[rule]
    symbol = rhs[k]
    if k == len(rhs) - 1:
      if symbol in sampling:
        return span(symbol, i, j)
      return _WORD_SCALE if j == i + 1 and words[i] == symbol else 0.0
    if symbol not in sampling:
      if words[i] != symbol or j - i - 1 < rest_min[rule][k + 1]:
        return 0.0
      return _WORD_SCALE * seq(rule, k + 1, i + 1, j)
    key = (rule, k, i, j)
    value = seq_memo.get(key)
    if value is not None:
      return value
    value = 0.0
    low = max(i + min_len[symbol], j - rest_max[rule][k + 1])
    high = min(i + max_len[symbol], j - rest_min[rule][k + 1])
    for m in range(int(low), int(high) + 1):
      left = span(symbol, i, m)
      if left:
        value += left * seq(rule, k + 1, m, j)
    seq_memo[key] = value
    return value

  return span(tables.start, 0, len(words))


# ----------------------------------------------------------------------------
# Exact expectations.


def _expectations(grammar: Grammar) -> tuple[float, float]:
  """(expected derivation entropy in nats, expected sentence length)."""
  grammar.validate()
  rules = grammar.rules
  names = sorted(rules)
  entropy = np.array(
      [-sum(p * math.log(p) for p, _ in rules[a]) for a in names]
  )
  emitted = np.array(
      [
          sum(p * sum(s not in rules for s in rhs) for p, rhs in rules[a])
          for a in names
      ]
  )
  # Each expectation E[a] = local[a] + sum_b M[a, b] E[b].
  system = np.eye(len(names)) - _mean_matrix(rules, names)
  start = names.index(grammar.start)
  return (
      float(np.linalg.solve(system, entropy)[start]),
      float(np.linalg.solve(system, emitted)[start]),
  )


def entropy_per_token(grammar: Grammar) -> float:
  """Exact entropy of the language per token, in nats.

  Args:
    grammar: a valid, unambiguous grammar (for an ambiguous one this is the
      derivation entropy, an upper bound).

  Returns:
    E[-log p(s)] / (E[len(s)] + 1): one end-of-sentence token is counted per
    sentence, as in ``synthetic.make_corpus``'s
    ``num_tokens``.
  """
  entropy, length = _expectations(grammar)
  return entropy / (length + 1.0)


def mean_sentence_length(grammar: Grammar) -> float:
  """Exact expected number of words per sentence (no end marker).

  Args:
    grammar: a valid grammar.

  Returns:
    E[len(s)].
  """
  return _expectations(grammar)[1]


def vocabulary(grammar: Grammar) -> list[str]:
  """All terminal words of the grammar, sorted.

  Args:
    grammar: a valid grammar.

  Returns:
    The sorted list of words that some rule emits.
  """
  return sorted(grammar._tables.vocabulary)
