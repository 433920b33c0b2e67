"""Language-model invariants: finite-difference gradients, truncated BPTT
with a carried state, causality, and the loss of an uninformed model."""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnnlm_jax import cells
from rnnlm_jax import losses
from rnnlm_jax import models
from rnnlm_jax import scan
from rnnlm_jax.config import ModelConfig

V, B, T = 13, 2, 12


def tiny(cell, **kw):
  return ModelConfig(
      cell=cell,
      vocab_size=V,
      hidden=5,
      embed_dim=4,
      num_layers=2,
      init_scale=0.4,
      **kw,
  )


def tokens(seed=0, shape=(B, T)):
  return jax.random.randint(jax.random.key(seed), shape, 0, V)


def mean_loss(params, cfg, x, y, carry=None):
  carry = models.init_carry(cfg, x.shape[0]) if carry is None else carry
  carry = jax.tree.map(lambda c: c.astype(params["embed"].dtype), carry)
  logits, _ = models.apply_lm(params, cfg, carry, x)
  return losses.token_nll(logits.astype(params["embed"].dtype), y).mean()


@pytest.mark.parametrize("cell", ["rnn_tanh", "lstm", "gru"])
def test_gradients_match_finite_differences(cell, check_gradient):
  cfg = tiny(cell)
  x, y = tokens(1), tokens(2)
  with jax.enable_x64(True):
    params = jax.tree.map(
        lambda a: a.astype(jnp.float64), models.init_lm(jax.random.key(0), cfg)
    )
    loss = lambda p: mean_loss(p, cfg, x, y)
    check_gradient(loss, params)


@pytest.mark.parametrize("cell", ["rnn_tanh", "lstm", "gru"])
def test_chunked_tbptt_equals_one_long_pass(cell):
  cfg = tiny(cell)
  params = models.init_lm(jax.random.key(3), cfg)
  x = tokens(4, (B, 3 * T))
  long_logits, long_carry = models.apply_lm(
      params, cfg, models.init_carry(cfg, B), x
  )
  carry, chunks = models.init_carry(cfg, B), []
  for i in range(3):
    logits, carry = models.apply_lm(
        params, cfg, carry, x[:, i * T : (i + 1) * T]
    )
    chunks.append(logits)
  np.testing.assert_allclose(
      jnp.concatenate(chunks, axis=1), long_logits, rtol=1e-5, atol=1e-6
  )
  for a, b in zip(jax.tree.leaves(carry), jax.tree.leaves(long_carry)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_causality(cell):
  """The top-layer state at t has no gradient from inputs after t."""
  cfg = tiny(cell)
  params = models.init_lm(jax.random.key(5), cfg)
  emb_TBE = jnp.take(params["embed"], tokens(6).T, axis=0)
  t = 5

  def state_at_t(e_TBE):
    _, h_TBH = scan.run_stack(
        cells.get_cell(cell), params["layers"], models.init_carry(cfg, B), e_TBE
    )
    return h_TBH[t].sum()

  g_TBE = jax.grad(state_at_t)(emb_TBE)
  assert float(jnp.abs(g_TBE[t + 1 :]).max()) == 0.0
  assert all(float(jnp.abs(g_TBE[k]).max()) > 0.0 for k in range(t + 1))


@pytest.mark.parametrize("cell", ["rnn_sigmoid", "lstm", "gru"])
def test_zero_output_layer_gives_log_v(cell):
  cfg = tiny(cell)
  params = models.init_lm(jax.random.key(7), cfg)
  params["out"] = {"w": jnp.zeros((5, V)), "b": jnp.zeros((V,))}
  loss = mean_loss(params, cfg, tokens(8), tokens(9))
  np.testing.assert_allclose(float(loss), math.log(V), rtol=1e-6)


def test_tied_weights_use_the_embedding():
  cfg = ModelConfig(
      cell="lstm", vocab_size=V, hidden=6, num_layers=1, tie_weights=True
  )
  params = models.init_lm(jax.random.key(0), cfg)
  assert "w" not in params["out"]
  np.testing.assert_array_equal(
      models.output_weights(params), params["embed"].T
  )


def test_dropout_only_with_a_key():
  """Without a key a model with dropout runs as one without; with a key,
  the key alone draws the masks."""
  cfg = tiny("lstm", dropout=0.5)
  params = models.init_lm(jax.random.key(0), cfg)
  x, carry = tokens(1), models.init_carry(cfg, B)
  a, _ = models.apply_lm(params, cfg, carry, x)
  b, _ = models.apply_lm(params, tiny("lstm"), carry, x)
  c, _ = models.apply_lm(params, cfg, carry, x, dropout_key=jax.random.key(1))
  d, _ = models.apply_lm(params, cfg, carry, x, dropout_key=jax.random.key(1))
  np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
  np.testing.assert_array_equal(c, d)
  assert float(jnp.abs(a - c).max()) > 1e-3


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_time_chunks_keep_the_function_and_its_dropout(cell):
  """The stack run in 3 time chunks gives one pass's logits and gradients,
  with dropout on (the same key drops the same units), and at a fold."""
  for dropout in (0.0, 0.5):
    one, three = (
        tiny(cell, dropout=dropout, time_chunks=n) for n in (1, 3)
    )
    params = models.init_lm(jax.random.key(5), one)
    carry = models.init_carry(one, B)
    x, y = tokens(6), tokens(7)

    def loss(cfg):
      def f(params):
        logits, _ = models.apply_lm(
            params, cfg, carry, x, dropout_key=jax.random.key(8)
        )
        return losses.token_nll(logits, y).mean()

      return jax.jit(jax.value_and_grad(f))

    got, want = loss(three)(params), loss(one)(params)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
      np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize("cell", ["rnn_relu", "lstm"])
def test_dropout_scales_kept_units_and_spares_the_recurrence(cell):
  """Inverted dropout keeps the expectation. With a zero embedding, the
  input's dropout has nothing to drop, so the recurrence runs as without
  dropout (the same carry), and a one-layer model's outputs are those
  states, each zeroed or scaled by 1 / (1 - rate); with two layers the
  first layer's carry is still untouched."""
  x = jnp.ones((4, 8, 6))
  kept = models.dropout(jax.random.key(3), 0.5, x)
  assert set(np.unique(np.asarray(kept)).tolist()) <= {0.0, 2.0}
  np.testing.assert_allclose(float(kept.mean()), 1.0, atol=0.15)
  for layers in (1, 2):
    cfg = dataclasses.replace(tiny(cell, dropout=0.5), num_layers=layers)
    params = models.init_lm(jax.random.key(0), cfg)
    params["embed"] = jnp.zeros_like(params["embed"])
    carry = jax.tree.map(
        lambda c: jax.random.normal(jax.random.key(c.size), c.shape),
        models.init_carry(cfg, B),
    )
    h_drop, c_drop = models.hidden_states(
        params, cfg, carry, tokens(1), dropout_key=jax.random.key(4)
    )
    h, c = models.hidden_states(params, cfg, carry, tokens(1))
    for a, b in zip(
        jax.tree.leaves(c_drop[0]), jax.tree.leaves(c[0]), strict=True
    ):
      np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    if layers == 1:
      for a, b in zip(
          jax.tree.leaves(c_drop), jax.tree.leaves(c), strict=True
      ):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
      dropped = np.asarray(h_drop) == 0
      assert 0.3 < dropped[np.asarray(h) != 0].mean() < 0.7
      np.testing.assert_allclose(
          h_drop, np.where(dropped, 0.0, 2 * np.asarray(h)), rtol=1e-6,
          atol=1e-6,
      )
