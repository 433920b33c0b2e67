"""Batched beam search and greedy decoding over a toy step function (a tiny
random RNN whose state is a pytree): beam 1 is greedy; greedy is the argmax
step by step; a full beam is the brute-force ranking of every sequence;
each sentence of a batch decodes as it would alone; stopping early changes
nothing and saves steps."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnnlm_jax import decoding

H = 5
CALLS = []


def init_toy(key, V, stop_bias=0.0):
  k1, k2, k3 = jax.random.split(key, 3)
  return {
      "embed": jax.random.normal(k1, (V, H)),
      "w": jax.random.normal(k2, (H, H)) / np.sqrt(H),
      "out": 2.0 * jax.random.normal(k3, (H, V)),
      "bias": jnp.zeros(V).at[-1].set(stop_bias),
  }


def toy_step(params, state, tok_N):
  """The state is a pytree: h [N, H] and the count of tokens fed [N]."""
  h_NH = jnp.tanh(state["h"] @ params["w"] + params["embed"][tok_N])
  logits_NV = h_NH @ params["out"] + params["bias"]
  return {"h": h_NH, "fed": state["fed"] + 1}, jax.nn.log_softmax(logits_NV)


def counted_step(params, state, tok_N):
  jax.debug.callback(lambda t: CALLS.append(t), tok_N[0])
  return toy_step(params, state, tok_N)


def toy_state(key, B):
  return {"h": jax.random.normal(key, (B, H)), "fed": jnp.zeros(B, jnp.int32)}


def step_one(params, h_H, tok):
  state, logp_1V = toy_step(
      params, {"h": h_H[None], "fed": jnp.zeros(1, jnp.int32)}, jnp.array([tok])
  )
  return state["h"][0], np.asarray(logp_1V[0], np.float64)


def all_sequences(params, h_H, first, V, max_len, stop_id):
  """{tokens: log p} of every sequence of up to max_len tokens that is
  either max_len long or ends at its first stop_id."""
  out = {}

  def grow(h_H, tok, seq, lp):
    h_H, logp_V = step_one(params, h_H, tok)
    for v in range(V):
      longer = seq + (v,)
      if v == stop_id or len(longer) == max_len:
        out[longer] = lp + logp_V[v]
      else:
        grow(h_H, v, longer, lp + logp_V[v])

  grow(h_H, first, (), 0.0)
  return out


def test_beam_of_one_is_greedy_and_greedy_is_the_argmax_step_by_step():
  V, B, M, stop = 6, 5, 10, 5
  params = init_toy(jax.random.key(0), V, stop_bias=0.5)
  state = toy_state(jax.random.key(1), B)
  first = jnp.array([0, 1, 2, 3, 4])
  toks, lens, logp = decoding.greedy_batched(
      toy_step, params, state, first, M, stop
  )
  btoks, blens, blogp, bnorm = decoding.beam_search_batched(
      toy_step, params, state, first, 1, M, stop
  )
  np.testing.assert_array_equal(btoks[:, 0], toks)
  np.testing.assert_array_equal(blens[:, 0], lens)
  np.testing.assert_allclose(blogp[:, 0], logp, rtol=1e-6)
  np.testing.assert_allclose(bnorm[:, 0], logp / lens, rtol=1e-6)
  assert len(set(np.asarray(lens).tolist())) > 1  # Some stop, some don't.
  for b in range(B):
    h_H, tok, seq, lp = state["h"][b], int(first[b]), [], 0.0
    while len(seq) < M and stop not in seq:
      h_H, logp_V = step_one(params, h_H, tok)
      tok = int(np.argmax(logp_V))
      seq, lp = seq + [tok], lp + logp_V[tok]
    assert int(lens[b]) == len(seq)
    np.testing.assert_array_equal(toks[b], seq + [stop] * (M - len(seq)))
    np.testing.assert_allclose(logp[b], lp, rtol=1e-5)


@pytest.mark.parametrize(
    "V, max_len, beam, alpha",
    [
        (4, 3, 40, 1.0),  # Exactly the 1 + 3 + 9 + 27 sequences.
        (3, 5, 66, 0.5),  # 63 sequences and 3 empty slots.
        (3, 5, 66, 0.0),
    ],
)
def test_a_full_beam_is_the_brute_force_ranking(V, max_len, beam, alpha):
  stop = V - 1
  params = init_toy(jax.random.key(2), V)
  state = toy_state(jax.random.key(3), 1)
  toks, lens, logp, norm = jax.device_get(
      decoding.beam_search_batched(
          toy_step, params, state, jnp.array([1]), beam, max_len, stop, alpha
      )
  )
  brute = all_sequences(params, state["h"][0], 1, V, max_len, stop)
  ranked = sorted(brute, key=lambda s: -brute[s] / len(s) ** alpha)
  n = len(ranked)
  assert n <= beam
  assert np.isneginf(logp[0, n:]).all() and np.isneginf(norm[0, n:]).all()
  for k, seq in enumerate(ranked):
    assert tuple(toks[0, k, : lens[0, k]]) == seq
    assert (toks[0, k, lens[0, k] :] == stop).all()
    np.testing.assert_allclose(logp[0, k], brute[seq], rtol=1e-5)
    np.testing.assert_allclose(
        norm[0, k], brute[seq] / len(seq) ** alpha, rtol=1e-5
    )


def test_each_sentence_of_a_batch_decodes_as_alone():
  V, B, K, M, stop = 7, 4, 3, 8, 6
  params = init_toy(jax.random.key(4), V, stop_bias=0.5)
  state = toy_state(jax.random.key(5), B)
  first = jnp.array([3, 0, 3, 5])
  together = decoding.beam_search_batched(
      toy_step, params, state, first, K, M, stop, 0.8
  )
  for b in range(B):
    alone = decoding.beam_search_batched(
        toy_step,
        params,
        jax.tree.map(lambda x: x[b : b + 1], state),
        first[b : b + 1],
        K,
        M,
        stop,
        0.8,
    )
    for got, want in zip(together, alone):
      np.testing.assert_allclose(got[b], want[0], rtol=1e-6)
  assert not np.array_equal(together[0][0], together[0][2])  # Same first.


@pytest.mark.parametrize("beam", [0, 4], ids=["greedy", "beam4"])
def test_stopping_early_changes_nothing(beam):
  """Every hypothesis ends within a few steps; the loop runs just those
  steps, and max_len = that many gives the same results."""
  V, B, stop, long = 5, 3, 4, 40
  params = init_toy(jax.random.key(6), V, stop_bias=4.0)
  state = toy_state(jax.random.key(7), B)
  first = jnp.array([0, 1, 2])

  def run(max_len):
    CALLS.clear()
    if beam:
      out = decoding.beam_search_batched(
          counted_step, params, state, first, beam, max_len, stop
      )
    else:
      out = decoding.greedy_batched(
          counted_step, params, state, first, max_len, stop
      )
    out = jax.device_get(out)
    jax.effects_barrier()
    return out, len(CALLS)

  far, steps = run(long)
  assert 1 < steps < long // 4
  assert far[1].max() <= steps
  near, near_steps = run(steps)
  assert near_steps == steps
  np.testing.assert_array_equal(far[0][..., :steps], near[0])
  assert (far[0][..., steps:] == stop).all()
  for got, want in itertools.islice(zip(far, near), 1, None):
    np.testing.assert_array_equal(got, want)
