"""From a flat token stream to model inputs: contiguous streams cut into
truncated-BPTT segments, or independent padded sentences.

Plain numpy and pure functions. Shape suffixes follow the package
convention, plus ``N`` for the length of a flat token stream and ``S`` for a
number of segments (e.g. ``ids_N``, ``ids_BN``, ``x_SBT``). Both
:func:`train_stream` and :func:`eval_stream` put one boundary id in front of
a split, so the first real token is a prediction target too and an
evaluation scores every token of the split exactly once.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rnnlm_jax.errors import DataError


def _as_ids(ids_N: Any, what: str = "ids_N") -> np.ndarray:
  ids = np.asarray(ids_N)
  if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
    raise DataError(
        f"{what} must be a 1-D integer array, got shape {ids.shape} dtype {ids.dtype}"
    )
  if ids.size == 0:
    raise DataError(f"{what} is empty")
  return ids.astype(np.int32, copy=False)


def _check_positive(**kwargs: int) -> None:
  for name, value in kwargs.items():
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, np.integer))
        or value < 1
    ):
      raise DataError(f"{name} must be a positive integer, got {value!r}")


def _check_id(**kwargs: int) -> None:
  for name, value in kwargs.items():
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, np.integer))
        or value < 0
    ):
      raise DataError(
          f"{name} must be a non-negative integer id, got {value!r}"
      )


def batchify(ids_N: np.ndarray, batch_size: int) -> np.ndarray:
  """[B, N // B]: B contiguous streams (row b is ids[b*L:(b+1)*L]); the remainder is dropped."""
  ids = _as_ids(ids_N)
  _check_positive(batch_size=batch_size)
  length = ids.size // batch_size
  if length == 0:
    raise DataError(f"{ids.size} tokens cannot fill {batch_size} streams")
  return ids[: batch_size * length].reshape(batch_size, length)


def train_stream(ids_N: np.ndarray, batch_size: int, eos_id: int) -> np.ndarray:
  """ids_BN for training: ``batchify([eos_id] + ids_N)``, so the first token is a target as in evaluation."""
  ids = _as_ids(ids_N)
  _check_id(eos_id=eos_id)
  return batchify(
      np.concatenate([np.array([eos_id], np.int32), ids]), batch_size
  )


def num_segments(ids_BN: np.ndarray, bptt: int) -> int:
  """Number of full truncated-BPTT segments of length ``bptt``: ``(N - 1) // bptt``."""
  _check_positive(bptt=bptt)
  return (np.shape(ids_BN)[1] - 1) // bptt


def segment(
    ids_BN: np.ndarray, i: int, bptt: int
) -> tuple[np.ndarray, np.ndarray]:
  """(x_BT, y_BT) of segment ``i``: x = ids[:, iT:(i+1)T], y shifted one step ahead."""
  n = num_segments(ids_BN, bptt)
  if not 0 <= i < n:
    raise IndexError(
        f"segment {i} out of range: the stream has {n} full segments of length {bptt}"
    )
  start = i * bptt
  return (
      ids_BN[:, start : start + bptt],
      ids_BN[:, start + 1 : start + bptt + 1],
  )


def eval_stream(
    ids_N: np.ndarray, batch_size: int, bptt: int, eos_id: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(x_SBT, y_SBT, mask_SBT) covering every token of a split exactly once.

  The stream ``[eos_id] + ids_N`` is cut into ``batch_size`` contiguous
  pieces of ``L = ceil(N / B)`` targets each (the last ones padded), and
  each piece into ``S = ceil(L / bptt)`` segments of length ``bptt`` (the
  last one padded). The targets of stream b are ``ids_N[b*L:(b+1)*L]``;
  its first input is the real preceding token (``eos_id`` for b = 0).
  Padding uses ``eos_id`` with mask 0, always after a stream's real tokens,
  so state carried from segment to segment is never disturbed. x and y are
  int32, mask is float32 with ``mask.sum() == N``.
  """
  ids = _as_ids(ids_N)
  _check_positive(batch_size=batch_size, bptt=bptt)
  _check_id(eos_id=eos_id)
  n, b, t = ids.size, batch_size, bptt
  length = -(-n // b)
  s = -(-length // t)
  full = np.full(b * length + 1, eos_id, dtype=np.int32)
  full[1 : n + 1] = ids
  x_BL = full[:-1].reshape(b, length)
  y_BL = full[1:].reshape(b, length)
  m_BL = (np.arange(b * length) < n).reshape(b, length)

  def tile(a_BL: np.ndarray, fill) -> np.ndarray:
    out = np.full((b, s * t), fill, dtype=a_BL.dtype)
    out[:, :length] = a_BL
    return out.reshape(b, s, t).transpose(1, 0, 2).copy()

  return (
      tile(x_BL, eos_id),
      tile(y_BL, eos_id),
      tile(m_BL.astype(np.float32), 0.0),
  )


def sentence_batches(
    ids_N: np.ndarray,
    eos_id: int,
    batch_size: int,
    max_len: int,
    rng_seed: int | None = None,
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
  """Independent-sentence batches [(x_BT, y_BT, mask_BT)] with T = ``max_len``.

  The stream is cut after every ``eos_id``; a sentence is its tokens and its
  eos (trailing tokens without an eos form a last sentence). Its example is
  ``x = [eos] + sentence[:-1]``, ``y = sentence``, so the state starts fresh
  and every token, the final eos included, is a target. A sentence longer
  than ``max_len`` is SPLIT (not truncated) into consecutive chunks of
  ``max_len`` targets; a continuation chunk's first input is the sentence's
  preceding real token, so every token of ``ids_N`` is a target exactly
  once. Rows are padded to ``max_len`` with ``eos_id`` and mask 0, and the
  last batch is filled with fully masked rows so all batches share one
  shape. With ``rng_seed`` the examples are shuffled by
  ``np.random.default_rng(rng_seed).permutation`` before batching. x and y
  are int32, mask is float32.
  """
  ids = _as_ids(ids_N)
  _check_positive(batch_size=batch_size, max_len=max_len)
  _check_id(eos_id=eos_id)
  n, t = ids.size, max_len
  ends = np.flatnonzero(ids == eos_id) + 1
  if ends.size == 0 or ends[-1] != n:
    ends = np.append(ends, n)
  starts = np.concatenate([[0], ends[:-1]])
  lengths = ends - starts
  chunks = -(-lengths // t)
  first = np.repeat(starts, chunks)
  k = np.arange(chunks.sum()) - np.repeat(
      np.cumsum(chunks) - chunks, chunks
  )  # chunk index within its sentence
  chunk_start = first + k * t
  chunk_len = np.minimum(np.repeat(ends, chunks) - chunk_start, t)
  if rng_seed is not None:
    order = np.random.default_rng(rng_seed).permutation(chunk_start.size)
    chunk_start, chunk_len = chunk_start[order], chunk_len[order]

  # With ext = [eos] + ids, row r reads x[j] = ext[start + j] and y[j] = ext[start + j + 1];
  # a sentence start follows an eos (or is position 0), so its x[0] is eos.
  ext = np.concatenate([np.array([eos_id], np.int32), ids])
  pos_RT = chunk_start[:, None] + np.arange(t)[None, :]
  mask_RT = np.arange(t)[None, :] < chunk_len[:, None]
  x_RT = np.where(mask_RT, ext[np.minimum(pos_RT, n)], eos_id).astype(np.int32)
  y_RT = np.where(mask_RT, ext[np.minimum(pos_RT + 1, n)], eos_id).astype(
      np.int32
  )
  m_RT = mask_RT.astype(np.float32)

  rows = x_RT.shape[0]
  pad = -rows % batch_size
  if pad:
    x_RT = np.concatenate([x_RT, np.full((pad, t), eos_id, np.int32)])
    y_RT = np.concatenate([y_RT, np.full((pad, t), eos_id, np.int32)])
    m_RT = np.concatenate([m_RT, np.zeros((pad, t), np.float32)])
  return [
      (
          x_RT[i : i + batch_size],
          y_RT[i : i + batch_size],
          m_RT[i : i + batch_size],
      )
      for i in range(0, rows + pad, batch_size)
  ]


def bptt_lengths(bptt: int, std: float, quantum: int) -> tuple[int, ...]:
  """The segment lengths variable-length BPTT may draw: the multiples of
  ``quantum`` from bptt / 2 - 3 std rounded down (at least 5, rounded up to
  a multiple) to bptt + 3 std rounded up. Each is a branch of the compiled
  step, so their number is its compile time."""
  _check_positive(bptt=bptt, quantum=quantum)
  low = quantum * int(np.floor((bptt / 2 - 3 * std) / quantum))
  low = max(low, quantum * -(-max(5, quantum) // quantum))
  high = max(low, quantum * -(-int(np.ceil(bptt + 3 * std)) // quantum))
  return tuple(range(low, high + 1, quantum))


def draw_bptt_lengths(
    rng: np.random.Generator,
    num: int,
    bptt: int,
    std: float,
    half_prob: float,
    quantum: int,
) -> np.ndarray:
  """``num`` segment lengths as AWD-LSTM draws them (Merity et al. 2018):
  around bptt, or with probability ``half_prob`` around bptt / 2, normal
  with standard deviation ``std``, then rounded to a length of
  bptt_lengths (the nearest multiple of ``quantum``, clipped to its
  range)."""
  allowed = np.asarray(bptt_lengths(bptt, std, quantum))
  mean = np.where(rng.random(num) < half_prob, bptt / 2, bptt)
  drawn = rng.normal(mean, std)
  rounded = quantum * np.round(drawn / quantum)
  return np.clip(rounded, allowed[0], allowed[-1]).astype(np.int64)


def variable_segments(
    ids_BN: np.ndarray,
    bptt: int,
    std: float,
    half_prob: float,
    quantum: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
  """One epoch of variable-length BPTT over streams ``ids_BN``: as many
  segments as fixed-length BPTT cuts (num_segments(ids_BN, bptt)), their
  lengths drawn by draw_bptt_lengths, laid end to end from a random start
  so the part left unread (about 2.5% at bptt 70) falls elsewhere each
  epoch.

  Returns:
    (lengths [S], and per length of bptt_lengths, in order, (x [S_L, B, L],
    y [S_L, B, L]): its segments in stream order, at least one row each
    (a zero row where the epoch draws none, never scheduled)).
  """
  num = num_segments(ids_BN, bptt)
  if num == 0:
    raise ValueError(
        f"a stream of {ids_BN.shape[1]} tokens has no segment of bptt={bptt}"
    )
  room = ids_BN.shape[1] - 1
  for _ in range(100):
    lengths = draw_bptt_lengths(rng, num, bptt, std, half_prob, quantum)
    if lengths.sum() <= room:
      break
  else:  # Only for a stream of very few segments: shorten the longest.
    low = bptt_lengths(bptt, std, quantum)[0]
    while lengths.sum() > room:
      longest = np.argmax(lengths)
      if lengths[longest] - quantum < low:
        raise ValueError(
            f"streams of {room + 1} tokens are too short for variable-length "
            f"BPTT around {bptt}"
        )
      lengths[longest] -= quantum
  start = int(rng.integers(0, room - lengths.sum() + 1))
  offsets = start + np.concatenate([[0], np.cumsum(lengths)[:-1]])
  per_length = []
  for length in bptt_lengths(bptt, std, quantum):
    at = offsets[lengths == length]
    if not len(at):
      zeros = np.zeros((1, ids_BN.shape[0], length), ids_BN.dtype)
      per_length.append((zeros, zeros))
      continue
    x = np.stack([ids_BN[:, o : o + length] for o in at])
    y = np.stack([ids_BN[:, o + 1 : o + length + 1] for o in at])
    per_length.append((x, y))
  return lengths, per_length
