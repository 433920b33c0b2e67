"""Bucketed batches: the fewest padded positions, every sentence once per
epoch, and the step's selection of the scheduled batch."""

import itertools

import jax.numpy as jnp
import numpy as np
import pytest

from rnnlm_jax import buckets
from rnnlm_jax import steps


def padded_positions(lengths, bounds):
  bounds = np.array(bounds)
  return int(bounds[np.searchsorted(bounds, lengths)].sum())


def test_bounds_pad_the_fewest_positions_of_any_choice():
  rng = np.random.default_rng(0)
  for trial in range(5):
    lengths = rng.integers(1, 15, 40)
    values = sorted(set(lengths.tolist()))
    for k in (1, 2, 3):
      bounds = buckets.bucket_bounds(lengths, k)
      assert len(bounds) <= k and bounds[-1] == lengths.max()
      best = min(
          padded_positions(lengths, cuts + (values[-1],))
          for r in range(k)
          for cuts in itertools.combinations(values[:-1], r)
      )
      assert padded_positions(lengths, bounds) == best, (trial, k)


def sentences(n=23, seed=1):
  rng = np.random.default_rng(seed)
  lengths = rng.integers(1, 12, n)
  ids = [rng.integers(1, 50, l).astype(np.int32) for l in lengths]
  tags = [rng.integers(0, 5, l).astype(np.int32) for l in lengths]
  return ids, tags


def test_every_sentence_appears_once_padded_to_its_bucket():
  ids, tags = sentences()
  bounds = buckets.bucket_bounds([len(s) for s in ids], 3)
  epoch = buckets.make_batches(ids, tags, 4, bounds, features=tags)
  seen = []
  for b in epoch["buckets"]:
    for s, row in zip(*np.nonzero(b["index"] >= 0)):
      e = b["index"][s, row]
      n = len(ids[e])
      seen.append(e)
      np.testing.assert_array_equal(b["x"][s, row, :n], ids[e])
      np.testing.assert_array_equal(b["y"][s, row, :n], tags[e])
      np.testing.assert_array_equal(b["features"][s, row, :n], tags[e])
      assert b["mask"][s, row].sum() == n
    assert not b["mask"][b["index"] < 0].any()  # Padding rows: no tokens.
  assert sorted(seen) == list(range(len(ids)))
  real = sum(len(s) for s in ids)
  total = sum(b["mask"].size for b in epoch["buckets"])
  assert buckets.padding_fraction(epoch) == 1 - real / total
  # The schedule names every batch of every bucket once.
  pairs = {tuple(p) for p in epoch["schedule"]}
  assert pairs == {
      (k, s)
      for k, b in enumerate(epoch["buckets"])
      for s in range(b["x"].shape[0])
  }


def test_shuffled_epochs_are_reproducible_and_differ():
  ids, labels = sentences()[0], list(range(23))
  bounds = buckets.bucket_bounds([len(s) for s in ids], 2)
  make = lambda seed: buckets.make_batches(
      ids, labels, 4, bounds, rng=np.random.default_rng(seed)
  )
  a, b, c = make(0), make(0), make(1)
  np.testing.assert_array_equal(a["schedule"], b["schedule"])
  assert not all(
      np.array_equal(x["index"], y["index"])
      for x, y in zip(a["buckets"], c["buckets"])
  )
  assert a["buckets"][0]["y"].shape == a["buckets"][0]["index"].shape


def test_the_step_selects_the_scheduled_batch():
  ids, tags = sentences()
  bounds = buckets.bucket_bounds([len(s) for s in ids], 3)
  epoch = buckets.make_batches(
      ids, tags, 4, bounds, rng=np.random.default_rng(2)
  )
  assert steps.num_segments(epoch) == len(epoch["schedule"])
  for step in (0, 3, len(epoch["schedule"]) + 1):
    k, s = epoch["schedule"][step % len(epoch["schedule"])]
    got = steps.select_segment(epoch, jnp.int32(step))
    assert int(got["bucket"]) == k
    np.testing.assert_array_equal(
        got["buckets"][k]["x"], epoch["buckets"][k]["x"][s]
    )


def sentence_pairs(n=29, seed=3, bos=1, eos=2):
  rng = np.random.default_rng(seed)
  src = [rng.integers(3, 40, l).astype(np.int32) for l in rng.integers(1, 9, n)]
  tgt = [
      np.concatenate([[bos], rng.integers(3, 40, l), [eos]]).astype(np.int32)
      for l in rng.integers(0, 11, n)
  ]
  return src, tgt


def test_every_pair_appears_once_with_its_exact_ids():
  src, tgt = sentence_pairs()
  bounds = buckets.bucket_bounds([len(s) for s in src], 3)
  epoch = buckets.make_pair_batches(src, tgt, 4, bounds)
  seen = []
  for k, b in enumerate(epoch["buckets"]):
    real = b["index"][b["index"] >= 0]
    steps, batch = b["index"].shape
    assert batch == 4 and steps == -(-len(real) // 4)
    ts = max(len(src[e]) for e in real)
    tt = max(len(tgt[e]) - 1 for e in real)
    assert b["src"].shape == b["src_mask"].shape == (steps, 4, ts)
    for key in ("tgt_in", "tgt_out", "tgt_mask"):
      assert b[key].shape == (steps, 4, tt), key
    assert all(len(src[e]) <= bounds[k] for e in real)  # bucketed by source
    for s, row in zip(*np.nonzero(b["index"] >= 0)):
      e = b["index"][s, row]
      n, m = len(src[e]), len(tgt[e]) - 1
      seen.append(e)
      np.testing.assert_array_equal(b["src"][s, row, :n], src[e])
      np.testing.assert_array_equal(b["tgt_in"][s, row, :m], tgt[e][:-1])
      np.testing.assert_array_equal(b["tgt_out"][s, row, :m], tgt[e][1:])
      assert b["src_mask"][s, row].tolist() == [True] * n + [False] * (ts - n)
      assert b["tgt_mask"][s, row].tolist() == [True] * m + [False] * (tt - m)
    for key in ("src", "tgt_in", "tgt_out"):
      mask = b["tgt_mask" if key != "src" else "src_mask"]
      assert not b[key][~mask].any(), key  # 0 at padding
      assert b[key].dtype == np.int32
    assert not b["src_mask"][b["index"] < 0].any()
    assert not b["tgt_mask"][b["index"] < 0].any()
  assert sorted(seen) == list(range(len(src)))
  real = sum(map(len, src)) + sum(len(t) - 1 for t in tgt)
  total = sum(b["src_mask"].size + b["tgt_mask"].size for b in epoch["buckets"])
  assert buckets.padding_fraction(epoch) == 1 - real / total
  assert sorted(map(tuple, epoch["schedule"])) == [
      (k, s)
      for k, b in enumerate(epoch["buckets"])
      for s in range(b["index"].shape[0])
  ]  # unshuffled: in bucket order, too
  assert epoch["schedule"].dtype == np.int32


def test_shuffled_pair_epochs_depend_on_the_rng_only():
  src, tgt = sentence_pairs()
  bounds = buckets.bucket_bounds([len(s) for s in src], 2)
  make = lambda seed: buckets.make_pair_batches(
      src, tgt, 3, bounds, rng=np.random.default_rng(seed)
  )
  a, b, c = make(0), make(0), make(1)
  np.testing.assert_array_equal(a["schedule"], b["schedule"])
  for x, y in zip(a["buckets"], b["buckets"]):
    assert x.keys() == y.keys()
    for key in x:
      np.testing.assert_array_equal(x[key], y[key])
  assert not np.array_equal(a["schedule"], c["schedule"])
  assert not all(
      np.array_equal(x["index"], y["index"])
      for x, y in zip(a["buckets"], c["buckets"])
  )
  # The same pairs in each bucket, whatever the order.
  members = lambda e: [
      sorted(b["index"][b["index"] >= 0]) for b in e["buckets"]
  ]
  plain = buckets.make_pair_batches(src, tgt, 3, bounds)
  assert members(a) == members(c) == members(plain)
  for b in plain["buckets"]:  # None keeps the data's order
    real = b["index"][b["index"] >= 0]
    assert list(real) == sorted(real)


def test_pair_batches_refuse_a_target_without_bos_and_eos():
  src, tgt = sentence_pairs(5)
  tgt[2] = np.array([1], np.int32)
  with pytest.raises(ValueError, match="two"):
    buckets.make_pair_batches(src, tgt, 2, (8,))
  with pytest.raises(ValueError, match="4 sources but 5 targets"):
    buckets.make_pair_batches(src[:4], sentence_pairs(5)[1], 2, (8,))
