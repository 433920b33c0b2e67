"""Sentence encoders: the backward direction is the forward layer over each
sentence reversed; a padded batch gives each sentence's results alone; the
fast layers compute what the reference does."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnnlm_jax import cells as cells_lib
from rnnlm_jax import config as config_lib
from rnnlm_jax import encoder
from rnnlm_jax import scan

VOCAB, CLASSES, POS = 23, 4, 5


def model_cfg(**model):
  values = {
      "vocab_size": VOCAB,
      "embed_dim": 6,
      "hidden": 5,
      "num_layers": 2,
      "bidirectional": True,
      "num_features": POS,
      "init_scale": 0.5,
      **model,
  }
  task = (
      "tag" if values.get("feature_dim") or values.get("head") else "classify"
  )
  return config_lib.from_dict({"task": task, "model": values}).model


def padded(lengths, seed=0, width=None):
  """Random sentences, padded with random (not zero) ids: padding must not
  matter whatever it holds."""
  rng = np.random.default_rng(seed)
  width = width or max(lengths)
  x = rng.integers(0, VOCAB, (len(lengths), width)).astype(np.int32)
  f = rng.integers(0, POS, x.shape).astype(np.int32)
  mask = np.arange(width)[None, :] < np.array(lengths)[:, None]
  return x, f, mask


@pytest.mark.parametrize("cell", list(cells_lib.CELLS))
def test_backward_direction_is_the_forward_layer_over_reversed_sentences(cell):
  cfg = model_cfg(cell=cell, num_layers=1)
  params = encoder.init_params(jax.random.key(1), cfg, CLASSES, True)
  lengths = np.array([6, 3, 1, 4])
  x, _, mask = padded(lengths)
  outs = jax.jit(encoder.encode, static_argnums=1)(params, cfg, x, mask)
  # Each sentence reversed by hand within its length (padding stays last),
  # through the plain forward scan of the backward direction's parameters.
  t = np.arange(x.shape[1])
  flip_BT = np.where(t < lengths[:, None], lengths[:, None] - 1 - t, t)
  x_rev = np.take_along_axis(x, flip_BT, axis=1)
  cell_ = cells_lib.get_cell(cell)
  carry = cells_lib.init_carry(cell_, len(lengths), cfg.hidden)
  _, h_TBH = jax.jit(
      lambda p, x_TBE: scan.run_layer(cell_, p, carry, x_TBE, impl="autodiff")
  )(params["layers"][0]["bwd"], params["embed"][x_rev.T])
  h_BTH = np.take_along_axis(
      np.swapaxes(h_TBH, 0, 1), flip_BT[..., None], axis=1
  )
  np.testing.assert_allclose(
      outs["bwd"][mask], h_BTH[mask], rtol=1e-5, atol=1e-6
  )


@pytest.mark.parametrize(
    "model",
    [
        {"pooling": "ends"},
        {"pooling": "mean", "merge": "sum"},
        {"pooling": "max", "cell": "gru"},
        {"pooling": "ends", "bidirectional": False, "cell": "rnn_tanh"},
    ],
)
def test_a_padded_batch_classifies_each_sentence_as_alone(model):
  cfg = model_cfg(**model)
  params = encoder.init_params(jax.random.key(2), cfg, CLASSES, False)
  lengths = [7, 2, 1]
  x, _, mask = padded(lengths)
  logits = jax.jit(encoder.classify_logits, static_argnums=1)
  batch = logits(params, cfg, x, mask)
  for b, n in enumerate(lengths):
    alone = logits(params, cfg, x[b : b + 1, :n], mask[b : b + 1, :n])
    np.testing.assert_allclose(batch[b], alone[0], rtol=1e-5, atol=1e-6)


def test_a_padded_batch_tags_each_sentence_as_alone_with_features():
  cfg = model_cfg(feature_dim=3, merge="concat", head="crf")
  params = encoder.init_params(jax.random.key(3), cfg, CLASSES, True)
  lengths = [4, 6, 1]
  x, f, mask = padded(lengths)
  emissions = jax.jit(encoder.tag_emissions, static_argnums=1)
  batch = emissions(params, cfg, x, mask, f)
  assert batch.shape == (3, 6, CLASSES)
  for b, n in enumerate(lengths):
    alone = emissions(
        params, cfg, x[b : b + 1, :n], mask[b : b + 1, :n], f[b : b + 1, :n]
    )
    np.testing.assert_allclose(batch[b, :n], alone[0], rtol=1e-5, atol=1e-6)


def test_the_ends_are_the_last_forward_and_first_backward_states():
  cfg = model_cfg(num_layers=1)
  params = encoder.init_params(jax.random.key(4), cfg, CLASSES, False)
  x, _, mask = padded([3, 5])

  @jax.jit
  def encode_and_pool(p):
    outs = encoder.encode(p, cfg, x, mask)
    return outs, encoder.pool(cfg, outs, mask)

  outs, pooled = encode_and_pool(params)
  np.testing.assert_array_equal(pooled[0, :5], outs["fwd"][0, 2])
  np.testing.assert_array_equal(pooled[1, :5], outs["fwd"][1, 4])
  np.testing.assert_array_equal(pooled[:, 5:], outs["bwd"][:, 0])


def test_fast_layers_compute_the_reference_function_with_its_gradient():
  # Sentences of >= 32 steps take the fused C++ layer where it is built
  # (backends.FUSED_MIN_STEPS); "reference" turns every fast path off.
  fast = model_cfg(cell="lstm")
  ref = dataclasses.replace(fast, backend="reference")
  params = encoder.init_params(jax.random.key(5), fast, CLASSES, False)
  x, _, mask = padded([40, 33, 9], seed=6)

  def loss(p, cfg):
    return jnp.sum(jnp.sin(encoder.classify_logits(p, cfg, x, mask)))

  value_and_grad = jax.jit(jax.value_and_grad(loss), static_argnums=1)
  for a, b in zip(
      jax.tree.leaves(value_and_grad(params, fast)),
      jax.tree.leaves(value_and_grad(params, ref)),
  ):
    np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-5)
