"""Recurrent cells as pure functions over explicit parameter dicts.

A cell is three pure functions:

  init(key, input_dim, hidden, scale) -> params
  init_carry(batch, hidden)           -> carry (a tuple of [B, H] arrays)
  step(params, carry, xw_BG)          -> (carry, h_BH)

``step`` receives the input already projected (``xw = x @ w_ih + b``): the
projection for all time steps is one matmul done by ``scan.project_inputs``
outside the scan, so only the recurrent matmul ``h @ w_hh`` runs per step.
Gate matmuls are fused: ``w_ih`` is [I, G] and ``w_hh`` is [H, G].

Each step is ``pointwise(xw_gates, hw_gates, carry)`` after the recurrent
matmul ``hw = h @ w_hh (+ hidden_bias)``: the elementwise rest of the cell,
split out so that a hand-written backward (``scan``) can differentiate it
alone and do the matmuls of all time steps at once. It takes the projections
as tuples of ``gates`` blocks, each shaped like a carry array, so the same
function serves the batch-major ([B, H]) and the feature-major ([H, B])
recurrence of ``scan``; and each block is a separate array, which XLA:CPU
compiles into vectorised code where slices of one [.., G] array inside the
loop body were compiled scalar.

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
  # pointwise(xw_gates, hw_gates, carry) -> (carry, h); h is carry[0].
  pointwise: Callable
  # Whether pointwise depends on xw and hw only through xw + hw, so that
  # their gradients are one array.
  additive: bool

  def step(self, params, carry, xw_BG):
    """One time step: (carry, h_BH)."""
    hw_BG = recurrent_matmul(params, carry[0])
    return self.pointwise(
        split_gates(self, xw_BG), split_gates(self, hw_BG), carry
    )


def split_gates(cell: Cell, a, axis: int = -1):
  """The ``cell.gates`` blocks of ``a`` along ``axis``, a tuple."""
  return tuple(jnp.split(a, cell.gates, axis=axis))


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
  def pointwise(xw_gates, hw_gates, carry):
    del carry  # The carry enters only through hw.
    h = activation(xw_gates[0] + hw_gates[0])
    return (h,), h

  return pointwise


def _lstm_pointwise(xw_gates, hw_gates, carry):
  _, c = carry
  i, f, g, o = (x + h for x, h in zip(xw_gates, hw_gates))
  c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
  h = jax.nn.sigmoid(o) * jnp.tanh(c)
  return (h, c), h


def _gru_pointwise(xw_gates, hw_gates, carry):
  """hw_gates[2] includes b_hn (see hidden_bias)."""
  (h,) = carry
  x_r, x_z, x_n = xw_gates
  h_r, h_z, h_n = hw_gates
  r = jax.nn.sigmoid(x_r + h_r)
  z = jax.nn.sigmoid(x_z + h_z)
  n = jnp.tanh(x_n + r * h_n)
  h = (1.0 - z) * n + z * h
  return (h,), h


CELLS = {
    "rnn_tanh": Cell("rnn_tanh", 1, 1, _elman(jnp.tanh), True),
    "rnn_sigmoid": Cell("rnn_sigmoid", 1, 1, _elman(jax.nn.sigmoid), True),
    "rnn_relu": Cell("rnn_relu", 1, 1, _elman(jax.nn.relu), True),
    "lstm": Cell("lstm", 4, 2, _lstm_pointwise, True),
    "gru": Cell("gru", 3, 1, _gru_pointwise, False),
}


def get_cell(name: str) -> Cell:
  try:
    return CELLS[name]
  except KeyError:
    raise ValueError(
        f"unknown cell {name!r}; choose one of {sorted(CELLS)}"
    ) from None
