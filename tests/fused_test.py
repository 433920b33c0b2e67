"""The fused LSTM layer (rnnlm_jax.fused) against autodiff of the plain
lax.scan: outputs, final carries and gradients, with resets, in both
directions, for shapes of one block of units and of several; vmap; NaNs;
and the layers it does not run."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnnlm_jax import blas
from rnnlm_jax import cells
from rnnlm_jax import fused
from rnnlm_jax import scan

LSTM = cells.get_cell("lstm")


@pytest.fixture(params=blas.LIBRARIES)
def library(request):
  reason = blas.unavailable(request.param)
  if reason:
    pytest.skip(f"{request.param}: {reason}")
  return request.param


def _inputs(seed, steps, batch, hidden, dtype, scale=1.0):
  k = jax.random.split(jax.random.key(seed), 5)
  w_hh = jax.random.normal(k[0], (hidden, 4 * hidden)) * 0.3
  xw = jax.random.normal(k[1], (steps, batch, 4 * hidden)) * scale
  carry = tuple(jax.random.normal(kk, (batch, hidden)) * 0.5 for kk in k[2:4])
  reset = jax.random.bernoulli(k[4], 0.2, (steps, batch))
  cast = lambda a: a.astype(dtype)
  return cast(w_hh), tuple(map(cast, carry)), cast(xw), reset


def _run(impl, gemm, reverse, w_hh, carry, xw, reset):
  """(final h, final c, h_TBH) and the gradients of a loss of all three."""

  def layer(w_hh, carry, xw):
    (h_last, c_last), h = scan.run_layer(
        LSTM, {"w_hh": w_hh}, carry, None, reset, reverse=reverse, impl=impl,
        xw_TBG=xw, gemm=gemm,
    )
    return h_last, c_last, h

  def loss(w_hh, carry, xw):
    h_last, c_last, h = layer(w_hh, carry, xw)
    return jnp.sum(h * jnp.cos(h)) + jnp.sum(h_last**2) + jnp.sum(
        jnp.sin(c_last)
    )

  return jax.jit(layer)(w_hh, carry, xw), jax.jit(
      jax.grad(loss, argnums=(0, 1, 2))
  )(w_hh, carry, xw)


# (T, B, H): one block of units; several (a step's product over 2 MFLOP is
# split); H no multiple of 16; one stream; no steps.
SHAPES = [(6, 3, 5), (5, 20, 200), (4, 2, 37), (5, 1, 24), (0, 2, 4)]


@pytest.mark.parametrize("reverse", [False, True])
def test_equals_autodiff_in_float64(library, reverse):
  with jax.enable_x64(True):
    for seed, (steps, batch, hidden) in enumerate(SHAPES):
      args = _inputs(seed, steps, batch, hidden, jnp.float64)
      got = _run("fused", library, reverse, *args)
      want = _run("autodiff", "xla", reverse, *args)
      for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        assert g.dtype == jnp.float64
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)


def test_equals_autodiff_in_float32(library):
  # The gates' exp is a polynomial in float32 (relative error ~2e-7); large
  # pre-activations check the saturated ends.
  for scale in (1.0, 30.0):
    args = _inputs(7, 8, 20, 200, jnp.float32, scale)
    got = _run("fused", library, False, *args)
    want = _run("autodiff", "xla", False, *args)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
      assert g.dtype == jnp.float32
      np.testing.assert_allclose(g, w, rtol=2e-4, atol=2e-5)


def test_auto_picks_the_fused_layer_under_a_library(library):
  args = _inputs(0, 4, 2, 8, jnp.float32)
  for gemm, calls in ((library, 1), ("xla", 0)):
    fn = lambda w_hh, carry, xw: scan.run_layer(
        LSTM, {"w_hh": w_hh}, carry, None, args[3], impl="auto", xw_TBG=xw,
        gemm=gemm,
    )
    hlo = jax.jit(fn).lower(*args[:3]).as_text()
    assert hlo.count("rnnlm_lstm_fwd_f32") == calls


def test_vmap_equals_one_by_one(library):
  w_hh, carry, xw, reset = _inputs(3, 5, 4, 24, jnp.float32)
  xws = jnp.stack([xw, 2 * xw, -xw])

  def h(xw):
    return fused.lstm_layer(w_hh, carry, xw, reset, False, library)[1]

  got = jax.jit(jax.vmap(h))(xws)
  for i in range(3):
    np.testing.assert_array_equal(got[i], jax.jit(h)(xws[i]))


def test_nan_in_the_input_comes_out(library):
  w_hh, carry, xw, reset = _inputs(4, 5, 3, 16, jnp.float32)
  xw = xw.at[1, 2, 7].set(jnp.nan)
  reset = jnp.zeros_like(reset)
  h = fused.lstm_layer(w_hh, carry, xw, reset, False, library)[1]
  assert not np.isnan(h[0]).any()
  assert np.isnan(h[1, 2]).any() and np.isnan(h[2:, 2]).all()
  assert not np.isnan(h[:, :2]).any()


def test_fused_where_it_does_not_apply_says_why(library):
  gru = cells.get_cell("gru")
  params = cells.init_params(gru, jax.random.key(0), 4, 8, 0.1)
  carry = cells.init_carry(gru, 2, 8)
  x = jnp.zeros((3, 2, 4))
  with pytest.raises(ValueError, match="fused layer is an LSTM's"):
    scan.run_layer(gru, params, carry, x, impl="fused", gemm=library)
  lstm = cells.init_params(LSTM, jax.random.key(0), 4, 8, 0.1)
  carry = cells.init_carry(LSTM, 2, 8)
  with pytest.raises(ValueError, match="under a BLAS library"):
    scan.run_layer(LSTM, lstm, carry, x, impl="fused", gemm="xla")
  with pytest.raises(ValueError, match="batch-major"):
    scan.run_layer(
        LSTM, lstm, carry, x, impl="fused", gemm=library,
        layout="feature_major",
    )


def test_fuses_and_time_chunks(library):
  assert scan.fuses(LSTM, "auto", "auto", 650, library, jnp.float32)
  assert scan.fuses(LSTM, "fused", "batch_major", 8, library, jnp.float64)
  assert not scan.fuses(LSTM, "custom_vjp", "auto", 650, library, jnp.float32)
  assert not scan.fuses(LSTM, "auto", "auto", 650, "xla", jnp.float32)
  assert not scan.fuses(LSTM, "auto", "auto", 650, library, jnp.bfloat16)
  assert not scan.fuses(
      cells.get_cell("gru"), "auto", "auto", 650, library, jnp.float32
  )
  # A fused layer splits each step over the cores: time stays one chunk.
  assert scan.time_chunks(0, 100, fused_layers=True) == 1
  assert scan.time_chunks(2, 100, fused_layers=True) == 2
