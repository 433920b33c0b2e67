"""Sentence pairs for translation: English and French, from the Tatoeba file
``fra.txt`` (``English<TAB>French`` lines, as manythings.org/anki ships it)
or a hub dataset whose ``translation`` column holds ``{"en", "fr"}`` dicts.

Sides are tokenised by the Moses tokenizer (sacremoses) after two small
normalisations: typographic apostrophes become ``'`` (so ``l’été`` splits
like ``l'été``, into ``l'`` and ``été``) and invisible characters (zero-width
and soft-hyphen) are removed. The pairs are split into train, valid and test
by a salted hash of the English side (:func:`split_of`), so the split depends
on neither the file's order nor the machine, and every translation of one
English sentence lands in the same split.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


from rnnlm_jax import sources
from rnnlm_jax.errors import DataError
from rnnlm_jax.labelled import _read_lines
from rnnlm_jax.sources import _check_fractions, _column

LANGUAGES = ("en", "fr")
SPLITS = ("train", "valid", "test")
FILE_NAME = "fra.txt"
_SOURCE_KEYS = ("dir", "hf_path", "hf_name", "hf_cache_dir", "encoding_errors")
_NORMALIZE = str.maketrans(
    {"\u2019": "'", "\u2018": "'", "\u200b": None, "\u00ad": None}
)


@dataclasses.dataclass(frozen=True)
class Pairs:
  """One split's pairs, as parallel tuples: ``src``/``tgt`` the token tuples,
  ``src_text``/``tgt_text`` the sentences as read (stripped, not lowercased:
  the references for BLEU), ``lines`` where each came from (the file's line
  number; for a hub dataset the row number from 1 across its splits in the
  order it lists them). ``dropped``: the pairs of this split that were left
  out for a side longer than the length limit."""

  src: tuple[tuple[str, ...], ...]
  tgt: tuple[tuple[str, ...], ...]
  src_text: tuple[str, ...]
  tgt_text: tuple[str, ...]
  lines: tuple[int, ...]
  dropped: int = 0

  def __len__(self) -> int:
    return len(self.src)


def read_pairs(
    path: str | os.PathLike, encoding_errors: str = "strict"
) -> list[tuple[str, str, int]]:
  """``(english, french, line number)`` of each line of a ``fra.txt`` file,
  both sides stripped. Columns past the second (newer files' attribution)
  are ignored; blank lines at the end are allowed, anywhere else an error."""
  if not Path(path).is_file():
    raise DataError(f"pairs file not found: {path}")
  lines = _read_lines(path, encoding_errors)
  while lines and not lines[-1].strip():
    lines.pop()
  out = []
  for lineno, line in enumerate(lines, 1):
    cols = line.split("\t")
    if len(cols) < 2:
      what = "blank line" if not line.strip() else "no tab"
      raise DataError(f"{path}:{lineno}: {what} (expected English<TAB>French)")
    english, french = cols[0].strip(), cols[1].strip()
    for side, text in (("English", english), ("French", french)):
      if not text:
        raise DataError(f"{path}:{lineno}: empty {side} side")
    out.append((english, french, lineno))
  if not out:
    raise DataError(f"{path}:1: no pairs")
  return out


@functools.lru_cache(maxsize=None)
def _tokenizer(lang: str):
  """sacremoses' tokenizer (imported here: it takes a second or two)."""
  import sacremoses  # pylint: disable=g-import-not-at-top

  return sacremoses.MosesTokenizer(lang=lang)


@functools.lru_cache(maxsize=None)
def _detokenizer(lang: str):
  import sacremoses  # pylint: disable=g-import-not-at-top

  return sacremoses.MosesDetokenizer(lang=lang)


def _check_lang(lang: str) -> None:
  if lang not in LANGUAGES:
    raise DataError(f"language must be one of {LANGUAGES}, got {lang!r}")


def tokenize(text: str, lang: str, lowercase: bool = False) -> list[str]:
  """Moses tokens of ``text`` (no XML escaping: ``"`` stays ``"``), French
  elisions split off (``l'`` ``homme``), after the module's normalisation;
  lowercased first when asked."""
  _check_lang(lang)
  text = text.translate(_NORMALIZE)
  if lowercase:
    text = text.lower()
  return _tokenizer(lang).tokenize(text, escape=False)


def detokenize(tokens: Sequence[str], lang: str) -> str:
  """The sentence Moses' detokenizer rebuilds from ``tokens``."""
  _check_lang(lang)
  return _detokenizer(lang).detokenize(list(tokens))


def split_of(english: str, fractions: Sequence[float], seed: int = 0) -> str:
  """``"train"``, ``"valid"`` or ``"test"`` for a pair with this English side.

  The side, whitespace-collapsed and lowercased, salted with ``seed``, is
  hashed by SHA-256; its first 8 bytes read as a number in [0, 1) pick the
  split whose cumulative share of ``fractions`` (train, valid, test) covers
  it.
  """
  key = f"{seed}\t{' '.join(english.split()).lower()}".encode("utf-8")
  u = int.from_bytes(hashlib.sha256(key).digest()[:8], "big") / 2.0**64
  for name, edge in zip(SPLITS, itertools.accumulate(fractions)):
    if u < edge:
      return name
  return SPLITS[-1]  # The edges' sum rounded below 1.


def _file_rows(source: Mapping[str, Any]) -> list[tuple[str, str, int]]:
  folder = Path(source["dir"]).expanduser()
  if not folder.is_dir():
    raise DataError(f"data folder not found: {folder}")
  return read_pairs(folder / FILE_NAME, source.get("encoding_errors", "strict"))


def _hub_rows(source: Mapping[str, Any]) -> list[tuple[str, str, int]]:
  """Every split's rows, pooled (the hash re-splits them)."""
  dd, name = sources.load_hub_dataset(source)
  if not isinstance(dd, Mapping):
    raise DataError(f"hub dataset {name} did not load as a dict of splits")
  out = []
  for split in dd:
    where = f"hub dataset {name} split {split!r}"
    for i, row in enumerate(_column(dd[split], "translation", where)):
      sides = [
          row.get(l) if isinstance(row, Mapping) else None for l in LANGUAGES
      ]
      for lang, text in zip(LANGUAGES, sides):
        if not isinstance(text, str) or not text.strip():
          raise DataError(f"{where} row {i}: no {lang!r} text in {row!r}")
      out.append((sides[0].strip(), sides[1].strip(), len(out) + 1))
  if not out:
    raise DataError(f"hub dataset {name} has no rows")
  return out


def load_pairs(
    source: Mapping[str, Any],
    src_lang: str = "fr",
    tgt_lang: str = "en",
    lowercase: bool = True,
    max_len: int | None = 64,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
) -> dict[str, Pairs]:
  """``{"train", "valid", "test"}`` pairs, source side in ``src_lang``.

  ``source`` is ``{"dir": folder}`` holding ``fra.txt`` (optional key
  ``encoding_errors``), or ``{"hf_path": ..., "hf_name": ...}`` (optional
  ``hf_cache_dir``), whose splits are pooled. Each pair goes to the split
  :func:`split_of` its English side names; a pair with a side of more than
  ``max_len`` tokens is dropped (None keeps all) and counted in its split's
  ``dropped``. Within a split the pairs keep the data's order.
  """
  unknown = sorted(set(source) - set(_SOURCE_KEYS))
  if unknown:
    raise DataError(
        f"unknown data source keys {unknown} (known: {_SOURCE_KEYS})"
    )
  for lang in (src_lang, tgt_lang):
    _check_lang(lang)
  if src_lang == tgt_lang:
    raise DataError(f"source and target language are both {src_lang!r}")
  if max_len is not None and max_len < 1:
    raise DataError(f"max_len must be at least 1 (or None), got {max_len!r}")
  fractions = _check_fractions(fractions)
  if source.get("dir"):
    rows = _file_rows(source)
  elif source.get("hf_path"):
    rows = _hub_rows(source)
  else:
    raise DataError("data source has neither 'dir' nor 'hf_path'")

  # Many sentences recur (one English sentence, several translations):
  # tokenise each once.
  memo: dict[tuple[str, str], tuple[str, ...]] = {}

  def tokens(text, lang):
    key = (text, lang)
    if key not in memo:
      memo[key] = tuple(tokenize(text, lang, lowercase))
    return memo[key]

  src_first = src_lang == "en"
  kept = {s: [] for s in SPLITS}
  dropped = dict.fromkeys(SPLITS, 0)
  for english, french, line in rows:
    split = split_of(english, fractions, seed)
    src_text, tgt_text = (english, french) if src_first else (french, english)
    src, tgt = tokens(src_text, src_lang), tokens(tgt_text, tgt_lang)
    if max_len is not None and max(len(src), len(tgt)) > max_len:
      dropped[split] += 1
    else:
      kept[split].append((src, tgt, src_text, tgt_text, line))
  out = {}
  for split in SPLITS:
    if not kept[split]:
      raise DataError(
          f"the {split} split has no pairs ({len(rows)} read, "
          f"{dropped[split]} of its own dropped by max_len={max_len}, "
          f"fractions {list(fractions)})"
      )
    columns = (tuple(c) for c in zip(*kept[split]))
    out[split] = Pairs(*columns, dropped=dropped[split])
  return out
