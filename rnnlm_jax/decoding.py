"""Beam search and greedy decoding for any model that predicts one token at
a time, many sentences at once, in one compiled lax.while_loop.

A model enters as a step function

  step(params, state_N, tokens_N) -> (state_N, logp_NV)

that feeds one token to each of N rows and returns each row's next-token
log-probabilities (normalised, e.g. log_softmax). ``state_N`` is any pytree
whose every leaf has the rows N as its leading axis; ``params`` is any
pytree shared by all rows (weights; it is an argument rather than closed
over so that jit traces it as data, not as constants baked into the
program). ``step`` is a static argument of jit: pass the same function
object each call (a module-level function, or a functools.partial built
once), or every call compiles anew. Inside a caller's own jit, step may
close over traced values.

Conventions shared by both searches (and the language models' beam search
in sampling.py):
  * The first call of step feeds first_B; each later call feeds the tokens
    just chosen, so step runs once per emitted token.
  * A hypothesis ends at its first stop_id (-1: never), which counts in its
    length and log-probability; it then extends only by stop_id at no cost,
    and its remaining tokens read stop_id. A hypothesis that never stops
    has length max_len.
  * The loop stops after max_len tokens, or as soon as every hypothesis of
    every sentence has ended. That is exact, not a heuristic: once all K
    hypotheses of a sentence have ended, its only finite candidates are
    those K extended by stop_id at no cost, so further steps cannot change
    its beam (nor its order); the results equal those of running all
    max_len steps.

Shape letters beyond the package's: K beam width, N = B * K rows, C = K * V
candidates per sentence, M = max_len.
"""

import functools

import jax
import jax.numpy as jnp


def _extensions(logp_NV, done_N, stop_id):
  """Next-token log-probabilities, float32, where a finished row extends
  only by stop_id, at no cost."""
  logp_NV = logp_NV.astype(jnp.float32)
  only_stop_V = jnp.where(
      jnp.arange(logp_NV.shape[-1]) == stop_id, 0.0, -jnp.inf
  )
  return jnp.where(done_N[:, None], only_stop_V, logp_NV)


def _rows(state, rows_N):
  return jax.tree.map(lambda x: x[rows_N], state)


@functools.partial(jax.jit, static_argnames=("step", "beam", "max_len"))
def beam_search_batched(
    step,
    params,
    state_B,
    first_B,
    beam: int,
    max_len: int,
    stop_id: int,
    alpha: float = 1.0,
):
  """The ``beam`` best continuations of each of B sentences, best first.

  Each sentence's row of state_B is repeated beam times; all N = B * beam
  rows are expanded by one call of step per time step; each sentence keeps
  the top ``beam`` of its beam * V candidates by log-probability, and the
  state rows follow their chosen parents. Slots 1.. start at -inf, so the
  first expansion comes from slot 0 alone. The final beam is ranked by
  log p / length ** alpha (alpha 0: the raw log-probability, which favours
  short hypotheses; 1: the per-token average); the pruning during the
  search is by raw log-probability.

  Args:
    step: (params, state_N, tokens_N) -> (state_N, logp_NV); static.
    params: pytree passed to every call of step.
    state_B: pytree of [B, ...] leaves: each sentence's state.
    first_B: int [B], the first token fed to each sentence.
    beam: K, the beam width; static.
    max_len: M, the most tokens emitted; static.
    stop_id: the token that ends a hypothesis (-1: none).
    alpha: the length-normalisation exponent.

  Returns:
    (tokens [B, K, M] int32, lengths [B, K] int32, log-probabilities
    [B, K] float32, normalised scores [B, K] float32), best first per
    sentence. Where K exceeds the number of continuations of nonzero
    probability, the surplus slots have log-probability and score -inf
    and hold no hypothesis.
  """
  K, M = beam, max_len
  B = first_B.shape[0]
  N = B * K
  state_N = jax.tree.map(lambda x: jnp.repeat(x, K, axis=0), state_B)
  tok_N = jnp.repeat(first_B.astype(jnp.int32), K)
  score_K = jnp.where(jnp.arange(K) == 0, 0.0, -jnp.inf).astype(jnp.float32)
  score_BK = jnp.broadcast_to(score_K, (B, K))
  init = (
      jnp.int32(0),
      state_N,
      tok_N,
      score_BK,
      jnp.zeros((B, K), bool),
      jnp.zeros((B, K), jnp.int32),
      jnp.full((B, K, M), stop_id, jnp.int32),
  )

  def unsettled(loop):
    t, _, _, score_BK, done_BK, _, _ = loop
    # A -inf slot holds no hypothesis and never will again.
    return (t < M) & ~jnp.all(done_BK | (score_BK == -jnp.inf))

  def expand(loop):
    t, state_N, tok_N, score_BK, done_BK, len_BK, toks_BKM = loop
    state_N, logp_NV = step(params, state_N, tok_N)
    V = logp_NV.shape[-1]
    ext_BKV = _extensions(logp_NV, done_BK.reshape(N), stop_id).reshape(B, K, V)
    total_BC = (score_BK[..., None] + ext_BKV).reshape(B, K * V)
    score_BK, flat_BK = jax.lax.top_k(total_BC, K)
    parent_BK, tok_BK = flat_BK // V, (flat_BK % V).astype(jnp.int32)
    rows_N = (parent_BK + K * jnp.arange(B)[:, None]).reshape(N)
    toks_BKM = jnp.take_along_axis(toks_BKM, parent_BK[..., None], axis=1)
    toks_BKM = toks_BKM.at[:, :, t].set(tok_BK)
    was_done_BK = jnp.take_along_axis(done_BK, parent_BK, axis=1)
    len_BK = jnp.take_along_axis(len_BK, parent_BK, axis=1) + ~was_done_BK
    done_BK = was_done_BK | (tok_BK == stop_id)
    return (
        t + 1,
        _rows(state_N, rows_N),
        tok_BK.reshape(N),
        score_BK,
        done_BK,
        len_BK,
        toks_BKM,
    )

  _, _, _, score_BK, _, len_BK, toks_BKM = jax.lax.while_loop(
      unsettled, expand, init
  )
  norm_BK = score_BK / jnp.maximum(len_BK, 1).astype(jnp.float32) ** alpha
  order_BK = jnp.argsort(-norm_BK, axis=1)
  take = lambda x: jnp.take_along_axis(x, order_BK, axis=1)
  return (
      jnp.take_along_axis(toks_BKM, order_BK[..., None], axis=1),
      take(len_BK),
      take(score_BK),
      take(norm_BK),
  )


@functools.partial(jax.jit, static_argnames=("step", "max_len"))
def greedy_batched(step, params, state_B, first_B, max_len: int, stop_id: int):
  """The most probable token at each step, for each of B sentences: the
  same result as beam_search_batched with beam 1, without its top-k.

  Args: as beam_search_batched's.

  Returns:
    (tokens [B, M] int32, lengths [B] int32, log-probabilities [B]
    float32).
  """
  B, M = first_B.shape[0], max_len
  init = (
      jnp.int32(0),
      state_B,
      first_B.astype(jnp.int32),
      jnp.zeros((B,), jnp.float32),
      jnp.zeros((B,), bool),
      jnp.zeros((B,), jnp.int32),
      jnp.full((B, M), stop_id, jnp.int32),
  )

  def unsettled(loop):
    t, _, _, _, done_B, _, _ = loop
    return (t < M) & ~jnp.all(done_B)

  def extend(loop):
    t, state_B, tok_B, logp_B, done_B, len_B, toks_BM = loop
    state_B, logp_BV = step(params, state_B, tok_B)
    ext_BV = _extensions(logp_BV, done_B, stop_id)
    tok_B = jnp.argmax(ext_BV, axis=-1).astype(jnp.int32)
    logp_B = logp_B + jnp.take_along_axis(ext_BV, tok_B[:, None], 1)[:, 0]
    return (
        t + 1,
        state_B,
        tok_B,
        logp_B,
        done_B | (tok_B == stop_id),
        len_B + ~done_B,
        toks_BM.at[:, t].set(tok_B),
    )

  _, _, _, logp_B, _, len_B, toks_BM = jax.lax.while_loop(
      unsettled, extend, init
  )
  return toks_BM, len_B, logp_B
