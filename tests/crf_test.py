"""The linear-chain CRF against brute-force enumeration of all tag sequences,
a hand-computed score, finite differences and unpadded single sequences."""

import itertools

import jax
import jax.numpy as jnp
import jax.test_util
import numpy as np

from rnnlm_jax import crf

B, T, C = 3, 4, 3
LENGTHS = (4, 2, 1)


def _problem(seed=0):
  """Params and emissions at scale about 1 (so that a wrong term shows), and
  a left-aligned mask of LENGTHS whose padding holds large garbage."""
  key_params, key_emit = jax.random.split(jax.random.key(seed))
  params = crf.init_params(key_params, C, scale=1.0)
  emissions = np.array(jax.random.normal(key_emit, (B, T, C)))
  mask = np.arange(T)[None, :] < np.array(LENGTHS)[:, None]
  emissions[~mask] = 100.0 * np.random.default_rng(seed).normal(
      size=((~mask).sum(), C)
  )
  return params, jnp.asarray(emissions), jnp.asarray(mask)


def _score_np(params, emissions_TC, tags):
  """The score of one unpadded tag sequence, written out in plain Python."""
  p = jax.tree.map(np.asarray, params)
  e = np.asarray(emissions_TC)
  score = p["start"][tags[0]] + p["end"][tags[-1]]
  for t, tag in enumerate(tags):
    score += e[t, tag]
    if t:
      score += p["transitions"][tags[t - 1], tag]
  return score


def _all_scores(params, emissions_TC, length):
  paths = list(itertools.product(range(C), repeat=length))
  return paths, np.array([_score_np(params, emissions_TC, y) for y in paths])


def test_log_partition_equals_brute_force():
  params, emissions, mask = _problem()
  expected = []
  for b, length in enumerate(LENGTHS):
    _, scores = _all_scores(params, emissions[b], length)
    expected.append(np.logaddexp.reduce(scores))
  got = jax.jit(crf.log_partition)(params, emissions, mask)
  np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_viterbi_equals_brute_force_argmax():
  for seed in range(3):  # Seed 1 alone misses a dropped end score.
    params, emissions, mask = _problem(seed)
    got = np.asarray(jax.jit(crf.viterbi)(params, emissions, mask))
    assert got.dtype == np.int32
    for b, length in enumerate(LENGTHS):
      paths, scores = _all_scores(params, emissions[b], length)
      assert tuple(got[b, :length]) == paths[np.argmax(scores)]
      assert (got[b, length:] == 0).all()


def test_nll_gradients_match_finite_differences():
  with jax.enable_x64(True):
    params, emissions, mask = jax.tree.map(
        lambda a: a.astype(jnp.float64) if a.dtype == jnp.float32 else a,
        _problem(seed=2),
    )
    emissions = jnp.where(mask[..., None], emissions, 0.3)
    tags = jnp.array([[0, 2, 1, 1], [2, 2, 0, 0], [1, 0, 0, 0]])
    loss = jax.jit(lambda p, e: crf.nll(p, e, tags, mask).sum())
    jax.test_util.check_grads(
        loss, (params, emissions), order=1, modes=["rev"], eps=1e-5
    )


def test_padded_batch_equals_each_sequence_alone():
  params, emissions, mask = _problem(seed=3)
  tags = jnp.array([[0, 2, 1, 1], [2, 1, 0, 0], [1, 0, 0, 0]])
  log_z = jax.jit(crf.log_partition)(params, emissions, mask)
  nlls = jax.jit(crf.nll)(params, emissions, tags, mask)
  paths = jax.jit(crf.viterbi)(params, emissions, mask)

  @jax.jit
  def alone(emissions, tags):  # One compile per length, not one per op.
    ones = jnp.ones(tags.shape, bool)
    return (
        crf.log_partition(params, emissions, ones),
        crf.nll(params, emissions, tags, ones),
        crf.viterbi(params, emissions, ones),
    )

  for b, length in enumerate(LENGTHS):
    log_z_b, nll_b, path_b = alone(
        emissions[b : b + 1, :length], tags[b : b + 1, :length]
    )
    np.testing.assert_allclose(log_z[b], log_z_b[0], rtol=1e-6)
    np.testing.assert_allclose(nlls[b], nll_b[0], rtol=1e-5)
    np.testing.assert_array_equal(paths[b, :length], path_b[0])


def test_vmap_over_batches_equals_each_batch():
  params, emissions, mask = _problem(seed=4)
  stacked = jnp.stack([emissions, emissions[::-1] * 2.0])
  masks = jnp.stack([mask, mask[::-1]])
  for fn in (crf.log_partition, crf.viterbi):
    batched = jax.jit(jax.vmap(fn, in_axes=(None, 0, 0)))(
        params, stacked, masks
    )
    for i in range(2):
      np.testing.assert_allclose(
          batched[i], jax.jit(fn)(params, stacked[i], masks[i])
      )


def test_sequence_score_by_hand():
  params = {
      "transitions": jnp.array([[0.1, 0.2], [0.3, 0.4]]),
      "start": jnp.array([1.0, 2.0]),
      "end": jnp.array([10.0, 20.0]),
  }
  emissions = jnp.array([[[0.5, 1.5], [2.5, 3.5]]] * 2)
  tags = jnp.array([[1, 0], [0, 1]])
  mask = jnp.array([[True, True], [True, False]])
  got = jax.jit(crf.sequence_score)(params, emissions, tags, mask)
  # Row 0: start[1] + e[0, 1] + transitions[1, 0] + e[1, 0] + end[0].
  # Row 1 stops after one step: start[0] + e[0, 0] + end[0].
  np.testing.assert_allclose(
      got, [2.0 + 1.5 + 0.3 + 2.5 + 10.0, 1.0 + 0.5 + 10.0], rtol=1e-6
  )


def test_nll_is_a_normalised_negative_log_probability():
  params, emissions, _ = _problem(seed=5)
  paths = jnp.array(list(itertools.product(range(C), repeat=T)))
  n = paths.shape[0]
  many = jnp.broadcast_to(emissions[0], (n, T, C))
  nlls = jax.jit(crf.nll)(params, many, paths, jnp.ones((n, T), bool))
  assert (nlls >= 0).all()
  np.testing.assert_allclose(jnp.exp(-nlls).sum(), 1.0, rtol=1e-5)
