"""Recurrence: the one place where cells are run over time with lax.scan.

Everything here is time-major ([T, B, ...]) because lax.scan iterates over
the leading axis. A reset mask zeroes the carry of stream b just before the
cell consumes position t (reset_TB[t, b] true): sentence and document
boundaries are data, not Python branches.

Two implementations of a layer compute the same function (tested to agree):

  "custom_vjp" (default): a hand-written backward. The reverse scan does only
      the per-step work (the cell's elementwise derivative and dh @ w_hh^T);
      the recurrent weight's gradient is one [H, T*B] x [T*B, G] matmul after
      it, instead of T small matmuls accumulated inside the loop, which is
      what autodiff of lax.scan emits.
  "autodiff": jax.grad of the plain lax.scan, the reference.

``remat_chunk`` > 0 runs the scan over T as an outer scan over chunks of that
many steps whose bodies are jax.checkpoint-ed: the backward keeps only the
carries at chunk boundaries and recomputes each chunk's steps.
"""

import functools

import jax
import jax.numpy as jnp

from rnnlm_jax import cells as cells_lib

IMPLS = ("custom_vjp", "autodiff")


def project_inputs(params, x_TBI):
  """The input projection of every time step as one matmul: [T, B, G]."""
  return jnp.einsum("tbi,ig->tbg", x_TBI, params["w_ih"]) + params["b"]


def _masked(carry, reset_B):
  if reset_B is None:
    return carry
  return tuple(jnp.where(reset_B[:, None], jnp.zeros_like(a), a) for a in carry)


def _plain_scan(cell, w_hh, b_G, carry, xw_TBG, reset_TB, reverse, unroll):
  """(final carry, h_TBH) by lax.scan of the cell step."""

  def body(c, inputs):
    xw_BG, reset_B = inputs
    c = _masked(c, reset_B)
    hw_BG = c[0] @ w_hh
    if b_G is not None:
      hw_BG = hw_BG + b_G
    return cell.pointwise(xw_BG, hw_BG, c)

  return jax.lax.scan(
      body, carry, (xw_TBG, reset_TB), reverse=reverse, unroll=unroll
  )


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2))
def _custom_scan(cell, reverse, unroll, w_hh, b_G, carry, xw_TBG, reset_TB):
  return _plain_scan(cell, w_hh, b_G, carry, xw_TBG, reset_TB, reverse, unroll)


def _custom_scan_fwd(cell, reverse, unroll, w_hh, b_G, carry, xw_TBG, reset_TB):
  def body(c, inputs):
    xw_BG, reset_B = inputs
    c = _masked(c, reset_B)
    hw_BG = c[0] @ w_hh
    if b_G is not None:
      hw_BG = hw_BG + b_G
    new_c, h_BH = cell.pointwise(xw_BG, hw_BG, c)
    # Saved for the backward: the carry this step consumed and hw_BG, so the
    # backward does not redo the recurrent matmul.
    return new_c, (h_BH, c, hw_BG)

  final, (h_TBH, carry_in_TB, hw_TBG) = jax.lax.scan(
      body, carry, (xw_TBG, reset_TB), reverse=reverse, unroll=unroll
  )
  res = (w_hh, b_G, xw_TBG, reset_TB, carry_in_TB, hw_TBG)
  return (final, h_TBH), res


def _custom_scan_bwd(cell, reverse, unroll, res, cts):
  w_hh, b_G, xw_TBG, reset_TB, carry_in_TB, hw_TBG = res
  dfinal, dh_TBH = cts
  w_hh_t = w_hh.T

  def body(dcarry, inputs):
    xw_BG, hw_BG, carry_in, reset_B, dh_BH = inputs
    _, vjp = jax.vjp(cell.pointwise, xw_BG, hw_BG, carry_in)
    dxw_BG, dhw_BG, dcarry_in = vjp((dcarry, dh_BH))
    dcarry_in = (dcarry_in[0] + dhw_BG @ w_hh_t,) + tuple(dcarry_in[1:])
    # A reset zeroed the carry before this step: nothing flows further back.
    return _masked(dcarry_in, reset_B), (dxw_BG, dhw_BG)

  dcarry, (dxw_TBG, dhw_TBG) = jax.lax.scan(
      body,
      tuple(dfinal),
      (xw_TBG, hw_TBG, carry_in_TB, reset_TB, dh_TBH),
      reverse=not reverse,
      unroll=unroll,
  )
  dw_hh = jnp.einsum("tbh,tbg->hg", carry_in_TB[0], dhw_TBG)
  db_G = None if b_G is None else dhw_TBG.sum(axis=(0, 1))
  return dw_hh, db_G, dcarry, dxw_TBG, None


_custom_scan.defvjp(_custom_scan_fwd, _custom_scan_bwd)


def _scan_xw(cell, params, carry, xw_TBG, reset_TB, reverse, unroll, impl):
  """The recurrence over projected inputs: (final carry, h_TBH)."""
  b_G = cells_lib.hidden_bias(params)
  if impl == "custom_vjp":
    if reset_TB is None:
      reset_TB = jnp.zeros(xw_TBG.shape[:2], bool)
    return _custom_scan(
        cell, reverse, unroll, params["w_hh"], b_G, carry, xw_TBG, reset_TB
    )
  if impl == "autodiff":
    return _plain_scan(
        cell, params["w_hh"], b_G, carry, xw_TBG, reset_TB, reverse, unroll
    )
  raise ValueError(f"unknown scan impl {impl!r}; choose one of {IMPLS}")


def _chunked(fn, carry, xs_T, chunk: int, reverse: bool):
  """``fn(carry, xs) -> (carry, ys)`` over time, as an outer scan over chunks
  of ``chunk`` steps whose bodies are rematerialised in the backward; a
  remainder shorter than a chunk runs as one more rematerialised call."""
  num_steps = jax.tree.leaves(xs_T)[0].shape[0]
  num_chunks, rest = divmod(num_steps, chunk)
  body = jax.checkpoint(fn)
  split = lambda a: (a[: num_chunks * chunk], a[num_chunks * chunk :])
  main, tail = jax.tree.map(lambda a: split(a)[0], xs_T), None
  if rest:
    tail = jax.tree.map(lambda a: split(a)[1], xs_T)
  chunked = jax.tree.map(
      lambda a: a.reshape((num_chunks, chunk) + a.shape[1:]), main
  )

  def run_main(c):
    if not num_chunks:
      return c, None
    c, ys = jax.lax.scan(body, c, chunked, reverse=reverse)
    return c, jax.tree.map(lambda a: a.reshape((-1,) + a.shape[2:]), ys)

  if not rest:
    return run_main(carry)
  if reverse:  # The tail comes first.
    carry, ys_tail = body(carry, tail)
    carry, ys_main = run_main(carry)
  else:
    carry, ys_main = run_main(carry)
    carry, ys_tail = body(carry, tail)
  if ys_main is None:
    return carry, ys_tail
  return carry, jax.tree.map(
      lambda a, b: jnp.concatenate([a, b]), ys_main, ys_tail
  )


def run_layer(
    cell: cells_lib.Cell,
    params,
    carry,
    x_TBI,
    reset_TB=None,
    reverse: bool = False,
    unroll: int = 1,
    impl: str = "custom_vjp",
    remat_chunk: int = 0,
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
    impl: "custom_vjp" or "autodiff" (see the module docstring); the same
      function, differentiated differently.
    remat_chunk: > 0: rematerialise the backward in chunks of this many
      steps (memory O(T / remat_chunk) carries instead of O(T) activations).

  Returns:
    (final carry, h_TBH).
  """
  if remat_chunk <= 0 or remat_chunk >= x_TBI.shape[0]:
    xw_TBG = project_inputs(params, x_TBI)
    return _scan_xw(
        cell, params, carry, xw_TBG, reset_TB, reverse, unroll, impl
    )

  def chunk_fn(c, xs):
    # The projection runs inside the chunk, so the backward keeps the inputs
    # ([T, B, I]) rather than their projections ([T, B, G]).
    x, reset = xs
    xw = project_inputs(params, x)
    return _scan_xw(cell, params, c, xw, reset, reverse, unroll, impl)

  if reset_TB is None:
    reset_TB = jnp.zeros(x_TBI.shape[:2], bool)
  return _chunked(chunk_fn, carry, (x_TBI, reset_TB), remat_chunk, reverse)


def run_stack(
    cell: cells_lib.Cell,
    layers,
    carries,
    x_TBI,
    reset_TB=None,
    *,
    between=None,
    unroll: int = 1,
    impl: str = "custom_vjp",
    remat_chunk: int = 0,
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
    carry, h = run_layer(
        cell,
        params,
        carry,
        h,
        reset_TB,
        unroll=unroll,
        impl=impl,
        remat_chunk=remat_chunk,
    )
    new_carries.append(carry)
  return tuple(new_carries), h
