"""Recurrence: the one place where cells are run over time with lax.scan.

Everything here is time-major ([T, B, ...]) because lax.scan iterates over
the leading axis. A reset mask zeroes the carry of stream b just before the
cell consumes position t (reset_TB[t, b] true): sentence and document
boundaries are data, not Python branches.

Two implementations of a layer compute the same function (tested to agree):

  "custom_vjp": a hand-written backward. The reverse scan does only
      the per-step work (the cell's elementwise derivative and dh @ w_hh^T);
      the recurrent weight's gradient is one [H, T*B] x [T*B, G] matmul after
      it, instead of T small matmuls accumulated inside the loop, which is
      what autodiff of lax.scan emits.
  "autodiff": jax.grad of the plain lax.scan, the reference.

A third runs every cell of rnnlm_jax.cells under a BLAS library
(rnnlm_jax.blas):

  "fused": the whole layer, forward and backward, as one custom call each
      (rnnlm_jax.fused): no compiled loop of small operations per step.

On a GPU, one more runs the LSTM:

  "cudnn": the whole layer as cuDNN's LSTM kernel through
      jax.experimental.rnn (rnnlm_jax.cudnn).

"auto" (the default) is "fused" where it applies (a cell of fused.CELLS,
batch-major, on CPU under a BLAS library or under XLA's GEMM on a single
device, float32 or float64) over at least FUSED_MIN_STEPS steps, and
"custom_vjp" elsewhere.

``run_stack(..., time_chunks=n)`` runs the stack chunk by chunk over time:
each chunk through every layer, the carries handed from chunk to chunk. It is
the same function; in the dataflow graph, layer l + 1 can then work on chunk
k while layer l works on chunk k + 1, and XLA:CPU runs such independent work
on separate cores, where one small per-step matmul split over both cores
keeps neither busy.

``remat_chunk`` > 0 runs the scan over T as an outer scan over chunks of that
many steps whose bodies are jax.checkpoint-ed: the backward keeps only the
carries at chunk boundaries and recomputes each chunk's steps.
"""

import functools

import jax
import jax.numpy as jnp

from rnnlm_jax import blas
from rnnlm_jax import cells as cells_lib
from rnnlm_jax import cudnn
from rnnlm_jax import fused
from rnnlm_jax import matmul

IMPLS = ("auto", "fused", "custom_vjp", "autodiff", "cudnn")
# The fused layer regroups and packs its weight once a call: over 35 and
# 100 steps it was faster than custom_vjp (forward 1.02-1.26x, forward and
# backward 1.2-1.6x), over one step (a sampler's) 0.28-0.83x, and it was
# still behind over 8 and 16 steps in a forward-only timing.
FUSED_MIN_STEPS = 32


def project_inputs(params, x_TBI, gemm: str = "xla"):
  """The input projection of every time step as one matmul: [T, B, G] (or
  [..., G] for inputs [..., I]); gemm: a resolved rnnlm_jax.blas backend."""
  return matmul.project(x_TBI, params["w_ih"], params["b"], gemm)


LAYOUTS = ("batch_major", "feature_major", "auto")


def _masked(carry, reset_B, axis=-1):
  """Zeroes the carry of the streams reset_B marks; axis: the carry's
  feature axis (-1 for [B, H], 0 for [H, B])."""
  if reset_B is None:
    return carry
  mask = reset_B[:, None] if axis == -1 else reset_B[None, :]
  return tuple(jnp.where(mask, jnp.zeros_like(a), a) for a in carry)


def _fm(a_TXY):
  """[T, B, X] <-> [T, X, B]."""
  return jnp.swapaxes(a_TXY, -1, -2)


def _transposed(carry):
  return tuple(a.T for a in carry)


def _gate_inputs(cell, xw_TBG, fm):
  """The scan's per-step inputs: xw_TBG as a tuple of gate blocks, each
  [T, B, H], or [T, H, B] feature-major. Separate arrays: XLA:CPU compiles
  a loop body that slices one step of a [T, ..., G] input into several gates
  as scalar code, and vectorises it when each gate is its own input."""
  xw_T = _fm(xw_TBG) if fm else xw_TBG
  return cells_lib.split_gates(cell, xw_T, 1 if fm else -1)


def _recurrence(
    cell, w_hh, b_G, carry, xw_gates_T, reset_TB, reverse, unroll, fm, save,
    gemm,
):
  """lax.scan of the cell step over the gate blocks of _gate_inputs:
  (final carry, h_TBH), and with ``save`` the backward's residuals (each
  step's h, input carry and the gate blocks of h @ w_hh, in the layout the
  scan ran in).

  fm (feature-major): the scan runs on transposed states, hw_GB = w_hh^T @
  h_HB with w_hh^T materialised once, so each step's matmul streams the
  [G, H] weight and packs only the small [H, B] state; on CPU that beats
  h_BH @ w_hh, which repacks the whole weight every step, at widths where
  the weight leaves the cache. Carries and outputs keep [B, ...] outside.
  gemm: the step's matmul backend (rnnlm_jax.blas, resolved).
  """
  axis = 0 if fm else -1
  if fm and gemm != "xla":
    recurrent = lambda h_HB: blas.dot(w_hh, h_HB, gemm, trans_a=True)
  elif fm:
    # The barrier keeps XLA from folding the transpose into every step's
    # matmul (a strided read of w_hh, several times slower).
    w_GH = jax.lax.optimization_barrier(w_hh.T)
    recurrent = lambda h_HB: w_GH @ h_HB
  else:
    recurrent = lambda h_BH: blas.dot(h_BH, w_hh, gemm)
  bias = b_G if b_G is None or not fm else b_G[:, None]
  if fm:
    carry = _transposed(carry)

  def body(c, inputs):
    xw, reset_B = inputs
    c = _masked(c, reset_B, axis)
    hw = recurrent(c[0])
    if bias is not None:
      hw = hw + bias
    hw = cells_lib.split_gates(cell, hw, axis)
    new_c, h = cell.pointwise(xw, hw, c)
    return new_c, ((h, c, hw) if save else h)

  final, ys = jax.lax.scan(
      body, carry, (xw_gates_T, reset_TB), reverse=reverse, unroll=unroll
  )
  if not fm:
    return final, ys
  final = _transposed(final)
  return final, (jax.tree.map(_fm, ys) if not save else ys)


def _plain_scan(
    cell, w_hh, b_G, carry, xw_TBG, reset_TB, reverse, unroll, gemm
):
  """(final carry, h_TBH) by lax.scan of the cell step."""
  xw_gates = _gate_inputs(cell, xw_TBG, False)
  return _recurrence(
      cell, w_hh, b_G, carry, xw_gates, reset_TB, reverse, unroll, False,
      False, gemm,
  )


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2, 3, 4))
def _custom_scan(
    cell, reverse, unroll, fm, gemm, w_hh, b_G, carry, xw_TBG, reset_TB
):
  xw_gates = _gate_inputs(cell, xw_TBG, fm)
  return _recurrence(
      cell, w_hh, b_G, carry, xw_gates, reset_TB, reverse, unroll, fm, False,
      gemm,
  )


def _custom_scan_fwd(
    cell, reverse, unroll, fm, gemm, w_hh, b_G, carry, xw_TBG, reset_TB
):
  # Saved for the backward: each step's input carry and hw, so the backward
  # does not redo the recurrent matmul.
  xw_gates = _gate_inputs(cell, xw_TBG, fm)
  final, (h, carry_in, hw_gates) = _recurrence(
      cell, w_hh, b_G, carry, xw_gates, reset_TB, reverse, unroll, fm, True,
      gemm,
  )
  res = (w_hh, b_G, xw_gates, reset_TB, carry_in, hw_gates)
  return (final, _fm(h) if fm else h), res


def _custom_scan_bwd(cell, reverse, unroll, fm, gemm, res, cts):
  w_hh, b_G, xw_gates_T, reset_TB, carry_in_T, hw_gates_T = res
  dfinal, dh_TBH = cts
  axis = 0 if fm else -1
  if fm:
    dfinal, dh_TBH = _transposed(dfinal), _fm(dh_TBH)
    recurrent_t = lambda dhw_GB: blas.dot(w_hh, dhw_GB, gemm)
  elif gemm != "xla":
    recurrent_t = lambda dhw_BG: blas.dot(dhw_BG, w_hh, gemm, trans_b=True)
  else:
    w_hh_t = w_hh.T
    recurrent_t = lambda dhw_BG: dhw_BG @ w_hh_t

  def body(dcarry, inputs):
    xw, hw, carry_in, reset_B, dh = inputs
    _, vjp = jax.vjp(cell.pointwise, xw, hw, carry_in)
    dxw, dhw, dcarry_in = vjp((dcarry, dh))
    dhw = jnp.concatenate(dhw, axis)
    dcarry_in = (dcarry_in[0] + recurrent_t(dhw),) + tuple(dcarry_in[1:])
    # A reset zeroed the carry before this step: nothing flows further back.
    dcarry_in = _masked(dcarry_in, reset_B, axis)
    # An additive cell's dxw is dhw: the scan stores one of them.
    dxw = None if cell.additive else jnp.concatenate(dxw, axis)
    return dcarry_in, (dxw, dhw)

  dcarry, (dxw, dhw) = jax.lax.scan(
      body,
      tuple(dfinal),
      (xw_gates_T, hw_gates_T, carry_in_T, reset_TB, dh_TBH),
      reverse=not reverse,
      unroll=unroll,
  )
  if cell.additive:
    dxw = dhw
  # The recurrent weight's gradient: one matmul over all T x B rows.
  h_in = carry_in_T[0]
  if fm:
    dhw, dxw, h_in = _fm(dhw), _fm(dxw), _fm(h_in)
    dcarry = _transposed(dcarry)
  rows = lambda a: a.reshape((-1, a.shape[-1]))
  dw_hh = matmul.weight_grad(rows(h_in), rows(dhw), gemm)
  db_G = None if b_G is None else dhw.sum(axis=(0, 1))
  return dw_hh, db_G, dcarry, dxw, None


_custom_scan.defvjp(_custom_scan_fwd, _custom_scan_bwd)


def feature_major(layout: str, hidden: int, gemm: str = "xla") -> bool:
  """Whether ``layout`` runs the recurrence feature-major (see _recurrence);
  "auto" picks it on an Intel CPU from H = 512 under XLA's GEMM, where it
  measured faster (train steps of Zaremba medium LSTM and GRU, batch 20:
  1.16x; of the char config, batch 32: 1.06-1.11x); at H = 200 it was
  0.87-0.92x. On an AMD EPYC (Zen 5) batch-major was faster at every
  width (medium LSTM 1.10x train / 1.14x eval, char LSTM 1.06x / 1.05x,
  char tanh RNN 1.03x / 1.46x). A BLAS library does not repack the weight
  every step, and runs batch-major."""
  if layout not in LAYOUTS:
    raise ValueError(f"unknown scan layout {layout!r}; choose one of {LAYOUTS}")
  if layout != "auto":
    return layout == "feature_major"
  return (
      jax.default_backend() == "cpu"
      and blas.cpu_vendor() == "GenuineIntel"
      and hidden >= 512
      and gemm == "xla"
  )


def _scan_xw(
    cell, params, carry, xw_TBG, reset_TB, reverse, unroll, impl, layout, gemm
):
  """The recurrence over projected inputs: (final carry, h_TBH)."""
  b_G = cells_lib.hidden_bias(params)
  if impl not in IMPLS:
    raise ValueError(f"unknown scan impl {impl!r}; choose one of {IMPLS}")
  if impl == "cudnn":
    raise ValueError("scan impl 'cudnn' projects its own inputs")
  if impl == "autodiff":
    return _plain_scan(
        cell, params["w_hh"], b_G, carry, xw_TBG, reset_TB, reverse, unroll,
        gemm,
    )
  if reset_TB is None:
    reset_TB = jnp.zeros(xw_TBG.shape[:2], bool)
  fm = feature_major(layout, carry[0].shape[-1], gemm)
  if impl == "fused" or (
      impl == "auto" and xw_TBG.shape[0] >= FUSED_MIN_STEPS
  ):
    why_not = fused.supported(
        cell.name, gemm, fm, [a.dtype for a in (params["w_hh"], xw_TBG, *carry)]
    )
    if not why_not:
      return fused.layer(
          cell.name, params, carry, xw_TBG, reset_TB, reverse, gemm
      )
    if impl == "fused":
      raise ValueError(f"scan impl 'fused': {why_not}")
  return _custom_scan(
      cell, reverse, unroll, fm, gemm, params["w_hh"], b_G, carry, xw_TBG,
      reset_TB,
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
    impl: str = "auto",
    remat_chunk: int = 0,
    xw_TBG=None,
    layout: str = "batch_major",
    gemm: str = "xla",
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
      computed or differentiated differently.
    remat_chunk: > 0: rematerialise the backward in chunks of this many
      steps (memory O(T / remat_chunk) carries instead of O(T) activations).
    xw_TBG: the input projection, already computed (x_TBI is then unused
      and may be None); not with remat.
    layout: "batch_major", "feature_major" or "auto", how the custom_vjp
      recurrence lays out its states (see _recurrence); the same function.
    gemm: the matmul backend, resolved (rnnlm_jax.blas.resolve); the same
      function.

  Returns:
    (final carry, h_TBH).
  """
  if impl == "cudnn":
    if cell.name != "lstm" or reverse or xw_TBG is not None or remat_chunk:
      raise ValueError(
          "scan impl 'cudnn' runs forward LSTM layers on their inputs, "
          "without remat"
      )
    return cudnn.layer(params, carry, x_TBI, reset_TB)
  if xw_TBG is not None:
    if remat_chunk > 0 and remat_chunk < xw_TBG.shape[0]:
      raise ValueError("a precomputed input projection cannot be remat-ed")
    return _scan_xw(
        cell, params, carry, xw_TBG, reset_TB, reverse, unroll, impl, layout,
        gemm,
    )
  if remat_chunk <= 0 or remat_chunk >= x_TBI.shape[0]:
    xw_TBG = project_inputs(params, x_TBI, gemm)
    return _scan_xw(
        cell, params, carry, xw_TBG, reset_TB, reverse, unroll, impl, layout,
        gemm,
    )

  def chunk_fn(c, xs):
    # The projection runs inside the chunk, so the backward keeps the inputs
    # ([T, B, I]) rather than their projections ([T, B, G]).
    x, reset = xs
    xw = project_inputs(params, x, gemm)
    return _scan_xw(
        cell, params, c, xw, reset, reverse, unroll, impl, layout, gemm
    )

  if reset_TB is None:
    reset_TB = jnp.zeros(x_TBI.shape[:2], bool)
  return _chunked(chunk_fn, carry, (x_TBI, reset_TB), remat_chunk, reverse)


def fuses(
    cell, impl: str, layout: str, hidden: int, gemm: str, dtype, steps: int
) -> bool:
  """Whether run_layer runs such a layer over ``steps`` steps as
  rnnlm_jax.fused's custom call."""
  if impl not in ("auto", "fused"):
    return False
  if impl == "auto" and steps < FUSED_MIN_STEPS:
    return False
  fm = feature_major(layout, hidden, gemm)
  return not fused.supported(cell.name, gemm, fm, [dtype])


def time_chunks(setting: int, steps: int, fused_layers: bool = False) -> int:
  """How many chunks run_stack splits ``steps`` time steps into: ``setting``
  if > 0 (at most one a step); 0 (auto): on CPU, as many chunks of at least
  25 steps as fit, at most 4, unless the layers are fused (``fuses``: each
  step of a fused layer is split over the cores already); 1 elsewhere.
  Measured on 2 cores: the char config (T = 100, 4 chunks) trained 1.11x
  (LSTM) and 1.32x (GRU) faster and evaluated 1.09x / 1.11x; Zaremba medium
  (T = 35) in 4 chunks was 0.97x / 0.94x, and small 0.92x in evaluation.
  The fused char LSTM in 4 chunks against 1 (two benchmark runs, MKL):
  train 10,111 / 11,787 tok/s, eval 27,691 / 34,270."""
  if setting < 0:
    raise ValueError(f"time_chunks must be >= 0, got {setting}")
  if setting > 0:
    return min(setting, steps)
  if jax.default_backend() != "cpu" or fused_layers:
    return 1
  return max(1, min(4, steps // 25))


def run_stack(
    cell: cells_lib.Cell,
    layers,
    carries,
    x_TBI,
    reset_TB=None,
    *,
    between=None,
    unroll: int = 1,
    impl: str = "auto",
    remat_chunk: int = 0,
    first_xw_TBG=None,
    layout: str = "batch_major",
    time_chunks: int = 1,
    gemm: str = "xla",
):
  """Runs stacked layers; ``between(l, h_TBH, steps)`` maps layer l's output
  on its way to layer l + 1 (dropout, for instance), where ``steps`` is the
  slice of time that h_TBH covers. ``first_xw_TBG``: layer 0's input
  projection, already computed (x_TBI unused). ``time_chunks``: how many
  chunks to run time in (see the module docstring); the same function.
  ``gemm``: the matmul backend, resolved (rnnlm_jax.blas.resolve).

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
    carries, h = _run_layers(
        cell,
        layers,
        carries,
        take(x_TBI, steps),
        take(reset_TB, steps),
        steps,
        between=between,
        unroll=unroll,
        impl=impl,
        remat_chunk=remat_chunk,
        first_xw_TBG=take(first_xw_TBG, steps),
        layout=layout,
        gemm=gemm,
    )
    outputs.append(h)
  return carries, outputs[0] if chunks == 1 else jnp.concatenate(outputs)


def _run_layers(
    cell, layers, carries, x_TBI, reset_TB, steps, *, between, unroll, impl,
    remat_chunk, first_xw_TBG, layout, gemm,
):
  """run_stack over one chunk of time, ``steps``."""
  h = x_TBI
  new_carries = []
  for l, (params, carry) in enumerate(zip(layers, carries)):
    if l > 0 and between is not None:
      h = between(l, h, steps)
    carry, h = run_layer(
        cell,
        params,
        carry,
        h,
        reset_TB,
        unroll=unroll,
        impl=impl,
        remat_chunk=remat_chunk,
        xw_TBG=first_xw_TBG if l == 0 else None,
        layout=layout,
        gemm=gemm,
    )
    new_carries.append(carry)
  return tuple(new_carries), h
