"""The exact maxent features: the index against Python sets of the seen
contexts and pairs, the model's distribution against a hand computation
over those sets, the class-window loss against the full distribution, and
training that never moves the index."""

import collections

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from rnnlm_jax import config as config_lib
from rnnlm_jax import losses
from rnnlm_jax import maxent_features
from rnnlm_jax import models
from rnnlm_jax import optim
from rnnlm_jax import steps
from rnnlm_jax import window
from rnnlm_jax.config import ModelConfig
from rnnlm_jax.errors import DataError

V, C, ORDER = 9, 3, 4
K = ORDER - 1


def cfg(**kw):
  return ModelConfig(
      kind="maxent",
      vocab_size=V,
      order=ORDER,
      maxent_classes=C,
      maxent_features="exact",
      **kw,
  )


def train_ids(n=200, seed=0):
  # Skewed, so that some pairs repeat and some are seen once.
  rng = np.random.default_rng(seed)
  p = 1.0 / np.arange(1, V + 1)
  return rng.choice(V, n, p=p / p.sum()).astype(np.int32)


def seen(ids, min_count=1, reset=None):
  """{context tuple (most recent first): {word: count}} over the stream
  with PAD (= V) before its start and before the latest reset, and the
  same for the classes."""
  _, word_class, _ = window.class_layout(V, C)
  words, classes = collections.defaultdict(collections.Counter), (
      collections.defaultdict(collections.Counter)
  )
  last = 0
  for t in range(len(ids) - 1):
    if reset is not None and reset[t]:
      last = t
    y = int(ids[t + 1])
    for k in range(1, K + 1):
      ctx = tuple(int(ids[t - j]) if t - j >= last else V for j in range(k))
      words[ctx][y] += 1
      classes[ctx][int(word_class[y])] += 1
  keep = lambda d: {
      c: {w for w, n in ws.items() if n >= min_count} for c, ws in d.items()
  }
  return keep(words), keep(classes)


def random_params(model_cfg, ids, seed=1):
  params = models.init_lm(jax.random.key(0), model_cfg, ids)

  keys = jax.random.split(jax.random.key(seed), 4)
  for key, name in zip(
      keys, ("bias", "class_bias", "word_weights", "class_weights")
  ):
    params[name] = jax.random.normal(key, params[name].shape)
  return params


def feature_weight(params, ctx, label, table):
  """The weight of (ctx, label) read from the index by a linear scan."""
  index = {k: np.asarray(v) for k, v in params[optim.FROZEN].items()}
  node = 0
  for tok in ctx:
    lo, hi = index["child_ptr"][node], index["child_ptr"][node + 1]
    edges = [e for e in range(lo, hi) if index["child_tok"][e] == tok]
    if not edges:
      return None
    node = edges[0] + 1
  ptr, ids = (
      (index["word_ptr"], index["word_ids"])
      if table == "word"
      else (index["class_ptr"], index["class_ids"])
  )
  for i in range(ptr[node], ptr[node + 1]):
    if ids[i] == label:
      return float(params[f"{table}_weights"][i])
  return 0.0


@pytest.mark.parametrize(
    "min_count, resets", [(1, False), (2, False), (1, True)]
)
def test_index_holds_exactly_the_seen_pairs(min_count, resets):
  ids = train_ids()
  reset = ids == 0 if resets else None  # Word 0 plays <eos>.
  model_cfg = cfg(maxent_min_count=min_count)
  params = models.init_lm(jax.random.key(0), model_cfg, ids, reset)
  params = {**params, "word_weights": params["word_weights"] + 1.0}
  words, classes = seen(ids, min_count, reset)
  assert len(params["word_weights"]) == sum(map(len, words.values()))
  assert len(params["class_weights"]) == sum(map(len, classes.values()))
  index = params[optim.FROZEN]
  # Every seen context is a node; a context never seen is none.
  ctx = np.array([list(c) + [0] * (K - len(c)) for c in words], np.int32)
  nodes = np.asarray(maxent_features.context_nodes(index, ctx, V))
  lengths = np.array([len(c) for c in words])
  assert (nodes[np.arange(len(ctx)), lengths - 1] > 0).all()
  unseen = [c for c in [(0, 0, 0), (V, 0, 1), (8, 8, 8)] if c not in words]
  if unseen:
    got = maxent_features.context_nodes(index, np.array(unseen, np.int32), V)
    for c, row in zip(unseen, np.asarray(got)):
      depth = next(k for k in range(1, K + 1) if c[:k] not in words)
      assert (row[depth - 1 :] == -1).all()
  for c, ws in list(words.items())[:40]:
    for w in range(V):
      weight = feature_weight(params, c, w, "word")
      assert (weight not in (None, 0.0)) == (w in ws), (c, w)


def test_distribution_is_the_hand_computed_formula():
  """log p(w | h) = log softmax over classes of (class bias + the seen
  (context, class) weights) + log softmax within w's class of (bias + the
  seen (context, word) weights), with unseen pairs contributing 0."""
  ids = train_ids()
  model_cfg = cfg()
  params = random_params(model_cfg, ids)
  starts, word_class, _ = window.class_layout(V, C)
  x = jnp.asarray(ids[None, 30:42])
  lp, _ = models.apply_lm(params, model_cfg, models.init_carry(model_cfg, 1), x)
  np.testing.assert_allclose(np.exp(lp).sum(-1), 1.0, rtol=1e-5)
  padded = [V] * K + list(np.asarray(x[0]))
  for t in range(x.shape[1]):
    ctxs = [tuple(padded[K + t - j] for j in range(k)) for k in range(1, K + 1)]
    class_s = np.array(
        [
            float(params["class_bias"][c])
            + sum(feature_weight(params, h, c, "class") or 0.0 for h in ctxs)
            for c in range(C)
        ]
    )
    word_s = np.array(
        [
            float(params["bias"][w])
            + sum(feature_weight(params, h, w, "word") or 0.0 for h in ctxs)
            for w in range(V)
        ]
    )
    for w in range(V):
      c = word_class[w]
      members = word_s[starts[c] : starts[c + 1]]
      want = (
          class_s[c]
          - np.log(np.exp(class_s).sum())
          + word_s[w]
          - np.log(np.exp(members).sum())
      )
      np.testing.assert_allclose(lp[0, t, w], want, rtol=1e-5, atol=1e-5)


def test_class_window_loss_equals_the_full_distribution():
  ids = train_ids()
  model_cfg = cfg()
  params = random_params(model_cfg, ids)
  x, y = jnp.asarray(ids[None, :40]), jnp.asarray(ids[None, 1:41])
  carry = models.init_carry(model_cfg, 1)
  trained = optim.trainable(params)
  full = lambda p: losses.token_nll(
      models.apply_lm(optim.with_frozen(p, params), model_cfg, carry, x)[0], y
  )
  window_nll = lambda p: models.token_nll(
      optim.with_frozen(p, params), model_cfg, carry, x, y
  )[0]
  np.testing.assert_allclose(window_nll(trained), full(trained), rtol=1e-5)
  grads = [jax.grad(lambda p: f(p).sum())(trained) for f in (window_nll, full)]
  for a, b in zip(jax.tree.leaves(grads[0]), jax.tree.leaves(grads[1])):
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_training_moves_the_weights_and_never_the_index():
  ids = train_ids(400)
  model_cfg = cfg()
  tx, _ = optim.make_optimizer(
      config_lib.OptimConfig(name="adagrad", learning_rate=1.0), 10, 1
  )

  class Task(steps.lm.Model):

    def init_params(self, key):
      return models.init_lm(key, self.model_cfg, ids)

  task = Task(model_cfg, 2)
  state = steps.init_train_state(jax.random.key(0), task, tx)
  index = jax.tree.map(np.asarray, state.params[optim.FROZEN])
  x = ids[:320].reshape(1, 2, 160)
  batches = {
      "x": x,
      "y": ids[1:321].reshape(1, 2, 160),
      "mask": np.ones(x.shape, np.float32),
      "reset": np.zeros(x.shape, bool),
  }
  step = steps.make_train_step(task, tx)
  losses_seen = []
  for _ in range(5):
    state, m = step(state, batches)
    losses_seen.append(float(m["nll"] / m["count"]))
  # Zero weights: 1 / C for the class, uniform within it.
  starts, word_class, _ = window.class_layout(V, C)
  sizes = np.diff(starts)[word_class[batches["y"].ravel()]]
  assert losses_seen[0] == pytest.approx(np.log(C * sizes).mean(), rel=1e-5)
  assert losses_seen[-1] < losses_seen[0] - 0.1
  for name, a in index.items():
    np.testing.assert_array_equal(state.params[optim.FROZEN][name], a, name)
  assert optax.tree.norm(state.params["word_weights"]) > 0


def test_exact_features_need_the_classes_and_the_training_tokens():
  with pytest.raises(config_lib.ConfigError, match="maxent_classes > 0"):
    config_lib.replace(
        config_lib.Config(),
        model={"kind": "maxent", "maxent_features": "exact"},
    )
  with pytest.raises(config_lib.ConfigError, match="maxent_min_count"):
    config_lib.replace(
        config_lib.Config(),
        model={
            "kind": "maxent",
            "maxent_classes": 2,
            "maxent_features": "exact",
            "maxent_min_count": 0,
        },
    )
  with pytest.raises(config_lib.ConfigError, match="data.mode='stream'"):
    config_lib.replace(
        config_lib.Config(),
        model={
            "kind": "maxent",
            "maxent_classes": 2,
            "maxent_features": "exact",
        },
        data={"mode": "sentence"},
    )
  with pytest.raises(ValueError, match="training tokens"):
    models.init_lm(jax.random.key(0), cfg())
  with pytest.raises(DataError, match="maxent_min_count=1000 leaves no"):
    models.init_lm(jax.random.key(0), cfg(maxent_min_count=1000), train_ids())
