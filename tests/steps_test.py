"""The compiled train step: its segments chain the carried state as one long
pass would, and its loss reductions scale the gradient as they say."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from rnnlm_jax import models
from rnnlm_jax import steps
from rnnlm_jax.config import ModelConfig

V, B, T, S = 11, 3, 7, 3
CFG = ModelConfig(
    cell="lstm", vocab_size=V, hidden=6, embed_dim=5, num_layers=2,
    init_scale=0.3,
)


def _epoch(seed, mask=None):
  """S consecutive segments of one [B, S * T + 1] token stream."""
  ids = np.asarray(
      jax.random.randint(jax.random.key(seed), (B, S * T + 1), 0, V)
  )
  cut = lambda a: np.stack([a[:, s * T : (s + 1) * T] for s in range(S)])
  x, y = cut(ids[:, :-1]), cut(ids[:, 1:])
  return ids, {
      "x": x,
      "y": y,
      "mask": np.ones(x.shape, np.float32) if mask is None else mask,
      "reset": np.zeros(x.shape, bool),
  }


def _host(tree):
  return jax.tree.map(np.asarray, tree)


def test_train_step_carries_the_state_from_segment_to_segment():
  """With a zero learning rate, S steps over consecutive segments give the
  per-segment losses and the final carry of one pass over the whole
  stream."""
  tx = optax.sgd(0.0)
  state = steps.init_train_state(jax.random.key(0), CFG, tx, B)
  params = _host(state.params)  # The step donates the state.
  ids, batches = _epoch(1)
  train_step = steps.make_train_step(CFG, tx)
  got = []
  for _ in range(S):
    state, metrics = train_step(state, batches)
    got.append(float(metrics["nll"]))
    assert float(metrics["count"]) == B * T
  nll, carry = models.token_nll(
      params, CFG, models.init_carry(CFG, B), ids[:, :-1], ids[:, 1:]
  )
  want = np.asarray(nll).reshape(B, S, T).sum(axis=(0, 2))
  np.testing.assert_allclose(got, want, rtol=1e-5)
  for a, b in zip(
      jax.tree.leaves(state.carry), jax.tree.leaves(carry), strict=True
  ):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_sum_time_update_is_the_mean_update_times_tokens_per_stream():
  """'mean' divides the summed loss by the unmasked tokens, 'sum_time' by
  the batch: under plain SGD the two updates differ by count / B."""
  mask = np.ones((S, B, T), np.float32)
  mask[0, 1, 4:] = 0.0  # A padded tail in the first segment.
  _, batches = _epoch(2, mask)
  tx = optax.sgd(0.5)
  deltas = {}
  for reduction in ("mean", "sum_time"):
    state = steps.init_train_state(jax.random.key(3), CFG, tx, B)
    before = _host(state.params)
    state, _ = steps.make_train_step(CFG, tx, reduction)(state, batches)
    deltas[reduction] = jax.tree.map(
        lambda a, b: np.asarray(a) - b, state.params, before
    )
  ratio = mask[0].sum() / B
  assert ratio != 1.0 and ratio != T
  for a, b in zip(
      jax.tree.leaves(deltas["sum_time"]),
      jax.tree.leaves(deltas["mean"]),
      strict=True,
  ):
    np.testing.assert_allclose(a, ratio * b, rtol=1e-4, atol=1e-7)
  assert any(np.abs(d).max() > 1e-4 for d in jax.tree.leaves(deltas["mean"]))


def test_evaluate_equals_the_stepped_losses():
  """The evaluation scan over the same segments sums the same losses."""
  tx = optax.sgd(0.0)
  state = steps.init_train_state(jax.random.key(4), CFG, tx, B)
  params = _host(state.params)
  ids, batches = _epoch(5)
  total, count, carry = steps.make_evaluate(CFG)(
      params, models.init_carry(CFG, B), batches
  )
  nll, want_carry = models.token_nll(
      params, CFG, models.init_carry(CFG, B), ids[:, :-1], ids[:, 1:]
  )
  assert float(count) == B * S * T
  np.testing.assert_allclose(float(total), float(jnp.sum(nll)), rtol=1e-5)
  for a, b in zip(
      jax.tree.leaves(carry), jax.tree.leaves(want_carry), strict=True
  ):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


class _Regression:
  """A task with no carry and other batches, loss and metrics than the
  language model's: least squares, y = x @ w."""

  def init_params(self, key):
    return {"w": jax.random.normal(key, (4,))}

  def init_carry(self):
    return ()

  def init_hparams(self):
    return {}

  def loss(self, params, carry, batch, key, hparams):
    err = batch["x"] @ params["w"] - batch["y"]
    sums = {"sq": (err**2).sum(), "count": jnp.float32(err.size)}
    return (err**2).mean(), (carry, sums)


def test_any_task_trains_through_the_same_step():
  x = np.asarray(jax.random.normal(jax.random.key(1), (S, 8, 4)))
  batches = {"x": x, "y": x @ np.arange(4.0)}
  task, tx = _Regression(), optax.sgd(0.1)
  state = steps.init_train_state(jax.random.key(0), task, tx)
  train_step = steps.make_train_step(task, tx)
  losses = []
  for _ in range(30):
    state, m = train_step(state, batches)
    losses.append(float(m["sq"] / m["count"]))
  assert set(m) == {"sq", "count", "grad_norm"}
  assert losses[-1] < 1e-2 * losses[0]
  assert int(state.step) == 30 and train_step._cache_size() == 1
