"""LSTM, GRU and Elman layers as one custom call on CPU, forward and backward;
the softmax layer's loss and gradient as one; word2vec's sparse SGD step as
one (``word2vec_update``, csrc/word2vec.cc).

On CPU, ``layer`` runs a whole layer over time in C++
(``csrc/recurrence.cc``): each step is one product of the state with the
recurrent weight per block of hidden units (the weight packed once per
call), then that block's gate arithmetic while its gates are still in cache,
the blocks of a step on XLA's thread pool. The product is the BLAS library's
under one (rnnlm_jax.blas), and under XLA's GEMM a built-in one on a single
CPU device (``csrc/blas.h``: the weight packed in panels of columns, each
multiplied by blocks of state rows whose sums stay in registers). It
computes what scan's custom_vjp recurrence does for these cells (tested to
agree), without a compiled loop of many small XLA operations per step. The
backward runs the steps in reverse in C++ as well; the recurrent weight's
gradient is one product over all steps after it.

The gates' sigmoid and tanh in float32 use a polynomial exp (relative error
about 2e-7), so float32 results differ from XLA's in the last bits; float64
uses the C library's exp.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from rnnlm_jax import cells as cells_lib
from rnnlm_jax import matmul
from rnnlm_jax.backends import blas

# The cells whose layers csrc/recurrence.cc computes, keyed by the cell
# object of rnnlm_jax.cells whose math it implements: a cell registered
# under one of these names with another pointwise function is not one of
# them. rnnlm_jax.backends checks each against its Python cell before use.
KERNELS = {cells_lib.CELLS[name]: name for name in blas.RECURRENCE_CELLS}
# Activations saved per unit and step for the backward; an Elman cell's
# backward reads its output h instead.
_SAVED = {"lstm": 4, "gru": 4}
_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _target(name: str, dtype) -> str:
  """The FFI target ``rnnlm_<name>_<f32|f64>`` for arrays of ``dtype``."""
  return f"rnnlm_{name}_{'f32' if np.dtype(dtype) == np.float32 else 'f64'}"


def _one_float_dtype(dtypes) -> bool:
  """Whether ``dtypes`` are all float32 or all float64."""
  dtypes = set(map(np.dtype, dtypes))
  return len(dtypes) == 1 and dtypes <= set(_DTYPES)


def supported(cell, gemm: str, dtypes) -> str:
  """Why ``layer`` cannot run this layer, or "" if it can: a cell of
  KERNELS, under a BLAS library or under XLA's GEMM on a single CPU device
  (blas.builtin_unavailable), with float32 or float64 arrays of one dtype
  (``dtypes``: those of the weight, carry and inputs)."""
  if cell not in KERNELS:
    return (
        f"the fused layer runs the cells {', '.join(KERNELS.values())} of "
        f"rnnlm_jax.cells, not this {cell.name!r}"
    )
  if gemm == "xla":
    reason = blas.builtin_unavailable()
    if reason is not None:
      return reason
  elif gemm not in blas.LIBRARIES:
    return (
        f"the fused layer runs under a BLAS library or XLA's GEMM, not "
        f"gemm={gemm!r}"
    )
  if not _one_float_dtype(dtypes):
    names = sorted({str(np.dtype(d)) for d in dtypes})
    return f"the fused layer takes float32 or float64, not {names}"
  return ""


def _empty(dtype, *dims):
  return jnp.zeros(dims, dtype)


def _forward(
    cell_name, w_hh, b_hn, carry, xw_TBG, reset_TB, reverse, gemm, save
):
  steps, batch, gates = xw_TBG.shape
  hidden = w_hh.shape[0]
  lstm = cell_name == "lstm"
  kept = steps if save else 0
  shape = lambda *dims: jax.ShapeDtypeStruct(dims, xw_TBG.dtype)
  call = jax.ffi.ffi_call(
      _target(f"{cell_name}_fwd", xw_TBG.dtype),
      (
          shape(steps, batch, hidden),
          shape(batch, hidden),
          shape(*((batch, hidden) if lstm else (0, 0))),
          shape(kept, batch, _SAVED.get(cell_name, 0) * hidden),
          shape(*((kept, batch, hidden) if lstm else (0, 0, 0))),
      ),
      vmap_method="sequential",
  )
  c0 = carry[1] if lstm else _empty(xw_TBG.dtype, 0, 0)
  return call(
      xw_TBG,
      w_hh,
      b_hn,
      carry[0],
      c0,
      reset_TB,
      reverse=reverse,
      library=np.int64(blas.recurrence_index(gemm)),
  )


def _carry_out(cell_name, h_last, c_last):
  return (h_last, c_last) if cell_name == "lstm" else (h_last,)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2))
def _layer(cell_name, reverse, gemm, w_hh, b_hn, carry, xw_TBG, reset_TB):
  h, h_last, c_last, _, _ = _forward(
      cell_name, w_hh, b_hn, carry, xw_TBG, reset_TB, reverse, gemm, False
  )
  return _carry_out(cell_name, h_last, c_last), h


def _layer_fwd(cell_name, reverse, gemm, w_hh, b_hn, carry, xw_TBG, reset_TB):
  h, h_last, c_last, acts, c = _forward(
      cell_name, w_hh, b_hn, carry, xw_TBG, reset_TB, reverse, gemm, True
  )
  res = (w_hh, b_hn, carry, reset_TB, acts, c, h)
  return (_carry_out(cell_name, h_last, c_last), h), res


def _layer_bwd(cell_name, reverse, gemm, res, cts):
  w_hh, b_hn, carry, reset_TB, acts, c, h = res
  dcarry, dh = cts
  lstm, gru = cell_name == "lstm", cell_name == "gru"
  h0 = carry[0]
  steps, batch, hidden = h.shape
  gates = w_hh.shape[1]
  dtype = h.dtype
  empty = lambda *dims: jax.ShapeDtypeStruct(dims, dtype)
  call = jax.ffi.ffi_call(
      _target(f"{cell_name}_bwd", dtype),
      (
          empty(steps, batch, gates),
          empty(*((steps, batch, gates) if gru else (0, 0, 0))),
          empty(batch, hidden),
          empty(*((batch, hidden) if lstm else (0, 0))),
      ),
      vmap_method="sequential",
  )
  c0, dc_last = (carry[1], dcarry[1]) if lstm else (_empty(dtype, 0, 0),) * 2
  dxw, dhw, dh0, dc0 = call(
      w_hh,
      h0,
      c0,
      reset_TB,
      acts,
      h,
      c,
      dh,
      dcarry[0],
      dc_last,
      reverse=reverse,
      library=np.int64(blas.recurrence_index(gemm)),
  )
  if not gru:
    dhw = dxw  # The LSTM's and Elman gates take xw + hw.
  # The state each step read: the one before it in the scan's order (h0
  # first), zeroed where a reset came before the step.
  if reverse:
    h_in = jnp.concatenate([h[1:], h0[None]])
  else:
    h_in = jnp.concatenate([h0[None], h[:-1]])
  h_in = jnp.where(reset_TB[..., None], jnp.zeros_like(h_in), h_in)
  rows = lambda a: a.reshape((-1, a.shape[-1]))
  dw_hh = matmul.weight_grad(rows(h_in), rows(dhw), blas.dot_fn(gemm))
  db_hn = dhw[..., 2 * hidden :].sum((0, 1)) if gru else jnp.zeros_like(b_hn)
  return dw_hh, db_hn, _carry_out(cell_name, dh0, dc0), dxw, None


_layer.defvjp(_layer_fwd, _layer_bwd)


def layer(cell, params, carry, xw_TBG, reset_TB, reverse: bool, gemm: str):
  """One recurrent layer over projected inputs: (final carry, h_TBH).

  Args:
    cell: a cell of KERNELS.
    params: the cell's parameters; w_hh [H, G], gates in PyTorch's order,
      and the GRU's b_hn [H].
    carry: the cell's carry, (h, c) or (h,), each [B, H].
    xw_TBG: the input projection with its bias, [T, B, G].
    reset_TB: boolean; where true, the carry is zeroed before the step.
    reverse: run from the last step to the first.
    gemm: a BLAS library of rnnlm_jax.blas, or "xla" (see ``supported``).
  """
  cell_name = KERNELS[cell]
  w_hh = params["w_hh"]
  b_hn = params["b_hn"] if cell_name == "gru" else _empty(w_hh.dtype, 0)
  return _layer(
      cell_name, reverse, gemm, w_hh, b_hn, tuple(carry), xw_TBG, reset_TB
  )


def softmax_supported(gemm: str, dtypes) -> bool:
  """Whether ``softmax_xent_grad`` runs under ``gemm`` for arrays of
  ``dtypes`` (those of h, w and b): a BLAS library, float32 or float64 of
  one dtype."""
  return gemm in blas.LIBRARIES and _one_float_dtype(dtypes)


def softmax_xent_grad(h_NH, w_HV, b_V, y_N, gemm: str):
  """The softmax layer's loss and its logits' gradient in one custom call
  (``csrc/softmax.cc``): (nll_N, e_NV), nll = -log softmax(h @ w + b)[y]
  and e = softmax(h @ w + b) - onehot(y), the logits' gradient for a
  cotangent of ones. The logits are never written apart from e: each
  block of them is reduced while in cache. Not differentiable itself (the
  forward of a custom VJP: rnnlm_jax.models.output_nll); a target outside
  [0, V) gives NaN. ``softmax_supported`` says where it runs."""
  n, v = h_NH.shape[0], w_HV.shape[1]
  shape = lambda *dims: jax.ShapeDtypeStruct(dims, h_NH.dtype)
  call = jax.ffi.ffi_call(
      _target("softmax_xent", h_NH.dtype),
      (shape(n), shape(n, v)),
      vmap_method="sequential",
  )
  return call(
      h_NH,
      w_HV,
      b_V,
      y_N.astype(np.int32),
      library=np.int64(blas.library_index(gemm)),
  )


def word2vec_update(params, context_BC, mask_BC, out_BO, weight_BO, lr, cbow):
  """word2vec's SGD step on a batch whose output words are drawn, in one
  custom call (``csrc/word2vec.cc``): what rnnlm_jax.word2vec's
  skipgram_update (cbow False) or cbow_update computes, every score from
  the tables before the step, then the summed updates added in place (the
  tables are aliased to the results). Returns (params, summed loss, squared
  norm of the gradient rows). float32 tables only."""
  v, d = params["input"].shape
  f32 = lambda *dims: jax.ShapeDtypeStruct(dims, jnp.float32)
  call = jax.ffi.ffi_call(
      "rnnlm_word2vec_f32",
      (f32(v, d), f32(v, d), f32(), f32()),
      input_output_aliases={0: 0, 1: 1},
      vmap_method="sequential",
  )
  new_in, new_out, loss, grad_sq = call(
      params["input"],
      params["output"],
      context_BC.astype(jnp.int32),
      mask_BC.astype(jnp.float32),
      out_BO.astype(jnp.int32),
      weight_BO.astype(jnp.float32),
      jnp.asarray(lr, jnp.float32),
      cbow=np.int64(bool(cbow)),
  )
  return {"input": new_in, "output": new_out}, loss, grad_sq
