"""Host memory: keeping freed blocks for reuse instead of returning them.

XLA:CPU allocates the temporaries of each call of a compiled function as one
block, from a thread of its own runtime. glibc's malloc serves a block that
large (over 32 MB, and always over a thread arena's 64 MB heap) with a fresh
mmap and gives it back with munmap on free, so every train step starts on
untouched pages and page-faults its whole temporary buffer once more: at
Zaremba medium, 40,000 faults (170 MB) a step; at small, 21,000 (87 MB).

``reuse_freed_memory`` sets malloc to serve every thread from the main
arena, never to mmap, and not to trim, so the block freed at the end of a
step is the block the next step gets, its pages already mapped. Not from the
first step: a small allocation between steps can take a bite of the freed
block, so the next one no longer fits there and the heap grows; after a few
such steps (up to eight in a row in tests/hostmem_test.py's probe) the heap
holds enough holes and the faults stop. The cost: the process keeps its peak
heap until it exits (a training process does anyway).
``TUNABLES`` is the same setting for a child process's environment, which
applies it from the child's first allocation.

glibc only; elsewhere ``reuse_freed_memory`` does nothing and says so.
"""

import ctypes
import ctypes.util

# mallopt(3) parameters and the matching glibc tunables.
_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8
_SETTINGS = (
    (_M_ARENA_MAX, "arena_max", 1),
    (_M_MMAP_MAX, "mmap_max", 0),
    (_M_TRIM_THRESHOLD, "trim_threshold", 2**31 - 1),
)
TUNABLES = ":".join(f"glibc.malloc.{name}={v}" for _, name, v in _SETTINGS)
MODES = ("reuse", "system")


def _libc():
  name = ctypes.util.find_library("c")
  try:
    libc = ctypes.CDLL(name)
    getattr(libc, "gnu_get_libc_version")
    return libc
  except (OSError, AttributeError, TypeError):
    return None


def reuse_freed_memory() -> bool:
  """Applies the setting to this process; True where it took (glibc).

  Call it before the first JAX computation: threads that already hold an
  arena of their own keep it.
  """
  libc = _libc()
  if libc is None:
    return False
  return all(libc.mallopt(param, value) == 1 for param, _, value in _SETTINGS)


def child_env(env: dict, mode: str) -> dict:
  """``env`` for a child process with host memory ``mode``: "reuse" adds
  the tunables (after any already there), "system" leaves it as it is."""
  if mode not in MODES:
    raise ValueError(f"unknown host memory mode {mode!r}; choose one of {MODES}")
  if mode == "system":
    return dict(env)
  given = env.get("GLIBC_TUNABLES")
  return {**env, "GLIBC_TUNABLES": f"{given}:{TUNABLES}" if given else TUNABLES}
