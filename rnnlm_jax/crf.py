"""A linear-chain conditional random field over tag sequences, in pure JAX.

A tag sequence y scores start[y_0] + sum_t emissions[t, y_t]
+ sum_{t>=1} transitions[y_{t-1}, y_t] + end[y_last], and has probability
exp(score - log Z). C is the number of tags; transitions[i, j] scores tag i
followed by tag j. Masks are left-aligned: each row is a valid prefix of
length >= 1, and padding after it changes no result.
"""

import jax
import jax.numpy as jnp


def init_params(key, num_tags: int, scale: float = 0.1) -> dict:
  """Transition, start and end scores drawn from uniform(-scale, scale).

  Returns:
    {"transitions": [C, C] float32 (from tag i to tag j at [i, j]),
     "start": [C] float32, "end": [C] float32}.
  """
  k_trans, k_start, k_end = jax.random.split(key, 3)
  uniform = lambda k, shape: jax.random.uniform(
      k, shape, jnp.float32, -scale, scale
  )
  return {
      "transitions": uniform(k_trans, (num_tags, num_tags)),
      "start": uniform(k_start, (num_tags,)),
      "end": uniform(k_end, (num_tags,)),
  }


def _check_shapes(params, emissions_BTC, mask_BT):
  num_tags = params["transitions"].shape[0]
  if emissions_BTC.ndim != 3 or emissions_BTC.shape[-1] != num_tags:
    raise ValueError(
        f"emissions must be [B, T, {num_tags}], got {emissions_BTC.shape}"
    )
  if mask_BT.shape != emissions_BTC.shape[:2]:
    raise ValueError(
        f"mask {mask_BT.shape} does not match emissions"
        f" {emissions_BTC.shape[:2]}"
    )


def _time_major_rest(emissions_BTC, mask_BT):
  """Emissions [T-1, B, C] and mask [T-1, B, 1] of the steps after the first,
  the scan's inputs."""
  return (
      jnp.swapaxes(emissions_BTC[:, 1:], 0, 1),
      jnp.swapaxes(mask_BT[:, 1:], 0, 1)[..., None],
  )


def _float(params, emissions_BTC):
  """The params and emissions in their common dtype, at least float32."""
  dtype = jnp.result_type(
      emissions_BTC.dtype, params["transitions"].dtype, jnp.float32
  )
  params = jax.tree.map(lambda a: a.astype(dtype), params)
  return params, emissions_BTC.astype(dtype)


def log_partition(params, emissions_BTC, mask_BT):
  """log Z, the logsumexp of the scores of all tag sequences (forward
  algorithm).

  Args:
    params: from init_params.
    emissions_BTC: [B, T, C] per-position tag scores.
    mask_BT: [B, T] bool, a valid prefix of length >= 1 in each row.

  Returns:
    [B], in at least float32.
  """
  _check_shapes(params, emissions_BTC, mask_BT)
  params, emissions_BTC = _float(params, emissions_BTC)
  transitions_CC = params["transitions"]

  def step(alpha_BC, inputs):
    emissions_BC, mask_B1 = inputs
    new_BC = (
        jax.nn.logsumexp(alpha_BC[:, :, None] + transitions_CC, axis=1)
        + emissions_BC
    )
    return jnp.where(mask_B1, new_BC, alpha_BC), None

  alpha_BC = params["start"] + emissions_BTC[:, 0]
  alpha_BC, _ = jax.lax.scan(
      step, alpha_BC, _time_major_rest(emissions_BTC, mask_BT)
  )
  return jax.nn.logsumexp(alpha_BC + params["end"], axis=-1)


def sequence_score(params, emissions_BTC, tags_BT, mask_BT):
  """The unnormalised score of the given tag sequences.

  Args:
    params: from init_params.
    emissions_BTC: [B, T, C] per-position tag scores.
    tags_BT: [B, T] int tags; padding positions are ignored.
    mask_BT: [B, T] bool, a valid prefix of length >= 1 in each row.

  Returns:
    [B]: start[y_0] + sum_t emissions[t, y_t]
    + sum_{t>=1} transitions[y_{t-1}, y_t] + end[y_last], over valid
    positions only.
  """
  _check_shapes(params, emissions_BTC, mask_BT)
  params, emissions_BTC = _float(params, emissions_BTC)
  emitted_BT = jnp.take_along_axis(emissions_BTC, tags_BT[..., None], -1)[
      ..., 0
  ]
  emitted_B = jnp.where(mask_BT, emitted_BT, 0.0).sum(-1)
  moved_BT = params["transitions"][tags_BT[:, :-1], tags_BT[:, 1:]]
  moved_B = jnp.where(mask_BT[:, 1:], moved_BT, 0.0).sum(-1)
  last_B = mask_BT.sum(-1) - 1
  last_tags_B = jnp.take_along_axis(tags_BT, last_B[:, None], -1)[:, 0]
  return (
      params["start"][tags_BT[:, 0]]
      + emitted_B
      + moved_B
      + params["end"][last_tags_B]
  )


def nll(params, emissions_BTC, tags_BT, mask_BT):
  """Per-sequence negative log-likelihood, log Z - score, [B]."""
  return log_partition(params, emissions_BTC, mask_BT) - sequence_score(
      params, emissions_BTC, tags_BT, mask_BT
  )


def viterbi(params, emissions_BTC, mask_BT):
  """The highest-scoring tag sequence of each row.

  Args:
    params: from init_params.
    emissions_BTC: [B, T, C] per-position tag scores.
    mask_BT: [B, T] bool, a valid prefix of length >= 1 in each row.

  Returns:
    [B, T] int32 tags, 0 where mask_BT is False.
  """
  _check_shapes(params, emissions_BTC, mask_BT)
  params, emissions_BTC = _float(params, emissions_BTC)
  transitions_CC = params["transitions"]
  num_tags = transitions_CC.shape[0]
  identity_C = jnp.arange(num_tags, dtype=jnp.int32)

  def forward(score_BC, inputs):
    emissions_BC, mask_B1 = inputs
    candidates_BCC = score_BC[:, :, None] + transitions_CC
    new_BC = candidates_BCC.max(axis=1) + emissions_BC
    # At padding the identity backpointer carries the final tag back to the
    # last valid position unchanged.
    back_BC = jnp.where(
        mask_B1, candidates_BCC.argmax(axis=1).astype(jnp.int32), identity_C
    )
    return jnp.where(mask_B1, new_BC, score_BC), back_BC

  score_BC = params["start"] + emissions_BTC[:, 0]
  score_BC, back_TBC = jax.lax.scan(
      forward, score_BC, _time_major_rest(emissions_BTC, mask_BT)
  )
  last_B = jnp.argmax(score_BC + params["end"], axis=-1).astype(jnp.int32)

  def backward(tag_B, back_BC):
    previous_B = jnp.take_along_axis(back_BC, tag_B[:, None], -1)[:, 0]
    return previous_B, tag_B

  first_B, rest_TB = jax.lax.scan(backward, last_B, back_TBC, reverse=True)
  tags_BT = jnp.concatenate([first_B[:, None], rest_TB.T], axis=1)
  return jnp.where(mask_BT, tags_BT, 0)
