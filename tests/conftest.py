"""Shared test helpers."""

import os
import subprocess

import jax
import jax.flatten_util
import numpy as np
import pytest


def pytest_configure(config):
  """One persistent compilation cache for every test process of a session
  (xdist's workers, and the scripts tests run in subprocesses, which inherit
  the environment), so a program that several tests build (the smoke
  config's train step, say) compiles once. It lives in pytest's cache
  directory and survives between runs; $JAX_COMPILATION_CACHE_DIR, when
  set, is used instead, and -p no:cacheprovider turns it off. A size limit
  turns on jax's file lock, so no process reads an entry another is still
  writing (without it, one such read failed decompression once and was
  recompiled), and bounds the cache at 1 GiB."""
  if not hasattr(config, "cache") or "PYTEST_XDIST_WORKER" in os.environ:
    return
  # (jax option, default, type); its environment variable is the option's
  # name upper-cased.
  settings = (
      ("jax_compilation_cache_dir", config.cache.mkdir("jax-compilation"), str),
      ("jax_persistent_cache_min_compile_time_secs", 0, float),
      ("jax_compilation_cache_max_size", 1 << 30, int),
  )
  for option, default, kind in settings:
    value = os.environ.setdefault(option.upper(), str(default))
    # This process imported jax before the hook ran; a serial run uses it.
    jax.config.update(option, kind(value))


def _check_directional_derivatives(loss, params, num=3, eps=1e-5):
  """jax.grad(loss)(params) against central differences along random unit
  directions (call under jax.enable_x64 with float64 params)."""
  loss = jax.jit(loss)  # Compiled once, not dispatched op by op.
  grads = jax.jit(jax.grad(loss))(params)
  flat, unravel = jax.flatten_util.ravel_pytree(params)
  gflat, _ = jax.flatten_util.ravel_pytree(grads)
  rng = np.random.default_rng(0)
  for _ in range(num):
    direction = rng.normal(size=flat.shape)
    direction /= np.linalg.norm(direction)
    numeric = (
        loss(unravel(flat + eps * direction))
        - loss(unravel(flat - eps * direction))
    ) / (2 * eps)
    np.testing.assert_allclose(
        float(gflat @ direction), float(numeric), rtol=1e-6, atol=1e-9
    )


@pytest.fixture
def check_gradient():
  return _check_directional_derivatives


@pytest.fixture
def torch_python():
  """$TORCH_PYTHON, an interpreter that imports torch; the test skips where
  it is unset, and fails where it is set but cannot import torch."""
  python = os.environ.get("TORCH_PYTHON")
  if not python:
    pytest.skip("set TORCH_PYTHON to an interpreter that imports torch")
  try:
    ok = subprocess.run([python, "-c", "import torch"], capture_output=True)
  except OSError as e:
    pytest.fail(f"TORCH_PYTHON={python} cannot run: {e}")
  if ok.returncode != 0:
    pytest.fail(
        f"TORCH_PYTHON={python} cannot import torch: "
        f"{ok.stderr.decode(errors='replace').strip().splitlines()[-1:]}"
    )
  return python
