"""Labelled sentences: SST-2 classification and CoNLL-2000 tagging.

Local files are GLUE TSVs (a header naming ``sentence`` and ``label``) and
CoNLL column files (``word POS chunk`` a line, blank lines between
sentences), decoded as UTF-8 with universal newlines. Every problem with a
file's content raises one DataError whose message is ``"FILE:LINE: what"``
(LINE from 1). Hub datasets (``glue``/``sst2``, ``conll2000``) come through
``datasets.load_dataset`` and give the same :class:`Examples` as the files:
SST-2 labels are ``"0"``/``"1"`` as in the TSVs, tags are their names.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rnnlm_jax.errors import DataError
from rnnlm_jax.sources import _column, _quiet_datasets, _split_lines

TARGETS = ("chunk", "pos")
_CHUNK_TAG = re.compile(r"O|[BI]-\S+")
_SOURCE_KEYS = frozenset(
    {"dir", "hf_path", "hf_name", "hf_cache_dir", "encoding_errors"}
)


@dataclasses.dataclass(frozen=True)
class Examples:
  """Sentences with their labels.

  ``labels`` holds one str per sentence (classification) or a tuple of str
  tags per sentence, as long as its tokens (tagging). ``features`` holds the
  POS tags per sentence when the tagging target is ``"chunk"``, else None.
  """

  tokens: tuple[tuple[str, ...], ...]
  labels: tuple
  features: tuple | None = None

  def __len__(self) -> int:
    return len(self.tokens)

  def take(self, indices: Sequence[int]) -> Examples:
    """The examples at ``indices``, in that order."""
    pick = lambda xs: None if xs is None else tuple(xs[i] for i in indices)
    return Examples(pick(self.tokens), pick(self.labels), pick(self.features))


def _error(path, lineno: int, what: str) -> DataError:
  return DataError(f"{path}:{lineno}: {what}")


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
    raise _error(
        path,
        before.replace("\r", "\n").count("\n") + 1,
        f"invalid UTF-8 byte 0x{data[e.start]:02x}"
        " (encoding_errors='replace' substitutes U+FFFD)",
    ) from None
  return _split_lines(text.replace("\r\n", "\n").replace("\r", "\n"))


def read_classification_tsv(
    path: str | os.PathLike,
    labels: tuple[str, ...] | None = ("0", "1"),
    encoding_errors: str = "strict",
) -> Examples:
  """Sentences and str labels of a GLUE TSV; tokens are ``sentence.split()``.

  The header line must name the columns ``sentence`` and ``label`` (in any
  order, among others). With ``labels`` given, a label outside it is an
  error; ``labels=None`` accepts any non-empty label.
  """
  lines = _read_lines(path, encoding_errors)
  header = lines[0].split("\t") if lines else []
  for name in ("sentence", "label"):
    if name not in header:
      raise _error(path, 1, f"header has no {name!r} column: {header!r}")
  s_col, l_col = header.index("sentence"), header.index("label")
  tokens, out_labels = [], []
  for lineno, line in enumerate(lines[1:], 2):
    cols = line.split("\t")
    if len(cols) != len(header):
      raise _error(
          path,
          lineno,
          f"expected {len(header)} tab-separated columns, found {len(cols)}",
      )
    words, label = tuple(cols[s_col].split()), cols[l_col]
    if not words:
      raise _error(path, lineno, "empty sentence")
    if (labels is not None and label not in labels) or not label:
      raise _error(path, lineno, f"label {label!r} is not one of {labels}")
    tokens.append(words)
    out_labels.append(label)
  if not tokens:
    raise _error(path, 1, "no rows after the header")
  return Examples(tuple(tokens), tuple(out_labels))


def _check_target(target: str) -> None:
  if target not in TARGETS:
    raise DataError(f"tagging target must be one of {TARGETS}, got {target!r}")


def _make_tagged(sentences: list[list[tuple[str, str, str]]], target: str):
  cols = [tuple(zip(*s)) for s in sentences]  # (words, pos, chunk) each
  tokens = tuple(c[0] for c in cols)
  if target == "pos":
    return Examples(tokens, tuple(c[1] for c in cols))
  return Examples(tokens, tuple(c[2] for c in cols), tuple(c[1] for c in cols))


def read_conll(
    path: str | os.PathLike, target: str = "chunk", encoding_errors="strict"
) -> Examples:
  """Sentences of a CoNLL-2000 file (``word POS chunk`` lines, blank between).

  ``target="chunk"``: labels are the chunk tags (``O``, ``B-X``, ``I-X``)
  and features the POS tags. ``target="pos"``: labels are the POS tags and
  features None. Chunk tags are checked either way.
  """
  _check_target(target)
  lines = _read_lines(path, encoding_errors)
  sentences, current = [], []
  for lineno, line in enumerate(lines, 1):
    cols = line.split()
    if not cols:
      if current:
        sentences.append(current)
      current = []
      continue
    if len(cols) != 3:
      raise _error(
          path,
          lineno,
          f"expected 3 columns (word POS chunk), found {len(cols)}",
      )
    if not _CHUNK_TAG.fullmatch(cols[2]):
      raise _error(path, lineno, f"chunk tag {cols[2]!r} is not O, B-X or I-X")
    current.append(tuple(cols))
  if current:
    sentences.append(current)
  if not sentences:
    raise _error(path, 1, "empty file: no sentences")
  return _make_tagged(sentences, target)


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


def _folder(source: Mapping[str, Any]) -> Path | None:
  """The local folder of a source, or None for a hub source."""
  unknown = sorted(set(source) - _SOURCE_KEYS)
  if unknown:
    raise DataError(
        f"unknown data source keys {unknown} (known: {sorted(_SOURCE_KEYS)})"
    )
  if source.get("dir"):
    folder = Path(source["dir"]).expanduser()
    if not folder.is_dir():
      raise DataError(f"data folder not found: {folder}")
    return folder
  if not source.get("hf_path"):
    raise DataError("data source has neither 'dir' nor 'hf_path'")
  return None


def _load_hub(source: Mapping[str, Any], splits: Mapping[str, str]):
  """``(where, {our split: hub split dataset})``; failures are one line."""
  import datasets

  where = source["hf_path"] + (
      f"/{source['hf_name']}" if source.get("hf_name") else ""
  )
  with _quiet_datasets(datasets):
    try:
      dd = datasets.load_dataset(
          source["hf_path"],
          source.get("hf_name"),
          cache_dir=source.get("hf_cache_dir"),
      )
    except Exception as e:  # Network, hub and builder errors alike.
      first = (str(e).strip().splitlines() or [type(e).__name__])[0]
      raise DataError(
          f"could not load hub dataset {where} ({type(e).__name__}: {first}); "
          "give a local folder with data.dir or set RNNLM_DATA"
      ) from None
  missing = [h for h in splits.values() if h not in dd]
  if missing:
    raise DataError(
        f"hub dataset {where} has no {missing[0]!r} split (it has: {', '.join(map(str, dd))})"
    )
  return where, {ours: dd[hub] for ours, hub in splits.items()}


def _with_holdout(train: Examples, test: Examples, fraction, seed):
  train, valid = split_holdout(train, fraction, seed)
  return {"train": train, "valid": valid, "test": test}


def load_classification(
    source: Mapping[str, Any],
    holdout_fraction: float,
    seed: int = 0,
    labels: tuple[str, ...] | None = ("0", "1"),
) -> dict[str, Examples]:
  """``{"train", "valid", "test"}`` of SST-2-style data; valid is held out of train.

  ``source`` is ``{"dir": folder}`` holding ``train.tsv`` and ``dev.tsv``
  (test is dev.tsv; GLUE's unlabelled test.tsv is ignored), or
  ``{"hf_path": "glue", "hf_name": "sst2"}`` (test is the validation split;
  integer labels become ``"0"``/``"1"``). Optional keys: ``hf_cache_dir``,
  ``encoding_errors``.
  """
  folder = _folder(source)
  if folder is not None:
    errors = source.get("encoding_errors", "strict")
    train, test = (
        read_classification_tsv(folder / name, labels, errors)
        for name in ("train.tsv", "dev.tsv")
    )
    return _with_holdout(train, test, holdout_fraction, seed)
  where, parts = _load_hub(source, {"train": "train", "test": "validation"})
  out = {}
  for split, ds in parts.items():
    at = f"hub dataset {where} split {split!r}"
    sents, ints = _column(ds, "sentence", at), _column(ds, "label", at)
    tokens = tuple(tuple(s.split()) for s in sents)
    str_labels = tuple(str(x) for x in ints)
    for i, (words, label) in enumerate(zip(tokens, str_labels)):
      if not words or (labels is not None and label not in labels):
        raise DataError(
            f"{at} row {i}: empty sentence or label {label!r} not in {labels}"
        )
    out[split] = Examples(tokens, str_labels)
  return _with_holdout(out["train"], out["test"], holdout_fraction, seed)


def load_tagging(
    source: Mapping[str, Any],
    target: str,
    holdout_fraction: float,
    seed: int = 0,
) -> dict[str, Examples]:
  """``{"train", "valid", "test"}`` of CoNLL-2000-style data (see :func:`read_conll`).

  ``source`` is ``{"dir": folder}`` holding ``train.txt`` and ``test.txt``,
  or ``{"hf_path": "conll2000"}`` (columns ``tokens``, ``pos_tags``,
  ``chunk_tags`` of class ids, mapped to their names). There is no dev
  split: valid is held out of train.
  """
  _check_target(target)
  folder = _folder(source)
  if folder is not None:
    errors = source.get("encoding_errors", "strict")
    train, test = (
        read_conll(folder / name, target, errors)
        for name in ("train.txt", "test.txt")
    )
    return _with_holdout(train, test, holdout_fraction, seed)
  where, parts = _load_hub(source, {"train": "train", "test": "test"})
  out = {}
  for split, ds in parts.items():
    at = f"hub dataset {where} split {split!r}"
    words = _column(ds, "tokens", at)
    tags = []
    for col in ("pos_tags", "chunk_tags"):
      rows = _column(ds, col, at)
      names = getattr(getattr(ds.features[col], "feature", None), "names", None)
      if names is None:
        raise DataError(f"{at} column {col!r} is not a sequence of ClassLabel")
      tags.append([[names[t] for t in row] for row in rows])
    sentences = []
    for i, row in enumerate(zip(words, *tags)):
      if not row[0] or not len(row[0]) == len(row[1]) == len(row[2]):
        raise DataError(f"{at} row {i}: empty sentence or ragged tag columns")
      bad = [c for c in row[2] if not _CHUNK_TAG.fullmatch(c)]
      if bad:
        raise DataError(
            f"{at} row {i}: chunk tag {bad[0]!r} is not O, B-X or I-X"
        )
      sentences.append(list(zip(*row)))
    out[split] = _make_tagged(sentences, target)
  return _with_holdout(out["train"], out["test"], holdout_fraction, seed)
