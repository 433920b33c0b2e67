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
  ids = rng.choice(4, size=5_000, p=[0.7, 0.2, 0.07, 0.03]).astype(np.int32)
  lines = np.zeros(len(ids), np.int32)
  counts = np.bincount(ids, minlength=4)
  keep = word2vec.keep_probability(counts, 1e-2)
  assert keep[0] < 0.3 < 0.9 < keep[3] < 1.0
  epochs = 300
  kept = np.array(
      [
          np.bincount(
              (
                  e := word2vec.epoch_batches(
                      ids, lines, keep, 1, 256, np.random.default_rng(1000 + k)
                  )
              )["centre"][e["index"] >= 0],
              minlength=4,
          )
          for k in range(epochs)
      ]
  )
  # A coin per occurrence (word2vec.c's): each word's kept count per epoch
  # is binomial(count, keep): its mean and its spread.
  mean, var = counts * keep, counts * keep * (1 - keep)
  for w in range(4):
    assert abs(kept[:, w].mean() - mean[w]) < 5 * np.sqrt(var[w] / epochs)
    assert abs(kept[:, w].var() / var[w] - 1) < 0.3
  assert kept.sum(1).max() <= word2vec.epoch_capacity(ids, keep)


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
  n, w = 4000, 4
  ids = np.arange(n, dtype=np.int32) % 50
  keep = np.ones(50)
  # One long line: each centre's window size is its count of contexts on
  # either side (one end may cut a side).
  epoch = word2vec.epoch_batches(
      ids, np.zeros(n, np.int32), keep, w, 32, np.random.default_rng(0)
  )
  real = epoch["index"] >= 0
  np.testing.assert_array_equal(epoch["centre"][real], ids)  # in order
  mask = epoch["mask"][real]
  sizes = np.maximum(mask[:, :w].sum(1), mask[:, w:].sum(1))
  counts = np.bincount(sizes, minlength=w + 1)[1:]
  assert stats.chisquare(counts).pvalue > 1e-3  # uniform on 1..w
  # The contexts are the centre's neighbours (ids are positions mod 50).
  offsets = np.concatenate([np.arange(-w, 0), np.arange(1, w + 1)])
  want = (ids[:, None] + offsets[None, :]) % 50
  np.testing.assert_array_equal(epoch["context"][real][mask], want[mask])
  # Windows never cross a line: lines of 7 words.
  lines = np.arange(n, dtype=np.int32) // 7
  epoch = word2vec.epoch_batches(
      ids, lines, keep, w, 32, np.random.default_rng(1)
  )
  mask = epoch["mask"][epoch["index"] >= 0]
  assert mask.sum(1).max() <= 6
  line_of_centre = np.arange(n) // 7
  pos = np.arange(n)[:, None] + offsets[None, :]
  assert (
      line_of_centre[np.clip(pos, 0, n - 1)][mask]
      == np.broadcast_to(line_of_centre[:, None], pos.shape)[mask]
  ).all()


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


@pytest.mark.parametrize("mode", ["skipgram", "cbow"])
def test_the_cpp_step_computes_the_jax_update(mode):
  from rnnlm_jax import backends
  from rnnlm_jax import config as config_lib
  from rnnlm_jax.backends import fused

  kernel, path = backends.word2vec_kernel(config_lib.ModelConfig())
  if kernel is None:
    pytest.skip(path)
  assert path.startswith("update=c++")
  rng = np.random.default_rng(4)
  params, batch = _params(4), _batch(rng, b=16, w=3)
  update_fn = getattr(word2vec, f"{mode}_update")
  want, want_sums = update_fn(params, batch, KEY, TABLE, K, 0.05)
  # Not donated: the kernel starts from a copy and leaves params as it was.
  before = jax.device_get(params)
  got, got_sums = jax.jit(
      lambda p: update_fn(
          p, batch, KEY, TABLE, K, 0.05, kernel=fused.word2vec_update
      )
  )(params)
  for name in ("input", "output"):
    np.testing.assert_allclose(got[name], want[name], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(params[name], before[name])
  for name in ("loss", "count", "tokens", "grad_norm"):
    np.testing.assert_allclose(got_sums[name], want_sums[name], rtol=1e-5)
  off = {
      "reference": backends.word2vec_kernel(
          config_lib.ModelConfig(backend="reference")
      )
  }
  assert off["reference"][0] is None
