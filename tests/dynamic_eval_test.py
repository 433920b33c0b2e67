"""Dynamic evaluation: the static model at learning rate and decay 0, no
update on a token before it is scored, the updates as written by hand, and
rmsprop's MS as the mean of squared gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnnlm_jax import batching
from rnnlm_jax import dynamic_eval
from rnnlm_jax import losses
from rnnlm_jax import models
from rnnlm_jax.config import ModelConfig
from rnnlm_jax.tasks import lm

V, B, T = 11, 2, 5
CFG = ModelConfig(
    cell="lstm", vocab_size=V, hidden=6, embed_dim=4, num_layers=2,
    init_scale=0.5,
)  # fmt: skip
PARAMS = models.init_lm(jax.random.key(0), CFG)


def stream(seed, n=58):
  return np.random.default_rng(seed).integers(1, V, n).astype(np.int32)


def eval_data(ids, b=B, bptt=T):
  x, y, mask = batching.eval_stream(ids, b, bptt, 0)
  return {"x": x, "y": y, "mask": mask, "reset": np.zeros(x.shape, bool)}


def hand_loss(params, carry, batch):
  """The segment loss through the logits: streams summed, time averaged."""
  logits, carry = models.apply_lm(params, CFG, carry, batch["x"])
  nll_BT = losses.token_nll(logits, batch["y"]) * batch["mask"]
  return nll_BT.sum() / nll_BT.shape[1], carry


# Compiled once: eager dispatch of the loops' small steps is slow.
hand_grad = jax.jit(jax.grad(hand_loss, has_aux=True))
jit_hand_loss = jax.jit(hand_loss)


def mean_squared_grads_by_hand(batches):
  carry = models.init_carry(CFG, batches["x"].shape[1])
  sums, num = None, batches["x"].shape[0]
  for s in range(num):
    batch = jax.tree.map(lambda a: a[s], batches)
    g, carry = hand_grad(PARAMS, carry, batch)
    sq = jax.tree.map(jnp.square, g)
    sums = sq if sums is None else jax.tree.map(jnp.add, sums, sq)
  return jax.tree.map(lambda a: a / num, sums)


@pytest.fixture(scope="module")
def ms():
  return dynamic_eval.make_mean_squared_grads(CFG)(
      PARAMS, models.init_carry(CFG, B), eval_data(stream(9, 40))
  )


@pytest.fixture(scope="module")
def evaluate():
  return {v: dynamic_eval.make_evaluate(CFG, v) for v in dynamic_eval.VARIANTS}


def per_segment(evaluate, batches, ms, pairs):
  lr_K, decay_K = (jnp.asarray(v, jnp.float32) for v in zip(*pairs))
  nll_KS, _ = evaluate(
      PARAMS, models.init_carry(CFG, B), batches, ms, lr_K, decay_K
  )
  return np.asarray(nll_KS)


def static_per_segment(batches):
  carry, out = models.init_carry(CFG, B), []
  for s in range(batches["x"].shape[0]):
    batch = jax.tree.map(lambda a: a[s], batches)
    nll, carry = jit_hand_loss(PARAMS, carry, batch)
    out.append(float(nll) * T)
  return np.array(out)


def test_mean_squared_grads_equal_a_loop(ms):
  want = mean_squared_grads_by_hand(eval_data(stream(9, 40)))
  for got, hand in zip(jax.tree.leaves(ms), jax.tree.leaves(want)):
    np.testing.assert_allclose(got, hand, rtol=1e-4, atol=1e-10)


@pytest.mark.parametrize("variant", dynamic_eval.VARIANTS)
def test_rate_zero_is_static_evaluation(variant, ms, evaluate):
  batches = eval_data(stream(1))
  nll_K, count = dynamic_eval.grid_nll(
      evaluate[variant], PARAMS, CFG, batches, ms, [(0.0, 0.0), (0.5, 0.1)]
  )
  total, static_count, _ = lm.make_evaluate(CFG)(
      PARAMS, models.init_carry(CFG, B), batches
  )
  assert count == static_count == 58
  np.testing.assert_allclose(nll_K[0], float(total) / 58, rtol=1e-5)
  assert abs(nll_K[1] - nll_K[0]) > 1e-4  # the updates change the scores


@pytest.mark.parametrize("variant", dynamic_eval.VARIANTS)
def test_no_token_is_scored_after_an_update_on_it(variant, ms, evaluate):
  ids = stream(2)
  batches = eval_data(ids)
  pairs = [(0.5, 0.0), (0.3, 0.2)]
  got_KS = per_segment(evaluate[variant], batches, ms, pairs)
  static_S = static_per_segment(batches)
  np.testing.assert_allclose(got_KS[:, 0], static_S[0], rtol=1e-5)
  assert np.all(np.abs(got_KS[:, 1:] - static_S[1:]) > 1e-5)
  # New tokens from the targets of segment k + 1 on (in every stream)
  # change no score of segments 0..k. (A stream's last token is the next
  # one's first input: kept.)
  k = 2
  length = -(-len(ids) // B)
  changed = ids.copy()
  for b in range(B):
    start = b * length + (k + 1) * T
    end = (b + 1) * length - (b < B - 1)
    changed[start:end] = 1 + ids[start:end] % 7
  other = eval_data(changed)
  for key in ("x", "y"):
    assert np.array_equal(other[key][: k + 1], batches[key][: k + 1])
  assert not np.array_equal(other["y"][k + 1], batches["y"][k + 1])
  again_KS = per_segment(evaluate[variant], other, ms, pairs)
  np.testing.assert_array_equal(again_KS[:, : k + 1], got_KS[:, : k + 1])
  assert np.all(again_KS[:, k + 1] != got_KS[:, k + 1])


def test_updates_equal_hand_written_ones(ms):
  """One step of each variant against the formulas, from a moved start."""
  batch = jax.tree.map(lambda a: a[0], eval_data(stream(3)))
  carry = models.init_carry(CFG, B)
  params0 = PARAMS
  params = jax.tree.map(lambda p: p * 0.9, PARAMS)
  g, _ = hand_grad(params, carry, batch)
  rms = jax.tree.map(jnp.sqrt, ms)
  flat = np.concatenate([np.ravel(r) for r in jax.tree.leaves(rms)])
  # Krause et al.'s normaliser: the sum of each array's mean RMS.
  total = sum(float(np.mean(r)) for r in jax.tree.leaves(rms))
  # A decay at which the largest factors are clipped at 1 and others not.
  lr, decay, eps = 0.3, 1.5 * total / flat.max(), dynamic_eval.EPSILON
  want = {
      "sgd": jax.tree.map(
          lambda p, g, p0: p - lr * g + decay * (p0 - p), params, g, params0
      ),
      "rmsprop": jax.tree.map(
          lambda p, g, p0, r: p
          - lr * g / (r + eps)
          + np.minimum(decay * r / total, 1.0) * (p0 - p),
          params,
          g,
          params0,
          rms,
      ),
  }
  # Some factors are clipped at 1, so the clip is tested too.
  assert flat.max() / total * decay > 1.0 > np.median(flat) / total * decay
  for variant in dynamic_eval.VARIANTS:
    step = jax.jit(dynamic_eval.make_step(CFG, variant))
    (got, _), (total, count) = step(
        (params, carry), batch, params0, ms, lr, decay
    )
    assert float(count) == B * T
    np.testing.assert_allclose(
        float(total),
        float(jit_hand_loss(params, carry, batch)[0]) * T,
        rtol=1e-5,
    )
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want[variant])):
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_search_picks_the_best_on_valid(ms, evaluate):
  valid, test = eval_data(stream(4)), eval_data(stream(5))
  found = dynamic_eval.search(
      PARAMS, CFG, "sgd", valid, test, [0.0, 0.5], [0.0, 0.1]
  )
  grid = {(l, d): n for l, d, n in found["grid"]}
  assert len(grid) == 4
  assert found["valid_nll"] == min(grid.values())
  assert grid[(found["lr"], found["decay"])] == found["valid_nll"]
  np.testing.assert_allclose(
      grid[(0.0, 0.0)], found["static_valid_nll"], rtol=1e-6
  )
