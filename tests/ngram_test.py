"""Tests for rnnlm_jax.ngram: normalisation, exact counts and probabilities against slow
dict-based references, the scoring protocol, files, sampling and bad input; Penn Treebank
perplexities when the corpus is present."""

import math
import os
from collections import Counter
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from rnnlm_jax import ngram
from rnnlm_jax.ngram import KATZ_MAX_COUNT, NGramLM

NORMALISED = ("add_delta", "backoff", "kneser_ney", "modified_kneser_ney")
EOS = 0

# The 20-token toy corpus of the hand-computed checks: "a b c / a b a / b c a b / c a d / a b".
E, A, B, C, D, Z = range(6)  # Z never occurs
TOY = np.array([A, B, C, E, A, B, A, E, B, C, A, B, E, C, A, D, E, A, B, E])


def _random_corpus(seed=0, n=300, v=10, seen=8):
  """Skewed random ids over ``seen`` of ``v`` ids, with EOS (0) frequent."""
  rng = np.random.default_rng(seed)
  p = 1.0 / np.arange(1, seen + 1)
  return rng.choice(seen, size=n, p=p / p.sum())


# ---------------------------------------------------------------------------------------------
# slow references: plain dicts and the formulas of the module docstring
# ---------------------------------------------------------------------------------------------


def _histories(ids, start, n, reset):
  """(history tuple, id) per position: the n-1 previous ids of [start]*(n-1) + ids, cut after the last start."""
  ext = [start] * (n - 1) + [int(x) for x in ids]
  out = []
  for i, w in enumerate(ids):
    j = i + n - 1
    h = ext[j - (n - 1) : j] if n > 1 else []
    if reset and start in h:
      h = h[len(h) - 1 - h[::-1].index(start) :]
    out.append((tuple(h), int(w)))
  return out


def _raw_counts(ids, start, n, reset):
  counts = {k: Counter() for k in range(1, n + 1)}
  for h, w in _histories(ids, start, n, reset):
    for k in range(1, len(h) + 2):
      counts[k][h[len(h) - (k - 1) :] + (w,)] += 1
  return counts


def _ref_kn_discounts(values, modified):
  cc = Counter(values)
  n1, n2, n3, n4 = (cc[r] for r in (1, 2, 3, 4))
  if not modified:
    d = n1 / (n1 + 2 * n2) if n1 > 0 else 0.0
    d = d if 0 < d <= 1 else 0.5
    return {1: d, 2: d, 3: d}
  out = {}
  for r, fallback, (a, b) in (
      (1, 0.5, (n2, n1)),
      (2, 1.0, (n3, n2)),
      (3, 1.5, (n4, n3)),
  ):
    try:
      d = r - (r + 1) * (n1 / (n1 + 2 * n2)) * a / b
    except ZeroDivisionError:
      d = math.nan
    out[r] = d if 0 < d <= r else fallback
  return out


def _ref_kn(ids, v, n, start, reset, modified):
  """p(w | h) of interpolated (modified) Kneser-Ney, straight from the definitions."""
  raw = _raw_counts(ids, start, n, reset)
  eff = {n: dict(raw[n])}
  for k in range(1, n):
    left = Counter(
        g[1:] for g in raw[k + 1]
    )  # distinct left extensions of each k-gram
    eff[k] = {}
    for g, c in raw[k].items():
      e = c if (reset and k >= 2 and g[0] == start) else left[g]
      if e > 0:
        eff[k][g] = e
  disc = {k: _ref_kn_discounts(eff[k].values(), modified) for k in eff}
  follow = {k: {} for k in eff}
  for k, table in eff.items():
    for g, c in table.items():
      follow[k].setdefault(g[:-1], {})[g[-1]] = c

  @lru_cache(maxsize=None)
  def p(h, w):
    k = len(h) + 1
    lower = 1.0 / v if k == 1 else p(h[1:], w)
    f = follow[k].get(h)
    if not f:
      return lower
    total = sum(f.values())
    dk = lambda c: disc[k][min(c, 3)]  # noqa: E731
    gamma = sum(dk(c) for c in f.values()) / total
    c = f.get(w, 0)
    return (max(c - dk(c), 0) if c else 0.0) / total + gamma * lower

  return p, disc, eff


def _ref_katz_discounts(values, kmax=KATZ_MAX_COUNT):
  cc = Counter(values)
  d = {r: 1.0 for r in range(1, kmax + 1)}
  if cc[1] == 0:
    return d
  a = (kmax + 1) * cc[kmax + 1] / cc[1]
  if a >= 1:
    return d
  for r in range(1, kmax + 1):
    if cc[r]:
      dr = ((r + 1) * cc[r + 1] / (r * cc[r]) - a) / (1 - a)
      if 0 < dr <= 1:
        d[r] = dr
  return d


def _ref_katz(ids, v, n, start, reset):
  """p(w | h) of Katz backoff with Good-Turing discounts and the module's two edge-case rules."""
  raw = _raw_counts(ids, start, n, reset)
  disc = {k: _ref_katz_discounts(raw[k].values()) for k in raw}
  follow = {k: {} for k in raw}
  for k, table in raw.items():
    for g, c in table.items():
      follow[k].setdefault(g[:-1], {})[g[-1]] = c

  @lru_cache(maxsize=None)
  def p(h, w):
    k = len(h) + 1
    lower = (lambda u: 1.0 / v) if k == 1 else (lambda u: p(h[1:], u))  # noqa: E731
    f = follow[k].get(h)
    if not f:
      return lower(w)
    kept = {u: disc[k].get(c, 1.0) * c for u, c in f.items()}
    if len(f) == v:
      return kept[w] / sum(kept.values())
    total = sum(f.values())
    if sum(kept.values()) >= total:
      total += 1
    if w in f:
      return kept[w] / total
    alpha = (1 - sum(kept.values()) / total) / (1 - sum(lower(u) for u in f))
    return alpha * lower(w)

  return p


def _contexts(ids, n, start, rng, v, extra=8):
  """Histories of the stream (seen), random ones (mostly unseen), shorter ones and the empty one."""
  v_hi = min(int(max(ids)) + 3, v)
  seen = sorted(
      {h for h, _ in _histories(ids, start, n, False)}
      | {h for h, _ in _histories(ids, start, n, True)}
  )
  pick = [
      seen[i]
      for i in rng.choice(len(seen), size=min(extra, len(seen)), replace=False)
  ]
  rand = [
      tuple(int(x) for x in rng.integers(0, v_hi, size=n - 1))
      for _ in range(extra)
  ]
  short = [h[len(h) // 2 :] for h in pick]
  return pick + rand + short + [()]


# ---------------------------------------------------------------------------------------------
# normalisation
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", NORMALISED)
@pytest.mark.parametrize("order", [1, 2, 3, 4])
@pytest.mark.parametrize("reset", [False, True])
def test_every_context_sums_to_one(method, order, reset):
  ids = _random_corpus(seed=order)
  v = 11  # ids 8..10 never occur
  lm = ngram.fit(
      ids, order, v, method, delta=0.5, start_id=EOS, reset_at_eos=reset
  )
  rng = np.random.default_rng(order)
  for h in _contexts(ids, order, EOS, rng, v):
    lp = lm.logprob_next(list(h))
    assert lp.shape == (v,)
    assert np.exp(lp).sum() == pytest.approx(1.0, abs=1e-12), h
    assert np.all(
        np.isfinite(lp)
    ), h  # every id, the unseen ones included, is possible


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_mle_sums_to_one_on_seen_contexts_and_has_none_elsewhere(order):
  ids = _random_corpus(seed=10 + order)
  lm = ngram.fit(ids, order, 11, "mle", start_id=EOS)
  for h in {h for h, _ in _histories(ids, EOS, order, False)}:
    assert np.exp(lm.logprob_next(list(h))).sum() == pytest.approx(
        1.0, abs=1e-12
    )
  if order > 1:
    unseen = [10] * (order - 1)  # id 10 never occurs
    assert np.all(lm.logprob_next(unseen) == -np.inf)


def test_sums_to_one_without_padding_and_with_tiny_corpora():
  for ids in (
      np.array([3]),
      np.array([1, 2]),
      np.array([2, 2, 2, 2]),
      _random_corpus(seed=3, n=12),
  ):
    for method in NORMALISED:
      for order in (1, 3, 5):
        lm = ngram.fit(ids, order, 9, method)  # no start_id: no padding
        for h in ([], [2], [1, 2], [2, 2, 2, 2], [8, 8]):
          assert np.exp(lm.logprob_next(h)).sum() == pytest.approx(
              1.0, abs=1e-12
          ), (ids, method, order, h)


def test_katz_contexts_followed_by_the_whole_vocabulary_or_only_frequent_ids():
  # With v=3 every id follows every other one (renormalised context); "2 2 ... 2" only has big counts.
  ids = np.array([0, 1, 2, 0, 2, 1, 1, 0, 0, 2, 2, 1] * 3 + [2] * 20)
  for v in (3, 5):
    lm = ngram.fit(ids, 2, v, "backoff", start_id=0)
    ref = _ref_katz(ids, v, 2, 0, False)
    for h in ([0], [1], [2], [4 % v]):
      lp = lm.logprob_next(h)
      assert np.exp(lp).sum() == pytest.approx(1.0, abs=1e-12)
      np.testing.assert_allclose(
          np.exp(lp), [ref(tuple(h), w) for w in range(v)], rtol=1e-12
      )
  # Unigram counts 10, 3, 2, 1, 1, 1: d_1 = 2 n2 / n1 = 2/3, so the fully seen unigram level is renormalised.
  ids = np.array([0] * 10 + [1] * 3 + [2] * 2 + [3, 4, 5])
  lm = ngram.fit(ids, 1, 6, "backoff", start_id=0)
  assert lm.discounts[0, 1] == pytest.approx(2 / 3)
  kept = np.array([10, 3, 2, 2 / 3, 2 / 3, 2 / 3])
  np.testing.assert_allclose(
      np.exp(lm.logprob_next([])), kept / kept.sum(), rtol=1e-12
  )


# ---------------------------------------------------------------------------------------------
# exact counts and probabilities
# ---------------------------------------------------------------------------------------------


def test_toy_counts_and_kneser_ney_probabilities_by_hand():
  v = 6
  lm = ngram.fit(TOY, 2, v, "kneser_ney", start_id=E)
  # Bigram (top order) raw counts over "E a b c E a b a E b c a b E c a d E a b E".
  assert (
      lm.count([A, B]) == 4
      and lm.count([E, A]) == 3
      and lm.count([B, C]) == 2
      and lm.count([A, C]) == 0
  )
  # Unigram continuation counts: distinct left neighbours.
  assert [lm.count([w]) for w in (E, A, B, C, D, Z)] == [4, 3, 2, 2, 1, 0]
  # Bigram count-of-counts n1=7, n2=3; continuation count-of-counts n1=1, n2=2; 12 distinct bigrams.
  d2, d1 = 7 / 13, 1 / 5
  np.testing.assert_allclose(lm.discounts[:, 1], [d1, d2], rtol=1e-15)
  uni_gamma = d1 * 5 / 12  # five ids have a continuation count
  p1 = {
      w: max(c - d1, 0) / 12 + uni_gamma / v
      for w, c in zip((E, A, B, C, D, Z), (4, 3, 2, 2, 1, 0))
  }
  # Followers of a: b 4, E 1, d 1 (total 6, 3 types); of d: E 1.
  expect = {
      (A, B): (4 - d2) / 6 + d2 * 3 / 6 * p1[B],
      (A, Z): d2 * 3 / 6 * p1[Z],
      (D, A): d2 * 1 / 1 * p1[A],
      (Z, C): p1[C],  # unseen history: the unigram distribution
  }
  for (h, w), p in expect.items():
    assert math.exp(lm.logprob_next([h])[w]) == pytest.approx(p, rel=1e-12), (
        h,
        w,
    )
  assert math.exp(lm.logprob_next([])[Z]) == pytest.approx(1 / 72, rel=1e-12)


def test_toy_modified_kneser_ney_by_hand():
  v = 6
  lm = ngram.fit(TOY, 2, v, "modified_kneser_ney", start_id=E)
  # Bigrams: n1..n4 = 7, 3, 1, 1 -> Y = 7/13; unigram continuation counts: 1, 2, 1, 1 -> Y = 1/5.
  y2, y1 = 7 / 13, 1 / 5
  bi = [1 - 2 * y2 * 3 / 7, 2 - 3 * y2 * 1 / 3, 3 - 4 * y2 * 1 / 1]
  uni = [1 - 2 * y1 * 2 / 1, 2 - 3 * y1 * 1 / 2, 3 - 4 * y1 * 1 / 1]
  np.testing.assert_allclose(lm.discounts[:, 1:], [uni, bi], rtol=1e-14)
  # Continuation counts E 4, a 3, b 2, c 2, d 1: gamma = (D1 + 2 D2 + 2 D3+) / 12.
  uni_gamma = (uni[0] * 1 + uni[1] * 2 + uni[2] * 2) / 12
  p1_b = (2 - uni[1]) / 12 + uni_gamma / v
  # Followers of a: b 4 (D3+), E 1 and d 1 (D1).
  gamma_a = (2 * bi[0] + bi[2]) / 6
  p_ab = (4 - bi[2]) / 6 + gamma_a * p1_b
  assert math.exp(lm.logprob_next([A])[B]) == pytest.approx(p_ab, rel=1e-12)
  assert math.exp(lm.logprob_next([A])[Z]) == pytest.approx(
      gamma_a * uni_gamma / v, rel=1e-12
  )


@pytest.mark.parametrize("modified", [False, True])
@pytest.mark.parametrize("reset", [False, True])
def test_kneser_ney_matches_reference_implementation(modified, reset):
  ids = _random_corpus(seed=5, n=400, v=7, seen=6)
  v, n = 7, 3
  method = "modified_kneser_ney" if modified else "kneser_ney"
  lm = ngram.fit(ids, n, v, method, start_id=EOS, reset_at_eos=reset)
  ref, disc, eff = _ref_kn(ids, v, n, EOS, reset, modified)
  for k in range(1, n + 1):
    np.testing.assert_allclose(
        lm.discounts[k - 1, 1:], [disc[k][r] for r in (1, 2, 3)], rtol=1e-14
    )
    for g, c in list(eff[k].items())[:20]:
      assert lm.count(list(g)) == c
  if modified:  # this corpus exercises the formulas, not the fallback
    assert all(
        Counter(eff[k].values())[r] > 0 for k in (2, 3) for r in (1, 2, 3, 4)
    )
  for h in _contexts(ids, n, EOS, np.random.default_rng(1), v):
    np.testing.assert_allclose(
        np.exp(lm.logprob_next(list(h))),
        [ref(h, w) for w in range(v)],
        rtol=1e-12,
    )


@pytest.mark.parametrize("reset", [False, True])
def test_katz_backoff_matches_reference_implementation(reset):
  ids = _random_corpus(seed=6, n=400, v=7, seen=6)
  v, n = 7, 3
  lm = ngram.fit(ids, n, v, "backoff", start_id=EOS, reset_at_eos=reset)
  ref = _ref_katz(ids, v, n, EOS, reset)
  raw = _raw_counts(ids, EOS, n, reset)
  for k in range(1, n + 1):
    d = _ref_katz_discounts(raw[k].values())
    np.testing.assert_allclose(
        lm.discounts[k - 1, 1 : KATZ_MAX_COUNT + 1],
        [d[r] for r in range(1, 6)],
        rtol=1e-14,
    )
  for h in _contexts(ids, n, EOS, np.random.default_rng(2), v):
    np.testing.assert_allclose(
        np.exp(lm.logprob_next(list(h))),
        [ref(h, w) for w in range(v)],
        rtol=1e-12,
    )


def test_reset_mode_counts_sentence_by_sentence():
  ids = np.array([A, B, E, B, A, A, E])
  lm = ngram.fit(ids, 3, 6, "mle", start_id=E, reset_at_eos=True)
  assert (
      lm.count([E, A, B]) == 1
      and lm.count([A, B, E]) == 1
      and lm.count([E, B, A]) == 1
  )
  assert lm.count([B, E, B]) == 0  # would cross a sentence start
  stream = ngram.fit(ids, 3, 6, "mle", start_id=E)
  assert (
      stream.count([B, E, B]) == 1 and stream.count([E, E, A]) == 1
  )  # padded start
  # Sentence-initial histories are short: p(b | <eos> a) from the trigram table, p(a | <eos>) from bigrams.
  lp = lm.token_logprobs(ids, E)
  np.testing.assert_allclose(np.exp(lp), [1 / 2, 1, 1, 1 / 2, 1, 1, 1])


def test_add_delta_tends_to_mle_on_seen_events():
  ids = _random_corpus(seed=7)
  for order in (1, 2, 3):
    mle = ngram.fit(ids, order, 10, "mle", start_id=EOS)
    add = ngram.fit(ids, order, 10, "add_delta", delta=1e-9, start_id=EOS)
    for h, w in _histories(ids, EOS, order, False)[:60]:
      p_add, p_mle = math.exp(add.logprob_next(list(h))[w]), math.exp(
          mle.logprob_next(list(h))[w]
      )
      assert p_add == pytest.approx(p_mle, rel=1e-6)
  laplace = ngram.fit(ids, 2, 10, "add_delta", start_id=EOS)
  c_ab, c_a = laplace.count([1, 2]), sum(
      laplace.count([1, w]) for w in range(10)
  )
  assert math.exp(laplace.logprob_next([1])[2]) == pytest.approx(
      (c_ab + 1) / (c_a + 10), rel=1e-12
  )
  assert np.allclose(
      laplace.logprob_next([9]), -math.log(10)
  )  # unseen history: uniform


def test_unigram_mle_perplexity_is_the_closed_form():
  ids = _random_corpus(seed=8, n=500)
  counts = np.bincount(ids).astype(float)
  counts = counts[counts > 0]
  expected = math.exp(-np.sum(counts / ids.size * np.log(counts / ids.size)))
  lm = ngram.fit(ids, 1, 10, "mle", start_id=EOS)
  total, count = lm.score(ids, EOS)
  assert count == ids.size
  assert lm.perplexity(ids, EOS) == pytest.approx(expected, rel=1e-12)
  assert lm.perplexity(ids, 3, reset_at_eos=True) == pytest.approx(
      expected, rel=1e-12
  )  # a unigram ignores history


def test_mle_perplexity_is_inf_on_unseen_events():
  ids = _random_corpus(seed=9)
  lm = ngram.fit(ids, 3, 10, "mle", start_id=EOS)
  assert lm.perplexity(ids, EOS) < math.inf
  assert lm.perplexity(np.array([9, 9, 1]), EOS) == math.inf


# ---------------------------------------------------------------------------------------------
# scoring
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ngram.METHODS)
@pytest.mark.parametrize("reset", [False, True])
def test_score_equals_a_per_token_loop(method, reset):
  train = _random_corpus(seed=11)
  other = _random_corpus(seed=12, n=120, seen=9)
  for order in (1, 3, 4):
    lm = ngram.fit(train, order, 10, method, start_id=EOS, reset_at_eos=reset)
    for ids in (train, other):
      slow = np.array(
          [
              lm.logprob_next(list(h))[w]
              for h, w in _histories(ids, EOS, order, reset)
          ]
      )
      fast = lm.token_logprobs(ids, EOS)
      np.testing.assert_allclose(fast, slow, rtol=1e-12)
      total, count = lm.score(ids, EOS)
      assert count == ids.size
      if np.all(np.isfinite(slow)):
        assert total == pytest.approx(slow.sum(), rel=1e-12)
      else:
        assert total == -math.inf
      # The fitted mode is the default; the other mode scores its own
      # histories with the same model.
      assert lm.score(ids, EOS, reset_at_eos=reset) == (total, count)
      crossed = np.array(
          [
              lm.logprob_next(list(h))[w]
              for h, w in _histories(ids, EOS, order, not reset)
          ]
      )
      np.testing.assert_allclose(
          lm.token_logprobs(ids, EOS, reset_at_eos=not reset),
          crossed,
          rtol=1e-12,
      )


def test_stream_and_reset_differ_only_across_sentences():
  ids = np.array([A, B, C, E, A, B, C, E, B, A, E])
  stream = ngram.fit(ids, 3, 6, "modified_kneser_ney", start_id=E)
  reset = ngram.fit(
      ids, 3, 6, "modified_kneser_ney", start_id=E, reset_at_eos=True
  )
  assert stream.count([C, E, A]) == 1 and reset.count([C, E, A]) == 0
  assert stream.score(ids, E)[0] != reset.score(ids, E)[0]
  assert stream.reset_at_eos is False and reset.reset_at_eos is True
  # One model scored both ways. The stream model: the same where the
  # histories agree (inside a sentence), different where the stream's
  # history crosses a boundary. The reset model counted no history across
  # a boundary, so a crossing history backs off to the boundary alone:
  # the same everywhere.
  same = np.array(
      [
          a == b
          for a, b in zip(
              _histories(ids, E, 3, False), _histories(ids, E, 3, True)
          )
      ]
  )
  assert 4 <= same.sum() < ids.size
  lp = {r: stream.token_logprobs(ids, E, reset_at_eos=r) for r in (0, 1)}
  np.testing.assert_array_equal(lp[0][same], lp[1][same])
  assert np.all(lp[0][~same] != lp[1][~same])
  np.testing.assert_array_equal(
      reset.token_logprobs(ids, E, reset_at_eos=False),
      reset.token_logprobs(ids, E, reset_at_eos=True),
  )


# ---------------------------------------------------------------------------------------------
# files, sampling, memory
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ngram.METHODS)
def test_save_load_round_trip(tmp_path, method):
  ids = _random_corpus(seed=13)
  lm = ngram.fit(
      ids, 3, 10, method, delta=0.25, start_id=EOS, reset_at_eos=True
  )
  path = tmp_path / "models" / "lm.npz"
  lm.save(path)
  assert sorted(p.name for p in path.parent.iterdir()) == [
      "lm.npz"
  ]  # no temp file left behind
  back = ngram.load(path)
  for field in (
      "order",
      "vocab_size",
      "method",
      "delta",
      "start_id",
      "reset_at_eos",
      "num_tokens",
  ):
    assert getattr(back, field) == getattr(lm, field)
  np.testing.assert_array_equal(back.discounts, lm.discounts)
  for name in ("ctx_keys", "ctx_total", "ctx_bow", "gram_keys", "gram_counts"):
    for a, b in zip(getattr(lm, name), getattr(back, name), strict=True):
      assert a.dtype == b.dtype
      np.testing.assert_array_equal(a, b)
  assert back.score(ids, EOS) == lm.score(ids, EOS)
  assert back.nbytes() == lm.nbytes()
  lm.save(path)  # overwriting is atomic too
  assert NGramLM.load(path).score(ids, EOS) == lm.score(ids, EOS)


def test_nbytes_counts_every_array():
  lm = ngram.fit(
      _random_corpus(seed=14), 4, 10, "modified_kneser_ney", start_id=EOS
  )
  arrays = [
      lm.discounts,
      *lm.ctx_keys,
      *lm.ctx_total,
      *lm.ctx_bow,
      *lm.gram_keys,
      *lm.gram_counts,
  ]
  assert lm.nbytes() == sum(a.nbytes for a in arrays) > 0


@pytest.mark.parametrize("method", ["mle", "backoff", "modified_kneser_ney"])
@pytest.mark.parametrize("reset", [False, True])
def test_sampling_is_repeatable_and_in_range(method, reset):
  ids = _random_corpus(seed=15)
  lm = ngram.fit(ids, 3, 10, method, start_id=EOS, reset_at_eos=reset)
  a = lm.sample(np.random.default_rng(0), EOS, 50)
  b = lm.sample(np.random.default_rng(0), EOS, 50)
  assert a == b and len(a) == 50
  assert all(isinstance(t, int) and 0 <= t < 10 for t in a)
  if method == "mle":
    assert all(t < 8 for t in a)  # only ids seen in training
  stopped = lm.sample(7, EOS, 200, stop_id=EOS)
  assert stopped == lm.sample(7, EOS, 200, stop_id=EOS)
  assert stopped[-1] == EOS and EOS not in stopped[:-1]
  assert lm.sample(0, EOS, 0) == []


def test_sampled_frequencies_follow_the_model():
  ids = _random_corpus(seed=16, n=200)
  lm = ngram.fit(ids, 1, 10, "add_delta", start_id=EOS)
  draws = (
      np.bincount(lm.sample(np.random.default_rng(1), EOS, 4000), minlength=10)
      / 4000
  )
  np.testing.assert_allclose(draws, np.exp(lm.logprob_next([])), atol=0.03)


# ---------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------


def test_bad_input_raises_value_error():
  ids = _random_corpus(seed=17)
  cases = [
      lambda: ngram.fit(ids, 0, 10),
      lambda: ngram.fit(ids, 2.0, 10),
      lambda: ngram.fit(ids, True, 10),
      lambda: ngram.fit(np.array([], np.int32), 3, 10),
      lambda: ngram.fit([], 3, 10),
      lambda: ngram.fit(ids, 3, 10, "witten_bell"),
      lambda: ngram.fit(np.array([1, 10]), 3, 10),
      lambda: ngram.fit(np.array([1, -1]), 3, 10),
      lambda: ngram.fit(ids.reshape(2, -1), 3, 10),
      lambda: ngram.fit(ids.astype(float), 3, 10),
      lambda: ngram.fit(ids, 3, 0),
      lambda: ngram.fit(ids, 3, 10, "add_delta", delta=0.0),
      lambda: ngram.fit(ids, 3, 10, start_id=10),
      lambda: ngram.fit(ids, 3, 10, reset_at_eos=True),
  ]
  lm = ngram.fit(ids, 3, 10, start_id=EOS)
  cases += [
      lambda: lm.score(np.array([1, 12]), EOS),
      lambda: lm.score(np.array([], np.int64), EOS),
      lambda: lm.score(ids, -1),
      lambda: lm.perplexity(ids, 10),
      lambda: lm.logprob_next([3, 10]),
      lambda: lm.sample(0, EOS, -1),
      lambda: lm.sample(0, EOS, 5, stop_id=99),
      lambda: lm.count([1, 2, 3, 4]),
  ]
  for i, case in enumerate(cases):
    with pytest.raises(ValueError) as info:
      case()
    message = str(info.value)
    assert message and "\n" not in message, (i, message)


def test_mle_sampling_from_an_unseen_context_raises():
  lm = ngram.fit(
      np.array([1, 2]), 2, 4, "mle"
  )  # no padding: nothing ever follows 3
  with pytest.raises(ValueError, match="unseen"):
    lm.sample(0, 3, 5)


# ---------------------------------------------------------------------------------------------
# Penn Treebank
# ---------------------------------------------------------------------------------------------


def _data_root() -> Path:
  env = os.environ.get("RNNLM_DATA")
  return (
      Path(env)
      if env
      else Path(__file__).resolve().parents[2] / "shared" / "data"
  )


def test_ptb_modified_kneser_ney_perplexities():
  folder = _data_root() / "ptb"
  if not folder.is_dir():
    pytest.skip(
        f"corpus folder ptb not found under {_data_root()} (set RNNLM_DATA)"
    )
  from rnnlm_jax import cache

  vocab, ids = cache.load_corpus({"dir": str(folder), "level": "word"}, "word")
  e = vocab.boundary_id
  kn5 = ngram.fit(ids["train"], 5, len(vocab), start_id=e, reset_at_eos=True)
  # Mikolov et al. (2011): KN5 141.2 on this split (SRILM, sentences scored separately).
  assert 135 < kn5.perplexity(ids["test"], e) < 147
  assert 135 < kn5.perplexity(ids["test"], e, reset_at_eos=False) < 150
  kn3 = ngram.fit(ids["train"], 3, len(vocab), start_id=e)
  assert 142 < kn3.perplexity(ids["test"], e) < 155  # KN3 148.3
