"""Recurrent cells as pure functions over explicit parameter dicts.

A cell is the elementwise part of one time step:

  pointwise(params, xw_gates, hw_gates, carry) -> (carry, h_BH)

``xw_gates`` is the input projection ``x @ w_ih + b`` of this step, split
into ``gates`` blocks of [B, H]; the projection of all time steps is one
matmul outside the scan (``scan.project_inputs``). ``hw_gates`` is the
recurrent product ``h @ w_hh`` split likewise, or None for a cell declared
``recurrent=False`` (a minGRU-style cell whose gates see only the input).
``params`` is the layer's parameter dict, so a cell may use weights of its
own (``extra_params``) in its elementwise part. h is carry[0].

Adding a cell is one such function and one line in CELLS. The reference
scan (``scan``) runs and differentiates any cell; a fast path
(``rnnlm_jax.backends``) is used only for the cell objects it was written
for, and only after it is checked against this module's function.

Gate order follows PyTorch (LSTM: i, f, g, o; GRU: r, z, n) so that
nn.LSTM / nn.GRU weights import by transposition. The GRU keeps the hidden
bias of its candidate gate (``b_hn``) as a parameter of its own, because
PyTorch applies it inside the reset product: n = tanh(W_in x + b_in + r *
(W_hn h + b_hn)).
"""

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp


class Cell(NamedTuple):
  name: str
  gates: int  # G = gates * H: the width of the input projection.
  carry_arity: int  # Number of [B, H] arrays in the carry.
  # pointwise(params, xw_gates, hw_gates, carry) -> (carry, h).
  pointwise: Callable
  # Whether each step multiplies the state by a recurrent weight w_hh [H, G].
  recurrent: bool = True
  # extra_params(hidden) -> {name: shape}: parameters beyond w_ih, b (and
  # w_hh) that pointwise reads from params.
  extra_params: Callable | None = None
  # A derivative contract that scan's hand-written backward relies on: that
  # pointwise depends on xw and hw only through xw + hw, so their gradients
  # are one array. tests/cells_test.py checks it for every registered cell.
  additive: bool = False

  def step(self, params, carry, xw_BG):
    """One time step: (carry, h_BH)."""
    hw_BG = carry[0] @ params["w_hh"] if self.recurrent else None
    return self.pointwise(
        params, split_gates(self, xw_BG), split_gates(self, hw_BG), carry
    )


def split_gates(cell: Cell, a, axis: int = -1):
  """The ``cell.gates`` blocks of ``a`` along ``axis``, a tuple (None for
  None)."""
  if a is None:
    return None
  return tuple(jnp.split(a, cell.gates, axis=axis))


def extra_param_names(cell: Cell, hidden: int = 1) -> tuple:
  """The names of the cell's own parameters, in a fixed order."""
  return tuple(sorted(cell.extra_params(hidden))) if cell.extra_params else ()


def _uniform(key, shape, scale):
  return jax.random.uniform(key, shape, jnp.float32, -scale, scale)


def init_params(cell: Cell, key, input_dim: int, hidden: int, scale: float):
  """Uniform(-scale, scale) init of every weight and bias (Zaremba et al.).

  scale <= 0 selects PyTorch's default, 1/sqrt(hidden).
  """
  if scale <= 0:
    scale = hidden**-0.5
  g = cell.gates * hidden
  k_ih, k_hh, k_b, k_extra = jax.random.split(key, 4)
  params = {
      "w_ih": _uniform(k_ih, (input_dim, g), scale),
      "b": _uniform(k_b, (g,), scale),
  }
  if cell.recurrent:
    params["w_hh"] = _uniform(k_hh, (hidden, g), scale)
  names = extra_param_names(cell, hidden)
  shapes = cell.extra_params(hidden) if names else {}
  keys = [k_extra] if len(names) == 1 else jax.random.split(k_extra, len(names))
  for name, k in zip(names, keys):
    params[name] = _uniform(k, shapes[name], scale)
  return params


def init_carry(cell: Cell, batch: int, hidden: int):
  return tuple(
      jnp.zeros((batch, hidden), jnp.float32) for _ in range(cell.carry_arity)
  )


def _elman(activation):
  def pointwise(params, xw_gates, hw_gates, carry):
    del params, carry  # The carry enters only through hw.
    h = activation(xw_gates[0] + hw_gates[0])
    return (h,), h

  return pointwise


def _lstm_pointwise(params, xw_gates, hw_gates, carry):
  del params
  _, c = carry
  i, f, g, o = (x + h for x, h in zip(xw_gates, hw_gates))
  c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
  h = jax.nn.sigmoid(o) * jnp.tanh(c)
  return (h, c), h


def _gru_pointwise(params, xw_gates, hw_gates, carry):
  (h,) = carry
  x_r, x_z, x_n = xw_gates
  h_r, h_z, h_n = hw_gates
  r = jax.nn.sigmoid(x_r + h_r)
  z = jax.nn.sigmoid(x_z + h_z)
  n = jnp.tanh(x_n + r * (h_n + params["b_hn"]))
  h = (1.0 - z) * n + z * h
  return (h,), h


def _mingru_pointwise(params, xw_gates, hw_gates, carry):
  """minGRU (Feng et al. 2024): the gate and the candidate see only the
  input, so the recurrence is linear in h (no recurrent matmul)."""
  del params, hw_gates
  (h,) = carry
  x_z, x_h = xw_gates
  z = jax.nn.sigmoid(x_z)
  h = (1.0 - z) * h + z * x_h
  return (h,), h


CELLS = {
    "rnn_tanh": Cell("rnn_tanh", 1, 1, _elman(jnp.tanh), additive=True),
    "rnn_sigmoid": Cell(
        "rnn_sigmoid", 1, 1, _elman(jax.nn.sigmoid), additive=True
    ),
    "rnn_relu": Cell("rnn_relu", 1, 1, _elman(jax.nn.relu), additive=True),
    "lstm": Cell("lstm", 4, 2, _lstm_pointwise, additive=True),
    "gru": Cell(
        "gru", 3, 1, _gru_pointwise, extra_params=lambda h: {"b_hn": (h,)}
    ),
    "mingru": Cell("mingru", 2, 1, _mingru_pointwise, recurrent=False),
}


def get_cell(name: str) -> Cell:
  try:
    return CELLS[name]
  except KeyError:
    raise ValueError(
        f"unknown cell {name!r}; choose one of {sorted(CELLS)}"
    ) from None
