"""Dynamic evaluation (Krause, Kahembwe, Murray and Renals 2018, "Dynamic
evaluation of neural sequence models"): the model adapts to the text it is
scored on. Segment by segment, carrying the RNN's state, each segment is
FIRST scored with the current parameters (that score counts), THEN the
gradient of its loss updates them; no token is ever scored by parameters
that have seen it.

Two updates, with g the segment's gradient and theta_0 the trained
parameters:

  sgd:      theta <- theta - lr g + decay (theta_0 - theta)
  rmsprop:  theta <- theta - lr g / (sqrt(MS) + eps)
                   + min(decay sqrt(MS) / S, 1) (theta_0 - theta)

Krause's "RMS with a global prior": MS is the mean of the squared gradients
of the same segment loss (segments of the evaluation's B streams and T
tokens) over (part of) the training data, computed once with the trained
parameters; S, the decay's normaliser, is the sum over parameter arrays of
each one's mean sqrt(MS) (their code's ``gsum``), and the factor is clipped
at 1 (as in their code, so the decay never overshoots theta_0).

A segment's loss is the sum over streams of each stream's mean NLL over the
segment's T positions (Krause's, with one stream), so with B streams the
gradient sums the streams'. Learning rate and decay are traced data: a grid
of them runs as one vmapped program over stacked parameters.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np

from rnnlm_jax import losses
from rnnlm_jax import models
from rnnlm_jax.config import ModelConfig

VARIANTS = ("sgd", "rmsprop")
# Added to the RMS variant's denominator, which is 0 where a parameter had
# no gradient on the training data (Krause et al.'s code adds one too; 2e-5
# is our recollection of its default, not a checked value).
EPSILON = 2e-5


def segment_loss(params, cfg: ModelConfig, carry, batch):
  """(the loss differentiated, (summed NLL, token count, next carry)) of
  one segment."""
  nll_BT, carry = models.token_nll(
      params, cfg, carry, batch["x"], batch["y"], batch["reset"]
  )
  total, count = losses.masked_sums(nll_BT, batch["mask"])
  return total / nll_BT.shape[1], (total, count, carry)


def _float32(tree):
  return jax.tree.map(lambda a: a.astype(jnp.float32), tree)


def make_mean_squared_grads(cfg: ModelConfig):
  """A jitted ``ms(params, carry, batches) -> MS``: the mean over the
  segments of batches [S, B, T] of the squared gradient of segment_loss,
  carrying the state; a pytree like params."""

  def ms(params, carry, batches):
    grad = jax.grad(segment_loss, has_aux=True)

    def body(state, batch):
      carry, sums = state
      g, (_, _, carry) = grad(params, cfg, carry, batch)
      sums = jax.tree.map(lambda s, a: s + jnp.square(a), sums, _float32(g))
      return (carry, sums), None

    zeros = jax.tree.map(jnp.zeros_like, _float32(params))
    (_, sums), _ = jax.lax.scan(body, (carry, zeros), batches)
    num = jax.tree.leaves(batches)[0].shape[0]
    return jax.tree.map(lambda s: s / num, sums)

  return jax.jit(ms)


def decay_rates(ms):
  """sqrt(MS) / the sum over parameter arrays of each one's mean sqrt(MS),
  as Krause et al.'s code normalises it (their ``gsum``)."""
  rms = jax.tree.map(jnp.sqrt, ms)
  total = sum(l.mean() for l in jax.tree.leaves(rms))
  return jax.tree.map(lambda r: r / total, rms)


def sgd_update(params, grads, params0, lr, decay):
  """theta - lr g + decay (theta_0 - theta)."""
  return jax.tree.map(
      lambda p, g, p0: (p - lr * g + decay * (p0 - p)).astype(p.dtype),
      params,
      grads,
      params0,
  )


def rmsprop_update(params, grads, params0, ms, lr, decay, eps=EPSILON):
  """theta - lr g / (sqrt(MS) + eps) + min(decay rate, 1) (theta_0 - theta),
  rate = decay_rates(MS)."""
  rates = decay_rates(ms)
  return jax.tree.map(
      lambda p, g, p0, m, r: (
          p
          - lr * g / (jnp.sqrt(m) + eps)
          + jnp.minimum(decay * r, 1.0) * (p0 - p)
      ).astype(p.dtype),
      params,
      grads,
      params0,
      ms,
      rates,
  )


def make_step(cfg: ModelConfig, variant: str, eps: float = EPSILON):
  """``step(state, batch, params0, ms, lr, decay) -> (state, (nll, count))``
  over state = (params, carry): the segment's summed NLL under the current
  parameters, then the update from its gradient (one forward pass serves
  both). ms is ignored by sgd."""
  if variant not in VARIANTS:
    raise ValueError(f"unknown dynamic evaluation {variant!r}: {VARIANTS}")
  grad = jax.grad(segment_loss, has_aux=True)

  def step(state, batch, params0, ms, lr, decay):
    params, carry = state
    g, (total, count, carry) = grad(params, cfg, carry, batch)
    if variant == "sgd":
      params = sgd_update(params, g, params0, lr, decay)
    else:
      params = rmsprop_update(params, g, params0, ms, lr, decay, eps)
    return (params, carry), (total, count)

  return step


def make_evaluate(cfg: ModelConfig, variant: str, eps: float = EPSILON):
  """A jitted ``evaluate(params0, carry, batches, ms, lr_K, decay_K) ->
  (nll_KS, count_KS)``: dynamic evaluation over a split's batches [S, B, T]
  for K (lr, decay) pairs at once, each adapting its own copy of params0;
  each segment's summed NLL and token count."""
  step = make_step(cfg, variant, eps)

  def one(params0, carry, batches, ms, lr, decay):
    body = lambda state, batch: step(state, batch, params0, ms, lr, decay)
    _, (nll_S, count_S) = jax.lax.scan(body, (params0, carry), batches)
    return nll_S, count_S

  return jax.jit(jax.vmap(one, in_axes=(None, None, None, None, 0, 0)))


def grid_nll(evaluate, params, cfg: ModelConfig, batches, ms, pairs):
  """Mean NLL per token [K] of one split for each (lr, decay) pair, the
  state starting at zero and the parameters at params; and the token
  count."""
  carry = models.init_carry(cfg, batches["x"].shape[1])
  lr_K, decay_K = (jnp.asarray(v, jnp.float32) for v in zip(*pairs))
  nll_KS, count_KS = jax.device_get(
      evaluate(params, carry, batches, ms, lr_K, decay_K)
  )
  count = float(count_KS[0].sum())
  return np.asarray(nll_KS).sum(axis=1) / max(count, 1.0), int(count)


def search(
    params,
    cfg: ModelConfig,
    variant: str,
    valid,
    test,
    lrs,
    decays,
    train=None,
    eps: float = EPSILON,
) -> dict:
  """The (lr, decay) of the grid with the lowest valid NLL under dynamic
  evaluation, and the static and dynamic NLL of valid and test with it.

  Args:
    params: the trained parameters.
    cfg: the model config.
    variant: "sgd" or "rmsprop".
    valid, test: the splits' batches [S, B, T] (x, y, mask, reset), cut
      into segments of the length each update sees.
    lrs, decays: the values to try; every pair is run on valid.
    train: rmsprop's batches for MS (training data, the same segments).
    eps: rmsprop's epsilon.

  Returns:
    {"static_valid_nll", "static_test_nll", "valid_nll", "test_nll", "lr",
     "decay", "valid_tokens", "test_tokens", "grid": [(lr, decay, valid
     nll), ...]}.
  """
  if variant == "rmsprop" and train is None:
    raise ValueError("rmsprop needs training batches for its MS")
  ms = None
  if variant == "rmsprop":
    carry = models.init_carry(cfg, train["x"].shape[1])
    ms = make_mean_squared_grads(cfg)(params, carry, train)
  evaluate = make_evaluate(cfg, variant, eps)
  pairs = list(itertools.product(lrs, decays))
  # lr = decay = 0 is the static model: run beside the grid.
  valid_K, valid_count = grid_nll(
      evaluate, params, cfg, valid, ms, [*pairs, (0.0, 0.0)]
  )
  best = int(np.argmin(valid_K[:-1]))
  lr, decay = (float(v) for v in pairs[best])
  test_K, test_count = grid_nll(
      evaluate, params, cfg, test, ms, [(lr, decay), (0.0, 0.0)]
  )
  return {
      "static_valid_nll": float(valid_K[-1]),
      "static_test_nll": float(test_K[1]),
      "valid_nll": float(valid_K[best]),
      "test_nll": float(test_K[0]),
      "lr": lr,
      "decay": decay,
      "valid_tokens": valid_count,
      "test_tokens": test_count,
      "grid": [
          (float(l), float(d), float(n))
          for (l, d), n in zip(pairs, valid_K[:-1])
      ],
  }
