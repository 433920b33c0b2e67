"""Count-based n-gram language models over integer token ids, in vectorised NumPy.

The baselines the recurrent models are compared with: maximum likelihood,
add-delta, Katz backoff and (modified) Kneser-Ney, of any order n >= 1, over
ids of any level (words or characters are the caller's choice).

Scoring protocol
----------------
A split is scored the way the neural models score it: the stream of ids is
preceded by one boundary id (``start_id``; ``<eos>`` at word level) and every
id of the split, each ``<eos>`` included, is predicted exactly once, so a
perplexity covers exactly ``len(ids)`` tokens::

    perplexity = exp(-mean_i log p(ids[i] | history_i))

Two ways of forming ``history_i`` are offered:

stream (default)
    The n - 1 ids before position i in ``[start_id] * (n - 1) + ids``:
    histories run across sentence boundaries, the direct analogue of a
    recurrent state that is carried through the whole split. The stream is
    padded further back with ``start_id``.
reset at ``<eos>`` (``reset_at_eos=True``)
    The history is cut after the most recent ``start_id`` before position i:
    ``start_id`` is kept as the first history token (it plays the part of
    the classic ``<s>``) and nothing before it is seen, so each sentence is
    scored on its own as in SRILM and KenLM, ``<eos>`` doubling as ``</s>``
    (predicted at the end of a sentence) and ``<s>`` (history at its start).
    Sentence-initial histories are shorter than n - 1 and use the lower
    orders directly.

The same choice applies to counting (``fit(..., start_id=..., reset_at_eos=...)``):
in reset mode no n-gram whose history crosses a ``start_id`` is counted, and
for Kneser-Ney an n-gram that begins with ``start_id`` keeps its raw count at
the lower orders (it cannot be extended to the left: SRILM's rule for
``<s>``). :meth:`NGramLM.score` uses the fitted model's mode unless told
otherwise; scoring in the other mode is allowed and still gives a normalised
distribution (histories the model never counted simply back off). Without a
``start_id`` at fit time the training stream is not padded and only the
n-grams lying wholly inside ``ids`` are counted.

Smoothing methods
-----------------
``"mle"``
    ``c(h w) / c(h)``. An unseen event has probability 0 (log-probability
    -inf, perplexity inf) and an unseen history has no distribution at all
    (every log-probability -inf).
``"add_delta"``
    Lidstone: ``(c(h w) + delta) / (c(h) + delta V)`` over the full
    vocabulary of size V (``delta=1`` is Laplace); an unseen history gets
    the uniform 1/V.
``"backoff"``
    Katz backoff with Good-Turing discounts, the classic normalised backoff
    model (Katz 1987; SRILM's default, the "GT" rows of Mikolov et al. 2011).
    It is chosen over stupid backoff because its scores are a distribution
    that sums to 1, so its perplexity can be compared with the others, and
    over absolute-discounting backoff because it is the published reference
    point. Counts r <= k = ``KATZ_MAX_COUNT`` are discounted by
    ``d_r = (r*/r - A) / (1 - A)`` with ``r* = (r+1) n_{r+1} / n_r`` and
    ``A = (k+1) n_{k+1} / n_1`` (n_r: number of n-grams of the order seen r
    times); a d_r outside (0, 1] is replaced by 1 (no discount for that r,
    as SRILM does). Seen events get ``d_r r / c(h)``, the others
    ``alpha(h) p(w | h')`` with alpha chosen so that the distribution sums
    to 1; the unigrams back off to the uniform 1/V. Two edge cases are
    settled so that every distribution still sums to 1: a history followed
    by every word of the vocabulary is renormalised over those words, and a
    history whose counts all exceed k (no mass left for unseen words) gets
    one extra count in its denominator.
``"kneser_ney"``
    Interpolated Kneser-Ney with one discount per order,
    ``D = n1 / (n1 + 2 n2)``.
``"modified_kneser_ney"``
    Interpolated modified Kneser-Ney (Chen & Goodman 1998) with three
    discounts per order from the count-of-counts n1..n4,
    ``Y = n1 / (n1 + 2 n2)``, ``D1 = 1 - 2 Y n2 / n1``,
    ``D2 = 2 - 3 Y n3 / n2``, ``D3+ = 3 - 4 Y n4 / n3``.

Both Kneser-Ney variants compute ::

    p(w | h) = max(c(h w) - D(c(h w)), 0) / c(h .) + gamma(h) p(w | h')
    gamma(h) = sum_w D(c(h w)) / c(h .)    (over the words seen after h)

where h' drops the oldest id of h, c is the raw count at the highest order
and the continuation count ``N1+(. h w)`` (number of distinct ids seen before
``h w``) at the lower orders, and the discounts of an order come from the
count-of-counts of the counts used at that order. The unigram level
interpolates with the uniform 1/V, so every id of the vocabulary has a
nonzero probability. A history never seen at some order passes the lower
order's distribution through unchanged. A discount the formulas leave
undefined or outside (0, r] (tiny corpora: no singletons, no n-grams seen
three times, ...) is replaced by 0.5, 1.0 or 1.5 for D1, D2, D3+ (KenLM's
fallback values); with one discount the fallback is 0.5.

Storage
-------
Per order k = 1..n two sorted ``int64`` key arrays, searched with
``np.searchsorted`` (no per-n-gram Python objects):

``ctx_keys[k-1]``
    The histories of length k - 1 seen at order k, as a reversed trie:
    ``key = index of the history without its oldest id (among order k-1's
    histories) * V + oldest id``. Order 1 has the single empty history,
    index 0. Looking a stream position up therefore takes n - 1 batched
    searches, one per order, each extending the previous order's match by
    one more id of the past.
``gram_keys[k-1]``, ``gram_counts[k-1]``
    The n-grams of order k as ``history index * V + id`` and the counts the
    method uses at that order (raw, or continuation counts for Kneser-Ney's
    lower orders). The ids that follow one history are contiguous.
``ctx_total[k-1]``, ``ctx_bow[k-1]``
    Per history: the denominator ``c(h .)`` and the weight of the lower
    order (gamma for Kneser-Ney, alpha for Katz; empty for "mle" and
    "add_delta").

Counting (:mod:`rnnlm_jax.ngram_counts`) sorts one int64 key per position
and order (``np.unique``).

ARPA
----
:mod:`rnnlm_jax.arpa` writes the backoff methods' models in the ARPA text
format and reads them back.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rnnlm_jax import ngram_counts
from rnnlm_jax.atomic import atomic_write
from rnnlm_jax.ngram_counts import KATZ_MAX_COUNT

__all__ = [
    "KATZ_MAX_COUNT",
    "METHODS",
    "NGramLM",
    "fit",
    "load",
]

METHODS = ("mle", "add_delta", "backoff", "kneser_ney", "modified_kneser_ney")
_FORMAT = 1
_CHUNK = 1 << 18  # stream positions scored per batch


# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------


def _is_int(x: Any) -> bool:
  return isinstance(x, (int, np.integer)) and not isinstance(
      x, (bool, np.bool_)
  )


def _check_ids(ids: Any, vocab_size: int, what: str = "ids") -> np.ndarray:
  """``ids`` as a 1-D int64 array, or ValueError when empty, not integer or outside [0, V)."""
  arr = np.asarray(ids)
  if arr.ndim != 1 or not (
      np.issubdtype(arr.dtype, np.integer) or arr.size == 0
  ):
    raise ValueError(
        f"{what} must be a 1-D integer array, got shape {arr.shape} dtype {arr.dtype}"
    )
  if arr.size == 0:
    raise ValueError(f"{what} is empty")
  lo, hi = int(arr.min()), int(arr.max())
  if lo < 0 or hi >= vocab_size:
    bad = lo if lo < 0 else hi
    raise ValueError(f"{what} contains id {bad}, outside [0, {vocab_size})")
  return arr.astype(np.int64, copy=False)


def _check_id(value: Any, vocab_size: int, what: str) -> int:
  if not _is_int(value) or not 0 <= int(value) < vocab_size:
    raise ValueError(
        f"{what} must be an integer id in [0, {vocab_size}), got {value!r}"
    )
  return int(value)


def _find(keys: np.ndarray, q: np.ndarray) -> np.ndarray:
  """Index of each query in the sorted non-negative ``keys``, -1 where absent (negative queries are absent)."""
  if keys.size == 0:
    return np.full(q.shape, -1, np.int64)
  idx = np.searchsorted(keys, q)
  hit = keys[np.minimum(idx, keys.size - 1)] == q
  hit &= idx < keys.size
  return np.where(hit, idx, -1).astype(np.int64, copy=False)


# --------------------------------------------------------------------------------------------
# the model
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class NGramLM:
  """A fitted n-gram model: the sorted per-order tables described in the module docstring.

  Build one with :meth:`fit` (or the module-level :func:`fit`) or :meth:`load`.
  Index ``k - 1`` of each tuple holds order k.
  """

  order: int
  vocab_size: int
  method: str
  delta: float
  start_id: int | None
  reset_at_eos: bool
  num_tokens: int
  discounts: (
      np.ndarray
  )  # [order, W]: KN [0, D1, D2, D3+]; Katz d_0..d_{k+1}; else [0]
  ctx_keys: tuple[np.ndarray, ...]
  ctx_total: tuple[np.ndarray, ...]
  ctx_bow: tuple[np.ndarray, ...]
  gram_keys: tuple[np.ndarray, ...]
  gram_counts: tuple[np.ndarray, ...]

  def __repr__(self) -> str:
    grams = ", ".join(str(g.size) for g in self.gram_keys)
    return (
        f"NGramLM(order={self.order}, vocab_size={self.vocab_size}, method={self.method!r}, "
        f"reset_at_eos={self.reset_at_eos}, ngrams=[{grams}], nbytes={self.nbytes()})"
    )

  # ---------------------------------------------------------------------------- fitting

  @classmethod
  def fit(
      cls,
      ids: np.ndarray,
      order: int,
      vocab_size: int,
      method: str = "modified_kneser_ney",
      delta: float = 1.0,
      *,
      start_id: int | None = None,
      reset_at_eos: bool = False,
  ) -> "NGramLM":
    """Count the n-grams of orders 1..``order`` in ``ids`` and smooth them with ``method``.

    ``start_id`` pads the stream in front (``order - 1`` copies, as in
    scoring) so the first ids are counted with full histories; without it
    only n-grams wholly inside ``ids`` are counted. ``reset_at_eos``
    (needs ``start_id``) counts sentence by sentence as described in the
    module docstring. ``delta`` is used by "add_delta" only.
    """
    if not _is_int(order) or order < 1:
      raise ValueError(f"order must be an integer >= 1, got {order!r}")
    if not _is_int(vocab_size) or vocab_size < 1:
      raise ValueError(
          f"vocab_size must be an integer >= 1, got {vocab_size!r}"
      )
    if method not in METHODS:
      raise ValueError(
          f"unknown method {method!r}; expected one of {', '.join(METHODS)}"
      )
    if method == "add_delta" and not (
        isinstance(delta, (int, float, np.floating)) and 0 < delta < math.inf
    ):
      raise ValueError(f"delta must be a positive finite number, got {delta!r}")
    order, vocab_size = int(order), int(vocab_size)
    ids = _check_ids(ids, vocab_size)
    if start_id is not None:
      start_id = _check_id(start_id, vocab_size, "start_id")
    if reset_at_eos and start_id is None:
      raise ValueError(
          "reset_at_eos needs start_id (the id that starts a sentence)"
      )
    reset = bool(reset_at_eos)

    kn = method in ("kneser_ney", "modified_kneser_ney")
    ctx_keys, gram_keys, counts = ngram_counts.count_ngrams(
        ids, order, vocab_size, start_id, reset, continuation=kn
    )
    n, v, num = order, vocab_size, ids.size
    cdtype = np.int32 if num < 2**31 else np.int64
    width = 4 if kn else KATZ_MAX_COUNT + 2 if method == "backoff" else 1
    model = cls(
        order=0,
        vocab_size=v,
        method=method,
        delta=float(delta),
        start_id=start_id,
        reset_at_eos=reset,
        num_tokens=int(num),
        discounts=np.zeros((0, width)),
        ctx_keys=(),
        ctx_total=(),
        ctx_bow=(),
        gram_keys=(),
        gram_counts=(),
    )
    for k in range(1, n + 1):
      model = model._with_order(
          ctx_keys[k - 1], gram_keys[k - 1], counts[k - 1].astype(cdtype)
      )
    return model

  def _with_order(
      self, ck: np.ndarray, gk: np.ndarray, counts: np.ndarray
  ) -> "NGramLM":
    """This model with order ``self.order + 1`` added from its histories, n-grams and counts."""
    k, v = self.order + 1, self.vocab_size
    gctx = gk // v
    c = counts.astype(np.float64)
    total = np.bincount(gctx, weights=c, minlength=ck.size).astype(np.float64)
    if self.method in ("kneser_ney", "modified_kneser_ney"):
      disc = ngram_counts.kn_discounts(
          counts, self.method == "modified_kneser_ney"
      )
      spent = np.bincount(
          gctx, weights=disc[np.minimum(counts, 3)], minlength=ck.size
      )
      with np.errstate(divide="ignore", invalid="ignore"):
        bow = np.where(total > 0, spent / total, 1.0)
    elif self.method == "backoff":
      disc = ngram_counts.katz_discounts(counts)
      kept = disc[np.minimum(counts, KATZ_MAX_COUNT + 1)] * c
      kept_total = np.bincount(gctx, weights=kept, minlength=ck.size)
      seen = np.bincount(gctx, minlength=ck.size)
      if k == 1:
        lower = np.full(gk.size, 1.0 / v)
      else:  # p(w | h') of every n-gram under the orders fitted so far
        chain = [None] * (k - 1)
        cur = ck[gctx] // v  # order k's history -> its suffix among order k-1's
        chain[k - 2] = cur
        for j in range(k - 2, 0, -1):
          cur = (
              self.ctx_keys[j][cur] // v
          )  # order j+1's history -> its order-j suffix
          chain[j - 1] = cur
        lower = self._prob_chain(chain, gk % v)
      lower_seen = np.bincount(gctx, weights=lower, minlength=ck.size)
      all_seen = seen >= v
      total = np.where(all_seen, kept_total, total)
      no_mass = ~all_seen & (kept_total >= total * (1 - 1e-12))
      total = np.where(no_mass, total + 1, total)
      with np.errstate(divide="ignore", invalid="ignore"):
        left = 1.0 - kept_total / total
        bow = np.where(
            all_seen, 0.0, left / np.maximum(1.0 - lower_seen, 1e-300)
        )
    else:
      disc = np.zeros(1)
      bow = np.zeros(0)
    return dataclasses.replace(
        self,
        order=k,
        discounts=np.concatenate([self.discounts, disc[None, :]]),
        ctx_keys=(*self.ctx_keys, ck),
        ctx_total=(*self.ctx_total, total),
        ctx_bow=(*self.ctx_bow, bow),
        gram_keys=(*self.gram_keys, gk),
        gram_counts=(*self.gram_counts, counts),
    )

  # ---------------------------------------------------------------------------- lookup

  def history_indices(
      self, hist: np.ndarray, hlen: np.ndarray
  ) -> list[np.ndarray]:
    """History index at each order 1..n for rows of ``hist`` [M, n-1] (last column = previous id).

    Only the last ``hlen`` ids of a row are history; -1 marks a history
    absent at that order (then absent at every higher order too).
    """
    m, n, v = hist.shape[0], self.order, self.vocab_size
    cur = np.zeros(m, np.int64)
    out = [cur]
    for k in range(2, n + 1):
      ok = (cur >= 0) & (hlen >= k - 1)
      cur = _find(
          self.ctx_keys[k - 1], np.where(ok, cur * v + hist[:, n - k], -1)
      )
      out.append(cur)
    return out

  def _gram(
      self, k: int, ctx: np.ndarray, w: np.ndarray
  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(has history, n-gram found, count) of order k for history indices ``ctx`` and ids ``w``."""
    has = ctx >= 0
    g = _find(
        self.gram_keys[k - 1], np.where(has, ctx * self.vocab_size + w, -1)
    )
    found = g >= 0
    counts = self.gram_counts[k - 1]
    c = np.where(
        found, counts[np.maximum(g, 0)] if counts.size else 0, 0
    ).astype(np.int64)
    return has, found, c

  def _prob_chain(
      self,
      chain: list[np.ndarray],
      w: np.ndarray,
      hlen: np.ndarray | None = None,
  ) -> np.ndarray:
    """p(w | history) for rows given their history indices per order (see :meth:`history_indices`)."""
    v, n = self.vocab_size, len(chain)
    if self.method in ("mle", "add_delta"):
      top = (
          n if hlen is None else np.minimum(hlen, n - 1) + 1
      )  # the order of the full history
      c = np.zeros(w.shape)
      total = np.zeros(w.shape)
      for k in range(1, n + 1):
        has, _, ck = self._gram(k, chain[k - 1], w)
        rows = has & (top == k)
        c = np.where(rows, ck, c)
        total = np.where(
            rows, self.ctx_total[k - 1][np.where(has, chain[k - 1], 0)], total
        )
      if self.method == "mle":
        with np.errstate(divide="ignore", invalid="ignore"):
          return np.where(total > 0, c / total, 0.0)
      return (c + self.delta) / (total + self.delta * v)
    p = np.full(w.shape, 1.0 / v)
    katz = self.method == "backoff"
    for k in range(1, n + 1):
      has, found, c = self._gram(k, chain[k - 1], w)
      if not has.any():
        break
      ci = np.where(has, chain[k - 1], 0)
      total = self.ctx_total[k - 1][ci]
      bow = self.ctx_bow[k - 1][ci]
      d = self.discounts[k - 1][np.minimum(c, self.discounts.shape[1] - 1)]
      with np.errstate(divide="ignore", invalid="ignore"):
        if katz:
          pk = np.where(found, d * c / total, bow * p)
        else:
          pk = np.where(found, np.maximum(c - d, 0.0) / total, 0.0) + bow * p
      p = np.where(has, pk, p)
    return p

  def prob(
      self, hist: np.ndarray, hlen: np.ndarray, w: np.ndarray
  ) -> np.ndarray:
    """p(w | history) per row: the history is the last ``hlen`` ids of ``hist`` [M, n-1]."""
    return self._prob_chain(self.history_indices(hist, hlen), w, hlen)

  def _dense(self, hist: Sequence[int]) -> np.ndarray:
    """The next-id distribution [V] after the history ``hist`` (its last n-1 ids are used)."""
    n, v = self.order, self.vocab_size
    h = list(hist)[-(n - 1) :] if n > 1 else []
    row = np.zeros((1, max(n - 1, 0)), np.int64)
    if h:
      row[0, n - 1 - len(h) :] = h
    chain = [int(c[0]) for c in self.history_indices(row, np.array([len(h)]))]

    def entries(k: int) -> tuple[np.ndarray, np.ndarray]:
      keys, ci = self.gram_keys[k - 1], chain[k - 1]
      lo, hi = np.searchsorted(keys, [ci * v, (ci + 1) * v])
      return keys[lo:hi] - ci * v, self.gram_counts[k - 1][lo:hi].astype(
          np.int64
      )

    if self.method in ("mle", "add_delta"):
      k = len(h) + 1
      ci = chain[k - 1]
      total = self.ctx_total[k - 1][ci] if ci >= 0 else 0.0
      p = (
          np.zeros(v)
          if self.method == "mle"
          else np.full(v, self.delta / (total + self.delta * v))
      )
      if ci >= 0:
        words, c = entries(k)
        p[words] += c / (
            total + (self.delta * v if self.method == "add_delta" else 0.0)
        )
      return p
    p = np.full(v, 1.0 / v)
    for k in range(1, n + 1):
      ci = chain[k - 1]
      if ci < 0:
        break
      words, c = entries(k)
      total, bow = self.ctx_total[k - 1][ci], self.ctx_bow[k - 1][ci]
      d = self.discounts[k - 1][np.minimum(c, self.discounts.shape[1] - 1)]
      p = bow * p
      if self.method == "backoff":
        p[words] = d * c / total
      elif words.size:
        p[words] += np.maximum(c - d, 0.0) / total
    return p

  # ---------------------------------------------------------------------------- public API

  def logprob_next(self, context: Sequence[int]) -> np.ndarray:
    """Natural-log next-id distribution [V] after ``context`` (ids, oldest first).

    Only the last ``order - 1`` ids matter; a shorter context (e.g. one
    that starts a sentence) is used as it is, with no padding. Under
    "mle" an unseen context gives -inf everywhere.
    """
    ctx = (
        _check_ids(context, self.vocab_size, "context").tolist()
        if len(context)
        else []
    )
    with np.errstate(divide="ignore"):
      return np.log(self._dense(ctx))

  def _histories(
      self, ids: np.ndarray, start_id: int, reset: bool
  ) -> tuple[np.ndarray, np.ndarray]:
    """(windows [N, n-1] of the padded stream, history length per position)."""
    n, num = self.order, ids.size
    ext = np.concatenate([np.full(n - 1, start_id, np.int64), ids])
    if n == 1:
      return np.zeros((num, 0), np.int64), np.zeros(num, np.int64)
    win = np.lib.stride_tricks.sliding_window_view(ext, n - 1)[:num]
    hlen = np.full(num, n - 1, np.int64)
    if reset:
      last = np.maximum.accumulate(
          np.where(ext == start_id, np.arange(ext.size), -1)
      )
      j = np.arange(num) + n - 1  # stream index of each predicted id
      hlen = np.minimum(hlen, j - last[j - 1])
    return win, hlen

  def token_logprobs(
      self, ids: np.ndarray, start_id: int, reset_at_eos: bool | None = None
  ) -> np.ndarray:
    """log p of every id of ``ids`` [N] under the scoring protocol of the module docstring."""
    ids = _check_ids(ids, self.vocab_size)
    start_id = _check_id(start_id, self.vocab_size, "start_id")
    reset = self.reset_at_eos if reset_at_eos is None else bool(reset_at_eos)
    win, hlen = self._histories(ids, start_id, reset)
    out = np.empty(ids.size)
    for s in range(0, ids.size, _CHUNK):
      e = min(ids.size, s + _CHUNK)
      hist = np.ascontiguousarray(win[s:e])
      out[s:e] = self.prob(hist, hlen[s:e], ids[s:e])
    with np.errstate(divide="ignore"):
      return np.log(out)

  def score(
      self, ids: np.ndarray, start_id: int, reset_at_eos: bool | None = None
  ) -> tuple[float, int]:
    """(sum of natural-log probabilities, number of predicted tokens = len(ids)).

    Every id is predicted once after ``start_id`` and the preceding ids
    (module docstring). ``reset_at_eos`` None uses the fitted model's
    mode; True cuts histories after each ``start_id``.
    """
    lp = self.token_logprobs(ids, start_id, reset_at_eos)
    return float(lp.sum()), int(lp.size)

  def perplexity(
      self, ids: np.ndarray, start_id: int, reset_at_eos: bool | None = None
  ) -> float:
    """exp(-mean log p) over ``ids`` (inf when some id has probability 0)."""
    total, count = self.score(ids, start_id, reset_at_eos)
    return math.exp(-total / count) if total > -math.inf else math.inf

  def context(self, stream: Sequence[int], start_id: int) -> list[int]:
    """The history the model conditions on after ``stream`` (the ids after
    ``start_id``): the last n - 1 ids of the padded stream, cut after its
    last ``start_id`` in reset mode."""
    n = self.order
    if n == 1:
      return []
    hist = [start_id] * (n - 1) + list(stream)
    ctx = hist[len(hist) - (n - 1) :]
    if self.reset_at_eos and start_id in ctx:
      ctx = ctx[len(ctx) - 1 - ctx[::-1].index(start_id) :]
    return ctx

  def sample(
      self,
      rng: np.random.Generator | int,
      start_id: int,
      max_len: int,
      stop_id: int | None = None,
      prompt: Sequence[int] = (),
      reweight: Callable[[np.ndarray], np.ndarray] | None = None,
  ) -> list[int]:
    """Up to ``max_len`` ids drawn one by one after ``start_id`` and ``prompt``, stopping after ``stop_id``.

    Histories follow the model's mode (padded stream, or cut after each
    ``start_id`` in reset mode). ``rng`` is a numpy Generator or a seed;
    ``reweight`` maps each next-token distribution to the unnormalised
    weights actually drawn from (temperature, top-k, ...).
    """
    start_id = _check_id(start_id, self.vocab_size, "start_id")
    prompt = [_check_id(t, self.vocab_size, "prompt id") for t in prompt]
    if stop_id is not None:
      stop_id = _check_id(stop_id, self.vocab_size, "stop_id")
    if not _is_int(max_len) or max_len < 0:
      raise ValueError(
          f"max_len must be a non-negative integer, got {max_len!r}"
      )
    rng = (
        rng
        if isinstance(rng, np.random.Generator)
        else np.random.default_rng(rng)
    )
    stream = list(prompt)
    out: list[int] = []
    for _ in range(int(max_len)):
      ctx = self.context(stream, start_id)
      p = self._dense(ctx)
      if reweight is not None:
        p = reweight(p)
      s = p.sum()
      if not s > 0:
        raise ValueError(
            f"no distribution after context {ctx} (unseen under {self.method!r})"
        )
      tok = int(rng.choice(self.vocab_size, p=p / s))
      out.append(tok)
      stream.append(tok)
      if tok == stop_id:
        break
    return out

  def count(self, ngram: Sequence[int]) -> int:
    """The count the method uses for ``ngram`` at order len(ngram) (0 when unseen).

    That is the raw count, except Kneser-Ney's lower orders, which hold
    continuation counts.
    """
    g = _check_ids(np.asarray(ngram), self.vocab_size, "ngram")
    k = g.size
    if k > self.order:
      raise ValueError(
          f"ngram of length {k} is longer than the model order {self.order}"
      )
    row = np.zeros((1, self.order - 1), np.int64)
    if k > 1:
      row[0, self.order - k :] = g[:-1]
    chain = self.history_indices(row, np.array([k - 1]))
    return int(self._gram(k, chain[k - 1], g[-1:])[2][0])

  def nbytes(self) -> int:
    """Bytes held by the model's arrays."""
    arrays = [
        self.discounts,
        *self.ctx_keys,
        *self.ctx_total,
        *self.ctx_bow,
        *self.gram_keys,
        *self.gram_counts,
    ]
    return int(sum(a.nbytes for a in arrays))

  # ---------------------------------------------------------------------------- files

  def save(self, path: str | os.PathLike) -> None:
    """Write the model to an ``.npz`` file (temp file, then rename)."""
    meta = {
        "format": _FORMAT,
        "order": self.order,
        "vocab_size": self.vocab_size,
        "method": self.method,
        "delta": self.delta,
        "start_id": self.start_id,
        "reset_at_eos": self.reset_at_eos,
        "num_tokens": self.num_tokens,
    }
    arrays = {
        "meta": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
        "discounts": self.discounts,
    }
    for name in (
        "ctx_keys",
        "ctx_total",
        "ctx_bow",
        "gram_keys",
        "gram_counts",
    ):
      for k, a in enumerate(getattr(self, name), start=1):
        arrays[f"{name}_{k}"] = a
    atomic_write(Path(path), lambda f: np.savez(f, **arrays))

  @classmethod
  def load(cls, path: str | os.PathLike) -> "NGramLM":
    """A model written by :meth:`save`."""
    with np.load(path, allow_pickle=False) as z:
      meta = json.loads(bytes(z["meta"]).decode())
      if meta.get("format") != _FORMAT:
        raise ValueError(
            f"{path}: unsupported n-gram model format {meta.get('format')!r}"
        )
      n = meta["order"]
      tables = {
          name: tuple(z[f"{name}_{k}"] for k in range(1, n + 1))
          for name in (
              "ctx_keys",
              "ctx_total",
              "ctx_bow",
              "gram_keys",
              "gram_counts",
          )
      }
      return cls(
          order=n,
          vocab_size=meta["vocab_size"],
          method=meta["method"],
          delta=meta["delta"],
          start_id=meta["start_id"],
          reset_at_eos=meta["reset_at_eos"],
          num_tokens=meta["num_tokens"],
          discounts=z["discounts"],
          **tables,
      )


# --------------------------------------------------------------------------------------------
# module-level API
# --------------------------------------------------------------------------------------------


fit = NGramLM.fit
load = NGramLM.load
