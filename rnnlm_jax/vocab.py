"""Tokenization and the vocabulary: from lines of text to int32 token ids.

Word level
    Every line becomes ``line.split() + ["<eos>"]``, including empty lines
    (the convention of Mikolov's rnnlm and of most published PTB and
    WikiText-2 numbers: PTB train has 929,589 tokens, WikiText-2 train
    2,088,628). The vocabulary is built from the train split with ``<eos>``
    as its only special token.
Char level
    Every character is a token, newlines and spaces included, and no
    ``<eos>`` is added (the char-rnn convention for Tiny Shakespeare). The
    vocabulary is built from the train split with no special tokens, so it
    has exactly the characters of the train text. Streams still need a
    boundary symbol to start from; :attr:`Vocab.boundary_id` is ``<eos>`` when
    the vocabulary has it and the newline character otherwise.

Unknown-word classes
    A vocabulary built with ``unk_classes`` (sentence tasks'
    ``data.unk_classes``) holds, besides ``<unk>``, the classes
    (:func:`unknown_word_class`: capitalised, with digits, with a hyphen,
    and a common suffix, ``<unk-Cap-s>`` say) of the train words it leaves
    out; encoding then maps a word outside the vocabulary to its class
    where the vocabulary has it, and to ``<unk>`` otherwise. The rare train
    words teach the classes what a test word outside the vocabulary looks
    like (Petrov et al.'s unknown-word signatures, simplified).

Vocabulary file format
----------------------
:meth:`Vocab.save` writes UTF-8 text with one token per line, each line being
the token as a JSON string literal (``"the"``, ``"<eos>"``, ``" "``, ``"\\n"``).
JSON escaping makes every token (space, newline, tab, quotes, control
characters) round-trip exactly while the file stays one readable token per
line; line ``i`` (from 0) holds the token with id ``i``.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from rnnlm_jax.atomic import atomic_write_bytes
from rnnlm_jax.errors import DataError

EOS = "<eos>"
UNK = "<unk>"
LEVELS = ("word", "char")
UNK_CLASS_PREFIX = "<unk-"
# Tried in order, on the lowercased word, each only where the word is
# longer than the suffix by two characters or more.
UNK_SUFFIXES = (
    "ing", "ed", "ly", "ion", "ity", "ment", "ness", "able", "ible", "ive",
    "ous", "ful", "less", "est", "er", "al", "ic", "ies", "es", "s", "y",
)  # fmt: skip


def unknown_word_class(word: str) -> str:
  """The class of a word outside the vocabulary by its shape:
  "<unk-" + the parts that apply, of Cap (first letter upper case), num
  (a digit), dash (a hyphen) and -SUFFIX (UNK_SUFFIXES), + ">";
  "<unk-plain>" for none."""
  parts = []
  if word[:1].isupper():
    parts.append("Cap")
  if any(c.isdigit() for c in word):
    parts.append("num")
  if "-" in word:
    parts.append("dash")
  lower = word.lower()
  for suffix in UNK_SUFFIXES:
    if lower.endswith(suffix) and len(lower) >= len(suffix) + 2:
      parts.append(suffix)
      break
  return UNK_CLASS_PREFIX + ("-".join(parts) or "plain") + ">"


@dataclasses.dataclass(frozen=True)
class Vocab:
  """An ordered set of tokens; a token's id is its index in ``tokens``."""

  tokens: tuple[str, ...]

  def __post_init__(self):
    tokens = tuple(self.tokens)
    index: dict[str, int] = {}
    for i, token in enumerate(tokens):
      if not isinstance(token, str):
        raise DataError(f"vocabulary token {i} is not a string: {token!r}")
      if token in index:
        raise DataError(
            f"vocabulary token {token!r} appears twice (ids {index[token]} and {i})"
        )
      index[token] = i
    object.__setattr__(self, "tokens", tokens)
    object.__setattr__(self, "_index", index)
    classed = any(t.startswith(UNK_CLASS_PREFIX) for t in tokens)
    object.__setattr__(self, "_classed", classed)

  def __repr__(self) -> str:
    more = "..." if len(self.tokens) > 5 else ""
    return f"Vocab(size={len(self.tokens)}, tokens={self.tokens[:5]!r}{more})"

  def __len__(self) -> int:
    return len(self.tokens)

  def __contains__(self, token: object) -> bool:
    return token in self._index

  def id(self, token: str) -> int:
    """The id of ``token``; a token not in the vocabulary raises DataError (no ``<unk>`` fallback)."""
    try:
      return self._index[token]
    except KeyError:
      raise DataError(f"token {token!r} is not in the vocabulary") from None

  @property
  def unk_id(self) -> int | None:
    """Id of ``<unk>``, or None when the vocabulary has no ``<unk>``."""
    return self._index.get(UNK)

  @property
  def eos_id(self) -> int | None:
    """Id of ``<eos>``, or None when the vocabulary has no ``<eos>`` (char level)."""
    return self._index.get(EOS)

  @property
  def boundary_id(self) -> int:
    """The id that starts a stream or sentence: ``<eos>`` if present, else the newline character."""
    for token in (EOS, "\n"):
      if token in self._index:
        return self._index[token]
    raise DataError(
        f"vocabulary has neither {EOS} nor a newline token to use as a boundary"
    )

  def encode(self, tokens: Sequence[str]) -> np.ndarray:
    """Token ids as int32 [N]. Unknown tokens map to their unknown-word
    class where the vocabulary has classes, else to ``<unk>``; without
    ``<unk>`` they raise DataError."""
    index = self._index
    unk = self.unk_id
    if unk is None:
      try:
        ids = [index[t] for t in tokens]
      except KeyError as e:
        raise DataError(
            f"token {e.args[0]!r} is not in the vocabulary, which has no {UNK}"
        ) from None
    elif self._classed:
      get = index.get
      ids = [get(t, get(unknown_word_class(t), unk)) for t in tokens]
    else:
      get = index.get
      ids = [get(t, unk) for t in tokens]
    return np.array(ids, dtype=np.int32)

  def decode(self, ids: Iterable[int] | np.ndarray) -> list[str]:
    """Tokens for a sequence of ids (any shape of array is read in row-major order)."""
    flat = np.asarray(ids).reshape(-1)
    if flat.size and (flat.min() < 0 or flat.max() >= len(self.tokens)):
      bad = flat[(flat < 0) | (flat >= len(self.tokens))][0]
      raise DataError(
          f"id {int(bad)} is outside the vocabulary (size {len(self.tokens)})"
      )
    tokens = self.tokens
    return [tokens[i] for i in flat.tolist()]

  def save(self, path: str | os.PathLike) -> None:
    """Write one JSON string literal per line (see the module docstring), atomically."""
    text = "".join(
        json.dumps(t, ensure_ascii=False) + "\n" for t in self.tokens
    )
    atomic_write_bytes(Path(path), text.encode("utf-8"))

  @classmethod
  def load(cls, path: str | os.PathLike) -> "Vocab":
    """Read a file written by :meth:`save`."""
    path = Path(path)
    if not path.is_file():
      raise DataError(f"vocabulary file not found: {path}")
    try:
      text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
      raise DataError(
          f"vocabulary file {path}: invalid UTF-8 at byte offset {e.start}"
      ) from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
      lines.pop()
    tokens = []
    for lineno, line in enumerate(lines, 1):
      try:
        token = json.loads(line)
      except json.JSONDecodeError:
        token = None
      if not isinstance(token, str):
        raise DataError(
            f"vocabulary file {path}: line {lineno} is not a JSON string: {line[:40]!r}"
        )
      tokens.append(token)
    if not tokens:
      raise DataError(f"vocabulary file {path} is empty")
    try:
      return cls(tuple(tokens))
    except DataError as e:
      raise DataError(f"vocabulary file {path}: {e}") from None


def tokenize_word(line: str) -> list[str]:
  """Whitespace tokens of one line followed by ``<eos>``; an empty line gives ``[<eos>]``."""
  return line.split() + [EOS]


def tokenize_char(text: str) -> list[str]:
  """Every character of ``text``, newlines included; no ``<eos>``."""
  return list(text)


def build_vocab(
    token_lists: Iterable[Sequence[str]],
    max_size: int = 0,
    min_count: int = 1,
    specials: Sequence[str] = (EOS,),
    unk_classes: bool = False,
) -> Vocab:
  """Vocabulary of ``specials`` followed by tokens by descending count.

  Ties are broken by first appearance. Tokens seen fewer than ``min_count``
  times are dropped; with ``max_size > 0`` the vocabulary holds at most
  ``max_size`` tokens in all. If anything was dropped, ``<unk>`` is made a
  special (right after the given ones) so every token can be encoded. A
  ``<unk>`` that occurs in the corpus (PTB) is otherwise an ordinary word.
  With ``unk_classes``, the unknown-word classes of the dropped tokens
  follow ``<unk>`` (sorted), so that encoding maps unknown words to them.
  """
  if max_size < 0 or min_count < 1:
    raise DataError(
        f"build_vocab needs max_size >= 0 and min_count >= 1, got {max_size} and {min_count}"
    )
  specials = list(dict.fromkeys(specials))
  counts: collections.Counter[str] = collections.Counter()
  for tokens in token_lists:
    counts.update(tokens)
  for s in specials:
    counts.pop(s, None)
  ranked = sorted(
      counts.items(), key=lambda kv: -kv[1]
  )  # stable: ties keep first appearance
  words = [t for t, c in ranked if c >= min_count]
  dropped = len(words) < len(ranked) or (
      max_size > 0 and len(specials) + len(words) > max_size
  )
  if dropped and UNK not in specials:
    specials.append(UNK)
    words = [w for w in words if w != UNK]
  if unk_classes:
    rare = [t for t, c in ranked if c < min_count]
    specials += sorted({unknown_word_class(t) for t in rare} - set(specials))
  if max_size > 0:
    room = max_size - len(specials)
    if room < 0:
      raise DataError(
          f"max_size={max_size} is smaller than the number of special tokens {specials}"
      )
    words = words[:room]
  tokens = tuple(specials) + tuple(words)
  if not tokens:
    raise DataError(
        "the vocabulary would be empty: no tokens and no special tokens"
    )
  return Vocab(tokens)


def _tokens(lines: Sequence[str], level: str) -> list[str]:
  if level == "char":
    return tokenize_char("".join(lines))
  out: list[str] = []
  for line in lines:
    out.extend(tokenize_word(line))
  return out


def encode_splits(
    splits: Mapping[str, Sequence[str]],
    level: str,
    vocab: Vocab | None = None,
    max_size: int = 0,
    min_count: int = 1,
) -> tuple[Vocab, dict[str, np.ndarray]]:
  """Tokenize and encode each split to a flat int32 id array.

  Word level: ``tokenize_word`` per line, concatenated. Char level: the
  split's strings are concatenated as they are and every character is a
  token. Without ``vocab``, one is built from the train split (specials
  ``(<eos>,)`` at word level, none at char level) with the given limits.
  """
  if level not in LEVELS:
    raise DataError(f"level must be 'word' or 'char', got {level!r}")
  tokens = {name: _tokens(lines, level) for name, lines in splits.items()}
  fix = ""
  if vocab is None:
    if "train" not in tokens:
      raise DataError(
          "encode_splits needs a train split to build the vocabulary from"
      )
    specials = (EOS,) if level == "word" else ()
    vocab = build_vocab(
        [tokens["train"]],
        max_size=max_size,
        min_count=min_count,
        specials=specials,
    )
    fix = (
        f"; set data.vocab_min_count=2 or data.vocab_max_size below"
        f" {len(vocab)} so that rare tokens become {UNK}"
    )
  ids = {}
  for name, toks in tokens.items():
    if not toks:
      raise DataError(f"the {name} split has no tokens")
    try:
      ids[name] = vocab.encode(toks)
    except DataError as e:
      raise DataError(f"{name} split: {e}{fix}") from None
  return vocab, ids
