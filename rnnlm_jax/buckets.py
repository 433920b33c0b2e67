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
  which = _bucket_of(lengths, bounds)
  per_token = np.ndim(labels[0]) == 1
  buckets, schedule = [], []
  for k in range(len(bounds)):
    members = np.flatnonzero(which == k)
    if not len(members):
      continue
    if rng is not None:
      members = rng.permutation(members)
    steps = -(-len(members) // batch_size)
    width = int(lengths[members].max())
    rows = np.full(steps * batch_size, -1, np.int32)
    rows[: len(members)] = members
    index_SB = rows.reshape(steps, batch_size)
    x = np.zeros((steps * batch_size, width), np.int32)
    mask = np.zeros_like(x, bool)
    y = np.zeros_like(x) if per_token else np.zeros(len(rows), np.int32)
    feats = np.zeros_like(x) if features is not None else None
    for r, e in enumerate(members):
      n = lengths[e]
      x[r, :n], mask[r, :n] = ids[e], True
      if per_token:
        y[r, :n] = labels[e]
      else:
        y[r] = labels[e]
      if feats is not None:
        feats[r, :n] = features[e]
    shape = (steps, batch_size, width)
    bucket = {
        "x": x.reshape(shape),
        "mask": mask.reshape(shape),
        "y": y.reshape(shape if per_token else (steps, batch_size)),
        "index": index_SB,
    }
    if feats is not None:
      bucket["features"] = feats.reshape(shape)
    schedule += [(len(buckets), s) for s in range(steps)]
    buckets.append(bucket)
  schedule = np.array(schedule, np.int32)
  if rng is not None:
    schedule = schedule[rng.permutation(len(schedule))]
  return {SCHEDULE: schedule, "buckets": tuple(buckets)}


def padding_fraction(batches: dict) -> float:
  """The share of the batches' token positions that are padding."""
  real = sum(int(b["mask"].sum()) for b in batches["buckets"])
  total = sum(b["mask"].size for b in batches["buckets"])
  return 1.0 - real / total
