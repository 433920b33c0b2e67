"""The built-in corpus: a synthetic English-like language with an exact
perplexity floor.

Sentences are drawn from a seeded probabilistic context-free grammar (PCFG),
with no data to download, e.g.

  the fluffy gray cat that the dogs chase meows very loudly
  every queen near the golden bridges is happy because she sings

The language carries dependencies that a short n-gram window cannot see:

* number agreement: the main verb agrees with the head noun of the subject
  across a prepositional phrase or a relative clause of variable length, which
  often holds a noun of the other number (an attractor): "the cat that the
  dogs chase meows" but "the cats that the dog chases meow";
* pronoun agreement: an optional second clause refers back to the subject
  with the pronoun of its gender and number ("the king ... because he ...",
  "the queens ... because they ...").

The features live in the nonterminal names (CLAUSE_sm, SUBJ_pl, PRED_sg,
...), so the generator is a plain PCFG. The default grammar is unambiguous:
every sentence has exactly one derivation (the argument is in
``_default_rules``). The probability of a sentence is therefore the product
of the rule probabilities of that derivation, known exactly at sampling time
and recomputable by parsing. This gives the exact perplexity of the true
generator on any split, the floor that no model can beat in expectation. Its
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
from typing import NamedTuple

import numpy as np

SPLITS = ("train", "valid", "test")

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
    sentence, as in ``make_corpus``'s ``num_tokens``.
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


# ----------------------------------------------------------------------------
# The default language.

# Agreement classes of a subject: singular masculine, feminine and neuter, and
# plural. The class fixes the verb's number and the pronoun referring back.
_CLASSES = ("sm", "sf", "sn", "pl")
_CLASS_WEIGHT = {"sm": 0.2, "sf": 0.2, "sn": 0.2, "pl": 0.4}
_NUMBER = {"sm": "sg", "sf": "sg", "sn": "sg", "pl": "pl"}
_PRONOUN = {"sm": "he", "sf": "she", "sn": "it", "pl": "they"}

# (singular, plural) pairs. Nouns and attributive adjectives begin with a
# consonant sound so that the article "a" never has to become "an"; no form
# is shared between the two numbers, so a noun or verb reveals its number.
_MALE = (
    ("man", "men"),
    ("boy", "boys"),
    ("king", "kings"),
    ("prince", "princes"),
    ("father", "fathers"),
    ("brother", "brothers"),
    ("son", "sons"),
    ("knight", "knights"),
)
_FEMALE = (
    ("woman", "women"),
    ("girl", "girls"),
    ("queen", "queens"),
    ("princess", "princesses"),
    ("mother", "mothers"),
    ("sister", "sisters"),
    ("daughter", "daughters"),
    ("lady", "ladies"),
)
_ANIMALS = (
    ("cat", "cats"),
    ("dog", "dogs"),
    ("bird", "birds"),
    ("horse", "horses"),
    ("mouse", "mice"),
    ("fox", "foxes"),
    ("wolf", "wolves"),
    ("rabbit", "rabbits"),
)
_THINGS = (
    ("house", "houses"),
    ("garden", "gardens"),
    ("river", "rivers"),
    ("tree", "trees"),
    ("bridge", "bridges"),
    ("castle", "castles"),
    ("forest", "forests"),
    ("hill", "hills"),
    ("road", "roads"),
    ("tower", "towers"),
)
_TRANSITIVE = (
    ("chases", "chase"),
    ("sees", "see"),
    ("follows", "follow"),
    ("likes", "like"),
    ("watches", "watch"),
    ("feeds", "feed"),
    ("helps", "help"),
    ("finds", "find"),
    ("loves", "love"),
    ("fears", "fear"),
    ("visits", "visit"),
    ("calls", "call"),
)
_INTRANSITIVE = (
    ("sleeps", "sleep"),
    ("runs", "run"),
    ("sings", "sing"),
    ("laughs", "laugh"),
    ("smiles", "smile"),
    ("waits", "wait"),
    ("dances", "dance"),
    ("jumps", "jump"),
    ("cries", "cry"),
    ("swims", "swim"),
    ("meows", "meow"),
    ("barks", "bark"),
)
_COPULA = (("is", "are"), ("was", "were"))
_QUALITY = (
    "big",
    "small",
    "fluffy",
    "tiny",
    "lazy",
    "clever",
    "brave",
    "noisy",
    "gentle",
    "young",
    "little",
    "fat",
)
_COLOUR = ("gray", "black", "white", "brown", "red", "golden", "green")
_PREDICATIVE = (
    "happy",
    "sad",
    "hungry",
    "tired",
    "angry",
    "calm",
    "afraid",
    "busy",
    "sleepy",
    "proud",
)
_ADVERBS = (
    "loudly",
    "quietly",
    "slowly",
    "quickly",
    "happily",
    "sadly",
    "softly",
    "gently",
    "eagerly",
    "badly",
)
_PREPOSITIONS = (
    "near",
    "behind",
    "beside",
    "under",
    "with",
    "from",
    "inside",
    "toward",
)
_CONJUNCTIONS = ("because", "although", "while", "so", "when")
_DETERMINERS = {
    "sg": (("the", 0.5), ("a", 0.3), ("this", 0.1), ("every", 0.1)),
    "pl": (
        ("the", 0.5),
        ("some", 0.15),
        ("these", 0.1),
        ("many", 0.15),
        ("two", 0.1),
    ),
}

# Within a word class, frequencies fall off with rank as in natural text.
_ZIPF_EXPONENT = 0.8


def _zipf(words: Sequence[str]) -> list[tuple[float, str]]:
  weights = [(rank + 1.0) ** -_ZIPF_EXPONENT for rank in range(len(words))]
  total = sum(weights)
  return [(w / total, word) for w, word in zip(weights, words)]


def _words(*groups: tuple[float, Sequence[str]]) -> tuple[Rule, ...]:
  """Single-word rules: a mixture of Zipf-weighted word groups."""
  return tuple(
      (share * p, (word,))
      for share, words in groups
      for p, word in _zipf(words)
  )


def _column(pairs, number: str) -> list[str]:
  return [pair[0 if number == "sg" else 1] for pair in pairs]


def _clause_rules() -> dict:
  rules = {"S": tuple((_CLASS_WEIGHT[x], (f"CLAUSE_{x}",)) for x in _CLASSES)}
  for x in _CLASSES:
    n = _NUMBER[x]
    rules[f"CLAUSE_{x}"] = (
        (0.6, (f"SUBJ_{x}", f"PRED_{n}")),
        (0.4, (f"SUBJ_{x}", f"PRED_{n}", "CONJ", _PRONOUN[x], f"PRED2_{n}")),
    )
    rules[f"SUBJ_{x}"] = (
        (0.4, (f"DET_{n}", f"NOM_{x}")),
        (0.25, (f"DET_{n}", f"NOM_{x}", "PP")),
        (0.35, (f"DET_{n}", f"NOM_{x}", f"RC_{n}")),
    )
    rules[f"NOM_{x}"] = ((0.5, (f"N_{x}",)), (0.5, ("ADJS", f"N_{x}")))
  return rules


def _phrase_rules(n: str) -> dict:
  """Rules of number ``n`` below the clause: predicates, relative clauses
  and noun phrases other than the subject."""
  return {
      f"PRED_{n}": (
          (0.2, (f"VI_{n}",)),
          (0.2, (f"VI_{n}", "ADVP")),
          (0.15, (f"VI_{n}", "PP")),
          (0.25, (f"VT_{n}", "OBJ")),
          (0.2, (f"COP_{n}", "ADJP")),
      ),
      f"PRED2_{n}": (
          (0.3, (f"VI_{n}",)),
          (0.25, (f"VI_{n}", "ADVP")),
          (0.25, (f"COP_{n}", "ADJP")),
          (0.2, (f"VT_{n}", "SIMPLE")),
      ),
      # Subject gap (the verb agrees with the modified noun) or object gap
      # (the verb agrees with the inner subject, often an attractor).
      f"RC_{n}": (
          (0.3, ("that", f"VT_{n}", "OBJ")),
          (0.15, ("that", f"VI_{n}")),
          (0.1, ("that", f"COP_{n}", "ADJP")),
          (0.225, ("that", "INNER_sg", "VT_sg")),
          (0.225, ("that", "INNER_pl", "VT_pl")),
      ),
      f"OBJ_{n}": (
          (0.76, (f"DET_{n}", f"NOMT_{n}")),
          (0.12, (f"DET_{n}", f"NOMA_{n}", f"RC_{n}")),
          (0.12, (f"DET_{n}", f"NOMT_{n}", "PP")),
      ),
      f"SIMPLE_{n}": ((1.0, (f"DET_{n}", f"NOMT_{n}")),),
      f"INNER_{n}": ((1.0, (f"DET_{n}", f"NOMA_{n}")),),
      f"NOMA_{n}": ((0.6, (f"NA_{n}",)), (0.4, ("ADJS", f"NA_{n}"))),
      f"NOMT_{n}": ((0.6, (f"NT_{n}",)), (0.4, ("ADJS", f"NT_{n}"))),
  }


def _lexical_rules() -> dict:
  rules = {
      "N_sm": _words((1.0, _column(_MALE, "sg"))),
      "N_sf": _words((1.0, _column(_FEMALE, "sg"))),
      "N_sn": _words((1.0, _column(_ANIMALS, "sg"))),
      "OBJ": ((0.5, ("OBJ_sg",)), (0.5, ("OBJ_pl",))),
      "SIMPLE": ((0.5, ("SIMPLE_sg",)), (0.5, ("SIMPLE_pl",))),
      "PP": ((1.0, ("PREP", "SIMPLE")),),
      "ADJS": ((0.55, ("AQ",)), (0.25, ("AC",)), (0.2, ("AQ", "AC"))),
      "ADVP": ((0.75, ("ADV",)), (0.25, ("very", "ADV"))),
      "ADJP": ((0.7, ("PADJ",)), (0.3, ("very", "PADJ"))),
      "AQ": _words((1.0, _QUALITY)),
      "AC": _words((1.0, _COLOUR)),
      "PADJ": _words((1.0, _PREDICATIVE)),
      "ADV": _words((1.0, _ADVERBS)),
      "PREP": _words((1.0, _PREPOSITIONS)),
      "CONJ": _words((1.0, _CONJUNCTIONS)),
  }
  for n in ("sg", "pl"):
    animate = (
        (0.35, _column(_MALE, n)),
        (0.35, _column(_FEMALE, n)),
        (0.3, _column(_ANIMALS, n)),
    )
    rules[f"NA_{n}"] = _words(*animate)
    rules[f"NT_{n}"] = _words(
        *((0.6 * s, w) for s, w in animate), (0.4, _column(_THINGS, n))
    )
    rules[f"DET_{n}"] = tuple((p, (w,)) for w, p in _DETERMINERS[n])
    rules[f"VT_{n}"] = _words((1.0, _column(_TRANSITIVE, n)))
    rules[f"VI_{n}"] = _words((1.0, _column(_INTRANSITIVE, n)))
    rules[f"COP_{n}"] = _words((1.0, _column(_COPULA, n)))
  rules["N_pl"] = rules["NA_pl"]
  return rules


def _default_rules() -> dict:
  """The default language.

  Why every sentence has exactly one derivation: the word classes are
  disjoint (determiners; nouns; quality and colour adjectives; transitive,
  intransitive and copular verbs; predicative adjectives; adverbs;
  prepositions; conjunctions; pronouns; "that"; "very"), except that "the"
  serves both numbers and a noun can be read by several noun preterminals,
  which one being fixed by the noun's position. So a left-to-right reading
  fixes every choice:

  * The first noun is the subject's head; its form fixes the agreement class,
    hence the S rule, and no later choice depends on anything hidden.
  * A conjunction occurs only at the start of the pronoun clause: its
    presence picks the CLAUSE rule.
  * In a noun phrase, the words between determiner and noun (none, quality,
    colour, or quality then colour) pick the NOM/ADJS rules, and the noun's
    form picks the number (OBJ_sg or OBJ_pl, ...).
  * Post-modifiers attach to the word right before them. A PP or a relative
    clause (the only phrases that begin with a preposition or "that") follows
    only a noun, or for a predicate's PP an intransitive verb; every host
    takes at most one, and PP objects take none. A phrase after a noun can
    therefore belong to no noun but that one, and its extent follows: a PP is
    a preposition plus a simple noun phrase, and a relative clause ends with
    its verb or with its object phrase, whose extent is fixed the same way.
  * After "that", the next word picks the relative clause rule: transitive
    verb (subject gap), intransitive verb, copula, or determiner (object gap,
    the inner noun's form picking INNER_sg or INNER_pl).
  * A predicate's rule is picked by its verb's class and the word after it
    (adverb, "very", preposition, determiner, or a conjunction or the end).

  The recursion (an object phrase holding a relative clause holding an object
  phrase) has mean 0.12 * 0.3 per level: strongly subcritical.
  """
  rules = _clause_rules()
  for n in ("sg", "pl"):
    rules.update(_phrase_rules(n))
  rules.update(_lexical_rules())
  return rules


@functools.lru_cache(maxsize=1)
def default_grammar() -> Grammar:
  """The built-in English-like grammar (one shared, immutable instance).

  Returns:
    A valid, unambiguous Grammar with start symbol "S".
  """
  grammar = Grammar(_default_rules())
  grammar.validate()
  return grammar


# ----------------------------------------------------------------------------
# Corpus.


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
    grammar: defaults to ``default_grammar()``.

  Returns:
    {"train": [...], "valid": [...], "test": [...]}, each a list of sentences
    as space-joined words (no end marker); "logprob": split -> sum of the
    exact log-probabilities of its sentences; "num_tokens": split -> words
    plus one end-of-sentence token per sentence.
  """
  grammar = default_grammar() if grammar is None else grammar
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


# ----------------------------------------------------------------------------
# Agreement probes.


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


def agreement_probes(
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
  tables = grammar._tables
  rng = np.random.default_rng(seed)
  probes = []
  while len(probes) < n:
    words, _, choices = _derive(tables, rng)
    probe = _probe(grammar, words, _tree(grammar, choices))
    if probe["distance"] >= min_distance:
      probes.append(probe)
  return probes
