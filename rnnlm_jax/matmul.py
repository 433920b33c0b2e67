"""Matmuls whose backward is laid out for the CPU's GEMM.

A weight's gradient is ``x^T @ d`` over all rows. Left to itself, XLA folds
the transpose into the dot as a contraction over the row axis of both
operands, which XLA:CPU runs as a GEMM with a transposed left operand,
7-9% slower at the softmax of Zaremba small and medium than the same GEMM
over a materialised, row-major x^T. ``weight_grad`` materialises it (the
barrier stops the fold); ``linear`` is ``x @ w + b`` with that backward.

Every function takes ``gemm``, a resolved backend of rnnlm_jax.blas ("xla",
or a BLAS library, which reads a transposed operand in place).
"""

import functools

import jax

from rnnlm_jax import blas


def weight_grad(x_NI, d_NG, gemm: str = "xla"):
  """x^T @ d, [I, G], with x^T materialised row-major (under XLA)."""
  if gemm != "xla":
    return blas.dot(x_NI, d_NG, gemm, trans_a=True)
  x_IN = jax.lax.optimization_barrier(x_NI.T)
  return x_IN @ d_NG


def linear(x_NI, w_IG, b_G, gemm: str = "xla"):
  """x @ w + b for 2-D x."""
  return _linear(gemm, x_NI, w_IG, b_G)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _linear(gemm, x_NI, w_IG, b_G):
  return blas.dot(x_NI, w_IG, gemm) + b_G


def _linear_fwd(gemm, x_NI, w_IG, b_G):
  return _linear(gemm, x_NI, w_IG, b_G), (x_NI, w_IG)


def _linear_bwd(gemm, res, d_NG):
  x_NI, w_IG = res
  return (
      blas.dot(d_NG, w_IG, gemm, trans_b=True),
      weight_grad(x_NI, d_NG, gemm),
      d_NG.sum(axis=0),
  )


_linear.defvjp(_linear_fwd, _linear_bwd)


def project(x_I, w_IG, b_G, gemm: str = "xla"):
  """x @ w + b over any leading axes of x ([..., I] -> [..., G])."""
  lead = x_I.shape[:-1]
  y = linear(x_I.reshape((-1, x_I.shape[-1])), w_IG, b_G, gemm)
  return y.reshape(lead + (w_IG.shape[1],))
