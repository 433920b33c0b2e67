"""The encoder-decoder: attention is a distribution over the real source
positions; a padded batch gives each pair's results alone; the teacher-forced
scan (hoisted projections) is a loop of decoder_step; gradients match finite
differences; the loss's sums; scheduled sampling at rates 0 and 1.

Compiling dominates this file's time, so each test compiles one program
(``jit``: everything it compares, compiled at XLA's lowest backend
optimisation level, a third of the time) and draws its parameters without
compiling (``params_of``)."""

import dataclasses

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from rnnlm_jax import config as config_lib
from rnnlm_jax import encoder
from rnnlm_jax import seq2seq

SRC_VOCAB, TGT_VOCAB = 11, 9
# Each pair has padding on both sides; alone, they have two shapes.
SRC_LENGTHS, TGT_LENGTHS = (4, 2), (2, 3)
CASES = [(a, c) for a in seq2seq.ATTENTIONS for c in ("lstm", "gru")]


def model_cfg(**model):
  values = {
      "vocab_size": SRC_VOCAB,
      "target_vocab_size": TGT_VOCAB,
      "embed_dim": 4,
      "hidden": 5,
      "num_layers": 1,
      "decoder_layers": 2,
      "bidirectional": True,
      "attention_dim": 3,
      "dropout": 0.3,  # Only where a test passes a key.
      "backend": "reference",
      **model,
  }
  if values.get("attention") == "luong_dot":
    values.setdefault("merge", "sum")  # The memory must be hidden wide.
  return config_lib.from_dict({"task": "translate", "model": values}).model


def jit(fn):
  return jax.jit(fn, compiler_options={"xla_backend_optimization_level": 0})


def params_of(cfg, seed=0, dtype=np.float32):
  """Parameters of init_params' layout drawn with numpy, Uniform(-0.5, 0.5):
  large enough that a wrong term shows, and nothing to compile."""
  shapes = jax.eval_shape(lambda: seq2seq.init_params(jax.random.key(0), cfg))
  rng = np.random.default_rng(seed)
  return jax.tree.map(
      lambda s: rng.uniform(-0.5, 0.5, s.shape).astype(dtype), shapes
  )


def padded_batch(seed=0):
  """Random pairs, padded with random (not zero) ids: padding must not
  matter whatever it holds."""
  rng = np.random.default_rng(seed)

  def side(lengths, vocab):
    x = rng.integers(0, vocab, (len(lengths), max(lengths) + 1))
    mask = np.arange(x.shape[1])[None, :] < np.array(lengths)[:, None]
    return x.astype(np.int32), mask

  src, src_mask = side(SRC_LENGTHS, SRC_VOCAB)
  tgt, tgt_mask = side(TGT_LENGTHS, TGT_VOCAB)
  out = rng.integers(0, TGT_VOCAB, tgt.shape).astype(np.int32)
  return {
      "src": src,
      "src_mask": src_mask,
      "tgt_in": tgt,
      "tgt_out": out,
      "tgt_mask": tgt_mask,
  }


def alone(batch, b):
  """Pair b of a padded batch, unpadded on both sides, as a batch of one."""
  s, t = SRC_LENGTHS[b], TGT_LENGTHS[b]
  cut = {"src": s, "src_mask": s}
  return {k: v[b : b + 1, : cut.get(k, t)] for k, v in batch.items()}


def loop_of_steps(params, cfg, batch, dropout_key=None, feed_argmax=False):
  """The decoder as a Python loop of decoder_step, with the dropout keys
  the module docstring names; feed_argmax: every step after the first is
  fed the previous step's argmax."""
  enc_key = dec_key = None
  if dropout_key is not None:
    enc_key, dec_key = jax.random.split(dropout_key)
  memory = seq2seq.encode_source(
      params, cfg, batch["src"], batch["src_mask"], enc_key
  )
  state = seq2seq.init_decoder_state(params, cfg, memory)
  token = batch["tgt_in"][:, 0]
  logits, attns = [], []
  for t in range(batch["tgt_in"].shape[1]):
    if not feed_argmax:
      token = batch["tgt_in"][:, t]
    key = None if dec_key is None else jax.random.fold_in(dec_key, t)
    state, logits_BV, attn_BS = seq2seq.decoder_step(
        params, cfg, memory, state, token, key
    )
    token = jnp.argmax(logits_BV, -1).astype(token.dtype)
    logits.append(logits_BV)
    attns.append(attn_BS)
  return jnp.stack(logits, 1), jnp.stack(attns, 1)


def test_the_parameters_layout():
  for attention in seq2seq.ATTENTIONS:
    cfg = model_cfg(attention=attention, merge="sum", embed_dim=6)
    shapes = jax.eval_shape(lambda: seq2seq.init_params(jax.random.key(0), cfg))
    shape = jax.tree.map(lambda s: s.shape, shapes)
    enc = jax.eval_shape(
        lambda: encoder.init_params(jax.random.key(0), cfg, 1, False)
    )
    assert shape["encoder"] == {
        k: jax.tree.map(lambda s: s.shape, enc[k]) for k in ("embed", "layers")
    }
    assert shape["tgt_embed"] == (TGT_VOCAB, 6)
    assert shape["out"] == {"w": (5, TGT_VOCAB), "b": (TGT_VOCAB,)}
    # LSTM: each bridge makes h and c from [fwd end; bwd end].
    assert shape["bridge"] == [{"w": (10, 10), "b": (10,)}] * 2
    extra = {"none": 0, "bahdanau": 5, "luong_dot": 5, "luong_general": 5}
    assert shape["decoder"][0]["w_ih"] == (6 + extra[attention], 20)
    assert shape["decoder"][1]["w_ih"] == (5, 20)
    assert (
        shape["attention"]
        == {
            "none": {},
            "bahdanau": {"W_query": (5, 3), "W_key": (5, 3), "v": (3,)},
            "luong_dot": {},
            "luong_general": {"W": (5, 5)},
        }[attention]
    )
    assert ("combine" in shape) == (attention != "none")
  no_feeding = model_cfg(attention="luong_general", input_feeding=False)
  shapes = jax.eval_shape(
      lambda: seq2seq.init_params(jax.random.key(0), no_feeding)
  )
  assert shapes["decoder"][0]["w_ih"].shape == (4, 20)
  assert shapes["combine"]["W_c"].shape == (5 + 10, 5)
  deep = model_cfg(attention="bahdanau", decoder_layers=3)
  shapes = jax.eval_shape(lambda: seq2seq.init_params(jax.random.key(0), deep))
  assert len(shapes["decoder"]) == len(shapes["bridge"]) == 3


def _assert_close(got, want, rtol=1e-5, atol=1e-6):
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


@pytest.mark.parametrize("attention,cell", CASES)
def test_teacher_forcing_is_a_loop_of_decoder_steps(attention, cell):
  """The hoisted projections compute decoder_step's function; and the
  attention weights are a distribution over the real source tokens."""
  cfg = model_cfg(attention=attention, cell=cell)
  batch = padded_batch(seed=2)
  both = jit(
      lambda p: (
          seq2seq.teacher_forced(p, cfg, batch),
          loop_of_steps(p, cfg, batch),
      )
  )
  (logits, attn_BTS), want = both(params_of(cfg, seed=1))
  _assert_close((logits, attn_BTS), want)
  attn_BTS = np.asarray(attn_BTS)
  if attention == "none":
    assert (attn_BTS == 0).all()
    return
  real_BTS = np.broadcast_to(batch["src_mask"][:, None, :], attn_BTS.shape)
  assert (attn_BTS[~real_BTS] == 0).all()
  assert (attn_BTS[real_BTS] > 0).all()
  np.testing.assert_allclose(attn_BTS.sum(-1), 1.0, rtol=1e-6)


def test_teacher_forcing_draws_the_dropout_masks_of_the_steps():
  cfg = model_cfg(attention="luong_general")  # Input feeding.
  batch = padded_batch(seed=3)
  key = jax.random.key(4)
  runs = jit(
      lambda p: (
          seq2seq.teacher_forced(p, cfg, batch, key),
          loop_of_steps(p, cfg, batch, key),
          seq2seq.teacher_forced(p, cfg, batch),
      )
  )
  dropped, want, evaluation = runs(params_of(cfg, seed=5))
  _assert_close(dropped, want)
  assert not np.allclose(dropped[0], evaluation[0], atol=1e-3)


@pytest.mark.parametrize("attention", ["bahdanau", "luong_general"])
def test_memory_and_state_rows_repeat_for_a_beam(attention):
  """A search repeats each row of the memory and the state K times (every
  leaf's leading axis is the batch): each copy decodes as its row does."""
  cfg = model_cfg(attention=attention)
  batch = padded_batch(seed=18)
  beam = 3
  repeat = lambda tree: jax.tree.map(lambda a: jnp.repeat(a, beam, 0), tree)

  def decode(p, memory, state, token_B):
    for _ in range(2):
      state, logits_BV, attn_BS = seq2seq.decoder_step(
          p, cfg, memory, state, token_B
      )
      token_B = jnp.argmax(logits_BV, -1)
    return state, logits_BV, attn_BS

  def run(p):
    memory = seq2seq.encode_source(p, cfg, batch["src"], batch["src_mask"])
    state = seq2seq.init_decoder_state(p, cfg, memory)
    token_B = batch["tgt_in"][:, 0]
    rows = decode(p, memory, state, token_B)
    beams = decode(p, repeat(memory), repeat(state), repeat(token_B))
    return memory, state, rows, beams

  memory, state, rows, beams = jit(run)(params_of(cfg, seed=19))
  for a in jax.tree.leaves((memory, state)):
    assert a.shape[0] == len(SRC_LENGTHS)
  _assert_close(repeat(rows), beams)


def test_a_source_without_tokens_attends_to_nothing_without_nan():
  scores = jnp.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
  mask = jnp.array([[True, False, True], [False, False, False]])
  softmax = lambda s: seq2seq.masked_softmax(s, mask)
  weights, grad = jit(
      lambda s: (softmax(s), jax.grad(lambda s: softmax(s)[:, 0].sum())(s))
  )(scores)
  np.testing.assert_allclose(
      weights[0], [1 / (1 + np.e**2), 0, 1 / (1 + np.e**-2)], rtol=1e-6
  )
  np.testing.assert_array_equal(weights[1], 0.0)
  assert np.isfinite(grad).all()


@pytest.mark.parametrize("attention", seq2seq.ATTENTIONS)
def test_a_padded_batch_translates_each_pair_as_alone(attention):
  cfg = model_cfg(attention=attention)
  batch = padded_batch(seed=6)
  pairs = [alone(batch, b) for b in range(len(SRC_LENGTHS))]
  forced = lambda p, b: seq2seq.teacher_forced(p, cfg, b)
  runs = jit(lambda p: (forced(p, batch), [forced(p, b) for b in pairs]))
  (logits_BTV, attn_BTS), each = runs(params_of(cfg, seed=7))
  for b, (s, t) in enumerate(zip(SRC_LENGTHS, TGT_LENGTHS)):
    logits, attn = each[b]
    _assert_close(
        (logits_BTV[b, :t], attn_BTS[b, :t, :s]), (logits[0], attn[0])
    )
    assert not np.asarray(attn_BTS[b, :, s:]).any()


@pytest.mark.parametrize("attention", ["bahdanau", "luong_general"])
def test_scheduled_sampling_at_rates_0_and_1(attention):
  """Rate 0 is teacher forcing; rate 1 feeds every step after the first
  the previous step's argmax."""
  cfg = model_cfg(attention=attention, cell="gru")
  batch = padded_batch(seed=8)
  key = jax.random.key(9)
  sampled = lambda p, rate: seq2seq.teacher_forced(
      p, cfg, batch, sample_key=key, sampling_rate=rate
  )
  runs = jit(
      lambda p: (
          sampled(p, 0.0),
          seq2seq.teacher_forced(p, cfg, batch),
          sampled(p, 1.0),
          loop_of_steps(p, cfg, batch, feed_argmax=True),
      )
  )
  at_0, forced, at_1, greedy = runs(params_of(cfg, seed=10))
  _assert_close(at_0, forced)
  _assert_close(at_1, greedy)
  assert not np.allclose(at_1[0], forced[0], atol=1e-3)


def test_the_loss_counts_real_tokens_only_and_smooths_as_optax():
  cfg = model_cfg(attention="luong_dot")
  smoothed = dataclasses.replace(cfg, label_smoothing=0.2)
  batch = padded_batch(seed=11)
  mask = batch["tgt_mask"]
  repadded = dict(batch)
  for k in ("tgt_in", "tgt_out"):
    repadded[k] = np.where(mask, batch[k], (batch[k] + 1) % TGT_VOCAB)
  runs = jit(
      lambda p: (
          seq2seq.teacher_forced(p, cfg, batch)[0],
          seq2seq.loss_sums(p, cfg, batch),
          seq2seq.loss_sums(p, cfg, repadded),
          seq2seq.loss_sums(p, smoothed, batch),
      )
  )
  logits, (objective, sums), repadded_loss, (smooth_objective, smooth_sums) = (
      runs(params_of(cfg, seed=12))
  )
  nll = optax.softmax_cross_entropy_with_integer_labels(
      logits, batch["tgt_out"]
  )
  np.testing.assert_allclose(sums["nll"], nll[mask].sum(), rtol=1e-5)
  assert sums["count"] == sum(TGT_LENGTHS)
  hits = np.argmax(logits, -1) == batch["tgt_out"]
  assert sums["correct"] == hits[mask].sum()
  assert all(v.dtype == jnp.float32 and v.shape == () for v in sums.values())
  # Label smoothing 0: the objective is the mean nll.
  np.testing.assert_allclose(objective, sums["nll"] / sums["count"], rtol=1e-6)
  # What the padding holds changes nothing.
  _assert_close(repadded_loss, (objective, sums), rtol=1e-6, atol=0)
  # Smoothing: optax's smoothed labels; the sums stay unsmoothed.
  labels = optax.smooth_labels(jax.nn.one_hot(batch["tgt_out"], TGT_VOCAB), 0.2)
  want = optax.softmax_cross_entropy(logits, labels)[mask].mean()
  np.testing.assert_allclose(smooth_objective, want, rtol=1e-5)
  _assert_close(smooth_sums, sums, rtol=1e-6, atol=0)


def test_the_loss_takes_traced_rates_under_vmap():
  """As a training step over trials calls it: keys and rates batched."""
  cfg = model_cfg(attention="bahdanau", decoder_layers=1)
  params = params_of(cfg, seed=13)
  batch = padded_batch(seed=14)

  def loss(key, rate, sampling_rate):
    return seq2seq.loss_sums(params, cfg, batch, key, rate, sampling_rate)[0]

  keys = jax.random.split(jax.random.key(15), 3)
  runs = jit(
      lambda: (
          jax.vmap(loss)(
              keys, jnp.array([0.0, 0.3, 0.3]), jnp.array([0.0, 0.0, 1.0])
          ),
          seq2seq.loss_sums(params, cfg, batch)[0],
      )
  )
  got, evaluation = runs()
  # Trial 0 drops nothing and samples nothing: evaluation's loss.
  np.testing.assert_allclose(got[0], evaluation, rtol=1e-5)
  assert np.isfinite(got).all()
  assert not np.isclose(got[1], evaluation) and not np.isclose(got[2], got[1])


@pytest.mark.parametrize(
    "model",
    [
        {"attention": "bahdanau", "cell": "lstm", "label_smoothing": 0.1},
        {"attention": "luong_general", "cell": "gru"},  # Input feeding.
    ],
)
def test_loss_gradients_match_finite_differences(model):
  """jax.grad against central differences along random directions, in
  float64 (one compiled value_and_grad serves both)."""
  cfg = model_cfg(**model)
  batch = padded_batch(seed=16)
  eps = 1e-5
  with jax.enable_x64(True):
    params = params_of(cfg, seed=17, dtype=np.float64)
    value_and_grad = jit(
        jax.value_and_grad(lambda p: seq2seq.loss_sums(p, cfg, batch)[0])
    )
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    grad, _ = jax.flatten_util.ravel_pytree(value_and_grad(params)[1])
    rng = np.random.default_rng(0)
    for _ in range(3):
      direction = rng.normal(size=flat.shape)
      direction /= np.linalg.norm(direction)
      plus, _ = value_and_grad(unravel(flat + eps * direction))
      minus, _ = value_and_grad(unravel(flat - eps * direction))
      np.testing.assert_allclose(
          grad @ direction, (plus - minus) / (2 * eps), rtol=1e-6, atol=1e-9
      )
