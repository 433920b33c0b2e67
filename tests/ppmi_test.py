"""Tests for rnnlm_jax.ppmi: co-occurrence counts against hand-worked matrices
and a position-by-position loop, PPMI against hand-worked values and a dense
formula, the SVD against exact low-rank reconstructions, and fit end to end."""

import math

import numpy as np
import pytest
import scipy.sparse

from rnnlm_jax import ppmi


def _loop_cooccurrence(ids, vocab_size, window, doc_ids, weighting):
  """The definition, one position at a time: drop ids < 0, then count each
  kept position's neighbours within the window and the same document."""
  keep = [i for i, t in enumerate(ids) if t >= 0]
  toks = [ids[i] for i in keep]
  docs = [0 if doc_ids is None else doc_ids[i] for i in keep]
  out = np.zeros((vocab_size, vocab_size))
  for i in range(len(toks)):
    for j in range(max(0, i - window), min(len(toks), i + window + 1)):
      d = abs(i - j)
      if d == 0 or docs[i] != docs[j]:
        continue
      w = {
          "uniform": 1.0,
          "harmonic": 1 / d,
          "linear": (window - d + 1) / window,
      }
      out[toks[i], toks[j]] += w[weighting]
  return out


def _dense_ppmi(counts, cds_alpha, shift):
  """Levy et al.'s formula on a dense matrix."""
  c = np.asarray(counts, np.float64)
  p_wc = c / c.sum()
  p_w = c.sum(1) / c.sum()
  p_c = np.where(c.sum(0) > 0, c.sum(0) ** cds_alpha, 0)  # unseen: no mass
  p_c /= p_c.sum()
  with np.errstate(divide="ignore", invalid="ignore"):
    pmi = np.log(p_wc / np.outer(p_w, p_c)) - np.log(shift)
  return np.where(c > 0, np.maximum(pmi, 0.0), 0.0)


# --- cooccurrence -------------------------------------------------------------

# ids [0, 1, 2, 0], window 3. Pairs by distance: d=1: (0,1) (1,2) (2,0);
# d=2: (0,2) (1,0); d=3: (0,0). Each pair adds its weight to [a, b] and
# [b, a], so (0,0) adds twice to [0, 0].
_WEIGHT = {  # weight of d = 1, 2, 3 with window 3
    "uniform": (1, 1, 1),
    "harmonic": (1, 1 / 2, 1 / 3),
    "linear": (1, 2 / 3, 1 / 3),
}


@pytest.mark.parametrize("weighting", ["uniform", "harmonic", "linear"])
def test_cooccurrence_of_a_tiny_stream_by_hand(weighting):
  w1, w2, w3 = _WEIGHT[weighting]
  expected = np.array(
      [
          [2 * w3, w1 + w2, w1 + w2],
          [w1 + w2, 0, w1],
          [w1 + w2, w1, 0],
      ]
  )
  got = ppmi.cooccurrence(np.array([0, 1, 2, 0]), 3, 3, weighting=weighting)
  assert isinstance(got, scipy.sparse.csr_matrix)
  assert got.dtype == np.float64 and got.shape == (3, 3)
  np.testing.assert_allclose(got.toarray(), expected, rtol=1e-12)
  if weighting == "uniform":  # written out: (0,1) at d=1 and d=2, and so on
    np.testing.assert_array_equal(
        got.toarray(), [[2, 2, 2], [2, 0, 1], [2, 1, 0]]
    )


def test_window_bounds_the_distance():
  got = ppmi.cooccurrence(np.arange(5), 5, 1).toarray()
  # Only neighbours: a tridiagonal matrix of ones with an empty diagonal.
  np.testing.assert_array_equal(got, np.eye(5, k=1) + np.eye(5, k=-1))


def test_pairs_never_cross_documents():
  got = ppmi.cooccurrence(np.arange(4), 4, 3, doc_ids=[7, 7, 9, 9]).toarray()
  expected = np.zeros((4, 4))
  expected[0, 1] = expected[1, 0] = expected[2, 3] = expected[3, 2] = 1
  np.testing.assert_array_equal(got, expected)


def test_negative_ids_are_removed_before_windowing():
  # 0 and 1 become neighbours once the -1 between them is gone...
  got = ppmi.cooccurrence(np.array([0, -1, 1]), 2, 1).toarray()
  np.testing.assert_array_equal(got, [[0, 1], [1, 0]])
  # ...but not across a document boundary.
  got = ppmi.cooccurrence(np.array([0, -1, 1]), 2, 1, doc_ids=[0, 0, 1])
  assert got.nnz == 0


@pytest.mark.parametrize("weighting", ["uniform", "harmonic", "linear"])
def test_cooccurrence_matches_a_loop_and_is_symmetric(weighting):
  rng = np.random.default_rng(0)
  ids = rng.integers(-1, 7, size=300)
  doc_ids = np.cumsum(rng.random(300) < 0.05)
  got = ppmi.cooccurrence(ids, 7, 4, doc_ids=doc_ids, weighting=weighting)
  expected = _loop_cooccurrence(ids.tolist(), 7, 4, doc_ids.tolist(), weighting)
  np.testing.assert_allclose(got.toarray(), expected, rtol=1e-12)
  np.testing.assert_array_equal(got.toarray(), got.toarray().T)
  assert got.has_canonical_format and (got.data > 0).all()


def test_cooccurrence_rejects_bad_input():
  with pytest.raises(ValueError, match="outside a vocabulary"):
    ppmi.cooccurrence(np.array([0, 3]), 3, 1)
  with pytest.raises(ValueError, match="weighting"):
    ppmi.cooccurrence(np.array([0, 1]), 3, 1, weighting="gaussian")
  with pytest.raises(ValueError, match="doc_ids"):
    ppmi.cooccurrence(np.array([0, 1]), 3, 1, doc_ids=[0])


# --- ppmi ---------------------------------------------------------------------

# C = [[4, 2], [2, 0]]: D = 8, row and column sums (6, 2).
_C = np.array([[4.0, 2.0], [2.0, 0.0]])


def test_plain_ppmi_by_hand():
  # PMI(w, c) = log(#(w,c) D / (#w #c)):
  # [0,0]: log(4*8 / (6*6)) = log(8/9) < 0, dropped;
  # [0,1] = [1,0]: log(2*8 / (6*2)) = log(4/3); [1,1]: no count, no entry.
  got = ppmi.ppmi(scipy.sparse.csr_matrix(_C), cds_alpha=1.0)
  log_4_3 = 0.28768207245178085
  np.testing.assert_allclose(got.toarray(), [[0, log_4_3], [log_4_3, 0]])
  assert got.nnz == 2


def test_smoothed_ppmi_by_hand():
  # alpha = 1/2: P_a(c) = sqrt(#c) / s with s = sqrt(6) + sqrt(2), and
  # PMI(w, c) = log(#(w,c) / #w / P_a(c)):
  # [0,0]: log(4/6 * s/sqrt(6)) = log(2/3 (1 + 1/sqrt(3))) = 0.0503 (was < 0);
  # [0,1]: log(2/6 * s/sqrt(2)) = log((1 + sqrt(3)) / 3) = -0.0936, dropped;
  # [1,0]: log(2/2 * s/sqrt(6)) = log(1 + 1/sqrt(3)) = 0.4557.
  got = ppmi.ppmi(scipy.sparse.csr_matrix(_C), cds_alpha=0.5)
  np.testing.assert_allclose(
      got.toarray(), [[0.05028128630016176, 0], [0.45574639440832615, 0]]
  )
  assert got.nnz == 2


def _random_counts(seed):
  """[9, 9] symmetric sparse counts with an empty row and column."""
  rng = np.random.default_rng(seed)
  c = rng.poisson(1.0, size=(9, 9)) * (rng.random((9, 9)) < 0.5)
  c = c + c.T
  c[4, :] = c[:, 4] = 0
  return c.astype(np.float64)


@pytest.mark.parametrize("cds_alpha", [0.75, 1.0, 0.0])
@pytest.mark.parametrize("shift", [1.0, 5.0])
def test_ppmi_matches_the_dense_formula(cds_alpha, shift):
  c = _random_counts(1)
  got = ppmi.ppmi(scipy.sparse.csr_matrix(c), cds_alpha, shift)
  np.testing.assert_allclose(
      got.toarray(), _dense_ppmi(c, cds_alpha, shift), rtol=1e-12
  )


def test_cds_alpha_one_is_plain_ppmi():
  c = _random_counts(2)
  with np.errstate(divide="ignore", invalid="ignore"):
    plain = np.log(c * c.sum() / np.outer(c.sum(1), c.sum(0)))
  plain = np.where(c > 0, np.maximum(plain, 0), 0)
  got = ppmi.ppmi(scipy.sparse.csr_matrix(c), cds_alpha=1.0)
  np.testing.assert_allclose(got.toarray(), plain, rtol=1e-12)


def test_shift_subtracts_log_k_and_drops_entries():
  c = scipy.sparse.csr_matrix(_random_counts(3))
  base, shifted = ppmi.ppmi(c, shift=1.0), ppmi.ppmi(c, shift=2.0)
  expected = np.maximum(base.toarray() - math.log(2.0), 0)
  expected[base.toarray() == 0] = 0
  np.testing.assert_allclose(shifted.toarray(), expected, rtol=1e-12)
  assert 0 < shifted.nnz < base.nnz


def test_zeros_are_not_stored():
  c = scipy.sparse.csr_matrix(_C)
  c.data[c.data == 4] = 0  # an explicitly stored zero count
  assert c.nnz == 3
  got = ppmi.ppmi(c, cds_alpha=1.0)
  assert (got.data > 0).all()
  assert got.nnz == np.count_nonzero(got.toarray())


# --- svd_vectors --------------------------------------------------------------


def _low_rank(k, seed=0):
  rng = np.random.default_rng(seed)
  return rng.standard_normal((12, k)) @ rng.standard_normal((k, 9))


@pytest.mark.parametrize("k", [1, 3])
def test_u_s_reconstructs_a_rank_k_matrix(k):
  a = _low_rank(k)
  us = ppmi.svd_vectors(scipy.sparse.csr_matrix(a), k, eig_power=1.0)
  assert us.shape == (12, k) and us.dtype == np.float32
  s = np.linalg.norm(us.astype(np.float64), axis=0)
  np.testing.assert_allclose(
      s, np.linalg.svd(a, compute_uv=False)[:k], rtol=1e-5
  )
  u = us / s
  vt = (u.T @ a) / s[:, None]  # V^T = S^-1 U^T A
  np.testing.assert_allclose(us @ vt, a, atol=1e-5)
  np.testing.assert_allclose(u.T @ u, np.eye(k), atol=1e-5)


def test_components_are_sorted_signed_and_deterministic():
  a = _low_rank(4, seed=1) + 0.01 * np.random.default_rng(2).random((12, 9))
  first = ppmi.svd_vectors(a, 4, eig_power=1.0, seed=3)
  again = ppmi.svd_vectors(a, 4, eig_power=1.0, seed=3)
  np.testing.assert_array_equal(first, again)
  other_seed = ppmi.svd_vectors(a, 4, eig_power=1.0, seed=4)
  np.testing.assert_allclose(other_seed, first, atol=1e-5)
  s = np.linalg.norm(first, axis=0)
  assert (np.diff(s) < 0).all()
  top = np.abs(first).argmax(axis=0)
  assert (first[top, np.arange(4)] > 0).all()


def test_eig_power_zero_gives_u():
  a = _low_rank(3, seed=5) + 0.01 * np.random.default_rng(6).random((12, 9))
  us = ppmi.svd_vectors(a, 3, eig_power=1.0)
  u = ppmi.svd_vectors(a, 3, eig_power=0.0)
  half = ppmi.svd_vectors(a, 3)
  s = np.linalg.norm(us, axis=0)
  np.testing.assert_allclose(u, us / s, atol=1e-6)
  np.testing.assert_allclose(half, u * np.sqrt(s), atol=1e-6)


def test_svd_vectors_rejects_too_many_components():
  with pytest.raises(ValueError, match="dim"):
    ppmi.svd_vectors(np.eye(4), 4)


# --- fit ----------------------------------------------------------------------


def test_words_with_the_same_contexts_get_the_same_vector():
  # One line each; cat (1) and dog (2) appear in exactly the same contexts.
  lines = [
      [0, 1, 3],  # the cat sat
      [0, 2, 3],  # the dog sat
      [5, 1, 4],  # a cat ran
      [5, 2, 4],  # a dog ran
      [0, 6, 7],  # the bird flew
      [5, 8, 9],  # a fish swam
      [6, 7, 8, 9],  # bird flew fish swam
      [3, 4, 7],  # sat ran flew
  ]
  ids = np.concatenate([np.array(l) for l in lines])
  doc_ids = np.concatenate([np.full(len(l), i) for i, l in enumerate(lines)])
  vectors, stats = ppmi.fit(ids, 10, dim=4, window=2, doc_ids=doc_ids)
  assert vectors.shape == (10, 4) and vectors.dtype == np.float32

  def cos(a, b):
    return (
        vectors[a] @ vectors[b] / np.linalg.norm(vectors[[a, b]], axis=1).prod()
    )

  assert cos(1, 2) == pytest.approx(1.0, abs=1e-5)
  assert cos(1, 6) < 0.9
  assert stats["tokens"] == ids.size
  assert stats["nonzeros"] == stats["ppmi_nonzeros"] > 0
  assert stats["cooccurrence_nonzeros"] >= stats["ppmi_nonzeros"]
  for stage in ("cooccurrence", "ppmi", "svd"):
    assert stats[f"seconds_{stage}"] >= 0
