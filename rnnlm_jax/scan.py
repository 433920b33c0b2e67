"""Recurrence: the one place where cells are run over time with lax.scan.

Everything here is time-major ([T, B, ...]) because lax.scan iterates over
the leading axis. A reset mask zeroes the carry of stream b just before the
cell consumes position t (reset_TB[t, b] true): sentence and document
boundaries are data, not Python branches.
"""

import jax
import jax.numpy as jnp

from rnnlm_jax import cells as cells_lib


def project_inputs(params, x_TBI):
  """The input projection of every time step as one matmul: [T, B, G]."""
  return jnp.einsum("tbi,ig->tbg", x_TBI, params["w_ih"]) + params["b"]


def run_layer(
    cell: cells_lib.Cell,
    params,
    carry,
    x_TBI,
    reset_TB=None,
    reverse: bool = False,
    unroll: int = 1,
):
  """Runs one recurrent layer over a sequence.

  Args:
    cell: the cell.
    params: the cell's parameters.
    carry: initial carry, a tuple of [B, H] arrays.
    x_TBI: inputs.
    reset_TB: optional boolean mask; where true the carry is zeroed before
      that position is consumed.
    reverse: run from the last position to the first (outputs stay aligned
      with their positions).
    unroll: lax.scan unroll factor.

  Returns:
    (final carry, h_TBH).
  """
  xw_TBG = project_inputs(params, x_TBI)

  if reset_TB is None:

    def body(c, xw_BG):
      return cell.step(params, c, xw_BG)

    return jax.lax.scan(body, carry, xw_TBG, reverse=reverse, unroll=unroll)

  def body_with_reset(c, inputs):
    xw_BG, reset_B = inputs
    c = tuple(jnp.where(reset_B[:, None], jnp.zeros_like(a), a) for a in c)
    return cell.step(params, c, xw_BG)

  return jax.lax.scan(
      body_with_reset, carry, (xw_TBG, reset_TB), reverse=reverse, unroll=unroll
  )


def run_stack(
    cell: cells_lib.Cell,
    layers,
    carries,
    x_TBI,
    reset_TB=None,
    *,
    between=None,
    unroll: int = 1,
):
  """Runs stacked layers; ``between(l, h_TBH)`` maps layer l's output on its
  way to layer l + 1 (dropout, for instance).

  Returns:
    (tuple of final carries, one per layer; h_TBH of the top layer).
  """
  h = x_TBI
  new_carries = []
  for l, (params, carry) in enumerate(zip(layers, carries)):
    if l > 0 and between is not None:
      h = between(l, h)
    carry, h = run_layer(cell, params, carry, h, reset_TB, unroll=unroll)
    new_carries.append(carry)
  return tuple(new_carries), h
