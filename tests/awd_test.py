"""AWD-LSTM's regularisers (Merity et al. 2018) as config switches: locked
dropout, embedding dropout, weight drop, AR and TAR, and a top layer of its
own width; each against its definition, the fast path against the
reference with all of them on, and the defaults against Zaremba's dropout."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnnlm_jax import backends
from rnnlm_jax import cells
from rnnlm_jax import config as config_lib
from rnnlm_jax import models
from rnnlm_jax import scan
from rnnlm_jax.config import ModelConfig
from rnnlm_jax.tasks import lm

V, B, T = 13, 3, 12


def tiny(**kw):
  kw = {
      "cell": "lstm",
      "vocab_size": V,
      "hidden": 6,
      "embed_dim": 4,
      "num_layers": 2,
      "init_scale": 0.4,
      **kw,
  }
  return ModelConfig(**kw)


# AWD's shape in miniature: 3 layers, the top one as wide as the tied
# embedding, every regulariser on.
AWD = dict(
    num_layers=3,
    hidden=7,
    last_hidden=4,
    embed_dim=4,
    tie_weights=True,
    dropout=0.3,
    dropout_input=0.2,
    dropout_hidden=0.25,
    dropout_embed=0.15,
    weight_drop=0.4,
    dropout_mask="locked",
    ar_alpha=2.0,
    tar_beta=1.0,
)


def batch(seed=0, steps=T, mask=None):
  k = jax.random.split(jax.random.key(seed), 3)
  return {
      "x": jax.random.randint(k[0], (B, steps), 0, V),
      "y": jax.random.randint(k[1], (B, steps), 0, V),
      "mask": jnp.ones((B, steps)) if mask is None else mask,
      "reset": jax.random.bernoulli(k[2], 0.1, (B, steps)),
  }


def loss_and_grads(cfg, params, b, key=jax.random.key(5)):
  """make_loss's objective, sums and gradients for one segment."""
  loss = lm.make_loss(cfg)
  hparams = {"dropout": jnp.float32(cfg.dropout)}
  carry = models.init_carry(cfg, B)
  f = lambda p: loss(p, carry, b, key, hparams)
  (objective, (_, sums)), grads = jax.jit(jax.value_and_grad(f, has_aux=True))(
      params
  )
  return objective, sums, grads


def test_locked_dropout_uses_one_mask_across_time():
  x = jnp.ones((T, B, 16))
  kept = models.dropout(jax.random.key(0), 0.5, x, locked=True)
  assert set(np.unique(np.asarray(kept)).tolist()) <= {0.0, 2.0}
  zero_TBF = np.asarray(kept) == 0
  assert (zero_TBF == zero_TBF[:1]).all()  # The same units at every step.
  assert (zero_TBF[0, 0] != zero_TBF[0, 1]).any()  # Not across sequences.
  # A time chunk gets the whole sequence's mask.
  chunk = models.dropout(
      jax.random.key(0), 0.5, x[4:9], T, slice(4, 9), locked=True
  )
  np.testing.assert_array_equal(chunk, kept[4:9])
  # Through the model: a 1-layer model's dropped outputs.
  cfg = tiny(
      num_layers=1, dropout=0.5, dropout_input=0.0, dropout_mask="locked"
  )
  params = models.init_lm(jax.random.key(1), cfg)
  carry = models.init_carry(cfg, B)
  x_BT = batch()["x"]
  h, _ = models.hidden_states(params, cfg, carry, x_BT)
  dropped, _ = models.hidden_states(
      params, cfg, carry, x_BT, dropout_key=jax.random.key(2)
  )
  zero_BTH = np.asarray(dropped) == 0
  assert (zero_BTH == zero_BTH[:, :1]).all()
  np.testing.assert_allclose(
      dropped, np.where(zero_BTH, 0.0, 2 * np.asarray(h)), rtol=1e-6
  )


def test_embedding_dropout_drops_words_everywhere():
  rate = 0.5
  embed_VE = jax.random.normal(jax.random.key(0), (V, 4))
  x_TB = jax.random.randint(jax.random.key(1), (20, B), 0, V)
  e_TBE = np.asarray(
      models.embedding_dropout(jax.random.key(2), rate, embed_VE, x_TB)
  )
  x = np.asarray(x_TB)
  dropped = set()
  for word in np.unique(x):
    rows = e_TBE[x == word]
    if (rows == 0).all():
      dropped.add(word)
    else:
      want = np.broadcast_to(
          np.asarray(embed_VE[word]) / (1 - rate), rows.shape
      )
      np.testing.assert_allclose(rows, want, rtol=1e-6)
  assert 0 < len(dropped) < len(np.unique(x))
  # In the model, with V <= B * T (where the embedding would fold into
  # layer 0's projection): the words dropped are these.
  cfg = tiny(dropout_embed=rate)
  assert models._folds_embedding(
      backends.resolve(cfg), cfg, B * T, use_dropout=False
  )
  params = models.init_lm(jax.random.key(3), cfg)
  carry = models.init_carry(cfg, B)
  x_BT = batch()["x"]
  key = jax.random.key(4)
  h, _ = models.hidden_states(params, cfg, carry, x_BT, dropout_key=key)
  word_key = jax.random.split(jax.random.fold_in(key, 1), 2)[0]
  e_TBE = models.embedding_dropout(word_key, rate, params["embed"], x_BT.T)
  _, want_TBH = scan.run_stack(
      cells.get_cell("lstm"), params["layers"], carry, e_TBE
  )
  np.testing.assert_allclose(h, jnp.swapaxes(want_TBH, 0, 1), atol=1e-6)


def test_weight_drop_masks_the_recurrent_weight_once_per_pass():
  """The gradient of every output with respect to the stored w_hh is zero
  exactly where the mask drops: one mask for all steps and sequences. The
  reference scan with w_hh masked by hand at those entries gives the
  model's outputs; without a key the stored weight runs."""
  rate = 0.5
  cfg = tiny(weight_drop=rate)
  params = models.init_lm(jax.random.key(0), cfg)
  carry = models.init_carry(cfg, B)
  x_BT = batch()["x"]
  key = jax.random.key(1)

  def states(p, k):
    return models.hidden_states(p, cfg, carry, x_BT, dropout_key=k)[0]

  grads = jax.grad(lambda p: jnp.sum(jnp.sin(states(p, key))))(params)
  by_hand = []
  for p, g in zip(params["layers"], grads["layers"]):
    dropped = np.asarray(g["w_hh"]) == 0
    assert 0.3 < dropped.mean() < 0.7
    w_hh = np.where(dropped, 0.0, np.asarray(p["w_hh"]) / (1 - rate))
    by_hand.append({**p, "w_hh": jnp.asarray(w_hh, jnp.float32)})
  x_TBE = jnp.take(params["embed"], x_BT.T, axis=0)
  _, want_TBH = scan.run_stack(
      cells.get_cell("lstm"), by_hand, carry, x_TBE, impl="autodiff"
  )
  np.testing.assert_allclose(
      states(params, key), jnp.swapaxes(want_TBH, 0, 1), atol=1e-6
  )
  # The stored weights run where there is no key (evaluation).
  plain = dataclasses.replace(cfg, weight_drop=0.0)
  np.testing.assert_array_equal(
      states(params, None),
      models.hidden_states(params, plain, carry, x_BT)[0],
  )
  # A new key (the next step) draws a new mask.
  other = jax.grad(lambda p: jnp.sum(states(p, jax.random.key(2))))(params)
  assert (
      (np.asarray(other["layers"][0]["w_hh"]) == 0)
      != (np.asarray(grads["layers"][0]["w_hh"]) == 0)
  ).any()


def test_activation_penalty_is_awd_formula():
  rng = np.random.default_rng(0)
  h, d = (rng.normal(size=(B, T, 5)).astype(np.float32) for _ in range(2))
  alpha, beta = 2.0, 3.0
  got = models.activation_penalty(h, d, None, alpha, beta)
  # AWD-LSTM: alpha * h_drop.pow(2).mean() + beta * (h[1:] - h[:-1]).pow(2)
  # .mean(), its arrays time-major.
  want = alpha * (d**2).mean() + beta * ((h[:, 1:] - h[:, :-1]) ** 2).mean()
  np.testing.assert_allclose(got, want, rtol=1e-6)
  # Padding (the last 4 positions of sequence 0) is left out, and so are
  # the pairs it is in.
  mask = np.ones((B, T), np.float32)
  mask[0, -4:] = 0
  got = models.activation_penalty(h, d, mask, alpha, beta)
  ar = sum((d[b, : T - 4 if b == 0 else T] ** 2).sum() for b in range(B))
  ar /= (3 * T - 4) * 5
  tar = sum(
      ((np.diff(h[b, : T - 4 if b == 0 else T], axis=0)) ** 2).sum()
      for b in range(B)
  )
  tar /= (3 * (T - 1) - 4) * 5
  np.testing.assert_allclose(got, alpha * ar + beta * tar, rtol=1e-6)
  assert float(models.activation_penalty(h, d, mask, 0.0, 0.0)) == 0.0
  # A reset before position 3 of sequence 1 (a new sentence) cuts the pair
  # (2, 3); AR is unchanged.
  reset = np.zeros((B, T), bool)
  reset[1, 3] = True
  got = models.activation_penalty(h, d, mask, 0.0, beta, reset)
  cut = tar * (3 * (T - 1) - 4) * 5 - ((h[1, 3] - h[1, 2]) ** 2).sum()
  want = beta * cut / ((3 * (T - 1) - 5) * 5)
  np.testing.assert_allclose(got, want, rtol=1e-6)


def test_penalties_enter_the_objective_not_the_metrics():
  cfg = tiny(dropout=0.4, dropout_mask="locked", ar_alpha=2.0, tar_beta=3.0)
  plain = dataclasses.replace(cfg, ar_alpha=0.0, tar_beta=0.0)
  params = models.init_lm(jax.random.key(0), cfg)
  mask = jnp.ones((B, T)).at[1, -3:].set(0.0)
  b = batch(1, mask=mask)
  key = jax.random.key(2)
  objective, sums, _ = loss_and_grads(cfg, params, b, key)
  plain_objective, plain_sums, _ = loss_and_grads(plain, params, b, key)
  for name in ("nll", "count"):
    np.testing.assert_array_equal(sums[name], plain_sums[name])
  nll, _, h, dropped = models.token_nll_with_states(
      params, cfg, models.init_carry(cfg, B), b["x"], b["y"], b["reset"], key
  )
  np.testing.assert_allclose(float((nll * mask).sum()), sums["nll"], rtol=1e-6)
  # The dropped outputs are the undropped ones, zeroed or scaled by 1/(1-p).
  h, dropped = np.asarray(h), np.asarray(dropped)
  np.testing.assert_allclose(
      dropped, np.where(dropped == 0, 0.0, h / 0.6), rtol=1e-5, atol=1e-7
  )
  m = np.asarray(mask)
  # Pairs across padding or a reset (a new sentence) are left out.
  reset = np.asarray(b["reset"])
  assert reset[:, 1:].any()
  pairs = m[:, 1:] * m[:, :-1] * (1 - reset[:, 1:])
  ar = (dropped**2 * m[..., None]).sum() / (m.sum() * h.shape[-1])
  tar = (np.diff(h, axis=1) ** 2 * pairs[..., None]).sum()
  tar /= pairs.sum() * h.shape[-1]
  np.testing.assert_allclose(
      objective - plain_objective, 2.0 * ar + 3.0 * tar, rtol=1e-5
  )


@pytest.mark.parametrize(
    "steps, fast",
    [(40, {}), (T, {"time_chunks": 3}), (T, {"time_chunks": 3, "mask": 1})],
)
def test_auto_equals_reference_with_every_regulariser(steps, fast):
  """Loss and gradients of the fast path (the fused kernel at 40 steps where
  it runs here; custom_vjp in time chunks) and of the reference agree; at 40
  steps the fused layer is what runs, where it is available. mask: step
  dropout instead of locked."""
  fast = dict(fast)
  mask = "step" if fast.pop("mask", 0) else "locked"
  cfg = tiny(**{**AWD, "dropout_mask": mask}, **fast)
  ref = dataclasses.replace(cfg, backend="reference", time_chunks=0)
  if steps >= backends.FUSED_MIN_STEPS:
    kernel = backends.resolve(cfg).layer(steps, jnp.float32, jnp.float32)
    if kernel is None:
      pytest.skip("no fused layer here")
  params = models.init_lm(jax.random.key(0), cfg)
  b = batch(1, steps)
  got, want = (loss_and_grads(c, params, b) for c in (cfg, ref))
  assert float(got[0]) > float(got[1]["nll"] / got[1]["count"])  # Penalties.
  for a, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
    np.testing.assert_allclose(a, w, rtol=1e-5, atol=1e-6)


def test_default_dropout_is_zarembas():
  """The defaults draw today's masks (the dropout key split into one key per
  site; a fresh mask per step) and -1 means model.dropout's rate."""
  cfg = tiny(dropout=0.5, backend="reference")
  params = models.init_lm(jax.random.key(0), cfg)
  carry = models.init_carry(cfg, B)
  b = batch(1)
  key = jax.random.key(2)
  keys = jax.random.split(key, cfg.num_layers + 1)
  x_TBE = models.dropout(keys[0], 0.5, jnp.take(params["embed"], b["x"].T, 0))
  _, h_TBH = scan.run_stack(
      cells.get_cell("lstm"),
      params["layers"],
      carry,
      x_TBE,
      b["reset"].T,
      between=lambda l, h, steps: models.dropout(keys[l], 0.5, h),
      impl="autodiff",
  )
  h_BTH = jnp.swapaxes(models.dropout(keys[2], 0.5, h_TBH), 0, 1)
  want = models.output_nll(params, h_BTH, b["y"]).mean()
  objective, _, _ = loss_and_grads(cfg, params, b, key)
  np.testing.assert_allclose(objective, want, rtol=1e-6)
  same = dataclasses.replace(cfg, dropout_input=0.5, dropout_hidden=0.5)
  np.testing.assert_array_equal(
      loss_and_grads(same, params, b, key)[0], objective
  )


def test_last_hidden_sets_the_top_layer_width():
  cfg = tiny(num_layers=3, hidden=7, last_hidden=4, tie_weights=True)
  params = models.init_lm(jax.random.key(0), cfg)
  shapes = [p["w_hh"].shape for p in params["layers"]]
  assert shapes == [(7, 28), (7, 28), (4, 16)]
  assert [p["w_ih"].shape[0] for p in params["layers"]] == [4, 7, 7]
  assert "w" not in params["out"]
  np.testing.assert_array_equal(
      models.output_weights(params), params["embed"].T
  )
  carry = models.init_carry(cfg, B)
  assert [c[0].shape for c in carry] == [(B, 7), (B, 7), (B, 4)]
  untied = models.init_lm(
      jax.random.key(0), dataclasses.replace(cfg, tie_weights=False)
  )
  assert untied["out"]["w"].shape == (4, V)
  # Forward and backward run on both paths and agree (with every
  # regulariser: test_auto_equals_reference_with_every_regulariser).
  ref = dataclasses.replace(cfg, backend="reference")
  got, want = (loss_and_grads(c, params, batch(1)) for c in (cfg, ref))
  for a, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
    np.testing.assert_allclose(a, w, rtol=1e-5, atol=1e-6)
  assert all(float(jnp.abs(g).max()) > 0 for g in jax.tree.leaves(got[2]))


@pytest.mark.parametrize(
    "model, task, match",
    [
        ({"dropout_embed": 1.0}, "lm", "model.dropout_embed must be in"),
        ({"weight_drop": -0.1}, "lm", "model.weight_drop must be in"),
        ({"dropout_input": 1.5}, "lm", "model.dropout_input must be in"),
        ({"dropout_hidden": -0.5}, "lm", "model.dropout_hidden must be in"),
        ({"ar_alpha": -1.0}, "lm", "model.ar_alpha must be >= 0"),
        ({"last_hidden": -2}, "lm", "model.last_hidden must be >= 0"),
        ({"dropout_mask": "fixed"}, "lm", "model.dropout_mask='fixed'"),
        (
            {"tie_weights": True, "embed_dim": 4, "hidden": 8},
            "lm",
            "model.tie_weights needs",
        ),
        (
            {"tie_weights": True, "hidden": 8, "last_hidden": 4},
            "lm",
            "model.tie_weights needs",
        ),
        ({"cell": "mingru", "weight_drop": 0.5}, "lm", "model.weight_drop"),
        ({"dropout_mask": "locked"}, "classify", "model.dropout_mask is for"),
        ({"kind": "neural_ngram", "ar_alpha": 1.0}, "lm", "model.ar_alpha is"),
    ],
)
def test_config_errors_are_one_line(model, task, match):
  with pytest.raises(config_lib.ConfigError, match=match) as e:
    config_lib.from_dict({"task": task, "model": model})
  assert "\n" not in str(e.value)


def test_old_configs_load_with_todays_behaviour():
  """A run config written before these keys existed loads with their
  defaults, which are today's model; AWD's configuration validates."""
  old = config_lib.to_dict(config_lib.Config())
  for name in config_lib._LM_ONLY:
    del old["model"][name]
  assert config_lib.from_dict(old) == config_lib.Config()
  awd = {**AWD, "hidden": 1150, "last_hidden": 400, "embed_dim": 400}
  assert config_lib.from_dict({"model": awd}).model.last_hidden == 400
  assert config_lib.from_dict(
      {"model": {"tie_weights": True}}
  ).model.tie_weights
