"""Host memory reuse: with it, repeated calls of a compiled function whose
temporaries are large stop page-faulting them; without it, every call does.
Each case is a fresh process, since the setting is process-wide."""

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from rnnlm_jax.backends import hostmem

ROOT = Path(__file__).resolve().parents[1]

# Median minor page faults per call of a function with ~67 MB of
# temporaries (a 2048 x 4096 float32 tanh and its cumulative sum), over the
# last 20 of 40 calls. The first calls fault even with reuse: a small
# allocation between calls takes a bite of the freed block, the next block
# no longer fits there and the heap grows, until it holds enough holes
# (seen here: up to 8 growing calls in a row, and up to 6 of the last 20).
# The first argument: "reuse" applies hostmem.reuse_freed_memory before JAX
# starts.
_PROBE = """
import resource, statistics, sys
from rnnlm_jax.backends import hostmem
if sys.argv[1] == "reuse":
  assert hostmem.reuse_freed_memory()
import jax, jax.numpy as jnp
x = jnp.ones((2048, 4096), jnp.float32)
f = jax.jit(lambda x: jnp.cumsum(jnp.tanh(x), axis=1).sum(axis=0))
faults = []
for _ in range(40):
  before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
  f(x).block_until_ready()
  faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(statistics.median(faults[20:]))
"""
# One call's temporaries, in 4 KiB pages.
_TEMP_PAGES = 2 * 2048 * 4096 * 4 // 4096

glibc_only = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
    reason="the setting is glibc's",
)


def _median_faults(mode: str, env=None) -> float:
  proc = subprocess.run(
      [sys.executable, "-c", _PROBE, mode],
      cwd=ROOT,
      capture_output=True,
      text=True,
      timeout=300,
      env=env,
      check=True,
  )
  return float(proc.stdout.strip().splitlines()[-1])


def _system_env():
  env = dict(os.environ)
  env.pop("GLIBC_TUNABLES", None)
  return env


@glibc_only
def test_system_malloc_faults_the_temporaries_every_call():
  assert _median_faults("system", _system_env()) > _TEMP_PAGES / 2


@glibc_only
def test_reuse_in_process_stops_the_faults():
  assert _median_faults("reuse", _system_env()) < _TEMP_PAGES / 100


@glibc_only
def test_reuse_through_a_child_environment_stops_the_faults():
  # glibc ignores a misspelt tunable silently: this checks the string.
  env = hostmem.child_env(_system_env(), "reuse")
  assert _median_faults("system", env) < _TEMP_PAGES / 100


def test_child_env():
  assert "GLIBC_TUNABLES" not in hostmem.child_env({"A": "1"}, "system")
  assert hostmem.child_env({}, "reuse")["GLIBC_TUNABLES"] == hostmem.TUNABLES
  merged = hostmem.child_env({"GLIBC_TUNABLES": "glibc.x=1"}, "reuse")
  assert merged["GLIBC_TUNABLES"] == f"glibc.x=1:{hostmem.TUNABLES}"
  with pytest.raises(ValueError, match="host memory mode"):
    hostmem.child_env({}, "bogus")
