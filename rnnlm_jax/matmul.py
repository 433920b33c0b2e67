"""Matrix products with a pluggable GEMM, and weight gradients laid out for
the CPU's.

A GEMM here is a function ``dot(a, b, trans_a=False, trans_b=False)`` that
returns op(a) @ op(b) for 2-D a and b. ``xla_dot`` is XLA's own, the
reference; rnnlm_jax.backends supplies others (a BLAS library's, or XLA's
from bfloat16 operands) that compute the same product. The core takes one as
an argument and imports none of them.

A weight's gradient is ``x^T @ d`` over all rows. Left to itself, XLA folds
the transpose into the dot as a contraction over the row axis of both
operands, which XLA:CPU runs as a GEMM with a transposed left operand,
measured slower than the same GEMM over a materialised, row-major x^T
(docs/performance.md); ``xla_dot`` materialises it (the barrier stops the
fold).
"""

import functools

import jax


def xla_dot(a, b, trans_a: bool = False, trans_b: bool = False):
  """op(a) @ op(b) by XLA; a transposed left operand is materialised."""
  if trans_a:
    a = jax.lax.optimization_barrier(a.T)
  return a @ (b.T if trans_b else b)


def weight_grad(x_NI, d_NG, dot=xla_dot):
  """x^T @ d, [I, G]."""
  return dot(x_NI, d_NG, trans_a=True)


def linear(x_NI, w_IG, b_G, dot=xla_dot):
  """x @ w + b for 2-D x."""
  return _linear(dot, x_NI, w_IG, b_G)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _linear(dot, x_NI, w_IG, b_G):
  return dot(x_NI, w_IG) + b_G


def _linear_fwd(dot, x_NI, w_IG, b_G):
  return _linear(dot, x_NI, w_IG, b_G), (x_NI, w_IG)


def _linear_bwd(dot, res, d_NG):
  x_NI, w_IG = res
  return (
      dot(d_NG, w_IG, trans_b=True),
      weight_grad(x_NI, d_NG, dot),
      d_NG.sum(axis=0),
  )


_linear.defvjp(_linear_fwd, _linear_bwd)


def project(x_I, w_IG, b_G, dot=xla_dot):
  """x @ w + b over any leading axes of x ([..., I] -> [..., G])."""
  lead = x_I.shape[:-1]
  y = linear(x_I.reshape((-1, x_I.shape[-1])), w_IG, b_G, dot)
  return y.reshape(lead + (w_IG.shape[1],))
