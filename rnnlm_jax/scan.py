"""Recurrence: the one place where cells are run over time with lax.scan.

Everything here is time-major ([T, B, ...]) because lax.scan iterates over
the leading axis. A reset mask zeroes the carry of stream b just before the
cell consumes position t (reset_TB[t, b] true): sentence and document
boundaries are data, not Python branches.

Two implementations of a layer compute the same function (tested to agree,
and checked again at the start of every run by rnnlm_jax.backends):

  "autodiff": jax.grad of the plain lax.scan, the reference.
  "custom_vjp": a hand-written backward. The reverse scan does only the
      per-step work (the cell's elementwise derivative and dh @ w_hh^T);
      the recurrent weight's gradient is one [H, T*B] x [T*B, G] matmul after
      it, instead of T small matmuls accumulated inside the loop, which is
      what autodiff of lax.scan emits.

A layer may also be handed a ``fast`` implementation of the same function
(rnnlm_jax.backends: a C++ layer, cuDNN's LSTM), which then runs instead.

``run_stack(..., time_chunks=n)`` runs the stack chunk by chunk over time:
each chunk through every layer, the carries handed from chunk to chunk. It is
the same function; in the dataflow graph, layer l + 1 can then work on chunk
k while layer l works on chunk k + 1, and XLA:CPU runs such independent work
on separate cores.

``remat_chunk`` > 0 runs the scan over T as an outer scan over chunks of that
many steps whose bodies are jax.checkpoint-ed: the backward keeps only the
carries at chunk boundaries and recomputes each chunk's steps.
"""

import functools

import jax
import jax.numpy as jnp

from rnnlm_jax import cells as cells_lib
from rnnlm_jax import matmul

IMPLS = ("custom_vjp", "autodiff")


def project_inputs(params, x_TBI, dot=matmul.xla_dot):
  """The input projection of every time step as one matmul: [T, B, G] (or
  [..., G] for inputs [..., I])."""
  return matmul.project(x_TBI, params["w_ih"], params["b"], dot)


def _masked(carry, reset_B):
  """Zeroes the carry of the streams reset_B marks."""
  if reset_B is None:
    return carry
  return tuple(jnp.where(reset_B[:, None], jnp.zeros_like(a), a) for a in carry)


def _extras(cell, params):
  """The cell's own parameters (cells.Cell.extra_params), a dict."""
  return {k: params[k] for k in cells_lib.extra_param_names(cell)}


def _recurrence(
    cell, params, carry, xw_TBG, reset_TB, reverse, unroll, save, dot
):
  """lax.scan of the cell step: (final carry, h_TBH), and with ``save`` the
  backward's residuals (each step's h, input carry and the gate blocks of
  h @ w_hh). The inputs enter as separate gate blocks: XLA:CPU compiles a
  loop body that slices one step of a [T, B, G] input into gates as scalar
  code, and vectorises it when each gate is its own input."""
  xw_gates_T = cells_lib.split_gates(cell, xw_TBG)

  def body(c, inputs):
    xw, reset_B = inputs
    c = _masked(c, reset_B)
    hw = None
    if cell.recurrent:
      hw = cells_lib.split_gates(cell, dot(c[0], params["w_hh"]))
    new_c, h = cell.pointwise(params, xw, hw, c)
    return new_c, ((h, c, hw) if save else h)

  return jax.lax.scan(
      body, carry, (xw_gates_T, reset_TB), reverse=reverse, unroll=unroll
  )


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2, 3))
def _custom_scan(cell, reverse, unroll, dot, params, carry, xw_TBG, reset_TB):
  return _recurrence(
      cell, params, carry, xw_TBG, reset_TB, reverse, unroll, False, dot
  )


def _custom_scan_fwd(
    cell, reverse, unroll, dot, params, carry, xw_TBG, reset_TB
):
  # Saved for the backward: each step's input carry and hw, so the backward
  # does not redo the recurrent matmul.
  final, (h, carry_in, hw_gates) = _recurrence(
      cell, params, carry, xw_TBG, reset_TB, reverse, unroll, True, dot
  )
  res = (params, xw_TBG, reset_TB, carry_in, hw_gates)
  return (final, h), res


def _custom_scan_bwd(cell, reverse, unroll, dot, res, cts):
  params, xw_TBG, reset_TB, carry_in_T, hw_gates_T = res
  dfinal, dh_TBH = cts
  extras = _extras(cell, params)
  rest = {k: v for k, v in params.items() if k not in extras}
  additive = cell.additive and cell.recurrent  # Else there is no dhw.

  def body(acc, inputs):
    dcarry, dextras = acc
    xw, hw, carry_in, reset_B, dh = inputs
    step = lambda e, x, w, c: cell.pointwise({**rest, **e}, x, w, c)
    _, vjp = jax.vjp(step, extras, xw, hw, carry_in)
    de, dxw, dhw, dcarry_in = vjp((dcarry, dh))
    dextras = jax.tree.map(jnp.add, dextras, de)
    if cell.recurrent:
      dhw = jnp.concatenate(dhw, -1)
      back = dot(dhw, params["w_hh"], trans_b=True)
      dcarry_in = (dcarry_in[0] + back,) + tuple(dcarry_in[1:])
    # A reset zeroed the carry before this step: nothing flows further back.
    dcarry_in = _masked(dcarry_in, reset_B)
    # An additive cell's dxw is dhw: the scan stores one of them.
    dxw = None if additive else jnp.concatenate(dxw, -1)
    return (dcarry_in, dextras), (dxw, dhw)

  zeros = jax.tree.map(jnp.zeros_like, extras)
  (dcarry, dextras), (dxw, dhw) = jax.lax.scan(
      body,
      (tuple(dfinal), zeros),
      (
          cells_lib.split_gates(cell, xw_TBG),
          hw_gates_T,
          carry_in_T,
          reset_TB,
          dh_TBH,
      ),
      reverse=not reverse,
      unroll=unroll,
  )
  if additive:
    dxw = dhw
  dparams = dict(dextras)
  # The recurrent weight's gradient: one matmul over all T x B rows.
  if cell.recurrent:
    rows = lambda a: a.reshape((-1, a.shape[-1]))
    dparams["w_hh"] = matmul.weight_grad(rows(carry_in_T[0]), rows(dhw), dot)
  return dparams, dcarry, dxw, None


_custom_scan.defvjp(_custom_scan_fwd, _custom_scan_bwd)


def _scan_xw(
    cell, params, carry, xw_TBG, reset_TB, reverse, unroll, impl, dot, fast
):
  """The recurrence over projected inputs: (final carry, h_TBH)."""
  if fast is not None:
    if reset_TB is None:
      reset_TB = jnp.zeros(xw_TBG.shape[:2], bool)
    return fast(params, carry, xw_TBG, reset_TB, reverse)
  if impl == "autodiff":
    return _recurrence(
        cell, params, carry, xw_TBG, reset_TB, reverse, unroll, False, dot
    )
  if impl != "custom_vjp":
    raise ValueError(f"unknown scan impl {impl!r}; choose one of {IMPLS}")
  if reset_TB is None:
    reset_TB = jnp.zeros(xw_TBG.shape[:2], bool)
  # The input projection's parameters are differentiated through
  # project_inputs (from dxw), not here.
  recurrent = {k: v for k, v in params.items() if k not in ("w_ih", "b")}
  return _custom_scan(
      cell, reverse, unroll, dot, recurrent, tuple(carry), xw_TBG, reset_TB
  )


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
    xw_TBG=None,
    dot=matmul.xla_dot,
    fast=None,
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
    impl: one of IMPLS (see the module docstring); the same function,
      differentiated differently.
    remat_chunk: > 0: rematerialise the backward in chunks of this many
      steps (memory O(T / remat_chunk) carries instead of O(T) activations).
    xw_TBG: the input projection, already computed (x_TBI is then unused
      and may be None); not with remat.
    dot: the GEMM (rnnlm_jax.matmul); the same function.
    fast: an implementation of this layer from rnnlm_jax.backends (a
      backends.FastLayer), or None; the same function.

  Returns:
    (final carry, h_TBH).
  """
  if fast is not None and fast.on_inputs:
    if xw_TBG is not None or remat_chunk:
      raise ValueError(f"the {fast.name} layer projects its own inputs")
    return fast(params, carry, x_TBI, reset_TB, reverse)
  if xw_TBG is not None and 0 < remat_chunk < xw_TBG.shape[0]:
    raise ValueError("a precomputed input projection cannot be remat-ed")
  if xw_TBG is None and not 0 < remat_chunk < x_TBI.shape[0]:
    xw_TBG = project_inputs(params, x_TBI, dot)
  if xw_TBG is not None:
    return _scan_xw(
        cell, params, carry, xw_TBG, reset_TB, reverse, unroll, impl, dot, fast
    )

  def chunk_fn(c, xs):
    # The projection runs inside the chunk, so the backward keeps the inputs
    # ([T, B, I]) rather than their projections ([T, B, G]).
    x, reset = xs
    xw = project_inputs(params, x, dot)
    return _scan_xw(
        cell, params, c, xw, reset, reverse, unroll, impl, dot, fast
    )

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
    first_xw_TBG=None,
    time_chunks: int = 1,
    dot=matmul.xla_dot,
    fast=None,
):
  """Runs stacked layers; ``between(l, h_TBH, steps)`` maps layer l's output
  on its way to layer l + 1 (dropout, for instance), where ``steps`` is the
  slice of time that h_TBH covers. ``first_xw_TBG``: layer 0's input
  projection, already computed (x_TBI unused). ``time_chunks``: how many
  chunks to run time in (see the module docstring). ``fast(steps)``: the
  fast layer (see run_layer) for a chunk of that many steps, or None.
  ``time_chunks``, ``dot`` and ``fast`` compute the same function.

  Returns:
    (tuple of final carries, one per layer; h_TBH of the top layer).
  """
  inputs = x_TBI if first_xw_TBG is None else first_xw_TBG
  num_steps = inputs.shape[0]
  chunks = max(1, min(time_chunks, num_steps))
  bounds = [num_steps * k // chunks for k in range(chunks + 1)]
  take = lambda a, steps: None if a is None else a[steps]
  outputs = []
  carries = tuple(carries)
  for start, stop in zip(bounds[:-1], bounds[1:]):
    steps = slice(start, stop) if chunks > 1 else slice(None)
    h = take(x_TBI, steps)
    layer_fast = None if fast is None else fast(stop - start)
    new_carries = []
    for l, (params, carry) in enumerate(zip(layers, carries)):
      if l > 0 and between is not None:
        h = between(l, h, steps)
      carry, h = run_layer(
          cell,
          params,
          carry,
          h,
          take(reset_TB, steps),
          unroll=unroll,
          impl=impl,
          remat_chunk=remat_chunk,
          xw_TBG=take(first_xw_TBG, steps) if l == 0 else None,
          dot=dot,
          fast=layer_fast,
      )
      new_carries.append(carry)
    carries = tuple(new_carries)
    outputs.append(h)
  return carries, outputs[0] if chunks == 1 else jnp.concatenate(outputs)
