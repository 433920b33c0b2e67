"""Recurrent cells as pure functions over explicit parameter dicts.

A cell is three pure functions:

  init(key, input_dim, hidden, scale) -> params
  init_carry(batch, hidden)           -> carry (a tuple of [B, H] arrays)
  step(params, carry, xw_BG)          -> (carry, h_BH)

``step`` receives the input already projected (``xw = x @ w_ih + b``): the
projection for all time steps is one matmul done by ``scan.project_inputs``
outside the scan, so only the recurrent matmul ``h @ w_hh`` runs per step.
Gate matmuls are fused: ``w_ih`` is [I, G] and ``w_hh`` is [H, G].

Each step is ``pointwise(xw_BG, hw_BG, carry)`` after the recurrent matmul
``hw = h @ w_hh (+ hidden_bias)``: the elementwise rest of the cell, split out
so that a hand-written backward (``scan``) can differentiate it alone and do
the matmuls of all time steps at once. ``pointwise(..., axis=0)`` takes the
same arrays transposed (gates along axis 0: [G, B], carry [H, B]), for the
feature-major recurrence of ``scan``.

Gate order follows PyTorch (LSTM: i, f, g, o; GRU: r, z, n) so that
nn.LSTM / nn.GRU weights import by transposition. The GRU keeps the hidden
bias of its candidate gate (``b_hn``) apart, because PyTorch applies it inside
the reset product: n = tanh(W_in x + b_in + r * (W_hn h + b_hn)).
"""

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp


class Cell(NamedTuple):
  name: str
  gates: int  # G = gates * H.
  carry_arity: int  # Number of [B, H] arrays in the carry.
  # pointwise(xw_BG, hw_BG, carry, axis=-1) -> (carry, h_BH); h_BH is
  # carry[0]; axis: the gate axis.
  pointwise: Callable

  def step(self, params, carry, xw_BG):
    """One time step: (carry, h_BH)."""
    return self.pointwise(xw_BG, recurrent_matmul(params, carry[0]), carry)


def hidden_bias(params):
  """The bias added to ``h @ w_hh`` ([G]; the GRU's b_hn in its candidate
  block, zeros elsewhere), or None for cells without one."""
  if "b_hn" not in params:
    return None
  b_hn = params["b_hn"]
  return jnp.concatenate([jnp.zeros(2 * b_hn.shape[0], b_hn.dtype), b_hn])


def recurrent_matmul(params, h_BH):
  """hw_BG = h @ w_hh, plus the hidden bias where the cell has one."""
  hw_BG = h_BH @ params["w_hh"]
  b_G = hidden_bias(params)
  return hw_BG if b_G is None else hw_BG + b_G


def _uniform(key, shape, scale):
  return jax.random.uniform(key, shape, jnp.float32, -scale, scale)


def init_params(cell: Cell, key, input_dim: int, hidden: int, scale: float):
  """Uniform(-scale, scale) init of every weight and bias (Zaremba et al.).

  scale <= 0 selects PyTorch's default, 1/sqrt(hidden).
  """
  if scale <= 0:
    scale = hidden**-0.5
  g = cell.gates * hidden
  k_ih, k_hh, k_b, k_bn = jax.random.split(key, 4)
  params = {
      "w_ih": _uniform(k_ih, (input_dim, g), scale),
      "w_hh": _uniform(k_hh, (hidden, g), scale),
      "b": _uniform(k_b, (g,), scale),
  }
  if cell.name == "gru":
    params["b_hn"] = _uniform(k_bn, (hidden,), scale)
  return params


def init_carry(cell: Cell, batch: int, hidden: int):
  return tuple(
      jnp.zeros((batch, hidden), jnp.float32) for _ in range(cell.carry_arity)
  )


def _elman(activation):
  def pointwise(xw_BG, hw_BG, carry, axis=-1):
    del carry, axis  # The carry enters only through hw_BG.
    h_BH = activation(xw_BG + hw_BG)
    return (h_BH,), h_BH

  return pointwise


def _lstm_pointwise(xw_BG, hw_BG, carry, axis=-1):
  _, c_BH = carry
  i, f, g, o = jnp.split(xw_BG + hw_BG, 4, axis=axis)
  c_BH = jax.nn.sigmoid(f) * c_BH + jax.nn.sigmoid(i) * jnp.tanh(g)
  h_BH = jax.nn.sigmoid(o) * jnp.tanh(c_BH)
  return (h_BH, c_BH), h_BH


def _gru_pointwise(xw_BG, hw_BG, carry, axis=-1):
  """hw_BG includes b_hn in its candidate block (see hidden_bias)."""
  (h_BH,) = carry
  x_r, x_z, x_n = jnp.split(xw_BG, 3, axis=axis)
  h_r, h_z, h_n = jnp.split(hw_BG, 3, axis=axis)
  r = jax.nn.sigmoid(x_r + h_r)
  z = jax.nn.sigmoid(x_z + h_z)
  n = jnp.tanh(x_n + r * h_n)
  h_BH = (1.0 - z) * n + z * h_BH
  return (h_BH,), h_BH


CELLS = {
    "rnn_tanh": Cell("rnn_tanh", 1, 1, _elman(jnp.tanh)),
    "rnn_sigmoid": Cell("rnn_sigmoid", 1, 1, _elman(jax.nn.sigmoid)),
    "rnn_relu": Cell("rnn_relu", 1, 1, _elman(jax.nn.relu)),
    "lstm": Cell("lstm", 4, 2, _lstm_pointwise),
    "gru": Cell("gru", 3, 1, _gru_pointwise),
}


def get_cell(name: str) -> Cell:
  try:
    return CELLS[name]
  except KeyError:
    raise ValueError(
        f"unknown cell {name!r}; choose one of {sorted(CELLS)}"
    ) from None
