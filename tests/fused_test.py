"""The fused LSTM, GRU and Elman layers (rnnlm_jax.fused) against autodiff of
the plain lax.scan: outputs, final carries and gradients, with resets, in
both directions, for shapes of one block of units and of several; vmap;
NaNs; and the layers it does not run. The fused softmax loss and gradient
against optax's on XLA's logits, the same way."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnnlm_jax import backends
from rnnlm_jax import cells
from rnnlm_jax import config as config_lib
from rnnlm_jax import losses
from rnnlm_jax import models
from rnnlm_jax import scan
from rnnlm_jax.backends import blas
from rnnlm_jax.backends import fused
from rnnlm_jax.config import ModelConfig

LSTM = cells.get_cell("lstm")
FUSED = list(fused.KERNELS)


@pytest.fixture(params=blas.LIBRARIES)
def library(request):
  reason = blas.unavailable(request.param)
  if reason:
    pytest.skip(f"{request.param}: {reason}")
  return request.param


@pytest.fixture(params=blas.LIBRARIES + ("xla",))
def products(request):
  """What the fused layers' per-step products run through: a BLAS library,
  or under XLA's GEMM the built-in packed product (csrc/blas.h)."""
  if request.param == "xla":
    reason = blas.builtin_unavailable()
  else:
    reason = blas.unavailable(request.param)
  if reason:
    pytest.skip(f"{request.param}: {reason}")
  return request.param


def _inputs(cell, seed, steps, batch, hidden, dtype, scale=1.0):
  """(params, carry, xw, reset): params with w_hh (and the GRU's b_hn)."""
  k = jax.random.split(jax.random.key(seed), 6)
  g = cell.gates * hidden
  # An Elman cell's weight small enough that the layer contracts: at 0.3 a
  # relu state blew up, and a tanh layer's float32 results moved by 3e-5
  # (relative) with the GEMM's summation order alone, under any library.
  w_scale = 0.3 if cell.gates > 1 else 0.7 / max(1, hidden) ** 0.5
  params = {"w_hh": jax.random.normal(k[0], (hidden, g)) * w_scale}
  if cell.name == "gru":
    params["b_hn"] = jax.random.normal(k[5], (hidden,)) * 0.3
  xw = jax.random.normal(k[1], (steps, batch, g)) * scale
  carry = tuple(
      jax.random.normal(kk, (batch, hidden)) * 0.5
      for kk in k[2 : 2 + cell.carry_arity]
  )
  reset = jax.random.bernoulli(k[4], 0.2, (steps, batch))
  cast = lambda a: a.astype(dtype)
  return (jax.tree.map(cast, params), tuple(map(cast, carry)), cast(xw), reset)


def _run(cell, impl, gemm, reverse, params, carry, xw, reset):
  """(final carry, h_TBH) and the gradients of a loss of both."""

  fast = backends.fused_layer(cell, gemm) if impl == "fused" else None

  def layer(params, carry, xw):
    return scan.run_layer(
        cell,
        params,
        carry,
        None,
        reset,
        reverse=reverse,
        impl="autodiff" if impl == "fused" else impl,
        xw_TBG=xw,
        dot=blas.dot_fn(gemm),
        fast=fast,
    )

  def loss(params, carry, xw):
    final, h = layer(params, carry, xw)
    return jnp.sum(h * jnp.cos(h)) + sum(
        jnp.sum(jnp.sin(a) * (i + 1)) for i, a in enumerate(final)
    )

  return jax.jit(layer)(params, carry, xw), jax.jit(
      jax.grad(loss, argnums=(0, 1, 2))
  )(params, carry, xw)


# (T, B, H): one block of units; several (a step's product over 2 MFLOP is
# split); H no multiple of 16; one stream; no steps.
SHAPES = [(6, 3, 5), (5, 20, 200), (4, 2, 37), (5, 1, 24), (0, 2, 4)]


@functools.cache
def _autodiff_float64(cell_name, reverse, seed):
  """The reference for SHAPES[seed], computed once for every library."""
  cell = cells.get_cell(cell_name)
  args = _inputs(cell, seed, *SHAPES[seed], jnp.float64)
  return _run(cell, "autodiff", "xla", reverse, *args)


@pytest.mark.parametrize("cell", FUSED, ids=lambda c: c.name)
@pytest.mark.parametrize("reverse", [False, True])
def test_equals_autodiff_in_float64(products, cell, reverse):
  # Each shape costs two compiles a library: every shape for the LSTM
  # (the edge cases are the layer loop's and the products', shared by the
  # cells), one block and several for the GRU and the tanh layer, one for
  # the sigmoid and relu layers (the tanh layer's code but for the
  # activation); the reverse direction on the first one or two.
  shapes = {"lstm": SHAPES, "gru": SHAPES[:2], "rnn_tanh": SHAPES[:2]}.get(
      cell.name, SHAPES[:1]
  )
  if reverse:
    shapes = shapes[: 2 if cell.name == "lstm" else 1]
  with jax.enable_x64(True):
    for seed, (steps, batch, hidden) in enumerate(shapes):
      args = _inputs(cell, seed, steps, batch, hidden, jnp.float64)
      got = _run(cell, "fused", products, reverse, *args)
      want = _autodiff_float64(cell.name, reverse, seed)
      for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        assert g.dtype == jnp.float64
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cell", FUSED, ids=lambda c: c.name)
def test_equals_autodiff_in_float32(products, cell):
  # The gates' exp is a polynomial in float32 (relative error ~2e-7); large
  # pre-activations check the saturated ends. Gradients summed over steps
  # and streams differ by float32 rounding relative to their largest entry.
  for scale in (1.0, 30.0):
    args = _inputs(cell, 7, 8, 20, 200, jnp.float32, scale)
    got = _run(cell, "fused", products, False, *args)
    want = _run(cell, "autodiff", "xla", False, *args)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
      assert g.dtype == jnp.float32
      atol = 2e-5 * max(1.0, float(np.abs(w).max()))
      np.testing.assert_allclose(g, w, rtol=2e-4, atol=atol)


def _kernel_calls(cfg, steps):
  """How many fused LSTM layers a model's loss runs over ``steps`` steps."""
  params = models.init_lm(jax.random.key(0), cfg)
  x = jnp.zeros((2, steps), jnp.int32)
  loss = lambda p: models.token_nll(p, cfg, models.init_carry(cfg, 2), x, x)[
      0
  ].sum()
  return jax.jit(loss).lower(params).as_text().count("rnnlm_lstm_fwd_f32")


def test_auto_picks_the_fused_layer_under_a_library(products):
  long_ = backends.FUSED_MIN_STEPS
  cfg = ModelConfig(vocab_size=50, hidden=8, num_layers=2, gemm=products)
  assert _kernel_calls(cfg, long_) == 2
  assert _kernel_calls(cfg, long_ - 1) == 0
  bf16 = ModelConfig(vocab_size=50, hidden=8, gemm="bf16")
  assert _kernel_calls(bf16, long_) == 0


@pytest.mark.parametrize("cell", FUSED, ids=lambda c: c.name)
def test_vmap_equals_one_by_one(products, cell):
  params, carry, xw, reset = _inputs(cell, 3, 5, 4, 24, jnp.float32)
  xws = jnp.stack([xw, 2 * xw, -xw])

  def h(xw):
    return fused.layer(cell, params, carry, xw, reset, False, products)[1]

  got = jax.jit(jax.vmap(h))(xws)
  for i in range(3):
    np.testing.assert_array_equal(got[i], jax.jit(h)(xws[i]))


@pytest.mark.parametrize("cell", FUSED, ids=lambda c: c.name)
def test_nan_in_the_input_comes_out(products, cell):
  params, carry, xw, reset = _inputs(cell, 4, 5, 3, 16, jnp.float32)
  xw = xw.at[1, 2, 7].set(jnp.nan)
  reset = jnp.zeros_like(reset)
  h = fused.layer(cell, params, carry, xw, reset, False, products)[1]
  assert not np.isnan(h[0]).any()
  assert np.isnan(h[1, 2]).any() and np.isnan(h[2:, 2]).all()
  assert not np.isnan(h[:, :2]).any()


def test_fused_where_it_does_not_apply_says_why(products, monkeypatch):
  # A cell the library has no kernel for (one a user adds, even one whose
  # math is the tanh cell's): "fused" says so in one line, "auto" runs the
  # custom_vjp scan.
  tanh = cells.get_cell("rnn_tanh")
  mine = tanh._replace(name="my_cell", pointwise=lambda *a: tanh.pointwise(*a))
  monkeypatch.setitem(cells.CELLS, "my_cell", mine)
  cfg = ModelConfig(vocab_size=20, hidden=8, cell="my_cell", gemm=products)
  with pytest.raises(backends.BackendError, match="not this 'my_cell'"):
    backends.resolve(dataclasses.replace(cfg, scan_impl="fused"))
  path = backends.resolve(cfg)
  assert path.kernel == "" and path.layer(99, jnp.float32) is None
  params = models.init_lm(jax.random.key(0), cfg)
  x = jax.random.randint(jax.random.key(1), (2, 40), 0, 20)
  nll = lambda c: models.token_nll(params, c, models.init_carry(c, 2), x, x)[0]
  np.testing.assert_allclose(
      nll(cfg), nll(dataclasses.replace(cfg, cell="rnn_tanh")), rtol=1e-5
  )


def test_the_kernel_runs_where_it_applies(products):
  f32, t = jnp.float32, backends.FUSED_MIN_STEPS
  for cell in fused.KERNELS:
    path = backends.resolve(
        ModelConfig(vocab_size=9, cell=cell.name, gemm=products)
    )
    assert path.layer(t, f32).name == f"fused {cell.name}"
    assert path.layer(t - 1, f32) is None
    assert path.layer(t, jnp.bfloat16) is None
  named = backends.resolve(
      ModelConfig(vocab_size=9, scan_impl="fused", gemm=products)
  )
  assert named.layer(1, f32) is not None
  assert (
      backends.resolve(
          ModelConfig(vocab_size=9, scan_impl="custom_vjp", gemm=products)
      ).kernel
      == ""
  )


def test_a_fused_config_that_cannot_fuse_is_one_config_error():
  with pytest.raises(config_lib.ConfigError, match="not model.gemm='bf16'"):
    config_lib.from_dict(
        {"model": {"scan_impl": "fused", "cell": "gru", "gemm": "bf16"}}
    )


def test_a_fused_config_where_the_builtin_product_cannot_run(monkeypatch):
  # Under XLA's GEMM (named, or what "auto" resolves to) the fused layer
  # needs the built-in product: without it the run is refused, in one
  # line, before anything is traced.
  why = "under XLA's GEMM the fused layer runs on a single CPU device"
  monkeypatch.setattr(blas, "builtin_unavailable", lambda: why)
  monkeypatch.setattr(blas, "resolve", lambda gemm: "xla")
  for gemm in ("xla", "auto"):
    cfg = ModelConfig(vocab_size=9, scan_impl="fused", gemm=gemm)
    with pytest.raises(config_lib.ConfigError, match="single CPU device"):
      backends.resolve(cfg)
  auto = backends.resolve(ModelConfig(vocab_size=9))
  assert auto.kernel == "" and "single CPU device" in auto.notes[0]


def _xent_inputs(seed, n, h, v, dtype):
  k = jax.random.split(jax.random.key(seed), 5)
  cast = lambda a: a.astype(dtype)
  return (
      cast(jax.random.normal(k[0], (n, h))),
      cast(jax.random.normal(k[1], (h, v)) * 0.5),
      cast(jax.random.normal(k[2], (v,))),
      jax.random.randint(k[3], (n,), 0, v),
      cast(jax.random.uniform(k[4], (n,))),  # Each row's weight in a loss.
  )


def _xent_reference(h, w, b, y):
  return losses.token_nll((h @ w + b)[None], y[None])[0]


def _value_and_grads(fn, h, w, b, y, g):
  """The weighted loss and its gradients in h, w, b (as a train step takes
  them: the forward of the custom VJP gives the value)."""
  loss = lambda h, w, b: jnp.sum(fn(h, w, b, y) * g)
  return jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2)))(h, w, b)


def _check_model_loss(library, args, rtol, atol):
  """The model's loss (the kernel in its custom VJP's forward) against the
  reference: value and gradients, in the inputs' dtype."""
  fn = lambda h, w, b, y: models._softmax_xent(
      blas.dot_fn(library), backends.fused_softmax(library), h, w, b, y
  )
  got = _value_and_grads(fn, *args)
  want = _value_and_grads(_xent_reference, *args)
  for a, x in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
    assert a.dtype == args[0].dtype
    np.testing.assert_allclose(a, x, rtol=rtol, atol=atol)


# (N, H, V): one row block; several, with column panels; a vocabulary under
# one panel; no rows.
XENT_SHAPES = [(3, 5, 40), (37, 13, 1000), (50, 8, 7), (0, 4, 9)]


def test_softmax_xent_grad_equals_the_reference_in_float64(library):
  with jax.enable_x64(True):
    for seed, shape in enumerate(XENT_SHAPES):
      h, w, b, y, g = _xent_inputs(seed, *shape, jnp.float64)
      nll, e = jax.jit(fused.softmax_xent_grad, static_argnums=4)(
          h, w, b, y, library
      )
      z = h @ w + b
      want_e = jax.nn.softmax(z) - jax.nn.one_hot(y, z.shape[-1], dtype=z.dtype)
      want_nll = _xent_reference(h, w, b, y)
      np.testing.assert_allclose(nll, want_nll, rtol=1e-10, atol=1e-12)
      np.testing.assert_allclose(e, want_e, rtol=1e-10, atol=1e-12)
      _check_model_loss(library, (h, w, b, y, g), 1e-10, 1e-12)


def test_softmax_xent_grad_in_float32(library):
  # A target whose logit is 200 below the largest: its loss is finite.
  h, w, b, y, g = _xent_inputs(1, 37, 13, 1000, jnp.float32)
  b = b.at[0].set(100.0).at[1].set(-100.0)
  y = y.at[5].set(1)
  nll, _ = fused.softmax_xent_grad(h, w, b, y, library)
  assert 190 < nll[5] < 210
  _check_model_loss(library, (h, w, b, y, g), 2e-5, 2e-5)


def test_softmax_xent_grad_nan_and_bad_targets(library):
  h, w, b, y, _ = _xent_inputs(2, 6, 5, 30, jnp.float32)
  h = h.at[2, 1].set(jnp.nan)
  y = y.at[4].set(30).at[5].set(-1)
  nll, e = map(np.asarray, fused.softmax_xent_grad(h, w, b, y, library))
  assert np.isnan(nll[2]) and np.isnan(nll[4:]).all()
  assert np.isfinite(nll[[0, 1, 3]]).all()
  assert np.isnan(e[2]).all() and np.isfinite(np.delete(e, 2, axis=0)).all()


def test_softmax_xent_grad_vmap_equals_one_by_one(library):
  h, w, b, y, _ = _xent_inputs(3, 8, 5, 30, jnp.float32)
  hs = jnp.stack([h, 2 * h, -h])
  fn = lambda h: fused.softmax_xent_grad(h, w, b, y, library)
  got = jax.jit(jax.vmap(fn))(hs)
  for i in range(3):
    for a, x in zip(got, jax.jit(fn)(hs[i]), strict=True):
      np.testing.assert_array_equal(a[i], x)


def test_only_a_differentiated_loss_runs_the_kernel(library):
  # Evaluation computes no gradient: the loss alone is XLA's; its gradient
  # is the kernel's.
  h, w, b, y, _ = _xent_inputs(4, 8, 5, 30, jnp.float32)
  loss = lambda h: models._softmax_xent(
      blas.dot_fn(library), backends.fused_softmax(library), h, w, b, y
  ).sum()
  hlo = lambda fn: jax.jit(fn).lower(h).compile().as_text()
  assert "rnnlm_softmax_xent" not in hlo(loss)
  assert "rnnlm_softmax_xent" in hlo(jax.grad(loss))
  np.testing.assert_allclose(
      jax.jit(loss)(h), _xent_reference(h, w, b, y).sum(), rtol=1e-6
  )


def test_softmax_supported():
  f32, f64 = np.float32, np.float64
  assert fused.softmax_supported("mkl", [f32, f32, f32])
  assert fused.softmax_supported("openblas", [f64])
  assert not fused.softmax_supported("xla", [f32])
  assert not fused.softmax_supported("mkl", [f32, f64])
  assert not fused.softmax_supported("mkl", [jnp.bfloat16])
