"""Decoding: draws follow the shaped distribution; greedy is argmax step by
step; temperature -> 0 and top-k = 1 are greedy; a seed repeats; top-p
keeps the smallest set with mass >= p; prompts of different lengths in one
batch sample as they would alone."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnnlm_jax import models
from rnnlm_jax import ngram
from rnnlm_jax import sampling
from rnnlm_jax.config import ModelConfig

V = 9
CFG = ModelConfig(
    cell="gru", vocab_size=V, hidden=8, num_layers=1, init_scale=0.8
)
PARAMS = models.init_lm(jax.random.key(0), CFG)


def draw(prompts, max_len, decoding, seed=0, cfg=CFG, params=PARAMS):
  lens = np.array([len(p) for p in prompts], np.int32)
  padded = np.zeros((len(prompts), lens.max()), np.int32)
  for b, p in enumerate(prompts):
    padded[b, : len(p)] = p
  stream = sampling.sample_ids(
      params,
      cfg,
      jax.random.key(seed),
      jnp.asarray(padded),
      jnp.asarray(lens),
      max_len,
      decoding,
  )
  return [np.asarray(stream)[b, n : n + max_len] for b, n in enumerate(lens)]


def greedy_loop(prompt, max_len, cfg=CFG, params=PARAMS):
  seq = list(prompt)
  for _ in range(max_len):
    logits, _ = models.apply_lm(
        params, cfg, models.init_carry(cfg, 1), jnp.asarray([seq])
    )
    seq.append(int(jnp.argmax(logits[0, -1])))
  return np.array(seq[len(prompt) :])


@pytest.mark.parametrize("kind", ["rnn", "neural_ngram"])
def test_greedy_is_argmax_step_by_step(kind):
  cfg = (
      CFG
      if kind == "rnn"
      else ModelConfig(
          kind=kind,
          vocab_size=V,
          order=3,
          hidden=8,
          embed_dim=4,
          init_scale=0.8,
      )
  )
  params = models.init_lm(jax.random.key(1), cfg)
  (got,) = draw([[0, 3, 4]], 12, sampling.Decoding(0.0), cfg=cfg, params=params)
  np.testing.assert_array_equal(got, greedy_loop([0, 3, 4], 12, cfg, params))


def test_cold_temperature_and_top1_are_greedy():
  greedy = draw([[0, 1]] * 3, 10, sampling.Decoding(0.0))
  cold = draw([[0, 1]] * 3, 10, sampling.Decoding(1e-4), seed=5)
  top1 = draw([[0, 1]] * 3, 10, sampling.Decoding(1.0, top_k=1), seed=6)
  np.testing.assert_array_equal(greedy, cold)
  np.testing.assert_array_equal(greedy, top1)


def test_a_seed_repeats_and_another_differs():
  a = draw([[0]] * 4, 20, sampling.Decoding(1.0), seed=3)
  b = draw([[0]] * 4, 20, sampling.Decoding(1.0), seed=3)
  c = draw([[0]] * 4, 20, sampling.Decoding(1.0), seed=4)
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)


@pytest.mark.parametrize(
    "decoding",
    [
        sampling.Decoding(1.0),
        sampling.Decoding(0.6),
        sampling.Decoding(1.5, top_k=4),
    ],
)
def test_draws_follow_the_shaped_distribution(decoding):
  """20,000 draws of the first and, after a fixed first token, the second
  token: their counts fit the model's distribution, shaped by temperature
  and top-k, by Pearson's chi-square test (the 0.9999 quantile)."""
  n = 20_000
  for prompt in ([0], [0, 5]):
    rows = draw([prompt] * n, 1, decoding, seed=11 + len(prompt))
    logits, _ = models.apply_lm(
        PARAMS, CFG, models.init_carry(CFG, 1), jnp.asarray([prompt])
    )
    shaped = sampling.filter_logits(logits[0, -1], decoding)
    probs = np.asarray(jax.nn.softmax(shaped), np.float64)
    counts = np.bincount(np.concatenate(rows), minlength=V)
    assert counts[probs == 0].sum() == 0
    support = probs > 0
    expected = n * probs[support]
    assert expected.min() > 20  # Enough per cell for the chi-square law.
    chi2 = ((counts[support] - expected) ** 2 / expected).sum()
    # Quantile 0.9999 of chi-square with k - 1 degrees of freedom, k <= 9.
    assert chi2 < {3: 21.1, 8: 31.8}[support.sum() - 1], chi2


def test_batched_prompts_of_different_lengths_sample_as_alone():
  prompts = [[0, 2, 5, 7, 1], [0], [0, 4]]
  together = draw(prompts, 8, sampling.Decoding(0.0))
  for p, row in zip(prompts, together):
    np.testing.assert_array_equal(row, greedy_loop(p, 8))


@pytest.mark.parametrize("p", [0.05, 0.3, 0.6, 0.9, 0.999])
def test_top_p_keeps_the_smallest_set_with_enough_mass(p):
  logits = jax.random.normal(jax.random.key(7), (4, 30)) * 2
  kept = np.isfinite(
      np.asarray(sampling.filter_logits(logits, sampling.Decoding(1.0, 0, p)))
  )
  probs = np.asarray(jax.nn.softmax(logits))
  for row, keep in zip(probs, kept):
    order = np.argsort(-row)
    need = int(np.searchsorted(np.cumsum(row[order]), p) + 1)
    assert keep.sum() == need
    assert set(np.flatnonzero(keep)) == set(order[:need].tolist())


def test_top_k_keeps_k_and_samples_stay_inside():
  logits = jax.random.normal(jax.random.key(8), (2, 30))
  filtered = sampling.filter_logits(logits, sampling.Decoding(1.0, 5))
  assert np.isfinite(np.asarray(filtered)).sum(axis=1).tolist() == [5, 5]
  rows = draw([[0]] * 50, 3, sampling.Decoding(1.0, top_k=2), seed=2)
  first_logits, _ = models.apply_lm(
      PARAMS, CFG, models.init_carry(CFG, 1), jnp.asarray([[0]])
  )
  top2 = set(np.argsort(-np.asarray(first_logits[0, 0]))[:2].tolist())
  assert {int(r[0]) for r in rows} <= top2


def test_counted_model_greedy_and_top_k():
  rng = np.random.default_rng(0)
  ids = rng.integers(0, V, 500)
  model = ngram.fit(ids, 3, V, "kneser_ney", start_id=0)
  (greedy,) = sampling.sample_counted(
      model, 0, [[0, 4]], 6, sampling.Decoding(0.0)
  )
  seq = [0, 0, 4]
  for _ in range(6):
    seq.append(int(np.argmax(model.logprob_next(seq[-2:]))))
  assert greedy == seq[3:]
  (top1,) = sampling.sample_counted(
      model, 9, [[0, 4]], 6, sampling.Decoding(1.0, top_k=1)
  )
  assert top1 == greedy


def test_bad_decoding_is_refused():
  for bad in [
      sampling.Decoding(-0.5),
      sampling.Decoding(1.0, top_k=-1),
      sampling.Decoding(1.0, top_p=0.0),
  ]:
    with pytest.raises(sampling.SamplingError):
      bad.check()


def test_beam_of_one_is_greedy():
  toks, lens, logp, _ = sampling.beam_search(
      PARAMS, CFG, jnp.asarray([0, 3]), 1, 9
  )
  np.testing.assert_array_equal(toks[0], greedy_loop([0, 3], 9))
  assert int(lens[0]) == 9


def sequence_logprob(prefix, cont):
  seq = list(prefix) + list(cont)
  logits, _ = models.apply_lm(
      PARAMS, CFG, models.init_carry(CFG, 1), jnp.asarray([seq[:-1]])
  )
  lp = jax.nn.log_softmax(logits[0])
  return float(
      sum(lp[i, seq[i + 1]] for i in range(len(prefix) - 1, len(seq) - 1))
  )


def test_a_full_beam_finds_the_exact_ranking():
  """With beam = V ** L every continuation survives: the beam's scores are
  the brute-force log-probabilities, sorted."""
  L, beam = 2, V**2
  toks, lens, logp, _ = sampling.beam_search(
      PARAMS, CFG, jnp.asarray([0]), beam, L
  )
  brute = sorted(
      (sequence_logprob([0], (a, b)) for a in range(V) for b in range(V)),
      reverse=True,
  )
  np.testing.assert_allclose(np.asarray(logp), brute, rtol=1e-5, atol=1e-5)
  for row, lp in zip(np.asarray(toks)[:5], np.asarray(logp)[:5]):
    np.testing.assert_allclose(sequence_logprob([0], row), lp, rtol=1e-5)


def test_beam_stops_at_the_stop_token_and_normalises_length():
  toks, lens, logp, norm = sampling.beam_search(
      PARAMS, CFG, jnp.asarray([0]), 6, 8, stop_id=2, alpha=1.0
  )
  toks, lens = np.asarray(toks), np.asarray(lens)
  for row, n, lp, s in zip(toks, lens, np.asarray(logp), np.asarray(norm)):
    if 2 in row.tolist():
      assert row.tolist().index(2) == n - 1
      assert (row[n:] == 2).all()
    np.testing.assert_allclose(s, lp / n, rtol=1e-6)
    np.testing.assert_allclose(sequence_logprob([0], row[:n]), lp, rtol=1e-5)
  assert (np.diff(np.asarray(norm)) <= 1e-6).all()


def test_counted_full_beam_is_the_exact_ranking_and_beam_one_is_greedy():
  rng = np.random.default_rng(1)
  ids = rng.integers(0, V, 300)
  model = ngram.fit(ids, 3, V, "modified_kneser_ney", start_id=0)
  best = sampling.beam_search_counted(model, [0, 5], V**2, 2)

  def logprob(cont):
    seq = [0, 0, 5, *cont]
    return sum(
        model.logprob_next(seq[i - 2 : i])[seq[i]] for i in range(3, len(seq))
    )

  brute = sorted((logprob((a, b)) for a in range(V) for b in range(V)))[::-1]
  np.testing.assert_allclose([lp for _, lp, _ in best], brute, rtol=1e-9)
  for toks, lp, _ in best[:5]:
    np.testing.assert_allclose(logprob(toks), lp, rtol=1e-9)
  (greedy,) = sampling.sample_counted(
      model, 0, [[0, 5]], 6, sampling.Decoding(0.0)
  )
  assert sampling.beam_search_counted(model, [0, 5], 1, 6)[0][0] == greedy
