"""The built-in English-like language: a PCFG with long-range agreement.

Sentences such as

  the fluffy gray cat that the dogs chase meows very loudly
  every queen near the golden bridges is happy because she sings

carry dependencies that a short n-gram window cannot see:

* number agreement: the main verb agrees with the head noun of the subject
  across a prepositional phrase or a relative clause of variable length, which
  often holds a noun of the other number (an attractor): "the cat that the
  dogs chase meows" but "the cats that the dog chases meow";
* pronoun agreement: an optional second clause refers back to the subject
  with the pronoun of its gender and number ("the king ... because he ...",
  "the queens ... because they ...").

The features live in the nonterminal names (CLAUSE_sm, SUBJ_pl, PRED_sg,
...), so the generator is a plain PCFG (:mod:`rnnlm_jax.pcfg`). The grammar
is unambiguous: every sentence has exactly one derivation (the argument is
in ``_default_rules``), so its exact perplexity floor is known.
"""

import functools
from collections.abc import Sequence

from rnnlm_jax.pcfg import Grammar, Rule

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
