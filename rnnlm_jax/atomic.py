"""Atomic file writes: a reader sees the old file or the new one, never
half of one."""

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any, Callable


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


def atomic_write_bytes(path: Path, data: bytes) -> None:
  """:func:`atomic_write` of ``data``."""
  atomic_write(path, lambda f: f.write(data))
