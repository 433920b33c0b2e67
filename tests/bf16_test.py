"""model.gemm="bf16": every product from bfloat16 operands with float32
accumulation, the gradients' products alike; the rest of the model float32."""

import dataclasses
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnnlm_jax.backends import blas
from rnnlm_jax import models
from rnnlm_jax.config import ModelConfig


def _rounded(a):
  """a rounded to bfloat16, as float64."""
  return np.asarray(jnp.asarray(a).astype(jnp.bfloat16), np.float64)


def _op(a, trans):
  return a.T if trans else a


@pytest.mark.parametrize("ta", [False, True])
@pytest.mark.parametrize("tb", [False, True])
def test_products_and_gradients_are_bfloat16_products(ta, tb):
  rng = np.random.default_rng(0)
  m, k, n = 7, 300, 5
  a = rng.standard_normal((k, m) if ta else (m, k)).astype(np.float32)
  b = rng.standard_normal((n, k) if tb else (k, n)).astype(np.float32)
  c = jax.jit(blas.dot, static_argnums=(2, 3, 4))(a, b, "bf16", ta, tb)
  assert c.dtype == jnp.float32
  want = _op(_rounded(a), ta) @ _op(_rounded(b), tb)
  np.testing.assert_allclose(c, want, rtol=1e-5, atol=1e-5)
  # Not the float32 product: the operands were rounded.
  assert np.abs(np.asarray(c) - _op(a, ta) @ _op(b, tb)).max() > 1e-3

  # The gradient of sum(sin(C)): dop(a) = g op(b)^T and dop(b) = op(a)^T g,
  # each a product of bfloat16-rounded operands.
  loss = lambda a, b: jnp.sum(jnp.sin(blas.dot(a, b, "bf16", ta, tb)))
  da, db = jax.grad(loss, argnums=(0, 1))(a, b)
  g = np.cos(np.asarray(c, np.float64)).astype(np.float32)
  dop_a = _rounded(g) @ _op(_rounded(b), tb).T
  dop_b = _op(_rounded(a), ta).T @ _rounded(g)
  assert da.dtype == db.dtype == jnp.float32
  np.testing.assert_allclose(da, _op(dop_a, ta), rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(db, _op(dop_b, tb), rtol=1e-4, atol=1e-4)


def test_integer_and_mixed_operands_stay_with_xla():
  a = jnp.arange(6, dtype=jnp.int32).reshape(2, 3)
  assert blas.dot(a, a.T, "bf16").dtype == jnp.int32
  np.testing.assert_array_equal(blas.dot(a, a.T, "bf16"), a @ a.T)


CFG = ModelConfig(
    cell="lstm",
    vocab_size=40,
    hidden=24,
    embed_dim=16,
    num_layers=2,
    init_scale=0.3,
    scan_impl="custom_vjp",
    time_chunks=2,
    gemm="xla",
)


def _loss(cfg, x, y):
  def loss(p):
    carry = models.init_carry(cfg, x.shape[0])
    nll, carry = models.token_nll(p, cfg, carry, x, y)
    return nll.mean() + 0.1 * sum(jnp.sum(c) for c in jax.tree.leaves(carry))

  return loss


@pytest.mark.parametrize(
    "cell,impl", [("lstm", "custom_vjp"), ("gru", "autodiff")]
)
def test_a_bf16_model_is_close_to_float32_and_keeps_float32_state(cell, impl):
  cfg = dataclasses.replace(CFG, cell=cell, scan_impl=impl)
  bf16 = dataclasses.replace(cfg, gemm="bf16")
  x = jax.random.randint(jax.random.key(1), (3, 10), 0, cfg.vocab_size)
  y = jax.random.randint(jax.random.key(2), (3, 10), 0, cfg.vocab_size)
  params = models.init_lm(jax.random.key(0), cfg)

  want, want_g = jax.value_and_grad(_loss(cfg, x, y))(params)
  got, got_g = jax.jit(jax.value_and_grad(_loss(bf16, x, y)))(params)
  # bfloat16 keeps 8 bits of mantissa: the loss within 1e-3 (3e-5 to 5e-5
  # measured: the rounding errors average out), each gradient to a few per
  # cent of its norm.
  np.testing.assert_allclose(got, want, rtol=1e-3)
  assert got != want
  for g, w in zip(jax.tree.leaves(got_g), jax.tree.leaves(want_g), strict=True):
    assert g.dtype == jnp.float32
    assert np.linalg.norm(g - w) <= 0.05 * np.linalg.norm(w) + 1e-6

  carry = models.init_carry(bf16, 3)
  _, new_carry = models.token_nll(params, bf16, carry, x, y)
  assert all(c.dtype == jnp.float32 for c in jax.tree.leaves(new_carry))

  # Every product of the compiled loss and gradient takes bfloat16 operands
  # and gives float32.
  hlo = jax.jit(jax.grad(_loss(bf16, x, y))).lower(params).as_text()
  dots = re.findall(r"stablehlo\.dot_general.*?: \((.*?)\) -> (\S+)", hlo)
  assert len(dots) >= 10
  for operands, result in dots:
    assert operands.count("bf16") == 2 and "f32" not in operands, operands
    assert "f32" in result, result
