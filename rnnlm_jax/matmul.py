"""Matmuls whose backward is laid out for the CPU's GEMM.

A weight's gradient is ``x^T @ d`` over all rows. Left to itself, XLA folds
the transpose into the dot as a contraction over the row axis of both
operands, which XLA:CPU runs as a GEMM with a transposed left operand,
7-9% slower at the softmax of Zaremba small and medium than the same GEMM
over a materialised, row-major x^T. ``weight_grad`` materialises it (the
barrier stops the fold); ``linear`` is ``x @ w + b`` with that backward.
"""

import jax
import jax.numpy as jnp


def weight_grad(x_NI, d_NG):
  """x^T @ d, [I, G], with x^T materialised row-major."""
  x_IN = jax.lax.optimization_barrier(x_NI.T)
  return x_IN @ d_NG


@jax.custom_vjp
def linear(x_NI, w_IG, b_G):
  """x @ w + b for 2-D x."""
  return x_NI @ w_IG + b_G


def _linear_fwd(x_NI, w_IG, b_G):
  return linear(x_NI, w_IG, b_G), (x_NI, w_IG)


def _linear_bwd(res, d_NG):
  x_NI, w_IG = res
  return d_NG @ w_IG.T, weight_grad(x_NI, d_NG), d_NG.sum(axis=0)


linear.defvjp(_linear_fwd, _linear_bwd)


def project(x_I, w_IG, b_G):
  """x @ w + b over any leading axes of x ([..., I] -> [..., G])."""
  lead = x_I.shape[:-1]
  y = linear(x_I.reshape((-1, x_I.shape[-1])), w_IG, b_G)
  return y.reshape(lead + (w_IG.shape[1],))
