"""The matmuls with a hand-laid-out backward against plain autodiff."""

import jax
import jax.numpy as jnp
import numpy as np

from rnnlm_jax import matmul


def _args(seed, lead=(6,)):
  k = jax.random.split(jax.random.key(seed), 4)
  x = jax.random.normal(k[0], lead + (5,), jnp.float64)
  w = jax.random.normal(k[1], (5, 3), jnp.float64)
  b = jax.random.normal(k[2], (3,), jnp.float64)
  d = jax.random.normal(k[3], lead + (3,), jnp.float64)
  return x, w, b, d


def test_weight_grad_is_x_transpose_d():
  with jax.enable_x64(True):
    x, _, _, d = _args(0)
    np.testing.assert_allclose(matmul.weight_grad(x, d), x.T @ d, rtol=1e-12)


def test_project_and_its_gradients_equal_autodiff_of_x_w_plus_b():
  with jax.enable_x64(True):
    x, w, b, d = _args(1, lead=(4, 2))
    loss = lambda f: lambda x, w, b: jnp.sum(jnp.sin(f(x, w, b)) * d)
    got = jax.value_and_grad(loss(matmul.project), argnums=(0, 1, 2))(x, w, b)
    want = jax.value_and_grad(
        loss(lambda x, w, b: x @ w + b), argnums=(0, 1, 2)
    )(x, w, b)
    for g, e in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
      np.testing.assert_allclose(g, e, rtol=1e-12)


def test_linear_batches_under_vmap():
  with jax.enable_x64(True):
    x, w, b, d = _args(2)
    ws = jnp.stack([w, 2 * w, -w])
    grad = jax.jit(jax.grad(lambda w, x: jnp.sum(matmul.linear(x, w, b) * d)))
    got = jax.jit(jax.vmap(grad, in_axes=(0, None)))(ws, x)
    for k in range(3):
      np.testing.assert_allclose(got[k], grad(ws[k], x), rtol=1e-12)
