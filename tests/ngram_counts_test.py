"""Tests for rnnlm_jax.ngram_counts: the tables decode to the n-grams of the
padded stream, with raw or continuation counts."""

import collections

import numpy as np
import pytest

from rnnlm_jax import ngram_counts

V, N, START = 5, 3, 0


def _decode(ctx_keys, gram_keys, counts, k):
  """{k-gram as a tuple of ids: count} from order k's tables."""

  def history(j, c):
    if j == 1:
      return ()
    key = int(ctx_keys[j - 1][c])
    return (key % V,) + history(j - 1, key // V)

  return {
      history(k, int(g) // V) + (int(g) % V,): int(c)
      for g, c in zip(gram_keys[k - 1], counts[k - 1])
  }


def _stream_ngrams(ids, k):
  ext = [START] * (N - 1) + [int(t) for t in ids]
  return collections.Counter(
      tuple(ext[i + N - k : i + N]) for i in range(len(ids))
  )


@pytest.fixture
def ids():
  return np.random.default_rng(0).integers(0, V, size=200).astype(np.int64)


def test_raw_counts_are_the_ngrams_of_the_padded_stream(ids):
  tables = ngram_counts.count_ngrams(ids, N, V, START, False, False)
  for k in range(1, N + 1):
    assert _decode(*tables, k) == _stream_ngrams(ids, k)


def test_lower_orders_hold_continuation_counts(ids):
  tables = ngram_counts.count_ngrams(ids, N, V, START, False, True)
  assert _decode(*tables, N) == _stream_ngrams(ids, N)
  for k in range(1, N):
    left = collections.Counter(g[1:] for g in _stream_ngrams(ids, k + 1))
    assert _decode(*tables, k) == dict(left)


def test_kneser_ney_discounts_fall_back_where_undefined():
  # No singletons (n1 = 0): D = n1 / (n1 + 2 n2) is 0, outside (0, 1], and
  # falls back to 0.5; of the modified ones D1 and D3+ are 0 / 0 and fall
  # back to 0.5 and 1.5, while D2 = 2 - 3 Y n3 / n2 = 2 is kept.
  twice = np.full(10, 2, np.int64)
  assert ngram_counts.kn_discounts(twice, False).tolist() == [0, 0.5, 0.5, 0.5]
  assert ngram_counts.kn_discounts(twice, True).tolist() == [0, 0.5, 2.0, 1.5]
