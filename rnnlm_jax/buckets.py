"""Padded, length-bucketed batches of sentences (the sentence tasks).

Sentences are grouped by length into a few buckets, and each bucket's
batches are padded only to that bucket's longest sentence, so little compute
goes to padding. One epoch is a dict of host arrays:

  {"schedule": [S, 2] int32,     # (bucket, batch within the bucket) per step
   "buckets": ({"x": [S_k, B, T_k] int32,      # token ids, 0 at padding
                "mask": [S_k, B, T_k] bool,    # the real tokens
                "y": [S_k, B] or [S_k, B, T_k] int32,  # labels (or tags)
                "features": [S_k, B, T_k] int32,  # where the task has them
                "index": [S_k, B] int32},      # example number; -1: padding
               ...)}

Sentence pairs (translation) have the same epoch with other arrays in each
bucket (make_pair_batches): the buckets are by source length.

A train step takes step ``s % S`` of the schedule
(rnnlm_jax.steps.select_segment); each bucket has its own shape, and the
step computes only the scheduled bucket's (lax.switch). Rows past the end of
a bucket's last batch are padding rows: no tokens, index -1.
"""

import numpy as np

SCHEDULE = "schedule"


def bucket_bounds(lengths, num_buckets: int) -> tuple[int, ...]:
  """Upper length bounds of at most ``num_buckets`` buckets that pad the
  fewest positions when each sentence is padded to its bucket's bound (exact,
  by dynamic programming over the distinct lengths); the last bound is the
  longest length."""
  values, counts = np.unique(np.asarray(lengths), return_counts=True)
  n = len(values)
  below = np.concatenate([[0], np.cumsum(counts)])  # sentences before i
  # best[k][j]: fewest positions for values[:j] in k buckets; last cut in cut.
  best = np.full((num_buckets + 1, n + 1), np.inf)
  cut = np.zeros((num_buckets + 1, n + 1), int)
  best[0, 0] = 0
  for k in range(1, num_buckets + 1):
    for j in range(1, n + 1):
      # The last bucket holds values[i:j], padded to values[j - 1].
      cost = best[k - 1, :j] + (below[j] - below[:j]) * values[j - 1]
      cut[k, j] = int(np.argmin(cost))
      best[k, j] = cost[cut[k, j]]
  k = int(np.argmin(best[:, n]))
  bounds, j = [], n
  while j > 0:
    bounds.append(int(values[j - 1]))
    j, k = cut[k, j], k - 1
  return tuple(sorted(bounds))


def _bucket_of(lengths, bounds) -> np.ndarray:
  return np.minimum(np.searchsorted(bounds, lengths), len(bounds) - 1)


def _assign(lengths, bounds, batch_size, rng) -> list[np.ndarray]:
  """Per non-empty bucket, its example numbers as ``index_SB`` [S_k, B]
  (shuffled within the bucket by rng; -1 fills the last batch)."""
  which = _bucket_of(lengths, bounds)
  out = []
  for k in range(len(bounds)):
    members = np.flatnonzero(which == k)
    if not len(members):
      continue
    if rng is not None:
      members = rng.permutation(members)
    steps = -(-len(members) // batch_size)
    rows = np.full(steps * batch_size, -1, np.int32)
    rows[: len(members)] = members
    out.append(rows.reshape(steps, batch_size))
  return out


def _padded(seqs, index_SB, lengths, width: int):
  """The ``seqs`` that ``index_SB`` names, left-aligned and zero-padded to
  ``width``: (values [S_k, B, width], the real positions' mask)."""
  x = np.zeros((index_SB.size, width), np.int32)
  mask = np.zeros_like(x, bool)
  for r, e in enumerate(index_SB.ravel()):
    if e >= 0:
      x[r, : lengths[e]], mask[r, : lengths[e]] = seqs[e], True
  shape = (*index_SB.shape, width)
  return x.reshape(shape), mask.reshape(shape)


def epoch_of(buckets: list[dict], rng) -> dict:
  """The epoch of these buckets: every batch of each once, in bucket order,
  or shuffled by rng."""
  schedule = np.array(
      [(k, s) for k, b in enumerate(buckets) for s in range(len(b["index"]))],
      np.int32,
  ).reshape(-1, 2)
  if rng is not None:
    schedule = schedule[rng.permutation(len(schedule))]
  return {SCHEDULE: schedule, "buckets": tuple(buckets)}


def make_batches(
    ids: list,
    labels: list,
    batch_size: int,
    bounds: tuple[int, ...],
    features: list | None = None,
    rng: np.random.Generator | None = None,
) -> dict:
  """One epoch of bucketed batches (see the module docstring).

  Args:
    ids: one int array of token ids per sentence.
    labels: one label id per sentence (classification), or one int array of
      tag ids per sentence, as long as its ids (tagging).
    batch_size: B, sentences per batch.
    bounds: the buckets' upper lengths (bucket_bounds); a sentence longer
      than the last goes to the last bucket, which is then padded to it.
    features: optional per-token int arrays (POS tags), like ids.
    rng: shuffles the sentences within each bucket and the order of the
      batches; None keeps the data's order (evaluation).
  """
  lengths = np.array([len(s) for s in ids])
  if not len(lengths) or lengths.min() < 1:
    raise ValueError("every sentence needs at least one token")
  per_token = np.ndim(labels[0]) == 1
  buckets = []
  for index_SB in _assign(lengths, bounds, batch_size, rng):
    width = int(lengths[index_SB[index_SB >= 0]].max())
    x, mask = _padded(ids, index_SB, lengths, width)
    if per_token:
      y = _padded(labels, index_SB, lengths, width)[0]
    else:
      y = np.zeros(index_SB.shape, np.int32)
      y[index_SB >= 0] = [labels[e] for e in index_SB[index_SB >= 0]]
    bucket = {"x": x, "mask": mask, "y": y, "index": index_SB}
    if features is not None:
      bucket["features"] = _padded(features, index_SB, lengths, width)[0]
    buckets.append(bucket)
  return epoch_of(buckets, rng)


def make_pair_batches(
    src_ids: list,
    tgt_ids: list,
    batch_size: int,
    bounds: tuple[int, ...],
    rng: np.random.Generator | None = None,
) -> dict:
  """One epoch of bucketed sentence pairs, for an encoder-decoder.

  The buckets are by source length (``bounds`` from bucket_bounds over the
  source lengths); each bucket's targets are padded to its longest. The
  epoch has the format of :func:`make_batches`, each bucket holding:

    "src": [S_k, B, Ts] int32 (0 at padding), "src_mask": [S_k, B, Ts] bool,
    "tgt_in": [S_k, B, Tt] int32, the target but its last id,
    "tgt_out": [S_k, B, Tt] int32, the target but its first id,
    "tgt_mask": [S_k, B, Tt] bool, the real positions of both,
    "index": [S_k, B] int32, the pair's number; -1 for padding rows.

  Args:
    src_ids: one int array of token ids per source sentence.
    tgt_ids: one int array per target sentence, already wrapped as
      ``[bos, ..., eos]`` (at least two ids).
    batch_size, bounds, rng: as for :func:`make_batches`.
  """
  if len(src_ids) != len(tgt_ids):
    raise ValueError(f"{len(src_ids)} sources but {len(tgt_ids)} targets")
  src_lengths = np.array([len(s) for s in src_ids])
  tgt_lengths = np.array([len(t) for t in tgt_ids]) - 1  # of tgt_in, tgt_out
  if not len(src_lengths) or src_lengths.min() < 1 or tgt_lengths.min() < 1:
    raise ValueError(
        "every source needs at least one id and every target two (bos, eos)"
    )
  tgt_in = [t[:-1] for t in tgt_ids]
  tgt_out = [t[1:] for t in tgt_ids]
  buckets = []
  for index_SB in _assign(src_lengths, bounds, batch_size, rng):
    real = index_SB[index_SB >= 0]
    ts, tt = int(src_lengths[real].max()), int(tgt_lengths[real].max())
    src, src_mask = _padded(src_ids, index_SB, src_lengths, ts)
    x_in, tgt_mask = _padded(tgt_in, index_SB, tgt_lengths, tt)
    x_out = _padded(tgt_out, index_SB, tgt_lengths, tt)[0]
    buckets.append(
        {
            "src": src,
            "src_mask": src_mask,
            "tgt_in": x_in,
            "tgt_out": x_out,
            "tgt_mask": tgt_mask,
            "index": index_SB,
        }
    )
  return epoch_of(buckets, rng)


def padding_fraction(batches: dict) -> float:
  """The share of the batches' token positions that are padding; of pair
  batches, over the source and target positions together."""
  masks = [
      b[key]
      for b in batches["buckets"]
      for key in ("mask", "src_mask", "tgt_mask")
      if key in b
  ]
  real = sum(int(m.sum()) for m in masks)
  return 1.0 - real / sum(m.size for m in masks)
