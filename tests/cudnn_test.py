"""model.scan_impl="cudnn": the packing of rnnlm_jax's parameters into
cuDNN's weight and the model around it, checked on a CPU with
jax.experimental.rnn's reference LSTM in the kernel's place (cuDNN itself
needs a GPU); and the configurations it refuses."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import rnn

from rnnlm_jax import backends
from rnnlm_jax import cells
from rnnlm_jax import config as config_lib
from rnnlm_jax.backends import cudnn
from rnnlm_jax import models
from rnnlm_jax.config import ModelConfig


def _reference(x_BTI, h0, c0, weights, lengths_B, input_size, hidden_size):
  """jax.experimental.rnn's LSTM equations on cuDNN's packed weight."""
  w_ih, w_hh, b_ih, b_hh = rnn.unpack_lstm_weights(
      weights, input_size, hidden_size, 1, False
  )
  return rnn.lstm_ref(
      x_BTI,
      h0,
      c0,
      w_ih,
      w_hh,
      b_ih,
      b_hh,
      lengths_B,
      input_size,
      hidden_size,
      1,
      0.0,
      False,
  )


@pytest.fixture
def reference_kernel(monkeypatch):
  monkeypatch.setattr(cudnn, "kernel", _reference)
  monkeypatch.setattr(cudnn, "unavailable", lambda: None)


CFG = ModelConfig(
    cell="lstm",
    vocab_size=30,
    hidden=12,
    embed_dim=8,
    num_layers=2,
    init_scale=0.3,
    scan_impl="custom_vjp",
    gemm="xla",
    dropout=0.3,
)


def _nll_and_grads(cfg, params, x, y, reset, key):
  def loss(p):
    carry = jax.tree.map(lambda c: c + 0.5, models.init_carry(cfg, x.shape[0]))
    nll, carry = models.token_nll(p, cfg, carry, x, y, reset, dropout_key=key)
    return nll.mean() + sum(jnp.sum(jnp.sin(c)) for c in jax.tree.leaves(carry))

  return jax.value_and_grad(loss)(params)


@pytest.mark.parametrize("reset_first", [False, True])
@pytest.mark.parametrize("dropout", [False, True])
def test_the_model_equals_the_scan(reference_kernel, reset_first, dropout):
  x = jax.random.randint(jax.random.key(1), (3, 7), 0, CFG.vocab_size)
  y = jax.random.randint(jax.random.key(2), (3, 7), 0, CFG.vocab_size)
  reset = jnp.zeros(x.shape, bool).at[1, 0].set(reset_first)
  key = jax.random.key(3) if dropout else None
  params = models.init_lm(jax.random.key(0), CFG)
  want = _nll_and_grads(CFG, params, x, y, reset, key)
  got = _nll_and_grads(
      dataclasses.replace(CFG, scan_impl="cudnn"), params, x, y, reset, key
  )
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
    np.testing.assert_allclose(g, w, rtol=2e-5, atol=2e-6)


def test_pack_is_cudnns_layout():
  params = models.init_lm(jax.random.key(0), CFG)["layers"][1]
  w_ih, w_hh, b_ih, b_hh = rnn.unpack_lstm_weights(
      cudnn.pack(params), 12, 12, 1, False
  )
  np.testing.assert_array_equal(w_ih[0], params["w_ih"].T)
  np.testing.assert_array_equal(w_hh[0], params["w_hh"].T)
  np.testing.assert_array_equal(b_ih[0], params["b"])
  np.testing.assert_array_equal(b_hh[0], 0.0)
  assert cudnn.pack(params).size == rnn.get_num_params_in_lstm(12, 12, 1, False)


@pytest.mark.parametrize(
    "values,match",
    [
        ({"model": {"scan_impl": "cudnn", "cell": "gru"}}, "LSTM only"),
        (
            {"model": {"scan_impl": "cudnn", "remat_chunk": 5}},
            "no model.remat_chunk",
        ),
        (
            {"model": {"scan_impl": "cudnn"}, "data": {"reset_at_eos": True}},
            "data.reset_at_eos",
        ),
    ],
)
def test_refused_configurations(values, match):
  with pytest.raises(config_lib.ConfigError, match=match):
    config_lib.from_dict(values)


@pytest.mark.skipif(jax.default_backend() == "gpu", reason="has a GPU")
def test_without_a_gpu_it_says_so():
  cfg = config_lib.from_dict({"model": {"scan_impl": "cudnn"}}).model
  with pytest.raises(config_lib.ConfigError, match="runs on a CUDA GPU"):
    backends.resolve(cfg)


def test_an_edited_lstm_is_refused(reference_kernel, monkeypatch):
  """cuDNN computes the textbook LSTM: a cell whose math differs from it
  is refused, not silently replaced."""
  lstm = cells.CELLS["lstm"]
  scaled = lambda p, x, h, c: lstm.pointwise(p, x, h, (c[0], 0.5 * c[1]))
  monkeypatch.setitem(cells.CELLS, "lstm", lstm._replace(pointwise=scaled))
  with pytest.raises(config_lib.ConfigError, match="LSTM, not this 'lstm'"):
    backends.resolve(dataclasses.replace(CFG, scan_impl="cudnn"))


@pytest.mark.skipif(
    jax.default_backend() != "gpu", reason="cuDNN's LSTM needs a CUDA GPU"
)
def test_cudnns_kernel_equals_the_scan_on_a_gpu():
  x = jax.random.randint(jax.random.key(1), (4, 9), 0, CFG.vocab_size)
  y = jax.random.randint(jax.random.key(2), (4, 9), 0, CFG.vocab_size)
  reset = jnp.zeros(x.shape, bool).at[2, 0].set(True)
  params = models.init_lm(jax.random.key(0), CFG)
  with jax.default_matmul_precision("highest"):
    want = _nll_and_grads(CFG, params, x, y, reset, None)
    got = _nll_and_grads(
        dataclasses.replace(CFG, scan_impl="cudnn"), params, x, y, reset, None
    )
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
    np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)
