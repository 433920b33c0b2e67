"""Each cell against an independent NumPy reference; scan against a loop."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnnlm_jax import cells
from rnnlm_jax import scan

B, I, H, T = 3, 5, 4, 6


def sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


def numpy_step(name, p, carry, x):
  """Textbook equations, written from scratch on NumPy arrays."""
  p = {k: np.asarray(v, np.float64) for k, v in p.items()}
  x = np.asarray(x, np.float64)
  h = np.asarray(carry[0], np.float64)
  pre = x @ p["w_ih"] + p["b"]
  if name.startswith("rnn_"):
    act = {
        "rnn_tanh": np.tanh,
        "rnn_sigmoid": sigmoid,
        "rnn_relu": lambda a: np.maximum(a, 0),
    }[name]
    h = act(pre + h @ p["w_hh"])
    return (h,), h
  if name == "lstm":
    c = np.asarray(carry[1], np.float64)
    z = pre + h @ p["w_hh"]
    i, f, g, o = (z[:, k * H : (k + 1) * H] for k in range(4))
    c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
    h = sigmoid(o) * np.tanh(c)
    return (h, c), h
  if name == "gru":
    hw = h @ p["w_hh"]
    r = sigmoid(pre[:, :H] + hw[:, :H])
    z = sigmoid(pre[:, H : 2 * H] + hw[:, H : 2 * H])
    n = np.tanh(pre[:, 2 * H :] + r * (hw[:, 2 * H :] + p["b_hn"]))
    h = (1 - z) * n + z * h
    return (h,), h
  if name == "mingru":
    z = sigmoid(pre[:, :H])
    h = (1 - z) * h + z * pre[:, H:]
    return (h,), h
  raise ValueError(name)


def random_setup(name, seed=0):
  cell = cells.get_cell(name)
  k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
  params = cells.init_params(cell, k1, I, H, scale=0.5)
  carry = tuple(
      jax.random.normal(k, (B, H))
      for k in jax.random.split(k2, cell.carry_arity)
  )
  x_TBI = jax.random.normal(k3, (T, B, I))
  return cell, params, carry, x_TBI


@pytest.mark.parametrize("name", sorted(cells.CELLS))
def test_step_matches_numpy_reference(name):
  cell, params, carry, x_TBI = random_setup(name)
  xw = scan.project_inputs(params, x_TBI)[0]
  got_carry, got_h = cell.step(params, carry, xw)
  want_carry, want_h = numpy_step(name, params, carry, x_TBI[0])
  np.testing.assert_allclose(got_h, want_h, rtol=1e-5, atol=1e-6)
  for g, w in zip(got_carry, want_carry):
    np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(cells.CELLS))
def test_init_shapes(name):
  cell = cells.get_cell(name)
  params = cells.init_params(cell, jax.random.key(0), I, H, scale=0.1)
  g = cell.gates * H
  assert params["w_ih"].shape == (I, g)
  assert params["b"].shape == (g,)
  if cell.recurrent:
    assert params["w_hh"].shape == (H, g)
  else:
    assert "w_hh" not in params
  extras = cell.extra_params(H) if cell.extra_params else {}
  assert set(params) == {"w_ih", "b"} | (
      {"w_hh"} if cell.recurrent else set()
  ) | set(extras)
  for name_, shape in extras.items():
    assert params[name_].shape == shape
  assert max(float(jnp.abs(p).max()) for p in params.values()) <= 0.1
  assert len(cells.init_carry(cell, B, H)) == cell.carry_arity


@pytest.mark.parametrize("name", sorted(cells.CELLS))
def test_declared_derivative_contract_holds(name):
  """A cell declared additive depends on xw and hw only through xw + hw:
  its gradients with respect to the two are equal at any point (scan's
  hand-written backward stores one of them). A cell not declared additive
  is merely not assumed to be."""
  cell = cells.get_cell(name)
  if not cell.additive:
    return
  assert cell.recurrent, "an additive cell needs a recurrent product"
  k = jax.random.split(jax.random.key(3), 4)
  params = cells.init_params(cell, k[0], I, H, scale=0.5)
  carry = tuple(
      jax.random.normal(kk, (B, H))
      for kk in jax.random.split(k[1], cell.carry_arity)
  )
  xw = cells.split_gates(cell, jax.random.normal(k[2], (B, cell.gates * H)))
  hw = cells.split_gates(cell, jax.random.normal(k[3], (B, cell.gates * H)))
  out = lambda x, w: jnp.sum(jnp.sin(cell.pointwise(params, x, w, carry)[1]))
  dx, dw = jax.grad(out, argnums=(0, 1))(xw, hw)
  for a, b in zip(dx, dw):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
  # And the contract is one that can fail: the GRU is not additive.
  gru = cells.get_cell("gru")
  gp = cells.init_params(gru, k[0], I, H, scale=0.5)
  g_out = lambda x, w: jnp.sum(gru.pointwise(gp, x, w, carry[:1])[1])
  gx, gw = jax.grad(g_out, argnums=(0, 1))(
      cells.split_gates(gru, jax.random.normal(k[2], (B, 3 * H))),
      cells.split_gates(gru, jax.random.normal(k[3], (B, 3 * H))),
  )
  assert not np.allclose(gx[2], gw[2])


def test_unknown_cell_is_a_clear_error():
  with pytest.raises(ValueError, match="unknown cell 'lstn'"):
    cells.get_cell("lstn")


def python_loop(cell, params, carry, x_TBI, reset_TB=None, reverse=False):
  order = range(T - 1, -1, -1) if reverse else range(T)
  hs = [None] * T
  for t in order:
    if reset_TB is not None:
      carry = tuple(jnp.where(reset_TB[t][:, None], 0.0, c) for c in carry)
    xw = x_TBI[t] @ params["w_ih"] + params["b"]
    carry, hs[t] = cell.step(params, carry, xw)
  return carry, jnp.stack(hs)


@pytest.mark.parametrize("name", ["lstm", "gru", "rnn_tanh", "mingru"])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("with_reset", [False, True])
def test_scan_equals_python_loop(name, reverse, with_reset):
  cell, params, carry, x_TBI = random_setup(name, seed=1)
  reset_TB = None
  if with_reset:
    reset_TB = jax.random.bernoulli(jax.random.key(7), 0.3, (T, B))
  got_carry, got_h = scan.run_layer(
      cell, params, carry, x_TBI, reset_TB, reverse=reverse
  )
  want_carry, want_h = python_loop(
      cell, params, carry, x_TBI, reset_TB, reverse
  )
  np.testing.assert_allclose(got_h, want_h, rtol=1e-5, atol=1e-6)
  for g, w in zip(got_carry, want_carry):
    np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


def test_reset_at_start_equals_zero_carry():
  cell, params, carry, x_TBI = random_setup("lstm", seed=2)
  reset_TB = jnp.zeros((T, B), bool).at[0].set(True)
  _, h_reset = scan.run_layer(cell, params, carry, x_TBI, reset_TB)
  zeros = cells.init_carry(cell, B, H)
  _, h_zero = scan.run_layer(cell, params, zeros, x_TBI)
  np.testing.assert_allclose(h_reset, h_zero, rtol=1e-6, atol=1e-7)


def test_unroll_does_not_change_results():
  cell, params, carry, x_TBI = random_setup("gru", seed=3)
  _, h1 = scan.run_layer(cell, params, carry, x_TBI, unroll=1)
  _, h3 = scan.run_layer(cell, params, carry, x_TBI, unroll=3)
  np.testing.assert_allclose(h1, h3, rtol=1e-6, atol=1e-7)


def test_stack_feeds_each_layer_the_previous_output():
  cell, params, carry, x_TBI = random_setup("rnn_tanh", seed=4)
  top = cells.init_params(cell, jax.random.key(9), H, H, scale=0.5)
  carries, h = scan.run_stack(cell, [params, top], (carry, carry), x_TBI)
  c1, h1 = scan.run_layer(cell, params, carry, x_TBI)
  c2, h2 = scan.run_layer(cell, top, carry, h1)
  np.testing.assert_allclose(h, h2, rtol=1e-6)
  np.testing.assert_allclose(carries[0][0], c1[0], rtol=1e-6)
