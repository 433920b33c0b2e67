"""Corpora for language modelling: tokenization, vocabulary, loading, caching, batching.

Everything here is plain numpy and pure functions (apart from reading and
writing the files named in the arguments). Shape suffixes follow the package
convention, plus ``N`` for the length of a flat token stream and ``S`` for a
number of segments (e.g. ``ids_N``, ``ids_BN``, ``x_SBT``).

Conventions
-----------
Word level
    Every line of a file becomes ``line.split() + ["<eos>"]``, including empty
    lines (the convention of Mikolov's rnnlm and of most published PTB and
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
Line breaks
    Text files are decoded as UTF-8 with universal newlines (``"\\r\\n"`` and
    ``"\\r"`` read as ``"\\n"``), the same as Python's text mode and the
    ``datasets`` text loader.
Stream start
    Both :func:`train_stream` and :func:`eval_stream` put one boundary id in
    front of a split, so the first real token is a prediction target too and
    an evaluation scores every token of the split exactly once.

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
import contextlib
import dataclasses
import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Callable

import numpy as np

EOS = "<eos>"
UNK = "<unk>"

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
_LEVELS = ("word", "char")
_CACHE_FORMAT = 1


class DataError(ValueError):
  """A problem with input data or data arguments; the message is one line naming the file or split."""


# --------------------------------------------------------------------------------------------
# Vocabulary
# --------------------------------------------------------------------------------------------


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
    """Token ids as int32 [N]. Unknown tokens map to ``<unk>``; without ``<unk>`` they raise DataError."""
    index = self._index
    unk = self.unk_id
    if unk is None:
      try:
        ids = [index[t] for t in tokens]
      except KeyError as e:
        raise DataError(
            f"token {e.args[0]!r} is not in the vocabulary, which has no {UNK}"
        ) from None
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
    _atomic_write_bytes(Path(path), text.encode("utf-8"))

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
) -> Vocab:
  """Vocabulary of ``specials`` followed by tokens by descending count.

  Ties are broken by first appearance. Tokens seen fewer than ``min_count``
  times are dropped; with ``max_size > 0`` the vocabulary holds at most
  ``max_size`` tokens in all. If anything was dropped, ``<unk>`` is made a
  special (right after the given ones) so every token can be encoded. A
  ``<unk>`` that occurs in the corpus (PTB) is otherwise an ordinary word.
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


# --------------------------------------------------------------------------------------------
# Reading text
# --------------------------------------------------------------------------------------------


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


def _resolve_source(source: Mapping[str, Any]) -> dict[str, Any]:
  """Validated copy of a source dict, with the local files it reads (if any) resolved."""
  src = dict(source)
  unknown = sorted(set(src) - _SOURCE_KEYS)
  if unknown:
    raise DataError(
        f"unknown data source keys {unknown} (known: {sorted(_SOURCE_KEYS)})"
    )
  level = src.get("level", "word")
  if level not in _LEVELS:
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


def _load_hub(src: dict[str, Any]) -> dict[str, list[str]]:
  """Rows of the text column of each split of a hub dataset, under our split names."""
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
  src = _resolve_source(source)
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


# --------------------------------------------------------------------------------------------
# Encoding and caching
# --------------------------------------------------------------------------------------------


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
  if level not in _LEVELS:
    raise DataError(f"level must be 'word' or 'char', got {level!r}")
  tokens = {name: _tokens(lines, level) for name, lines in splits.items()}
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
  ids = {}
  for name, toks in tokens.items():
    if not toks:
      raise DataError(f"the {name} split has no tokens")
    try:
      ids[name] = vocab.encode(toks)
    except DataError as e:
      raise DataError(f"{name} split: {e}") from None
  return vocab, ids


def _atomic_write_bytes(path: Path, data: bytes) -> None:
  atomic_write(path, lambda f: f.write(data))


def atomic_write(path: Path, write: Callable[[Any], Any]) -> None:
  """Write through ``write(file)`` into a temp file next to ``path``, then rename it over ``path``."""
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(
      dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
  )
  try:
    with os.fdopen(fd, "wb") as f:
      write(f)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    with contextlib.suppress(OSError):
      os.unlink(tmp)
    raise


def corpus_cache_key(
    source: Mapping[str, Any],
    level: str,
    max_size: int = 0,
    min_count: int = 1,
    vocab: Vocab | None = None,
) -> str:
  """Hex digest identifying the encoded corpus that :func:`load_corpus` would return.

  Covers the resolved data files (path, size, modification time), the
  source options that change the text, the level, the vocabulary limits and
  the given vocabulary's tokens.
  """
  src = _resolve_source({**source, "level": level})
  desc: dict[str, Any] = {
      "format": _CACHE_FORMAT,
      "level": level,
      "max_size": int(max_size),
      "min_count": int(min_count),
      "vocab": None
      if vocab is None
      else hashlib.sha256(json.dumps(vocab.tokens).encode()).hexdigest(),
  }
  if "files" in src:
    desc["files"] = {
        k: [str(p), p.stat().st_size, p.stat().st_mtime_ns]
        for k, p in src["files"].items()
    }
    desc["split_fractions"] = src.get("split_fractions")
    desc["encoding_errors"] = src["encoding_errors"]
  else:
    desc["hub"] = [src["hf_path"], src.get("hf_name"), src["text_column"]]
  return hashlib.sha256(json.dumps(desc, sort_keys=True).encode()).hexdigest()


def _read_cache(
    path: Path, key: str
) -> tuple[Vocab, dict[str, np.ndarray]] | None:
  """Cached corpus, or None when the file is missing, unreadable, corrupt or for another key."""
  if not path.is_file():
    return None
  try:
    with np.load(path, allow_pickle=False) as z:
      if bytes(z["key"]).decode() != key:
        return None
      vocab = Vocab(tuple(json.loads(bytes(z["vocab"]).decode("utf-8"))))
      ids = {s: z[f"ids_{s}"] for s in SPLITS}
  except Exception:  # any damage to the file means "rebuild it"
    return None
  for a in ids.values():
    if (
        a.dtype != np.int32
        or a.ndim != 1
        or a.size == 0
        or a.min() < 0
        or a.max() >= len(vocab)
    ):
      return None
  return vocab, ids


def _write_cache(
    path: Path, key: str, vocab: Vocab, ids: Mapping[str, np.ndarray]
) -> None:
  arrays = {
      "key": np.frombuffer(key.encode(), dtype=np.uint8),
      "vocab": np.frombuffer(
          json.dumps(list(vocab.tokens), ensure_ascii=False).encode("utf-8"),
          dtype=np.uint8,
      ),
      **{f"ids_{s}": np.asarray(ids[s], dtype=np.int32) for s in SPLITS},
  }
  atomic_write(path, lambda f: np.savez(f, **arrays))


def corpus_cache_path(
    cache_dir: str | os.PathLike, key: str, level: str
) -> Path:
  """Where :func:`load_corpus` keeps the encoded corpus for ``key``."""
  return Path(cache_dir) / f"corpus-{level}-{key[:24]}.npz"


def load_corpus(
    source: Mapping[str, Any],
    level: str,
    max_size: int = 0,
    min_count: int = 1,
    vocab: Vocab | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> tuple[Vocab, dict[str, np.ndarray]]:
  """Vocabulary and int32 id arrays ``{"train", "valid", "test"}`` of a corpus.

  :func:`load_text_splits` followed by :func:`encode_splits`. ``level``
  overrides the source's (a conflicting ``source["level"]`` is an error).
  With ``cache_dir`` the result is kept in an ``.npz`` file named by
  :func:`corpus_cache_key`; a hit skips reading the text entirely, a
  corrupt or mismatched file is rebuilt, and writes are atomic. With
  ``vocab`` (e.g. evaluating a saved run) that vocabulary is used as is.
  """
  if source.get("level", level) != level:
    raise DataError(
        f"load_corpus level {level!r} conflicts with the source's level {source['level']!r}"
    )
  source = {**source, "level": level}
  path = key = None
  if cache_dir is not None:
    key = corpus_cache_key(source, level, max_size, min_count, vocab)
    path = corpus_cache_path(cache_dir, key, level)
    hit = _read_cache(path, key)
    if hit is not None:
      return hit
  splits = load_text_splits(source)
  vocab, ids = encode_splits(
      splits, level, vocab, max_size=max_size, min_count=min_count
  )
  if path is not None:
    _write_cache(path, key, vocab, ids)
  return vocab, ids


# --------------------------------------------------------------------------------------------
# Batching
# --------------------------------------------------------------------------------------------


def _as_ids(ids_N: Any, what: str = "ids_N") -> np.ndarray:
  ids = np.asarray(ids_N)
  if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
    raise DataError(
        f"{what} must be a 1-D integer array, got shape {ids.shape} dtype {ids.dtype}"
    )
  if ids.size == 0:
    raise DataError(f"{what} is empty")
  return ids.astype(np.int32, copy=False)


def _check_positive(**kwargs: int) -> None:
  for name, value in kwargs.items():
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, np.integer))
        or value < 1
    ):
      raise DataError(f"{name} must be a positive integer, got {value!r}")


def _check_id(**kwargs: int) -> None:
  for name, value in kwargs.items():
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, np.integer))
        or value < 0
    ):
      raise DataError(
          f"{name} must be a non-negative integer id, got {value!r}"
      )


def batchify(ids_N: np.ndarray, batch_size: int) -> np.ndarray:
  """[B, N // B]: B contiguous streams (row b is ids[b*L:(b+1)*L]); the remainder is dropped."""
  ids = _as_ids(ids_N)
  _check_positive(batch_size=batch_size)
  length = ids.size // batch_size
  if length == 0:
    raise DataError(f"{ids.size} tokens cannot fill {batch_size} streams")
  return ids[: batch_size * length].reshape(batch_size, length)


def train_stream(ids_N: np.ndarray, batch_size: int, eos_id: int) -> np.ndarray:
  """ids_BN for training: ``batchify([eos_id] + ids_N)``, so the first token is a target as in evaluation."""
  ids = _as_ids(ids_N)
  _check_id(eos_id=eos_id)
  return batchify(
      np.concatenate([np.array([eos_id], np.int32), ids]), batch_size
  )


def num_segments(ids_BN: np.ndarray, bptt: int) -> int:
  """Number of full truncated-BPTT segments of length ``bptt``: ``(N - 1) // bptt``."""
  _check_positive(bptt=bptt)
  return (np.shape(ids_BN)[1] - 1) // bptt


def segment(
    ids_BN: np.ndarray, i: int, bptt: int
) -> tuple[np.ndarray, np.ndarray]:
  """(x_BT, y_BT) of segment ``i``: x = ids[:, iT:(i+1)T], y shifted one step ahead."""
  n = num_segments(ids_BN, bptt)
  if not 0 <= i < n:
    raise IndexError(
        f"segment {i} out of range: the stream has {n} full segments of length {bptt}"
    )
  start = i * bptt
  return (
      ids_BN[:, start : start + bptt],
      ids_BN[:, start + 1 : start + bptt + 1],
  )


def eval_stream(
    ids_N: np.ndarray, batch_size: int, bptt: int, eos_id: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(x_SBT, y_SBT, mask_SBT) covering every token of a split exactly once.

  The stream ``[eos_id] + ids_N`` is cut into ``batch_size`` contiguous
  pieces of ``L = ceil(N / B)`` targets each (the last ones padded), and
  each piece into ``S = ceil(L / bptt)`` segments of length ``bptt`` (the
  last one padded). The targets of stream b are ``ids_N[b*L:(b+1)*L]``;
  its first input is the real preceding token (``eos_id`` for b = 0).
  Padding uses ``eos_id`` with mask 0, always after a stream's real tokens,
  so state carried from segment to segment is never disturbed. x and y are
  int32, mask is float32 with ``mask.sum() == N``.
  """
  ids = _as_ids(ids_N)
  _check_positive(batch_size=batch_size, bptt=bptt)
  _check_id(eos_id=eos_id)
  n, b, t = ids.size, batch_size, bptt
  length = -(-n // b)
  s = -(-length // t)
  full = np.full(b * length + 1, eos_id, dtype=np.int32)
  full[1 : n + 1] = ids
  x_BL = full[:-1].reshape(b, length)
  y_BL = full[1:].reshape(b, length)
  m_BL = (np.arange(b * length) < n).reshape(b, length)

  def tile(a_BL: np.ndarray, fill) -> np.ndarray:
    out = np.full((b, s * t), fill, dtype=a_BL.dtype)
    out[:, :length] = a_BL
    return out.reshape(b, s, t).transpose(1, 0, 2).copy()

  return (
      tile(x_BL, eos_id),
      tile(y_BL, eos_id),
      tile(m_BL.astype(np.float32), 0.0),
  )


def sentence_batches(
    ids_N: np.ndarray,
    eos_id: int,
    batch_size: int,
    max_len: int,
    rng_seed: int | None = None,
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
  """Independent-sentence batches [(x_BT, y_BT, mask_BT)] with T = ``max_len``.

  The stream is cut after every ``eos_id``; a sentence is its tokens and its
  eos (trailing tokens without an eos form a last sentence). Its example is
  ``x = [eos] + sentence[:-1]``, ``y = sentence``, so the state starts fresh
  and every token, the final eos included, is a target. A sentence longer
  than ``max_len`` is SPLIT (not truncated) into consecutive chunks of
  ``max_len`` targets; a continuation chunk's first input is the sentence's
  preceding real token, so every token of ``ids_N`` is a target exactly
  once. Rows are padded to ``max_len`` with ``eos_id`` and mask 0, and the
  last batch is filled with fully masked rows so all batches share one
  shape. With ``rng_seed`` the examples are shuffled by
  ``np.random.default_rng(rng_seed).permutation`` before batching. x and y
  are int32, mask is float32.
  """
  ids = _as_ids(ids_N)
  _check_positive(batch_size=batch_size, max_len=max_len)
  _check_id(eos_id=eos_id)
  n, t = ids.size, max_len
  ends = np.flatnonzero(ids == eos_id) + 1
  if ends.size == 0 or ends[-1] != n:
    ends = np.append(ends, n)
  starts = np.concatenate([[0], ends[:-1]])
  lengths = ends - starts
  chunks = -(-lengths // t)
  first = np.repeat(starts, chunks)
  k = np.arange(chunks.sum()) - np.repeat(
      np.cumsum(chunks) - chunks, chunks
  )  # chunk index within its sentence
  chunk_start = first + k * t
  chunk_len = np.minimum(np.repeat(ends, chunks) - chunk_start, t)
  if rng_seed is not None:
    order = np.random.default_rng(rng_seed).permutation(chunk_start.size)
    chunk_start, chunk_len = chunk_start[order], chunk_len[order]

  # With ext = [eos] + ids, row r reads x[j] = ext[start + j] and y[j] = ext[start + j + 1];
  # a sentence start follows an eos (or is position 0), so its x[0] is eos.
  ext = np.concatenate([np.array([eos_id], np.int32), ids])
  pos_RT = chunk_start[:, None] + np.arange(t)[None, :]
  mask_RT = np.arange(t)[None, :] < chunk_len[:, None]
  x_RT = np.where(mask_RT, ext[np.minimum(pos_RT, n)], eos_id).astype(np.int32)
  y_RT = np.where(mask_RT, ext[np.minimum(pos_RT + 1, n)], eos_id).astype(
      np.int32
  )
  m_RT = mask_RT.astype(np.float32)

  rows = x_RT.shape[0]
  pad = -rows % batch_size
  if pad:
    x_RT = np.concatenate([x_RT, np.full((pad, t), eos_id, np.int32)])
    y_RT = np.concatenate([y_RT, np.full((pad, t), eos_id, np.int32)])
    m_RT = np.concatenate([m_RT, np.zeros((pad, t), np.float32)])
  return [
      (
          x_RT[i : i + batch_size],
          y_RT[i : i + batch_size],
          m_RT[i : i + batch_size],
      )
      for i in range(0, rows + pad, batch_size)
  ]
