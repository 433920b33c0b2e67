"""The encoded-corpus cache: a corpus's vocabulary and token ids, kept in one
``.npz`` file named by a hash of everything that could change them."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from rnnlm_jax import sources
from rnnlm_jax.atomic import atomic_write
from rnnlm_jax.errors import DataError
from rnnlm_jax.sources import SPLITS
from rnnlm_jax.vocab import Vocab, encode_splits

_CACHE_FORMAT = 1


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
  src = sources.resolve_source({**source, "level": level})
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

  :func:`~rnnlm_jax.sources.load_text_splits` followed by
  :func:`~rnnlm_jax.vocab.encode_splits`. ``level``
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
  splits = sources.load_text_splits(source)
  vocab, ids = encode_splits(
      splits, level, vocab, max_size=max_size, min_count=min_count
  )
  if path is not None:
    _write_cache(path, key, vocab, ids)
  return vocab, ids
