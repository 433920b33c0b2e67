"""The BLAS custom call against XLA's matmul: products, gradients, vmap,
and whole models under each library; how "auto" and bad choices resolve."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnnlm_jax.backends import blas
from rnnlm_jax import backends
from rnnlm_jax import config as config_lib
from rnnlm_jax import models
from rnnlm_jax.config import ModelConfig


def _library(name):
  reason = blas.unavailable(name)
  if reason:
    pytest.skip(f"{name}: {reason}")
  return name


@pytest.fixture(params=blas.LIBRARIES)
def library(request):
  return _library(request.param)


def _operands(rng, m, k, n, ta, tb, dtype):
  a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
  b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
  return a, b


# Shapes of one block and of several (over 2 MFLOP, split by rows or by
# columns of C into blocks of 16), sizes that are no multiple of 16, a
# recurrent step's, and empty ones.
SHAPES = [
    (3, 5, 7),
    (20, 200, 801),
    (517, 64, 40),
    (1, 1, 1),
    (0, 4, 5),
    (4, 0, 5),
    (4, 5, 0),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_products_equal_float64_numpy(library, dtype):
  rng = np.random.default_rng(0)
  tol = 2e-5 if dtype == np.float32 else 1e-12
  with jax.enable_x64(True):
    for m, k, n in SHAPES:
      for ta in (False, True):
        for tb in (False, True):
          a, b = _operands(rng, m, k, n, ta, tb, dtype)
          got = jax.jit(blas.dot, static_argnums=(2, 3, 4))(
              a, b, library, ta, tb
          )
          want = (a.T if ta else a).astype(np.float64) @ (
              b.T if tb else b
          ).astype(np.float64)
          assert got.shape == (m, n) and got.dtype == dtype
          np.testing.assert_allclose(
              got, want, rtol=tol, atol=tol * np.sqrt(max(k, 1))
          )


def test_gradients_equal_autodiff_of_xla(library):
  rng = np.random.default_rng(1)
  with jax.enable_x64(True):
    for ta in (False, True):
      for tb in (False, True):
        a, b = _operands(rng, 6, 4, 5, ta, tb, np.float64)
        loss = lambda backend: lambda a, b: jnp.sum(
            jnp.sin(blas.dot(a, b, backend, ta, tb))
        )
        got = jax.grad(loss(library), argnums=(0, 1))(a, b)
        want = jax.grad(loss("xla"), argnums=(0, 1))(a, b)
        for g, w in zip(got, want, strict=True):
          np.testing.assert_allclose(g, w, rtol=1e-12)


def test_vmap_and_concurrent_products(library):
  rng = np.random.default_rng(2)
  a_KMI = rng.standard_normal((3, 40, 300)).astype(np.float32)
  b_IN = rng.standard_normal((300, 200)).astype(np.float32)
  got = jax.vmap(lambda a: blas.dot(a, b_IN, library))(a_KMI)
  np.testing.assert_allclose(got, a_KMI @ b_IN, rtol=1e-4, atol=1e-3)

  # Two independent products in one program: XLA may run them at once,
  # each splitting its blocks over the same thread pool.
  two = jax.jit(
      lambda a, b: (
          blas.dot(a, b, library),
          blas.dot(b, a, library, True, True),
      )
  )
  c, d = two(a_KMI[0], b_IN)
  np.testing.assert_allclose(c, a_KMI[0] @ b_IN, rtol=1e-4, atol=1e-3)
  np.testing.assert_allclose(d, (a_KMI[0] @ b_IN).T, rtol=1e-4, atol=1e-3)


def _nll_and_grads(cfg, params, x, y):
  def loss(p):
    carry = jax.tree.map(
        lambda c: c.astype(p["embed"].dtype), models.init_carry(cfg, x.shape[0])
    )
    nll, carry = models.token_nll(p, cfg, carry, x, y)
    return nll.mean() + sum(jnp.sum(c) for c in jax.tree.leaves(carry))

  return jax.value_and_grad(loss)(params)


@pytest.mark.parametrize(
    "cell,impl,vocab",
    [
        ("lstm", "custom_vjp", 40),
        ("gru", "custom_vjp", 40),
        ("rnn_tanh", "autodiff", 40),
        ("lstm", "custom_vjp", 9),  # embedding folded
        ("lstm", "fused", 40),  # rnnlm_jax.backends.fused
    ],
)
def test_model_loss_and_gradients_equal_xla(library, cell, impl, vocab):
  cfg = ModelConfig(
      cell=cell,
      vocab_size=vocab,
      hidden=24,
      embed_dim=16,
      num_layers=2,
      init_scale=0.3,
      scan_impl="custom_vjp" if impl == "fused" else impl,
      time_chunks=2,
      gemm="xla",
  )
  x = jax.random.randint(jax.random.key(1), (3, 10), 0, vocab)
  y = jax.random.randint(jax.random.key(2), (3, 10), 0, vocab)
  with jax.enable_x64(True):
    params = jax.tree.map(
        lambda a: a.astype(jnp.float64), models.init_lm(jax.random.key(0), cfg)
    )
    want = _nll_and_grads(cfg, params, x, y)
    got = _nll_and_grads(
        dataclasses.replace(cfg, gemm=library, scan_impl=impl), params, x, y
    )
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
    np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)


def test_resolve():
  assert blas.resolve("xla") == "xla"
  mkl_here = blas.unavailable("mkl") is None and jax.device_count() == 1
  intel = blas.cpu_vendor() == "GenuineIntel"
  assert blas.resolve("auto") == ("mkl" if mkl_here and intel else "xla")
  with pytest.raises(ValueError, match="unknown gemm"):
    blas.resolve("eigen")


@pytest.mark.parametrize(
    "vendor,want", [("GenuineIntel", "mkl"), ("AuthenticAMD", "xla")]
)
def test_auto_takes_mkl_on_intel_cpus_only(monkeypatch, vendor, want):
  monkeypatch.setattr(blas, "cpu_vendor", lambda: vendor)
  monkeypatch.setattr(blas, "unavailable", lambda name: None)
  monkeypatch.setattr(jax, "default_backend", lambda: "cpu")
  monkeypatch.setattr(jax, "device_count", lambda: 1)
  assert blas.resolve("auto") == want


def test_a_missing_library_is_one_config_error(monkeypatch):
  monkeypatch.setattr(
      blas, "_loaded", lambda name: (None, "no mkl library found")
  )
  cfg = config_lib.from_dict({"model": {"gemm": "mkl"}}).model
  with pytest.raises(config_lib.ConfigError, match="model.gemm='mkl': no mkl"):
    backends.resolve(cfg)
  with pytest.raises(config_lib.ConfigError, match="model.gemm"):
    config_lib.from_dict({"model": {"gemm": "blis"}})
  assert config_lib.from_dict({"model": {"gemm": "xla"}}).model.gemm == "xla"


def test_no_compiler_is_one_reason_and_builds_nothing(monkeypatch, tmp_path):
  monkeypatch.delenv("CXX", raising=False)
  monkeypatch.setenv("PATH", "")
  target = tmp_path / "cache" / "rnnlm.so"
  with pytest.raises(blas.Unavailable, match="no C[+][+] compiler"):
    blas._build(str(target))
  assert not target.exists()


def test_a_failed_build_leaves_nothing(monkeypatch, tmp_path):
  monkeypatch.setenv("CXX", "false")  # A compiler that always fails.
  target = tmp_path / "cache" / "rnnlm.so"
  with pytest.raises(blas.Unavailable, match="building .*csrc failed"):
    blas._build(str(target))
  assert list(target.parent.iterdir()) == []
