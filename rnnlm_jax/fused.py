"""The LSTM layer as one custom call on CPU, forward and backward.

Under a BLAS library (rnnlm_jax.blas), ``lstm_layer`` runs a whole layer over
time in C++ (``csrc/lstm.cc``): each step is one BLAS product of the state
with the recurrent weight per block of hidden units, then that block's gate
arithmetic while its gates are still in cache, the blocks of a step on XLA's
thread pool. It computes what scan's custom_vjp recurrence does for the LSTM
(tested to agree), without a compiled loop of many small XLA operations per
step. The backward runs the steps in reverse in C++ as well; the recurrent
weight's gradient is one product over all steps after it.

The gates' sigmoid and tanh in float32 use a polynomial exp (relative error
about 2e-7), so float32 results differ from XLA's in the last bits; float64
uses the C library's exp.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from rnnlm_jax import blas
from rnnlm_jax import matmul

_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _suffix(dtype) -> str:
  return "f32" if np.dtype(dtype) == np.float32 else "f64"


def supported(cell_name: str, gemm: str, feature_major: bool, dtypes) -> str:
  """Why ``lstm_layer`` cannot run this layer, or "" if it can: an LSTM,
  batch-major, under a BLAS library, with float32 or float64 arrays of one
  dtype (``dtypes``: those of the weight, carry and inputs)."""
  if cell_name != "lstm":
    return f"the fused layer is an LSTM's, not {cell_name!r}'s"
  if gemm not in blas.LIBRARIES:
    return f"the fused layer runs under a BLAS library, not gemm={gemm!r}"
  if feature_major:
    return "the fused layer is batch-major"
  dtypes = set(map(np.dtype, dtypes))
  if len(dtypes) != 1 or not dtypes <= set(_DTYPES):
    return f"the fused layer takes float32 or float64, not {sorted(map(str, dtypes))}"
  return ""


def _forward(w_hh, carry, xw_TBG, reset_TB, reverse, gemm, save):
  steps, batch, gates = xw_TBG.shape
  hidden = gates // 4
  kept = steps if save else 0
  shape = lambda *dims: jax.ShapeDtypeStruct(dims, xw_TBG.dtype)
  call = jax.ffi.ffi_call(
      f"rnnlm_lstm_fwd_{_suffix(xw_TBG.dtype)}",
      (
          shape(steps, batch, hidden),
          shape(batch, hidden),
          shape(batch, hidden),
          shape(kept, batch, gates),
          shape(kept, batch, hidden),
      ),
      vmap_method="sequential",
  )
  h0, c0 = carry
  return call(
      xw_TBG, w_hh, h0, c0, reset_TB, reverse=reverse,
      library=np.int64(blas.library_index(gemm)),
  )


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _layer(reverse, gemm, w_hh, carry, xw_TBG, reset_TB):
  h, h_last, c_last, _, _ = _forward(
      w_hh, carry, xw_TBG, reset_TB, reverse, gemm, False
  )
  return (h_last, c_last), h


def _layer_fwd(reverse, gemm, w_hh, carry, xw_TBG, reset_TB):
  h, h_last, c_last, acts, c = _forward(
      w_hh, carry, xw_TBG, reset_TB, reverse, gemm, True
  )
  return ((h_last, c_last), h), (w_hh, carry, reset_TB, acts, c, h)


def _layer_bwd(reverse, gemm, res, cts):
  w_hh, (h0, c0), reset_TB, acts, c, h = res
  (dh_last, dc_last), dh = cts
  call = jax.ffi.ffi_call(
      f"rnnlm_lstm_bwd_{_suffix(acts.dtype)}",
      (
          jax.ShapeDtypeStruct(acts.shape, acts.dtype),
          jax.ShapeDtypeStruct(h0.shape, h0.dtype),
          jax.ShapeDtypeStruct(c0.shape, c0.dtype),
      ),
      vmap_method="sequential",
  )
  dxw, dh0, dc0 = call(
      w_hh, c0, reset_TB, acts, c, dh, dh_last, dc_last, reverse=reverse,
      library=np.int64(blas.library_index(gemm)),
  )
  # The state each step read: the one before it in the scan's order (h0
  # first), zeroed where a reset came before the step.
  if reverse:
    h_in = jnp.concatenate([h[1:], h0[None]])
  else:
    h_in = jnp.concatenate([h0[None], h[:-1]])
  h_in = jnp.where(reset_TB[..., None], jnp.zeros_like(h_in), h_in)
  rows = lambda a: a.reshape((-1, a.shape[-1]))
  dw_hh = matmul.weight_grad(rows(h_in), rows(dxw), gemm)
  return dw_hh, (dh0, dc0), dxw, None


_layer.defvjp(_layer_fwd, _layer_bwd)


def lstm_layer(w_hh, carry, xw_TBG, reset_TB, reverse: bool, gemm: str):
  """One LSTM layer over projected inputs: (final (h, c), h_TBH).

  Args:
    w_hh: [H, 4H], gates in PyTorch's order (i, f, g, o).
    carry: (h, c), each [B, H].
    xw_TBG: the input projection with its bias, [T, B, 4H].
    reset_TB: boolean; where true, the carry is zeroed before the step.
    reverse: run from the last step to the first.
    gemm: a BLAS library of rnnlm_jax.blas (see ``supported``).
  """
  return _layer(reverse, gemm, w_hh, tuple(carry), xw_TBG, reset_TB)
