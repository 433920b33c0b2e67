"""Counting the n-grams of a token stream, and the discounts that smoothing
estimates from their counts of counts.

The tables come out in the storage layout of :mod:`rnnlm_jax.ngram` (sorted
int64 keys per order, a reversed trie of histories). Counting sorts one int64
key per position and order (``np.unique``), with no per-n-gram Python
objects: fast enough for order 5 on Penn Treebank (docs/performance.md).
"""

import math

import numpy as np

KATZ_MAX_COUNT = 5  # Katz's k: counts above it are not discounted
_KN_FALLBACK = (
    0.5,
    1.0,
    1.5,
)  # D1, D2, D3+ where the count-of-counts leave them undefined


def count_ngrams(
    ids: np.ndarray,
    order: int,
    vocab_size: int,
    start_id: int | None,
    reset: bool,
    continuation: bool,
) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
  """(ctx_keys, gram_keys, counts), one int64 array each per order 1..n.

  ``ids`` is a checked int64 stream. ``start_id`` pads it in front with
  ``order - 1`` copies (without it only n-grams wholly inside ``ids`` are
  counted); ``reset`` counts sentence by sentence, as
  :meth:`rnnlm_jax.ngram.NGramLM.fit` describes. With ``continuation``
  (Kneser-Ney) the orders below the highest hold continuation counts and
  the n-grams that have none are dropped.
  """
  n, v, num = order, vocab_size, ids.size
  pad = n - 1 if start_id is not None else 0
  stream = np.concatenate(
      [np.full(pad, -1 if start_id is None else start_id, np.int64), ids]
  )
  if (stream.size + 1) * v >= 2**62:
    raise ValueError(
        f"corpus of {num} tokens with a vocabulary of {v} overflows the int64 keys"
    )
  pos = np.arange(pad, pad + num)  # stream index of each predicted id

  # Raw counts, order by order. ctx_idx[i]: index of position i's history among the
  # order's histories (-1 where the position has no n-gram of this order).
  ctx_keys, gram_keys, raw, cont, first = [], [], [], [None] * n, []
  ctx_idx = np.zeros(num, np.int64)
  valid = np.ones(num, bool)
  prev_ginv = prev_g = None
  for k in range(1, n + 1):
    if k >= 2:
      valid &= pos >= k - 1
      if (
          reset and k >= 3
      ):  # the history's interior must not hold a sentence start
        valid &= stream[np.maximum(pos - k + 2, 0)] != start_id
      sel = np.flatnonzero(valid)
      ckey = ctx_idx[sel] * v + stream[pos[sel] - k + 1]
      ck, cinv = np.unique(ckey, return_inverse=True)
      ctx_idx = np.full(num, -1, np.int64)
      ctx_idx[sel] = cinv.reshape(-1)
    else:
      sel = np.arange(num)
      ck = np.zeros(1, np.int64)
    gkey = ctx_idx[sel] * v + ids[sel]
    gk, gfirst, ginv, gcnt = np.unique(
        gkey, return_index=True, return_inverse=True, return_counts=True
    )
    rep = sel[gfirst]  # one position of each distinct n-gram
    if (
        k >= 2
    ):  # continuation counts of order k-1: distinct left extensions seen at order k
      cont[k - 2] = np.bincount(prev_ginv[rep], minlength=prev_g)
    prev_ginv = np.full(num, -1, np.int64)
    prev_ginv[sel] = ginv.reshape(-1)
    prev_g = gk.size
    first.append(stream[pos[rep] - k + 1] if k >= 2 else None)
    ctx_keys.append(ck)
    gram_keys.append(gk)
    raw.append(gcnt.astype(np.int64))
  del prev_ginv, ctx_idx, valid

  counts = []
  for k in range(1, n + 1):
    c = raw[k - 1]
    if continuation and k < n:
      c = cont[k - 1].astype(np.int64)
      if reset and k >= 2:
        c = np.where(first[k - 1] == start_id, raw[k - 1], c)
      keep = (
          c > 0
      )  # only without padding: n-grams at the very start have no left extension
      if not keep.all():
        gram_keys[k - 1] = gram_keys[k - 1][keep]
        c = c[keep]
    counts.append(c)

  return ctx_keys, gram_keys, counts


def count_of_counts(counts: np.ndarray, top: int) -> np.ndarray:
  """n[r] = number of entries equal to r, for r = 0..top (entries above top are not counted)."""
  c = counts[(counts >= 1) & (counts <= top)]
  return np.bincount(c.astype(np.int64), minlength=top + 1)[: top + 1]


def kn_discounts(counts: np.ndarray, modified: bool) -> np.ndarray:
  """[0, D1, D2, D3+] for one order (equal entries for plain Kneser-Ney), with the documented fallback."""
  n = count_of_counts(counts, 4).astype(np.float64)
  if not modified:
    d = n[1] / (n[1] + 2 * n[2]) if n[1] > 0 else math.nan
    d = d if 0 < d <= 1 else _KN_FALLBACK[0]
    return np.array([0.0, d, d, d])
  with np.errstate(divide="ignore", invalid="ignore"):
    y = n[1] / (n[1] + 2 * n[2])
    ds = [r - (r + 1) * y * n[r + 1] / n[r] for r in (1, 2, 3)]
  out = [0.0]
  for r, d in zip((1, 2, 3), ds):
    out.append(
        float(d) if np.isfinite(d) and 0 < d <= r else _KN_FALLBACK[r - 1]
    )
  return np.array(out)


def katz_discounts(counts: np.ndarray, k: int = KATZ_MAX_COUNT) -> np.ndarray:
  """d[r] for r = 0..k+1: Good-Turing ratios for r <= k (1 where out of (0, 1]), 1 above k."""
  n = count_of_counts(counts, k + 1).astype(np.float64)
  d = np.ones(k + 2)
  if n[1] == 0:
    return d
  a = (k + 1) * n[k + 1] / n[1]
  if a >= 1:
    return d
  for r in range(1, k + 1):
    if n[r] > 0:
      dr = ((r + 1) * n[r + 1] / (r * n[r]) - a) / (1 - a)
      if 0 < dr <= 1:
        d[r] = dr
  return d
