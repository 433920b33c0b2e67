"""Where a corpus's text comes from: a local folder of files or a hub dataset.

Text files are decoded as UTF-8 with universal newlines (``"\\r\\n"`` and
``"\\r"`` read as ``"\\n"``), the same as Python's text mode and the
``datasets`` text loader. Everything returns text (lines, or a split's raw
text at char level); tokenization is :mod:`rnnlm_jax.vocab`'s.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rnnlm_jax.errors import DataError
from rnnlm_jax.vocab import LEVELS

SPLITS = ("train", "valid", "test")

# Candidate file names for each split of a local corpus folder, in order.
_SPLIT_PATTERNS = (
    "{split}.txt",
    "ptb.{split}.txt",
    "wiki.{split}.tokens",
    "ptb.char.{split}.txt",
    "{split}.tokens",
)
_SPLIT_ALIASES = {
    "train": ("train",),
    "valid": ("valid", "validation", "val"),
    "test": ("test",),
}
# Hub split names -> ours.
_HUB_SPLITS = {
    "train": "train",
    "valid": "valid",
    "validation": "valid",
    "val": "valid",
    "dev": "valid",
    "test": "test",
}
_SOURCE_KEYS = frozenset(
    {
        "dir",
        "hf_path",
        "hf_name",
        "text_column",
        "level",
        "split_fractions",
        "hf_cache_dir",
        "encoding_errors",
    }
)


def _read_text(path: str | os.PathLike, encoding_errors: str = "strict") -> str:
  """Whole file as a string: UTF-8, universal newlines, clear one-line errors."""
  if encoding_errors not in ("strict", "replace"):
    raise DataError(
        f"encoding_errors must be 'strict' or 'replace', got {encoding_errors!r}"
    )
  path = Path(path)
  if not path.is_file():
    raise DataError(f"text file not found: {path}")
  data = path.read_bytes()
  try:
    text = data.decode("utf-8", errors=encoding_errors)
  except UnicodeDecodeError as e:
    raise DataError(
        f"text file {path}: invalid UTF-8 byte 0x{data[e.start]:02x} at byte offset {e.start}"
        " (encoding_errors='replace' substitutes U+FFFD)"
    ) from None
  if not text.strip():
    raise DataError(f"text file {path} is empty")
  return text.replace("\r\n", "\n").replace("\r", "\n")


def _split_lines(text: str) -> list[str]:
  """Lines of ``text`` without their ``"\\n"``; a final newline does not start another line."""
  lines = text.split("\n")
  if lines[-1] == "":
    lines.pop()
  return lines


def read_lines(
    path: str | os.PathLike, encoding_errors: str = "strict"
) -> list[str]:
  """Lines of a UTF-8 text file, without trailing newlines.

  Raises DataError when the file is missing, has no non-whitespace content,
  or (with ``encoding_errors="strict"``) holds a byte sequence that is not
  UTF-8; the message gives the byte offset. ``encoding_errors="replace"``
  substitutes U+FFFD for each invalid sequence instead.
  """
  return _split_lines(_read_text(path, encoding_errors))


def _find_split_files(folder: Path) -> dict[str, Path]:
  found = {}
  for split in SPLITS:
    tried = []
    for alias in _SPLIT_ALIASES[split]:
      for pattern in _SPLIT_PATTERNS:
        name = pattern.format(split=alias)
        tried.append(name)
        if (folder / name).is_file():
          found[split] = folder / name
          break
      if split in found:
        break
    if split not in found:
      raise DataError(
          f"no {split} split file in {folder} (looked for {', '.join(tried)})"
      )
  return found


def _single_file(folder: Path) -> Path:
  files = sorted(
      p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
  )
  if len(files) != 1:
    raise DataError(
        f"split_fractions needs a folder holding exactly one text file, {folder} holds {len(files)}"
    )
  return files[0]


def _check_fractions(fractions: Any) -> tuple[float, float, float]:
  try:
    f = tuple(float(x) for x in fractions)
  except (TypeError, ValueError):
    f = ()
  if len(f) != 3 or min(f) < 0 or abs(sum(f) - 1.0) > 1e-6:
    raise DataError(
        f"split_fractions must be three non-negative numbers summing to 1, got {fractions!r}"
    )
  return f  # type: ignore[return-value]


def resolve_source(source: Mapping[str, Any]) -> dict[str, Any]:
  """Validated copy of a source dict, with the local files it reads (if any) resolved."""
  src = dict(source)
  unknown = sorted(set(src) - _SOURCE_KEYS)
  if unknown:
    raise DataError(
        f"unknown data source keys {unknown} (known: {sorted(_SOURCE_KEYS)})"
    )
  level = src.get("level", "word")
  if level not in LEVELS:
    raise DataError(
        f"data source level must be 'word' or 'char', got {level!r}"
    )
  src["level"] = level
  src.setdefault("encoding_errors", "strict")
  if src.get("dir"):
    folder = Path(src["dir"]).expanduser()
    if not folder.is_dir():
      raise DataError(f"data folder not found: {folder}")
    if src.get("split_fractions") is not None:
      src["split_fractions"] = _check_fractions(src["split_fractions"])
      src["files"] = {"full": _single_file(folder).resolve()}
    else:
      src["files"] = {
          k: p.resolve() for k, p in _find_split_files(folder).items()
      }
  elif src.get("hf_path"):
    src.setdefault("text_column", "text")
  else:
    raise DataError("data source has neither 'dir' nor 'hf_path'")
  return src


@contextlib.contextmanager
def _quiet_datasets(datasets):
  """Turn off the ``datasets`` progress bars for the duration of a load."""
  utils = datasets.utils
  was_disabled = utils.are_progress_bars_disabled()
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    utils.disable_progress_bars()
  try:
    yield
  finally:
    if not was_disabled:
      with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        utils.enable_progress_bars()


def _column(ds, column: str, where: str) -> list:
  if column not in ds.column_names:
    raise DataError(
        f"{where} has no column {column!r} (columns: {', '.join(ds.column_names)})"
    )
  return ds.with_format(None)[:][column]


def _load_local(src: dict[str, Any]) -> dict[str, str | list[str]]:
  """Read local files through ``datasets`` after validating them directly.

  Returns raw text for the single-file mode and char level, lines otherwise.
  """
  import datasets

  files: dict[str, Path] = src["files"]
  errors = src["encoding_errors"]
  by_document = src["level"] == "char" or "full" in files
  direct = {
      k: _read_text(p, errors) for k, p in files.items()
  }  # clear errors before datasets sees the files
  with _quiet_datasets(datasets):
    dd = datasets.load_dataset(
        "text",
        data_files={k: str(p) for k, p in files.items()},
        sample_by="document" if by_document else "line",
        keep_linebreaks=False,
        encoding_errors=errors,
        cache_dir=src.get("hf_cache_dir"),
    )
  out: dict[str, str | list[str]] = {}
  for k, p in files.items():
    rows = _column(dd[k], "text", f"dataset for {p}")
    expected = direct[k]
    if by_document:
      got = rows[0] if len(rows) == 1 else None
    else:
      got, expected = rows, _split_lines(expected)
    if got != expected:
      raise DataError(f"datasets read {p} differently from a direct UTF-8 read")
    out[k] = got
  return out


def load_hub_dataset(src: Mapping[str, Any]):
  """(the splits ``datasets.load_dataset`` returns for src's hf_path and
  hf_name, their name "path/name"); a failed load is one DataError line."""
  import datasets

  where = src["hf_path"] + (f"/{src['hf_name']}" if src.get("hf_name") else "")
  with _quiet_datasets(datasets):
    try:
      dd = datasets.load_dataset(
          src["hf_path"], src.get("hf_name"), cache_dir=src.get("hf_cache_dir")
      )
    except Exception as e:  # Network, hub and builder errors alike.
      first = (str(e).strip().splitlines() or [type(e).__name__])[0]
      raise DataError(
          f"could not load hub dataset {where} ({type(e).__name__}: {first}); "
          "give a local folder with data.dir or set RNNLM_DATA"
      ) from None
  return dd, where


def _load_hub(src: dict[str, Any]) -> dict[str, list[str]]:
  """Rows of the text column of each split of a hub dataset, under our split names."""
  dd, where = load_hub_dataset(src)
  if not isinstance(dd, Mapping):
    raise DataError(f"hub dataset {where} did not load as a dict of splits")
  out: dict[str, list[str]] = {}
  for name in dd:
    ours = _HUB_SPLITS.get(str(name))
    if ours is not None and ours not in out:
      rows = _column(
          dd[name], src["text_column"], f"hub dataset {where} split {name!r}"
      )
      for r in rows:
        if r is not None and not isinstance(r, str):
          raise DataError(
              f"hub dataset {where} column {src['text_column']!r} holds non-text {r!r}"
          )
      out[ours] = ["" if r is None else r for r in rows]
  missing = [s for s in SPLITS if s not in out]
  if missing:
    raise DataError(
        f"hub dataset {where} has no {missing[0]} split (it has: {', '.join(map(str, dd))})"
    )
  return out


def load_text_splits(source: Mapping[str, Any]) -> dict[str, list[str]]:
  """Text of the train/valid/test splits of a corpus.

  ``source`` keys:

  ``dir``
      Local folder. Each split is the first existing file among
      ``{split}.txt``, ``ptb.{split}.txt``, ``wiki.{split}.tokens``,
      ``ptb.char.{split}.txt``, ``{split}.tokens`` (valid is also looked
      for as ``validation`` and ``val``). With ``split_fractions`` (three
      fractions summing to 1, e.g. ``(0.9, 0.05, 0.05)``) the folder must
      hold exactly one file instead, whose text is cut at character
      positions ``int(n * f0)`` and ``int(n * (f0 + f1))`` into contiguous
      train/valid/test pieces (n = number of characters); at word level each
      piece is then split into lines, so a line cut in two gives two lines.
      Files are read through ``datasets.load_dataset("text", ...)``, with
      its Arrow cache in ``hf_cache_dir`` when given.
  ``hf_path``, ``hf_name``, ``text_column`` (default ``"text"``)
      A hub dataset, used when ``dir`` is empty; ``validation`` (or ``val``,
      ``dev``) maps to ``valid``. At word level each row is a line (one
      trailing newline removed, inner newlines split it); at char level the
      rows are concatenated, each ending in a newline.
  ``level``
      ``"word"`` (default): each split is a list of lines. ``"char"``: each
      split is a one-element list holding the split's whole raw text.
  ``encoding_errors``
      ``"strict"`` (default) or ``"replace"``, for local files.

  Raises DataError for a missing folder or file, undecodable or empty
  files, and any split that ends up without tokens.
  """
  src = resolve_source(source)
  level = src["level"]
  if src.get("dir"):
    loaded = _load_local(src)
    if "full" in loaded:
      text = loaded["full"]
      files = src["files"]
      f0, f1, _ = src["split_fractions"]
      n = len(text)
      cuts = (0, int(n * f0), int(n * (f0 + f1)), n)
      pieces = {s: text[cuts[i] : cuts[i + 1]] for i, s in enumerate(SPLITS)}
      where = {s: f"{s} split of {files['full']}" for s in SPLITS}
    else:
      pieces = loaded
      where = {s: f"{s} split ({src['files'][s]})" for s in SPLITS}
  else:
    rows = _load_hub(src)
    name = src["hf_path"] + (f"/{src['hf_name']}" if src.get("hf_name") else "")
    # Every row is one line; make each end with exactly one newline, then read it back as text.
    texts = {
        s: "".join(r if r.endswith("\n") else r + "\n" for r in rows[s])
        for s in SPLITS
    }
    pieces = (
        texts
        if level == "char"
        else {s: _split_lines(t) for s, t in texts.items()}
    )
    where = {s: f"{s} split of hub dataset {name}" for s in SPLITS}

  out: dict[str, list[str]] = {}
  for s in SPLITS:
    piece = pieces[s]  # raw text (char level, single-file mode) or lines
    if isinstance(piece, str):
      has_tokens = bool(piece.strip())
      lines = [piece] if level == "char" else _split_lines(piece)
    else:
      has_tokens = any(ln.strip() for ln in piece)
      lines = list(piece)
    if not has_tokens:
      raise DataError(f"the {where[s]} has no tokens")
    out[s] = lines
  return out
