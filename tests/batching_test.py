"""Tests for rnnlm_jax.batching: streams, segments and sentence batches
cover every token once."""

import math

import numpy as np
import pytest

from rnnlm_jax import batching
from rnnlm_jax.errors import DataError


def test_batchify_and_train_stream():
  ids = np.arange(1, 12, dtype=np.int32)  # 11 tokens
  ids_BN = batching.batchify(ids, 3)
  assert ids_BN.shape == (3, 3) and ids_BN[1].tolist() == [4, 5, 6]
  train = batching.train_stream(ids, 3, eos_id=0)
  assert train.shape == (3, 4) and train[0].tolist() == [0, 1, 2, 3]
  with pytest.raises(DataError):
    batching.batchify(ids, 12)
  with pytest.raises(DataError):
    batching.batchify(ids, 0)


def test_segments_tile_the_stream():
  ids_BN = np.arange(2 * 23, dtype=np.int32).reshape(2, 23)
  bptt = 5
  n = batching.num_segments(ids_BN, bptt)
  assert n == (23 - 1) // bptt == 4
  xs, ys = zip(*(batching.segment(ids_BN, i, bptt) for i in range(n)))
  assert all(
      x.shape == (2, bptt) and y.shape == (2, bptt) for x, y in zip(xs, ys)
  )
  x_all, y_all = np.concatenate(xs, axis=1), np.concatenate(ys, axis=1)
  assert np.array_equal(x_all, ids_BN[:, : n * bptt])
  assert np.array_equal(y_all, ids_BN[:, 1 : n * bptt + 1])
  with pytest.raises(IndexError):
    batching.segment(ids_BN, n, bptt)


@pytest.mark.parametrize(
    "n,batch_size,bptt",
    [
        (1, 1, 1),
        (10, 1, 3),
        (10, 1, 10),
        (12, 3, 4),
        (13, 3, 4),
        (5, 4, 2),
        (3, 8, 5),
        (100, 7, 9),
        (35, 5, 7),
    ],
)
def test_eval_stream_scores_every_token_once(n, batch_size, bptt):
  rng = np.random.default_rng(n * 100 + batch_size)
  ids = rng.integers(1, 50, size=n).astype(np.int32)
  eos = 0
  x, y, mask = batching.eval_stream(ids, batch_size, bptt, eos)
  s = math.ceil(math.ceil(n / batch_size) / bptt)
  assert x.shape == y.shape == mask.shape == (s, batch_size, bptt)
  assert x.dtype == y.dtype == np.int32 and mask.dtype == np.float32
  assert mask.sum() == n
  # Streams in order, each in time order.
  y_BL, x_BL, m_BL = (
      a.transpose(1, 0, 2).reshape(batch_size, -1) for a in (y, x, mask)
  )
  assert np.array_equal(y_BL[m_BL > 0], ids)
  # Every scored input is the token right before its target in [eos] + ids.
  full = np.concatenate([[eos], ids])
  assert np.array_equal(x_BL[m_BL > 0], full[:n])
  assert x_BL[0, 0] == eos
  # Padding comes only after a stream's real tokens.
  for row in m_BL:
    k = int(row.sum())
    assert row[:k].all() and not row[k:].any()
  if batch_size == 1:
    assert np.array_equal(y_BL[0, :n], ids)


def test_sentence_batches_invariants():
  eos = 0
  ids = np.array(
      [5, 6, 0, 7, 0, 8, 9, 10, 11, 0, 0, 12, 13], dtype=np.int32
  )  # last sentence has no eos
  sentences = [[5, 6, 0], [7, 0], [8, 9, 10, 11, 0], [0], [12, 13]]
  batches = batching.sentence_batches(ids, eos, batch_size=2, max_len=5)
  assert len(batches) == 3
  for x, y, m in batches:
    assert (
        x.shape == y.shape == m.shape == (2, 5)
        and x.dtype == np.int32
        and m.dtype == np.float32
    )
  x = np.concatenate([b[0] for b in batches])
  y = np.concatenate([b[1] for b in batches])
  m = np.concatenate([b[2] for b in batches])
  assert m[-1].sum() == 0  # filler row
  for row, sent in enumerate(sentences):
    k = len(sent)
    assert x[row, 0] == eos
    assert y[row, :k].tolist() == sent and m[row].sum() == k
    assert x[row, 1:k].tolist() == sent[:-1]
  assert m.sum() == ids.size


def test_sentence_batches_split_long_sentences_and_shuffle():
  eos = 0
  ids = np.array([1, 2, 3, 4, 5, 6, 7, 0, 8, 0], dtype=np.int32)
  batches = batching.sentence_batches(ids, eos, batch_size=4, max_len=3)
  x, y, m = (np.concatenate(a) for a in zip(*batches))
  # [1..7, eos] has 8 targets -> chunks of 3, 3, 2; then [8, eos].
  assert y[m > 0].tolist() == ids.tolist()
  assert (
      x[0].tolist() == [eos, 1, 2]
      and x[1].tolist() == [3, 4, 5]
      and x[2, :2].tolist() == [6, 7]
  )
  assert x[3, :2].tolist() == [eos, 8]
  shuffled = batching.sentence_batches(
      ids, eos, batch_size=4, max_len=3, rng_seed=0
  )
  again = batching.sentence_batches(
      ids, eos, batch_size=4, max_len=3, rng_seed=0
  )
  xs, ys, ms = (np.concatenate(a) for a in zip(*shuffled))
  assert all(
      np.array_equal(a, b)
      for pa, pb in zip(shuffled, again)
      for a, b in zip(pa, pb)
  )
  order = np.random.default_rng(0).permutation(4)
  assert np.array_equal(xs[:4], x[:4][order]) and np.array_equal(
      ys[:4], y[:4][order]
  )
  assert ms.sum() == ids.size
