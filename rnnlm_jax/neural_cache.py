"""The continuous cache (Grave, Joulin and Usunier 2017, "Improving neural
language models with a continuous cache") over a trained recurrent model:

  p(w | h_t) = (1 - lam) p_vocab(w | h_t) + lam p_cache(w | h_t),
  p_cache(w | h_t) ∝ sum over the last N positions i with y_i = w of
                     exp(theta h_t . h_i),

h the top layer's state (no dropout), y_i the token that followed h_i. The
cache is a ring buffer per stream of the last N states and their next
tokens, carried from segment to segment with the RNN's carry; an empty slot
carries no weight, and while a stream's cache is empty its distribution is
p_vocab alone. Position t is scored before (h_t, y_t) enters the cache.
A state reset (data.reset_at_eos) leaves the cache as it is: like the
paper's, it reaches back across sentence boundaries.

Shapes follow the package's letters, plus N (cache slots), K (values of
theta) and J (values of lambda): one pass computes the states once and
scores every (theta, lambda) pair of a grid from them.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np

from rnnlm_jax import backends
from rnnlm_jax import models
from rnnlm_jax.config import ModelConfig


def init_cache(batch: int, size: int, hidden: int) -> dict:
  """An empty cache of ``size`` slots per stream."""
  if size < 1:
    raise ValueError(f"cache size must be positive, got {size}")
  return {
      "h_BNH": jnp.zeros((batch, size, hidden), jnp.float32),
      "y_BN": jnp.zeros((batch, size), jnp.int32),
      "valid_BN": jnp.zeros((batch, size), bool),
      # The slot the next entry overwrites (the oldest once the cache is
      # full); streams advance together.
      "next": jnp.zeros((), jnp.int32),
  }


def push(cache: dict, h_BH, y_B, valid_B) -> dict:
  """The cache with (h, y) written over its oldest slot; ``valid_B`` False
  (padding) writes an empty slot."""
  i = cache["next"]
  return {
      "h_BNH": cache["h_BNH"].at[:, i].set(h_BH.astype(jnp.float32)),
      "y_BN": cache["y_BN"].at[:, i].set(y_B),
      "valid_BN": cache["valid_BN"].at[:, i].set(valid_B),
      "next": (i + 1) % cache["y_BN"].shape[1],
  }


def _scores(cache: dict, h_BH, theta_K):
  """theta h_t . h_i for every slot, -inf at empty ones: [K, B, N]."""
  dot_BN = jnp.einsum("bnh,bh->bn", cache["h_BNH"], h_BH.astype(jnp.float32))
  s_KBN = theta_K[:, None, None] * dot_BN[None]
  return jnp.where(cache["valid_BN"][None], s_KBN, -jnp.inf)


def _logsumexp(s, axis=-1):
  """log sum exp, -inf (not NaN) over all -inf."""
  m = jnp.max(s, axis=axis, keepdims=True)
  m = jnp.where(jnp.isfinite(m), m, 0.0)
  return jnp.log(jnp.sum(jnp.exp(s - m), axis=axis)) + jnp.squeeze(m, axis)


def _mix(logp_vocab, logp_cache, nonempty, lam):
  """log((1 - lam) p_vocab + lam p_cache), or log p_vocab where the cache
  is empty; arrays broadcast."""
  mixed = jnp.logaddexp(
      jnp.log1p(-lam) + logp_vocab,
      jnp.where(lam > 0, jnp.log(lam) + logp_cache, -jnp.inf),
  )
  return jnp.where(nonempty, mixed, logp_vocab)


def target_log_prob(cache: dict, h_BH, y_B, logp_vocab_B, theta_K, lam_J):
  """log p(y_t | h_t) under the mixture for every (theta, lambda): [K, J, B].

  Args:
    cache: the cache before position t.
    h_BH: the top layer's state at t.
    y_B: the token that follows.
    logp_vocab_B: log p_vocab(y_t | h_t).
    theta_K, lam_J: the grid.
  """
  s_KBN = _scores(cache, h_BH, theta_K)
  match_BN = cache["y_BN"] == y_B[:, None]
  log_z_KB = _logsumexp(s_KBN)
  log_hit_KB = _logsumexp(jnp.where(match_BN[None], s_KBN, -jnp.inf))
  nonempty_B = jnp.any(cache["valid_BN"], axis=-1)
  # -inf - (-inf) at an empty cache is NaN, which the mixture discards.
  logp_cache_KB = jnp.where(nonempty_B, log_hit_KB - log_z_KB, -jnp.inf)
  return _mix(
      logp_vocab_B[None, None],
      logp_cache_KB[:, None],
      nonempty_B[None, None],
      lam_J[None, :, None],
  )


def log_probs(cache: dict, h_BH, logits_BV, theta, lam):
  """The mixture's whole distribution over the vocabulary, log p_BV, for
  one (theta, lambda): where scoring needs only the targets' (target_log_prob),
  a sampler or a check needs this."""
  logp_vocab_BV = jax.nn.log_softmax(logits_BV.astype(jnp.float32), axis=-1)
  s_BN = _scores(cache, h_BH, jnp.asarray([theta], jnp.float32))[0]
  nonempty_B = jnp.any(cache["valid_BN"], axis=-1)
  w_BN = jnp.exp(s_BN - _logsumexp(s_BN)[:, None])
  w_BN = jnp.where(cache["valid_BN"], w_BN, 0.0)
  b, v = logits_BV.shape
  p_cache_BV = (
      jnp.zeros((b, v), jnp.float32)
      .at[jnp.arange(b)[:, None], cache["y_BN"]]
      .add(w_BN)
  )
  return _mix(
      logp_vocab_BV, jnp.log(p_cache_BV), nonempty_B[:, None], jnp.float32(lam)
  )


def segment_log_probs(
    cache, h_BTH, y_BT, logp_vocab_BT, mask_BT, theta_K, lam_J
):
  """log p(y_t) of every position of a segment in order, each scored before
  it enters the cache: ([K, J, B, T], the cache after the segment)."""

  def step(c, xs):
    h_BH, y_B, lp_B, m_B = xs
    out_KJB = target_log_prob(c, h_BH, y_B, lp_B, theta_K, lam_J)
    return push(c, h_BH, y_B, m_B > 0), out_KJB

  xs = (jnp.swapaxes(h_BTH, 0, 1), y_BT.T, logp_vocab_BT.T, mask_BT.T)
  cache, out_TKJB = jax.lax.scan(step, cache, xs)
  return jnp.moveaxis(out_TKJB, 0, -1), cache


def make_evaluate(cfg: ModelConfig):
  """A jitted ``evaluate(params, carry, cache, batches, theta_K, lam_J) ->
  (nll_KJ, count, carry, cache)``: the summed NLL of a split's batches
  [S, B, T] under the cache for every (theta, lambda) pair, from one
  forward pass, with the RNN carry and the cache carried across segments
  (the states are computed once per segment; only the cache's scores
  depend on the grid)."""

  def evaluate(params, carry, cache, batches, theta_K, lam_J):
    path = backends.resolve(cfg, params["layers"][0]["w_ih"].dtype)

    def body(state, batch):
      carry, cache = state
      h_BTH, carry = models.hidden_states(
          params, cfg, carry, batch["x"], batch["reset"]
      )
      nll_BT = models.output_nll(params, h_BTH, batch["y"], path)
      logp_KJBT, cache = segment_log_probs(
          cache, h_BTH, batch["y"], -nll_BT, batch["mask"], theta_K, lam_J
      )
      mask_BT = batch["mask"]
      # Padding's terms are zeroed by where, never multiplied (an -inf
      # times 0 would be NaN).
      nll_KJ = -jnp.where(mask_BT > 0, logp_KJBT, 0.0).sum(axis=(-2, -1))
      return (carry, cache), (nll_KJ, mask_BT.sum())

    (carry, cache), (nll_SKJ, count_S) = jax.lax.scan(
        body, (carry, cache), batches
    )
    return nll_SKJ.sum(axis=0), count_S.sum(), carry, cache

  return jax.jit(evaluate)


def grid_nll(evaluate, params, cfg: ModelConfig, batches, size, thetas, lams):
  """Mean NLL per token [K, J] of one split for every (theta, lambda), and
  the token count; the state and the cache start empty."""
  b = batches["x"].shape[1]
  carry = models.init_carry(cfg, b)
  cache = init_cache(b, size, cfg.hidden)
  nll_KJ, count, _, _ = jax.device_get(
      evaluate(
          params,
          carry,
          cache,
          batches,
          jnp.asarray(thetas, jnp.float32),
          jnp.asarray(lams, jnp.float32),
      )
  )
  return np.asarray(nll_KJ) / max(float(count), 1.0), int(count)


def search(params, cfg: ModelConfig, valid, test, size, thetas, lams) -> dict:
  """The (theta, lambda) of the grid with the lowest valid NLL, and the
  static and cached NLL of valid and test with it.

  Args:
    params: the trained parameters.
    cfg: the model config.
    valid, test: the splits' batches [S, B, T] (x, y, mask, reset).
    size: cache slots per stream.
    thetas, lams: the values to try; every pair is scored on valid.

  Returns:
    {"static_valid_nll", "static_test_nll", "valid_nll", "test_nll",
     "theta", "lambda", "valid_tokens", "test_tokens",
     "grid": [(theta, lambda, valid nll), ...]}.
  """
  evaluate = make_evaluate(cfg)
  # lambda = 0 is the static model: scored in the same pass.
  lams_J = [*lams, 0.0]
  valid_KJ, valid_count = grid_nll(
      evaluate, params, cfg, valid, size, thetas, lams_J
  )
  searched = valid_KJ[:, :-1]
  k, j = np.unravel_index(np.argmin(searched), searched.shape)
  theta, lam = float(thetas[k]), float(lams[j])
  test_1J, test_count = grid_nll(
      evaluate, params, cfg, test, size, [theta], [lam, 0.0]
  )
  return {
      "static_valid_nll": float(valid_KJ[0, -1]),
      "static_test_nll": float(test_1J[0, 1]),
      "valid_nll": float(searched[k, j]),
      "test_nll": float(test_1J[0, 0]),
      "theta": theta,
      "lambda": lam,
      "valid_tokens": valid_count,
      "test_tokens": test_count,
      "grid": [
          (float(t), float(l), float(searched[a, b]))
          for (a, t), (b, l) in itertools.product(
              enumerate(thetas), enumerate(lams)
          )
      ],
  }
