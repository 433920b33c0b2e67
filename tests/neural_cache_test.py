"""The neural cache: a distribution that sums to one and matches a hand
computation, the static model at lambda 0, streams independent of each
other, and segments carried as one long pass."""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from rnnlm_jax import batching
from rnnlm_jax import models
from rnnlm_jax import neural_cache
from rnnlm_jax.config import ModelConfig
from rnnlm_jax.tasks import lm

V, H, N = 11, 6, 5
CFG = ModelConfig(
    cell="lstm", vocab_size=V, hidden=H, embed_dim=4, num_layers=2,
    init_scale=0.5,
)  # fmt: skip
# Compiled once each: eager dispatch of the tests' many small calls is slow.
log_probs = jax.jit(neural_cache.log_probs)
target_log_prob = jax.jit(neural_cache.target_log_prob)
THETAS = np.array([0.3, 1.5], np.float32)
LAMS = np.array([0.0, 0.25, 1.0], np.float32)


def random_cache(rng, b, size, filled):
  """A cache whose first ``filled`` slots hold random entries."""
  cache = neural_cache.init_cache(b, size, H)
  valid = np.arange(size) < filled
  return {
      "h_BNH": jnp.asarray(rng.normal(size=(b, size, H)) * valid[:, None]),
      "y_BN": jnp.asarray(rng.integers(0, 3, (b, size)) * valid, jnp.int32),
      "valid_BN": jnp.asarray(np.broadcast_to(valid, (b, size))),
      "next": cache["next"] + filled % size,
  }


def hand_log_prob(h_H, logits_V, past, theta, lam):
  """log p over the vocabulary, by the paper's formula, with ``past`` the
  [(h_i, y_i)] in the cache."""
  p_vocab = np.exp(logits_V - logits_V.max())
  p_vocab /= p_vocab.sum()
  if not past:
    return np.log(p_vocab)
  w = np.array([np.exp(theta * (h_H @ h_i)) for h_i, _ in past])
  p_cache = np.zeros(V)
  for weight, (_, y_i) in zip(w, past):
    p_cache[y_i] += weight / w.sum()
  with np.errstate(divide="ignore"):  # lambda = 1: log 0 for unseen words
    return np.log((1 - lam) * p_vocab + lam * p_cache)


def test_distribution_sums_to_one_and_matches_the_formula():
  rng = np.random.default_rng(0)
  for filled in (0, 2, N):
    cache = random_cache(rng, 2, N, filled)
    h_BH = jnp.asarray(rng.normal(size=(2, H)), jnp.float32)
    logits_BV = jnp.asarray(rng.normal(size=(2, V)), jnp.float32)
    logp_vocab_BV = jax.nn.log_softmax(logits_BV)
    h_NH, y_N = np.asarray(cache["h_BNH"]), np.asarray(cache["y_BN"])
    for theta in THETAS:
      for lam in (0.0, 0.3, 1.0):
        logp_BV = np.asarray(log_probs(cache, h_BH, logits_BV, theta, lam))
        np.testing.assert_allclose(np.exp(logp_BV).sum(-1), 1.0, rtol=1e-5)
        for b in range(2):
          past = [(h_NH[b, i], y_N[b, i]) for i in range(filled)]
          want = hand_log_prob(
              np.asarray(h_BH[b]), np.asarray(logits_BV[b]), past, theta, lam
          )
          np.testing.assert_allclose(logp_BV[b], want, rtol=1e-5, atol=1e-6)
    # The scorer's targets are the distribution's entries.
    y_B = jnp.asarray([0, 1])
    got_KJB = target_log_prob(
        cache, h_BH, y_B, logp_vocab_BV[jnp.arange(2), y_B], THETAS, LAMS
    )
    for k, theta in enumerate(THETAS):
      for j, lam in enumerate(LAMS):
        full = log_probs(cache, h_BH, logits_BV, theta, lam)
        np.testing.assert_allclose(
            got_KJB[k, j], full[jnp.arange(2), y_B], rtol=1e-5, atol=1e-6
        )


@functools.partial(jax.jit, static_argnums=4)
def long_pass_log_probs(params, x_BT, y_BT, mask_BT, size):
  """log p of every token [K, J, B, T] from the states of one pass."""
  carry = models.init_carry(CFG, x_BT.shape[0])
  h_BTH, _ = models.hidden_states(params, CFG, carry, x_BT)
  nll_BT = models.output_nll(params, h_BTH, y_BT)
  cache = neural_cache.init_cache(x_BT.shape[0], size, H)
  out, _ = neural_cache.segment_log_probs(
      cache, h_BTH, y_BT, -nll_BT, mask_BT, THETAS, LAMS
  )
  return out


def test_a_sequence_matches_a_loop_over_a_sliding_window():
  """The ring buffer wraps: position t sees positions t - N .. t - 1."""
  params = models.init_lm(jax.random.key(0), CFG)
  rng = np.random.default_rng(1)
  x_BT = jnp.asarray(rng.integers(0, 4, (1, 3 * N)), jnp.int32)
  y_BT = jnp.asarray(rng.integers(0, 4, (1, 3 * N)), jnp.int32)
  got = np.asarray(
      long_pass_log_probs(params, x_BT, y_BT, jnp.ones((1, 3 * N)), N)
  )
  carry = models.init_carry(CFG, 1)
  h_TH = np.asarray(models.hidden_states(params, CFG, carry, x_BT)[0][0])
  logits_TV = np.asarray(models.output_logits(params, jnp.asarray(h_TH)))
  y_T = np.asarray(y_BT[0])
  for t in range(3 * N):
    past = [(h_TH[i], y_T[i]) for i in range(max(0, t - N), t)]
    for k, theta in enumerate(THETAS):
      for j, lam in enumerate(LAMS):
        want = hand_log_prob(h_TH[t], logits_TV[t], past, theta, lam)[y_T[t]]
        np.testing.assert_allclose(got[k, j, 0, t], want, rtol=2e-5, atol=1e-5)


def eval_data(seed, b, bptt, n=70):
  ids = np.random.default_rng(seed).integers(1, V, n).astype(np.int32)
  x, y, mask = batching.eval_stream(ids, b, bptt, 0)
  return {"x": x, "y": y, "mask": mask, "reset": np.zeros(x.shape, bool)}


def test_lambda_zero_is_static_evaluation_and_segments_carry():
  params = models.init_lm(jax.random.key(2), CFG)
  evaluate = neural_cache.make_evaluate(CFG)
  batches = eval_data(3, 2, 7)
  nll_KJ, count = neural_cache.grid_nll(
      evaluate, params, CFG, batches, N, THETAS, LAMS
  )
  total, static_count, _ = lm.make_evaluate(CFG)(
      params, models.init_carry(CFG, 2), batches
  )
  assert count == static_count == 70
  np.testing.assert_allclose(nll_KJ[:, 0], float(total) / 70, rtol=1e-6)
  assert np.all(nll_KJ[:, 1] != nll_KJ[:, 0])
  # The segments [S, B, T] joined into one pass [B, S * T] per stream.
  joined = {k: np.concatenate(list(v), axis=1) for k, v in batches.items()}
  logp_KJBT = long_pass_log_probs(
      params, joined["x"], joined["y"], joined["mask"], N
  )
  long_KJ = -np.where(joined["mask"] > 0, logp_KJBT, 0.0).sum((-2, -1)) / 70
  np.testing.assert_allclose(nll_KJ, long_KJ, rtol=1e-5)


def test_each_stream_has_its_own_cache():
  params = models.init_lm(jax.random.key(4), CFG)
  rng = np.random.default_rng(5)
  x_BT = jnp.asarray(rng.integers(0, 4, (3, 12)), jnp.int32)
  y_BT = jnp.asarray(rng.integers(0, 4, (3, 12)), jnp.int32)
  mask_BT = jnp.ones((3, 12)).at[2, 9:].set(0.0)  # a padded stream
  together = long_pass_log_probs(params, x_BT, y_BT, mask_BT, N)
  for b in range(3):
    alone = long_pass_log_probs(
        params, x_BT[b : b + 1], y_BT[b : b + 1], mask_BT[b : b + 1], N
    )
    np.testing.assert_allclose(together[:, :, b], alone[:, :, 0], rtol=1e-5)


def test_search_picks_the_best_on_valid():
  params = models.init_lm(jax.random.key(6), CFG)
  valid, test = eval_data(7, 2, 7), eval_data(8, 2, 7)
  found = neural_cache.search(params, CFG, valid, test, N, THETAS, [0.1, 0.5])
  grid = {(t, l): n for t, l, n in found["grid"]}
  assert len(grid) == 4
  assert found["valid_nll"] == min(grid.values())
  assert grid[(found["theta"], found["lambda"])] == found["valid_nll"]
  static, _ = neural_cache.grid_nll(
      neural_cache.make_evaluate(CFG), params, CFG, test, N, [1.0], [0.0]
  )
  np.testing.assert_allclose(found["static_test_nll"], static[0, 0], rtol=1e-6)
