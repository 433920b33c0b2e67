"""Tests for rnnlm_jax.arpa: a written ARPA file reproduces the model's
probabilities under backoff semantics, and non-backoff models are refused."""

import math
import os

import numpy as np
import pytest

from rnnlm_jax import arpa
from rnnlm_jax import ngram

EOS = 0


def _contexts(ids, n, v, rng):
  """Every history of the padded stream, their shorter suffixes, random
  (mostly unseen) ones and the empty one."""
  ext = [EOS] * (n - 1) + [int(t) for t in ids]
  seen = {tuple(ext[i : i + n - 1]) for i in range(len(ids))}
  rand = {tuple(rng.integers(0, v, size=n - 1).tolist()) for _ in range(8)}
  short = {h[1:] for h in seen}
  return sorted(seen | rand | short | {()})


@pytest.mark.parametrize(
    "method,reset",
    [
        ("modified_kneser_ney", False),
        ("kneser_ney", True),
        ("backoff", False),
        ("backoff", True),
    ],
)
def test_arpa_round_trip_reproduces_the_model(tmp_path, method, reset):
  rng = np.random.default_rng(18)
  p = 1.0 / np.arange(1, 9)
  ids = rng.choice(8, size=250, p=p / p.sum())
  v, n = 10, 3
  tokens = ["<eos>"] + [f"w{i}" for i in range(1, v)]
  lm = ngram.fit(ids, n, v, method, start_id=EOS, reset_at_eos=reset)
  path = tmp_path / "lm.arpa"
  arpa.write(lm, path, tokens)
  model = arpa.read(path)
  assert sorted(model) == [1, 2, 3] and len(model[1]) == v
  assert all(len(g) == 3 for g in model[3])
  for h in _contexts(ids, n, v, np.random.default_rng(3)):
    expect = lm.logprob_next(list(h)) / math.log(10)
    got = [
        arpa.logprob10(model, [tokens[t] for t in h], tokens[w])
        for w in range(v)
    ]
    np.testing.assert_allclose(got, expect, atol=1e-8, err_msg=str(h))


def test_write_refuses_what_arpa_cannot_hold():
  ids = np.array([1, 2, 3, 0, 1, 2, 0, 3, 3, 0])
  lm = ngram.fit(ids, 3, 10, start_id=EOS)
  digits = [str(i) for i in range(10)]
  with pytest.raises(ValueError, match="not a backoff model"):
    arpa.write(ngram.fit(ids, 3, 10, "add_delta"), os.devnull, digits)
  with pytest.raises(ValueError, match="whitespace"):
    arpa.write(lm, os.devnull, ["a b"] + digits[1:])
  with pytest.raises(ValueError, match="has 1 tokens"):
    arpa.write(lm, os.devnull, ["a"])


def test_read_rejects_a_wrong_header(tmp_path):
  path = tmp_path / "bad.arpa"
  path.write_text("\\data\\\nngram 1=2\n\n\\1-grams:\n-0.3\ta\n\n\\end\\\n")
  with pytest.raises(ValueError, match="declares 2 1-grams, found 1"):
    arpa.read(path)
