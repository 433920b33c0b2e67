"""Gradient norms through time: the probe gradients against a hand-derived
chain rule (tanh RNN) and central differences (LSTM); decay and growth with
the recurrent scale; the study script end to end."""


import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnnlm_jax import cells
from rnnlm_jax import gradients
from rnnlm_jax import models
from rnnlm_jax.config import ModelConfig

V, B = 11, 3


def tiny(cell, hidden=5, init_scale=0.5):
  return ModelConfig(
      cell=cell,
      vocab_size=V,
      hidden=hidden,
      embed_dim=4,
      num_layers=1,
      init_scale=init_scale,
  )


def f64_params(cfg, seed=0):
  return jax.tree.map(
      lambda a: np.asarray(a, np.float64),
      models.init_lm(jax.random.key(seed), cfg),
  )


def tokens(seed, shape):
  return np.asarray(jax.random.randint(jax.random.key(seed), shape, 0, V))


def softmax(z):
  e = np.exp(z - z.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


def test_tanh_rnn_matches_the_chain_rule_by_hand():
  cfg = tiny("rnn_tanh")
  p = f64_params(cfg)
  x, t = tokens(1, (B, 4)), 2  # Steps 0, 1, 2; the target of step 2 is x[:, 3].
  lay, w_out, b_out = p["layers"][0], p["out"]["w"], p["out"]["b"]
  # Forward: h_k = tanh(e(x_k) W_ih + b + h_{k-1} W_hh), h_{-1} = 0.
  h, hs = np.zeros((B, cfg.hidden)), []
  for k in range(t + 1):
    h = np.tanh(p["embed"][x[:, k]] @ lay["w_ih"] + lay["b"] + h @ lay["w_hh"])
    hs.append(h)
  # J = -log softmax(h_t W_out + b_out)[y]: dJ/dh_t = W_out (p - onehot(y)).
  prob = softmax(hs[t] @ w_out + b_out)
  prob[np.arange(B), x[:, t + 1]] -= 1.0
  grads = [None] * (t + 1)
  grads[t] = prob @ w_out.T
  # dh_{k+1}/dh_k = diag(1 - h_{k+1}^2) W_hh^T, so g_k = W_hh ((1 - h^2) g).
  for k in range(t - 1, -1, -1):
    grads[k] = ((1.0 - hs[k + 1] ** 2) * grads[k + 1]) @ lay["w_hh"].T
  expected = np.array([np.linalg.norm(g, axis=1).mean() for g in grads])
  with jax.enable_x64(True):
    got = gradients.state_gradient_norms(p, cfg, x, t)
    assert got.dtype == jnp.float64
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-10)


def _lstm_loss_with_kick(p, cfg, x, y, t, k, kick_BH):
  """J_t summed over the batch, with kick added to h after step k; written
  out step by step, independent of the probe code."""
  cell = cells.get_cell(cfg.cell)
  lay = p["layers"][0]
  carry = tuple(np.zeros((B, cfg.hidden)) for _ in range(2))
  for s in range(t + 1):
    xw = p["embed"][x[:, s]] @ lay["w_ih"] + lay["b"]
    carry, h = cell.step(lay, carry, xw)
    if s == k:
      h = h + kick_BH
      carry = (h, carry[1])
  logits = h @ p["out"]["w"] + p["out"]["b"]
  return -jax.nn.log_softmax(logits)[np.arange(B), y].sum()


def test_lstm_matches_central_differences():
  cfg = tiny("lstm", init_scale=0.8)
  p = f64_params(cfg, seed=2)
  x, t = tokens(3, (B, 6)), 4
  y = x[:, t + 1]
  eps = 1e-6
  with jax.enable_x64(True):
    got = np.asarray(gradients.state_gradient_norms(p, cfg, x, t))
    expected = []
    for k in range(t + 1):
      g = np.zeros((B, cfg.hidden))
      for b in range(B):
        for i in range(cfg.hidden):
          kick = np.zeros((B, cfg.hidden))
          kick[b, i] = eps
          plus = _lstm_loss_with_kick(p, cfg, x, y, t, k, kick)
          minus = _lstm_loss_with_kick(p, cfg, x, y, t, k, -kick)
          g[b, i] = (plus - minus) / (2 * eps)
      expected.append(np.linalg.norm(g, axis=1).mean())
  np.testing.assert_allclose(got, expected, rtol=1e-6)
  assert got[t] > 0 and got[0] > 0


def test_distance_zero_is_the_readout_gradient():
  cfg = tiny("gru")
  p = f64_params(cfg, seed=4)
  x = tokens(5, (B, 8))
  with jax.enable_x64(True):
    by_distance = gradients.gradient_norm_by_distance(p, cfg, x)
    carry = jax.tree.map(
        lambda c: c.astype(jnp.float64), models.init_carry(cfg, B)
    )
    h, _ = models.hidden_states(p, cfg, carry, x[:, :-1])
  h = np.asarray(h)
  prob = softmax(h @ p["out"]["w"] + p["out"]["b"])
  b_idx, t_idx = np.meshgrid(np.arange(B), np.arange(7), indexing="ij")
  prob[b_idx, t_idx, x[:, 1:]] -= 1.0
  readout = np.linalg.norm(prob @ p["out"]["w"].T, axis=-1).mean()
  assert by_distance.shape == (7,)
  np.testing.assert_allclose(by_distance[0], readout, rtol=1e-10)


def _tanh_norms(recurrent_gain=None):
  cfg = tiny("rnn_tanh", hidden=32, init_scale=0.05)
  p = models.init_lm(jax.random.key(0), cfg)
  if recurrent_gain is not None:
    w = jax.random.normal(jax.random.key(1), (32, 32)) / np.sqrt(32)
    p["layers"][0]["w_hh"] = recurrent_gain * w
  x = tokens(6, (4, 26))
  return gradients.gradient_norm_by_distance(p, cfg, x), p, cfg


def test_small_init_vanishes_and_large_recurrent_scale_explodes():
  small, p, cfg = _tanh_norms()
  assert gradients.recurrent_spectrum(p, cfg)["max_singular"] < 1
  assert np.all(np.diff(small[:10]) < 0)
  assert small[10] < 1e-6 * small[0]
  large, p, cfg = _tanh_norms(recurrent_gain=3.0)
  assert gradients.recurrent_spectrum(p, cfg)["spectral_radius"] > 2
  assert large[20] > 100 * large[0]


def test_recurrent_spectrum_blocks():
  cfg = tiny("lstm")
  p = f64_params(cfg)
  w = p["layers"][0]["w_hh"]
  h = cfg.hidden
  p["layers"][0]["w_hh"] = np.zeros_like(w)
  p["layers"][0]["w_hh"][:, 2 * h : 3 * h] = 3.0 * np.eye(h)
  s = gradients.recurrent_spectrum(p, cfg)
  assert s["block"] == "candidate"
  np.testing.assert_allclose(
      [s["spectral_radius"], s["max_singular"], s["max_singular_stacked"]],
      [3.0, 3.0, 3.0],
  )
  p["layers"][0]["w_hh"][:, :h] = 4.0 * np.eye(h)  # The input gate's block.
  s = gradients.recurrent_spectrum(p, cfg)
  assert s["max_singular"] == pytest.approx(3.0)
  assert s["max_singular_stacked"] == pytest.approx(5.0)
