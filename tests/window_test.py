"""Fixed-window models (neural n-gram, maxent): the window against a Python
loop, streaming in segments against one pass, the neural n-gram against its
formula, finite-difference gradients, and the uniform start of maxent."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnnlm_jax import config as config_lib
from rnnlm_jax import losses
from rnnlm_jax import models
from rnnlm_jax import window
from rnnlm_jax.config import ModelConfig

V, B, T = 11, 3, 10


def tiny(kind, **kw):
  base = dict(
      kind=kind,
      vocab_size=V,
      order=4,
      embed_dim=3,
      hidden=5,
      num_layers=1,
      init_scale=0.5,
      hash_bits=8,
  )
  return ModelConfig(**{**base, **kw})


def tokens(seed, shape=(B, T)):
  return jax.random.randint(jax.random.key(seed), shape, 0, V)


def resets(seed, shape=(B, T), rate=0.2):
  return jax.random.bernoulli(jax.random.key(seed), rate, shape)


def reference_contexts(carry, x, reset, pad):
  """The window kept token by token, as a deque would."""
  carry, x, reset = (np.asarray(a) for a in (carry, x, reset))
  K = carry.shape[1]
  ctx = np.zeros(x.shape + (K,), np.int64)
  final = np.zeros_like(carry)
  for b in range(x.shape[0]):
    win = list(carry[b])
    for t in range(x.shape[1]):
      if reset[b, t]:
        win = [pad] * K
      win = (win + [int(x[b, t])])[-K:]
      ctx[b, t] = win[::-1]
    final[b] = win
  return ctx, final


@pytest.mark.parametrize("K", [1, 3, 12])
def test_contexts_match_a_python_loop_with_resets(K):
  pad = V
  carry = jax.random.randint(jax.random.key(1), (B, K), 0, V + 1)
  x, reset = tokens(2), resets(3)
  ctx, final = window.contexts(carry, x, reset, pad)
  ref_ctx, ref_final = reference_contexts(carry, x, reset, pad)
  np.testing.assert_array_equal(ctx, ref_ctx)
  np.testing.assert_array_equal(final, ref_final)
  no_reset, _ = window.contexts(carry, x, None, pad)
  ref_no_reset, _ = reference_contexts(carry, x, np.zeros((B, T), bool), pad)
  np.testing.assert_array_equal(no_reset, ref_no_reset)


@pytest.mark.parametrize(
    "kind,classes", [("neural_ngram", 0), ("maxent", 0), ("maxent", 3)]
)
def test_streaming_in_segments_equals_one_long_pass(kind, classes):
  cfg = tiny(kind, direct=True, maxent_classes=classes)
  params = models.init_lm(jax.random.key(0), cfg)
  if kind == "maxent":  # Zero weights would make every logit equal.
    params = jax.tree.map(
        lambda a: jax.random.normal(jax.random.key(9), a.shape), params
    )
  x, reset = tokens(4, (B, 3 * T)), resets(5, (B, 3 * T))
  carry0 = models.init_carry(cfg, B)
  long_logits, long_carry = models.apply_lm(params, cfg, carry0, x, reset)
  carry, chunks = carry0, []
  for i in range(3):
    part = slice(i * T, (i + 1) * T)
    logits, carry = models.apply_lm(
        params, cfg, carry, x[:, part], reset[:, part]
    )
    chunks.append(logits)
  np.testing.assert_allclose(
      jnp.concatenate(chunks, axis=1), long_logits, rtol=1e-5, atol=1e-6
  )
  np.testing.assert_array_equal(carry, long_carry)


def test_neural_ngram_is_bengio_formula():
  """y = b + W x + U tanh(d + H x), x the concatenated context embeddings."""
  cfg = tiny("neural_ngram", direct=True)
  p = models.init_lm(jax.random.key(1), cfg)
  p["direct"] = jax.random.normal(jax.random.key(2), p["direct"].shape)
  x = tokens(3)
  logits, _ = models.apply_lm(p, cfg, models.init_carry(cfg, B), x)
  C = np.asarray(p["embed"])
  xs = np.asarray(x)
  for b, t in [(0, 0), (1, 2), (2, T - 1)]:
    ctx = [xs[b, t - j] if t - j >= 0 else V for j in range(cfg.order - 1)]
    e = np.concatenate([C[i] for i in ctx])
    h = np.tanh(e @ p["hidden"][0]["w"] + p["hidden"][0]["b"])
    want = p["out"]["b"] + h @ p["out"]["w"] + e @ p["direct"]
    np.testing.assert_allclose(logits[b, t], want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "kind,kw",
    [
        ("neural_ngram", {"direct": True, "num_layers": 2}),
        ("maxent", {}),
        ("maxent", {"maxent_classes": 3}),
    ],
)
def test_gradients_match_finite_differences(kind, kw, check_gradient):
  cfg = tiny(kind, **kw)
  x, y, reset = tokens(1), tokens(2), resets(3)
  with jax.enable_x64(True):
    params = jax.tree.map(
        lambda a: jax.random.normal(jax.random.key(4), a.shape, jnp.float64)
        * 0.5,
        models.init_lm(jax.random.key(0), cfg),
    )

    def loss(p):
      carry = models.init_carry(cfg, B)
      logits, _ = models.apply_lm(p, cfg, carry, x, reset)
      return losses.token_nll(logits, y).mean()

    check_gradient(loss, params)


def test_maxent_starts_uniform_and_uses_every_order():
  cfg = tiny("maxent")
  params = models.init_lm(jax.random.key(0), cfg)
  x = tokens(1)
  logits, _ = models.apply_lm(params, cfg, models.init_carry(cfg, B), x)
  loss = losses.token_nll(logits, tokens(2)).mean()
  np.testing.assert_allclose(float(loss), math.log(V), rtol=1e-6)
  # The gradient reaches one run of V weights per context order.
  g = jax.grad(
      lambda p: models.apply_lm(p, cfg, models.init_carry(cfg, 1), x[:1, :1])[
          0
      ][0, 0, 3]
  )(params)
  assert int((np.asarray(g["table"]) != 0).sum()) == cfg.order - 1
  assert float(g["bias"][3]) == 1.0


def random_params(cfg, seed=4):
  params = models.init_lm(jax.random.key(0), cfg)
  return jax.tree.map(
      lambda a: jax.random.normal(jax.random.key(seed), a.shape), params
  )


def test_class_starts_cover_the_vocabulary_in_growing_bins():
  starts = window.class_starts(10_000, 100)
  sizes = np.diff(starts)
  assert starts[0] == 0 and starts[-1] == 10_000 and len(sizes) == 100
  assert sizes.min() >= 1 and np.all(np.diff(sizes) >= 0)
  np.testing.assert_array_equal(window.class_starts(5, 5), np.arange(6))


def test_maxent_classes_are_the_factored_formula():
  """log p(w | h) = log softmax(class scores)[c(w)] + log softmax over the
  words of c(w) of their scores, the scores being the hashed features' sums
  (the full-softmax model's logits)."""
  C = 3
  cfg = tiny("maxent", maxent_classes=C)
  p = random_params(cfg)
  x = tokens(3)
  carry = models.init_carry(cfg, B)
  lp, _ = models.apply_lm(p, cfg, carry, x)
  np.testing.assert_allclose(jnp.exp(lp).sum(-1), 1.0, rtol=1e-5)
  flat = {k: p[k] for k in ("bias", "table")}
  scores, _ = models.apply_lm(flat, tiny("maxent"), carry, x)
  ctx, _ = window.contexts(carry, x, None, V)
  offs = np.asarray(window.context_offsets(ctx, cfg.hash_bits))
  starts = window.class_starts(V, C)
  for b, t in [(0, 0), (1, 4), (2, T - 1)]:
    s = np.asarray(scores[b, t], np.float64)
    g = np.asarray(p["class_bias"], np.float64) + sum(
        np.asarray(p["class_table"])[o : o + C] for o in offs[b, t]
    )
    log_pc = g - np.log(np.exp(g).sum())
    for c in range(C):
      words = slice(starts[c], starts[c + 1])
      want = log_pc[c] + s[words] - np.log(np.exp(s[words]).sum())
      np.testing.assert_allclose(lp[b, t, words], want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("C", [1, 3, V])
def test_maxent_class_nll_equals_the_nll_of_the_full_distribution(C):
  cfg = tiny("maxent", maxent_classes=C)
  p = random_params(cfg)
  x, y, reset = tokens(1), tokens(2), resets(3)
  carry = jax.random.randint(jax.random.key(5), (B, cfg.order - 1), 0, V + 1)
  lp, want_carry = models.apply_lm(p, cfg, carry, x, reset)
  nll, got_carry = models.token_nll(p, cfg, carry, x, y, reset)
  np.testing.assert_allclose(nll, losses.token_nll(lp, y), rtol=1e-5)
  np.testing.assert_array_equal(got_carry, want_carry)
  grads = [
      jax.grad(lambda q: f(q).sum())(p)
      for f in (
          lambda q: models.token_nll(q, cfg, carry, x, y, reset)[0],
          lambda q: losses.token_nll(
              models.apply_lm(q, cfg, carry, x, reset)[0], y
          ),
      )
  ]
  for key in p:
    np.testing.assert_allclose(grads[0][key], grads[1][key], atol=1e-5)


def test_maxent_class_loss_reaches_only_its_own_class_words():
  C = 3
  cfg = tiny("maxent", maxent_classes=C, order=2, hash_bits=12)
  p = random_params(cfg)
  x = tokens(1)[:1, :1]
  starts = window.class_starts(V, C)
  y = int(starts[2])  # the first word of the last class
  g = jax.grad(
      lambda q: models.apply_lm(q, cfg, models.init_carry(cfg, 1), x)[0][
          0, 0, y
      ]
  )(p)
  touched = np.flatnonzero(np.asarray(g["bias"]))
  np.testing.assert_array_equal(touched, np.arange(starts[2], V))
  assert int((np.asarray(g["table"]) != 0).sum()) == V - starts[2]
  assert int((np.asarray(g["class_table"]) != 0).sum()) == C


def test_a_later_token_never_changes_an_earlier_prediction():
  cfg = tiny("neural_ngram")
  params = models.init_lm(jax.random.key(0), cfg)
  x = tokens(1)
  y = x.at[:, 6].set((x[:, 6] + 1) % V)
  a, _ = models.apply_lm(params, cfg, models.init_carry(cfg, B), x)
  b, _ = models.apply_lm(params, cfg, models.init_carry(cfg, B), y)
  np.testing.assert_array_equal(a[:, :6], b[:, :6])
  assert (
      float(
          jnp.abs(
              a[:, 6 : 6 + cfg.order - 1] - b[:, 6 : 6 + cfg.order - 1]
          ).min()
      )
      > 0
  )
  np.testing.assert_array_equal(
      a[:, 6 + cfg.order - 1 :], b[:, 6 + cfg.order - 1 :]
  )


@pytest.mark.parametrize(
    "overrides,message",
    [
        ({"kind": "neural_ngram", "order": 1}, "needs model.order >= 2"),
        ({"kind": "count_ngram", "order": 0}, "model.order must be positive"),
        ({"kind": "maxent", "hash_bits": 40}, "model.hash_bits"),
        ({"kind": "maxent", "maxent_classes": -1}, "model.maxent_classes"),
        ({"kind": "neural_ngram", "maxent_classes": 4}, "needs model.kind"),
        (
            {"kind": "maxent", "maxent_classes": 12, "vocab_size": 11},
            "exceeds the vocabulary",
        ),
        ({"kind": "bigram"}, "model.kind"),
        (
            {"kind": "count_ngram", "smoothing": "witten_bell"},
            "model.smoothing",
        ),
    ],
)
def test_bad_model_config_is_one_clear_error(overrides, message):
  with pytest.raises(config_lib.ConfigError, match=message):
    config_lib.replace(config_lib.Config(), model=overrides)
