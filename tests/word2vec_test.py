"""word2vec: the negative-sampling losses and their sparse updates against
NumPy references and jax.grad, the negatives' distribution, subsampling and
the dynamic windows."""

import numpy as np
import pytest
import jax
import jax.numpy as jnp
from scipy import stats

from rnnlm_jax import word2vec

V, D, K = 7, 4, 3


def _batch(rng, b=5, w=2):
  mask = rng.random((b, 2 * w)) < 0.7
  mask[-1] = False  # a padding row: no context
  return {
      "centre": jnp.asarray(rng.integers(0, V, b), jnp.int32),
      "context": jnp.asarray(rng.integers(0, V, (b, 2 * w)), jnp.int32),
      "mask": jnp.asarray(mask),
      "index": jnp.asarray(np.r_[np.arange(b - 1), -1], jnp.int32),
  }


def _params(seed=0):
  k1, k2 = jax.random.split(jax.random.key(seed))
  return {
      "input": jax.random.normal(k1, (V, D)) * 0.5,
      "output": jax.random.normal(k2, (V, D)) * 0.5,
  }


TABLE = tuple(
    map(
        jnp.asarray,
        word2vec.alias_table(
            word2vec.noise_distribution(np.array([50, 20, 10, 5, 3, 2, 1]))
        ),
    )
)
KEY = jax.random.key(3)


def _log_sigmoid(x):
  return -np.log1p(np.exp(-x))


def _numpy_skipgram(params, batch, out, valid):
  """Loss and gradients by the textbook formulas, pair by pair."""
  vin, vout = np.asarray(params["input"], np.float64), np.asarray(
      params["output"], np.float64
  )
  loss, g_in, g_out = 0.0, np.zeros_like(vin), np.zeros_like(vout)
  for b in range(len(out)):
    for c, ctx in enumerate(np.asarray(batch["context"][b])):
      if not batch["mask"][b, c]:
        continue
      for o, word in enumerate(out[b]):
        if not valid[b, o]:
          continue
        sign = 1.0 if o == 0 else -1.0
        s = vin[ctx] @ vout[word]
        loss -= _log_sigmoid(sign * s)
        # d(-log sigma(sign s))/ds = -sign * sigma(-sign s)
        d = -sign / (1.0 + np.exp(sign * s))
        g_in[ctx] += d * vout[word]
        g_out[word] += d * vin[ctx]
  return loss, g_in, g_out


def _numpy_cbow(params, batch, out, valid):
  """CBOW's loss, and word2vec.c's gradients: the window's mean predicts the
  centre, and each context word receives the mean's whole gradient."""
  vin, vout = np.asarray(params["input"], np.float64), np.asarray(
      params["output"], np.float64
  )
  loss, g_in, g_out = 0.0, np.zeros_like(vin), np.zeros_like(vout)
  for b in range(len(out)):
    ctx = np.asarray(batch["context"][b])[np.asarray(batch["mask"][b])]
    if not len(ctx):
      continue
    h = vin[ctx].mean(axis=0)
    dh = np.zeros(D)
    for o, word in enumerate(out[b]):
      if not valid[b, o]:
        continue
      sign = 1.0 if o == 0 else -1.0
      s = h @ vout[word]
      loss -= _log_sigmoid(sign * s)
      d = -sign / (1.0 + np.exp(sign * s))
      dh += d * vout[word]
      g_out[word] += d * h
    for c in ctx:
      g_in[c] += dh
  return loss, g_in, g_out


@pytest.mark.parametrize(
    "mode,reference",
    [("skipgram", _numpy_skipgram), ("cbow", _numpy_cbow)],
)
def test_loss_and_update_match_numpy(mode, reference):
  rng = np.random.default_rng(0)
  params, batch = _params(), _batch(rng)
  loss_fn = getattr(word2vec, f"{mode}_loss")
  update_fn = getattr(word2vec, f"{mode}_update")
  out, valid = jax.device_get(word2vec._outputs(KEY, TABLE, batch["centre"], K))
  want_loss, g_in, g_out = reference(params, batch, out, valid)
  loss, _ = loss_fn(params, batch, KEY, TABLE, K)
  np.testing.assert_allclose(loss, want_loss, rtol=1e-5)
  lr = 0.1
  new, sums = update_fn(params, batch, KEY, TABLE, K, lr)
  np.testing.assert_allclose(sums["loss"], want_loss, rtol=1e-5)
  np.testing.assert_allclose(
      new["input"], np.asarray(params["input"]) - lr * g_in, atol=1e-6
  )
  np.testing.assert_allclose(
      new["output"], np.asarray(params["output"]) - lr * g_out, atol=1e-6
  )
  assert sums["tokens"] == 4  # the padding row is no centre


@pytest.mark.parametrize("mode", ["skipgram", "cbow"])
def test_sparse_update_is_sgd_on_the_loss(mode):
  """The written-out update equals params - lr * jax.grad of the loss (for
  CBOW, the loss whose mean passes its gradient on undivided)."""
  rng = np.random.default_rng(1)
  params, batch = _params(1), _batch(rng, b=8, w=3)
  loss_fn = getattr(word2vec, f"{mode}_loss")
  update_fn = getattr(word2vec, f"{mode}_update")
  grads = jax.grad(lambda p: loss_fn(p, batch, KEY, TABLE, K)[0])(params)
  new, _ = update_fn(params, batch, KEY, TABLE, K, 0.05)
  for name in ("input", "output"):
    np.testing.assert_allclose(
        new[name], params[name] - 0.05 * grads[name], atol=1e-6
    )


def test_gradient_matches_finite_differences():
  rng = np.random.default_rng(2)
  batch = _batch(rng)
  params = jax.tree.map(
      lambda a: a.astype(np.float64), jax.device_get(_params())
  )
  out, valid = jax.device_get(word2vec._outputs(KEY, TABLE, batch["centre"], K))
  _, g_in, _ = _numpy_skipgram(params, batch, out, valid)
  eps = 1e-6
  for row, col in [
      (int(batch["context"][0, 0]), 1),
      (int(batch["context"][1, 2]), 3),
  ]:
    plus = {**params, "input": params["input"].copy()}
    minus = {**params, "input": params["input"].copy()}
    plus["input"][row, col] += eps
    minus["input"][row, col] -= eps
    numeric = (
        _numpy_skipgram(plus, batch, out, valid)[0]
        - _numpy_skipgram(minus, batch, out, valid)[0]
    ) / (2 * eps)
    np.testing.assert_allclose(g_in[row, col], numeric, rtol=1e-5, atol=1e-8)


def test_negatives_follow_the_unigram_distribution_to_three_quarters():
  counts = np.array([400, 200, 90, 40, 10, 5, 0, 1])
  probs = word2vec.noise_distribution(counts, 0.75)
  np.testing.assert_allclose(probs, counts**0.75 / np.sum(counts**0.75))
  table = tuple(map(jnp.asarray, word2vec.alias_table(probs)))
  n = 200_000
  draws = np.asarray(word2vec.draw(jax.random.key(0), table, (n,)))
  observed = np.bincount(draws, minlength=len(counts))
  assert observed[6] == 0  # a word of count 0 is never a negative
  seen = probs > 0
  assert stats.chisquare(observed[seen], n * probs[seen]).pvalue > 1e-3
  # The test tells 3/4 from the raw counts.
  raw = counts / counts.sum()
  assert stats.chisquare(observed[seen], n * raw[seen]).pvalue < 1e-12


def test_keep_probability_is_word2vecs():
  counts = np.array([10_000, 1_000, 100, 10, 0])
  sample = 1e-3
  t = sample * counts.sum()  # 11.11
  keep = word2vec.keep_probability(counts, sample)
  want = [
      (np.sqrt(10_000 / t) + 1) * t / 10_000,
      (np.sqrt(1_000 / t) + 1) * t / 1_000,
      (np.sqrt(100 / t) + 1) * t / 100,  # 0.444
      1.0,
      1.0,
  ]  # 2.16 capped at 1; a word of count 0
  np.testing.assert_allclose(keep, want)
  assert np.all(word2vec.keep_probability(counts, 0.0) == 1.0)


def test_subsampling_keeps_each_word_at_the_documented_rate():
  rng = np.random.default_rng(0)
  ids = rng.choice(4, size=20_000, p=[0.7, 0.2, 0.07, 0.03]).astype(np.int32)
  counts = np.bincount(ids, minlength=4)
  keep = word2vec.keep_probability(counts, 1e-2)
  assert keep[0] < 0.2 < 0.9 < keep[3] < 1.0
  hits = np.zeros(len(ids))
  epochs = 200
  for e in range(epochs):
    kept = word2vec.subsample(ids, keep, np.random.default_rng(e))
    # Exactly round(f * p) occurrences of each word, every epoch.
    np.testing.assert_array_equal(
        np.bincount(ids[kept], minlength=4), np.rint(counts * keep)
    )
    hits += kept
  # Each occurrence is kept with probability p: its keep rate over the
  # epochs is p within binomial error, for every word.
  for w in range(4):
    rate = hits[ids == w] / epochs
    assert abs(rate.mean() - keep[w]) < 1e-3
    sd = np.sqrt(keep[w] * (1 - keep[w]) / epochs)
    assert abs(rate.std() - sd) < 0.1 * sd


def test_epochs_have_one_shape():
  rng = np.random.default_rng(0)
  ids = rng.choice(30, size=5_000).astype(np.int32)
  lines = np.arange(len(ids), dtype=np.int32) // 11
  keep = word2vec.keep_probability(np.bincount(ids, minlength=30), 1e-2)
  shapes = {
      str(
          jax.tree.map(
              np.shape,
              word2vec.epoch_batches(
                  ids, lines, keep, 5, 64, np.random.default_rng(e)
              ),
          )
      )
      for e in range(4)
  }
  assert len(shapes) == 1


def test_windows_are_drawn_uniformly_and_stay_in_their_line():
  ids = np.arange(2000, dtype=np.int32) % 50
  lines = np.arange(2000, dtype=np.int32) // 7
  keep = np.ones(50)
  epoch = word2vec.epoch_batches(
      ids, lines, keep, 4, 32, np.random.default_rng(0)
  )
  sizes = {
      b["context"].shape[2] // 2: (b["index"] >= 0).sum()
      for b in epoch["buckets"]
  }
  assert sorted(sizes) == [1, 2, 3, 4]
  assert sum(sizes.values()) == 2000  # every word a centre once
  assert set(sizes.values()) == {500}  # equal shares of each size
  for b in epoch["buckets"]:
    w = b["context"].shape[2] // 2
    for centre_pos in np.flatnonzero(b["index"].ravel() >= 0)[:200]:
      centre = b["centre"].ravel()[centre_pos]
      ctx = b["context"].reshape(-1, 2 * w)[centre_pos]
      mask = b["mask"].reshape(-1, 2 * w)[centre_pos]
      # ids are positions mod 50, so the centre's position is known up to
      # 50; contexts are its neighbours within w, in the same line of 7.
      offsets = (ctx[mask] - centre + 25) % 50 - 25
      assert set(offsets) <= set(range(-w, w + 1)) - {0}
  # Positions 0..6 form line 0: position 6's right neighbours are masked.
  assert (epoch["schedule"][:, 0] < len(epoch["buckets"])).all()


def test_eval_batches_cover_every_position_once():
  ids = np.arange(50, dtype=np.int32) % 9
  lines = np.arange(50, dtype=np.int32) // 10
  batches = word2vec.eval_batches(ids, lines, 2, 16)
  real = batches["index"] >= 0
  np.testing.assert_array_equal(batches["centre"][real], ids)
  # Position 9 ends line 0: its two right neighbours are not contexts.
  flat_mask = batches["mask"].reshape(-1, 4)
  np.testing.assert_array_equal(flat_mask[9], [True, True, False, False])
  np.testing.assert_array_equal(flat_mask[0], [False, False, True, True])
