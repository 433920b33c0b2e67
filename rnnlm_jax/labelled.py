"""Labelled sentences: SST-2 classification and CoNLL-2000 tagging.

Files are decoded as UTF-8 with universal newlines; every problem in one
raises a DataError whose one-line message is ``"FILE:LINE: what"``. Hub
datasets give the same :class:`Examples` as the files: SST-2 labels are
``"0"``/``"1"`` as in the GLUE TSVs, CoNLL tags are their names.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rnnlm_jax import sources
from rnnlm_jax.errors import DataError
from rnnlm_jax.sources import _column, _split_lines

TARGETS = ("chunk", "pos")
_CHUNK_TAG = re.compile(r"O|[BI]-\S+")
_SOURCE_KEYS = ("dir", "hf_path", "hf_name", "hf_cache_dir", "encoding_errors")


@dataclasses.dataclass(frozen=True)
class Examples:
  """Sentences and their labels: one str each (classification) or a tuple of
  tags each, as long as its tokens (tagging); ``features`` are the POS tags
  per sentence when the tagging target is ``"chunk"``, else None."""

  tokens: tuple[tuple[str, ...], ...]
  labels: tuple
  features: tuple | None = None

  def __len__(self) -> int:
    return len(self.tokens)

  def take(self, indices: Sequence[int]) -> Examples:
    """The examples at ``indices``, in that order."""
    pick = lambda xs: None if xs is None else tuple(xs[i] for i in indices)
    return Examples(pick(self.tokens), pick(self.labels), pick(self.features))


def _read_lines(path: str | os.PathLike, encoding_errors: str) -> list[str]:
  """Lines of a UTF-8 file; a bad byte is reported with its line number."""
  if encoding_errors not in ("strict", "replace"):
    raise DataError(
        f"encoding_errors must be 'strict' or 'replace', got {encoding_errors!r}"
    )
  if not Path(path).is_file():
    raise DataError(f"labelled data file not found: {path}")
  data = Path(path).read_bytes()
  try:
    text = data.decode("utf-8", errors=encoding_errors)
  except UnicodeDecodeError as e:
    # Everything before the bad byte decodes; count its lines as text mode would.
    before = data[: e.start].decode("utf-8").replace("\r\n", "\n")
    lineno = before.replace("\r", "\n").count("\n") + 1
    raise DataError(
        f"{path}:{lineno}: invalid UTF-8 byte 0x{data[e.start]:02x}"
        " (encoding_errors='replace' substitutes U+FFFD)"
    ) from None
  return _split_lines(text.replace("\r\n", "\n").replace("\r", "\n"))


def _classified(rows, labels, where: str) -> Examples:
  """Examples from ``(place, sentence, label)`` rows, each checked."""
  tokens, out = [], []
  for place, sentence, label in rows:
    words = tuple(sentence.split())
    if not words:
      raise DataError(f"{place}: empty sentence")
    if not label or (labels is not None and label not in labels):
      raise DataError(
          f"{place}: bad label {label!r} (allowed: {labels or 'non-empty'})"
      )
    tokens.append(words)
    out.append(label)
  if not tokens:
    raise DataError(f"{where}: no examples")
  return Examples(tuple(tokens), tuple(out))


def read_classification_tsv(
    path: str | os.PathLike,
    labels: tuple[str, ...] | None = ("0", "1"),
    encoding_errors: str = "strict",
) -> Examples:
  """Sentences and str labels of a GLUE TSV; tokens are ``sentence.split()``.

  The header line names the columns, ``sentence`` and ``label`` among them
  in any order. A label outside ``labels`` is an error (``labels=None``
  accepts any non-empty label).
  """
  lines = _read_lines(path, encoding_errors)
  header = lines[0].split("\t") if lines else []
  for name in ("sentence", "label"):
    if name not in header:
      raise DataError(f"{path}:1: header has no {name!r} column: {header!r}")
  s_col, l_col = header.index("sentence"), header.index("label")

  def rows():
    for lineno, line in enumerate(lines[1:], 2):
      cols = line.split("\t")
      if len(cols) != len(header):
        n = len(header)
        raise DataError(f"{path}:{lineno}: {len(cols)} columns, not {n}")
      yield f"{path}:{lineno}", cols[s_col], cols[l_col]

  return _classified(rows(), labels, f"{path}:1")


def _tagged(sentences, target: str, where: str) -> Examples:
  """Examples from sentences of ``(place, word, pos, chunk)`` tokens."""
  if target not in TARGETS:
    raise DataError(f"tagging target must be one of {TARGETS}, got {target!r}")
  if not sentences:
    raise DataError(f"{where}: no sentences")
  for sentence in sentences:
    for place, _, _, chunk in sentence:
      if not _CHUNK_TAG.fullmatch(chunk):
        raise DataError(f"{place}: chunk tag {chunk!r} is not O, B-X or I-X")
  cols = [tuple(zip(*s))[1:] for s in sentences]  # (words, pos, chunk) each
  tokens, pos = tuple(c[0] for c in cols), tuple(c[1] for c in cols)
  if target == "pos":
    return Examples(tokens, pos)
  return Examples(tokens, tuple(c[2] for c in cols), pos)


def read_conll(
    path: str | os.PathLike, target: str = "chunk", encoding_errors="strict"
) -> Examples:
  """Sentences of a CoNLL-2000 file (``word POS chunk`` lines, blank between).

  ``target="chunk"``: labels are the chunk tags (``O``, ``B-X``, ``I-X``,
  checked for either target) and features the POS tags. ``target="pos"``:
  labels are the POS tags and features None.
  """
  lines = _read_lines(path, encoding_errors)
  sentences, current = [], []
  for lineno, line in enumerate(lines + [""], 1):
    cols = line.split()
    if not cols:
      if current:
        sentences.append(current)
      current = []
    elif len(cols) != 3:
      n = len(cols)
      raise DataError(f"{path}:{lineno}: {n} columns, not 3 (word POS chunk)")
    else:
      current.append((f"{path}:{lineno}", *cols))
  return _tagged(sentences, target, f"{path}:1")


def split_holdout(
    examples: Examples, fraction: float, seed: int = 0
) -> tuple[Examples, Examples]:
  """``(rest, held_out)``: ``round(fraction * n)`` examples (at least 1,
  at most n - 1) held out, chosen by ``default_rng(seed).permutation(n)``;
  both parts keep the original order."""
  n = len(examples)
  if not 0 < fraction < 1:
    raise DataError(f"holdout fraction must be in (0, 1), got {fraction!r}")
  if n < 2:
    raise DataError(f"cannot hold out part of {n} example(s)")
  k = min(max(round(fraction * n), 1), n - 1)
  perm = np.random.default_rng(seed).permutation(n)
  return examples.take(sorted(perm[k:])), examples.take(sorted(perm[:k]))


def _load(source, names, read_file, read_hub, fraction, seed):
  """Train and test from a folder or the hub (``names``: their file names
  and their hub split names), and valid held out of train."""
  unknown = sorted(set(source) - set(_SOURCE_KEYS))
  if unknown:
    raise DataError(
        f"unknown data source keys {unknown} (known: {_SOURCE_KEYS})"
    )
  if source.get("dir"):
    folder = Path(source["dir"]).expanduser()
    if not folder.is_dir():
      raise DataError(f"data folder not found: {folder}")
    errors = source.get("encoding_errors", "strict")
    train, test = (read_file(folder / f, errors) for f in names[0])
  elif source.get("hf_path"):
    dd, name = sources.load_hub_dataset(source)
    for split in names[1]:
      if split not in dd:
        raise DataError(f"hub dataset {name} has no {split!r} split")
    train, test = (
        read_hub(f"hub dataset {name} split {s!r}", dd[s]) for s in names[1]
    )
  else:
    raise DataError("data source has neither 'dir' nor 'hf_path'")
  train, valid = split_holdout(train, fraction, seed)
  return {"train": train, "valid": valid, "test": test}


def load_classification(
    source: Mapping[str, Any],
    holdout_fraction: float,
    seed: int = 0,
    labels: tuple[str, ...] | None = ("0", "1"),
) -> dict[str, Examples]:
  """``{"train", "valid", "test"}`` of SST-2; valid is held out of train.

  ``source`` is ``{"dir": folder}`` holding ``train.tsv`` and ``dev.tsv``
  (test is dev.tsv; GLUE's unlabelled test.tsv is ignored), or
  ``{"hf_path": "glue", "hf_name": "sst2"}`` (test is the validation split;
  integer labels become ``"0"``/``"1"`` as in the TSVs). Optional keys:
  ``hf_cache_dir``, ``encoding_errors``.
  """

  def read_hub(where, ds):
    ints = _column(ds, "label", where)
    rows = zip(_column(ds, "sentence", where), map(str, ints))
    return _classified(
        ((f"{where} row {i}", *r) for i, r in enumerate(rows)), labels, where
    )

  read = lambda path, errors: read_classification_tsv(path, labels, errors)
  names = ("train.tsv", "dev.tsv"), ("train", "validation")
  return _load(source, names, read, read_hub, holdout_fraction, seed)


def load_tagging(
    source: Mapping[str, Any],
    target: str,
    holdout_fraction: float,
    seed: int = 0,
) -> dict[str, Examples]:
  """``{"train", "valid", "test"}`` of CoNLL-2000 (see :func:`read_conll`).

  ``source`` is ``{"dir": folder}`` holding ``train.txt`` and ``test.txt``,
  or ``{"hf_path": "conll2000"}`` (columns ``tokens``, ``pos_tags`` and
  ``chunk_tags``, the tags as ClassLabel ids, read as their names). There is
  no dev split: valid is held out of train.
  """

  def read_hub(where, ds):
    cols = [_column(ds, "tokens", where)]
    for col in ("pos_tags", "chunk_tags"):
      rows = _column(ds, col, where)
      names = ds.features[col].feature.names  # a sequence of ClassLabel
      cols.append([[names[t] for t in r] for r in rows])
    sentences = []
    for i, (words, pos, chunk) in enumerate(zip(*cols)):
      if not words or not len(words) == len(pos) == len(chunk):
        raise DataError(f"{where} row {i}: empty sentence or ragged columns")
      sentences.append(
          [(f"{where} row {i}", *t) for t in zip(words, pos, chunk)]
      )
    return _tagged(sentences, target, where)

  if target not in TARGETS:
    raise DataError(f"tagging target must be one of {TARGETS}, got {target!r}")
  read = lambda path, errors: read_conll(path, target, errors)
  names = ("train.txt", "test.txt"), ("train", "test")
  return _load(source, names, read, read_hub, holdout_fraction, seed)
