"""The ARPA backoff format of n-gram models: writing, reading, scoring.

:func:`write` writes a backoff model of :mod:`rnnlm_jax.ngram` ("backoff",
"kneser_ney", "modified_kneser_ney"): for each listed n-gram the log10 of
its probability and, below the highest order, the log10 of the backoff
weight of the n-gram as a history. Interpolated Kneser-Ney is exactly
representable this way (a listed n-gram carries its interpolated
probability, an unlisted one is ``gamma(h) p(w | h')``), so :func:`read`
plus :func:`logprob10` reproduce the model's probabilities. "mle" and
"add_delta" are not backoff models and are refused.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rnnlm_jax.atomic import atomic_write
from rnnlm_jax.ngram import NGramLM

_ZERO = -99.0  # log10 written for a probability or weight of 0

# What read returns: {order: {tokens: (log10 p, log10 backoff weight)}}.
ArpaModel = dict[int, dict[tuple[str, ...], tuple[float, float]]]


def write(
    model: NGramLM, path: str | os.PathLike, vocab_tokens: Sequence[str]
) -> None:
  """Write ``model`` as an ARPA backoff file (module docstring); tokens must hold no whitespace."""
  if model.method not in ("backoff", "kneser_ney", "modified_kneser_ney"):
    raise ValueError(
        f"method {model.method!r} is not a backoff model and has no ARPA form"
    )
  tokens = list(vocab_tokens)
  if len(tokens) != model.vocab_size:
    raise ValueError(
        f"vocab_tokens has {len(tokens)} tokens, the model {model.vocab_size}"
    )
  for t in tokens:
    if not isinstance(t, str) or not t or any(ch.isspace() for ch in t):
      raise ValueError(
          f"token {t!r} cannot be written in ARPA (empty or holds whitespace)"
      )
  n, v = model.order, model.vocab_size
  # Entries per order: the n-grams, the histories of the next order, and prefixes of both.
  entries: list[np.ndarray] = [None] * n
  for k in range(n, 0, -1):
    if k == 1:
      rows = [np.arange(v)[:, None]]
    else:
      hist = _history_ids(model, k)
      gk = model.gram_keys[k - 1]
      rows = [np.concatenate([hist[gk // v], (gk % v)[:, None]], axis=1)]
    if k < n:
      rows.append(_history_ids(model, k + 1))
      rows.append(entries[k][:, :k])
    entries[k - 1] = (
        np.unique(np.concatenate(rows), axis=0)
        if rows
        else np.zeros((0, k), np.int64)
    )
  lines = ["", "\\data\\"] + [
      f"ngram {k}={entries[k - 1].shape[0]}" for k in range(1, n + 1)
  ]
  for k in range(1, n + 1):
    e = entries[k - 1]
    row = np.zeros((e.shape[0], n - 1), np.int64)
    row[:, n - k :] = e[:, :-1]
    hlen = np.full(e.shape[0], k - 1)
    p = model.prob(row, hlen, e[:, -1])
    with np.errstate(divide="ignore"):
      lp = np.log10(p)
    lp = np.where(np.isfinite(lp), lp, _ZERO)
    bw = None
    if k < n:  # the weight of each entry used as a history of order k+1
      row2 = np.zeros((e.shape[0], n - 1), np.int64)
      row2[:, n - 1 - k :] = e
      ci = model.history_indices(row2, np.full(e.shape[0], k))[k]
      w = np.where(
          ci >= 0,
          model.ctx_bow[k][np.maximum(ci, 0)] if model.ctx_bow[k].size else 1.0,
          1.0,
      )
      with np.errstate(divide="ignore"):
        bw = np.log10(w)
      bw = np.where(np.isfinite(bw), bw, _ZERO)
    lines += ["", f"\\{k}-grams:"]
    for i in range(e.shape[0]):
      words = " ".join(tokens[t] for t in e[i])
      lines.append(
          f"{lp[i]:.10g}\t{words}"
          + (f"\t{bw[i]:.10g}" if bw is not None else "")
      )
  lines += ["", "\\end\\", ""]
  text = "\n".join(lines)
  atomic_write(Path(path), lambda f: f.write(text.encode("utf-8")))


def _history_ids(model: NGramLM, k: int) -> np.ndarray:
  """The ids [C_k, k-1] of order k's histories, oldest first."""
  v = model.vocab_size
  keys = model.ctx_keys[k - 1]
  out = np.zeros((keys.size, k - 1), np.int64)
  if k == 1:
    return out[:1]
  cur = np.arange(keys.size)
  for col, j in enumerate(range(k, 1, -1)):  # peel the oldest id first
    key = model.ctx_keys[j - 1][cur]
    out[:, col] = key % v
    cur = key // v
  return out


def read(path: str | os.PathLike) -> ArpaModel:
  """``{order: {tokens: (log10 p, log10 backoff)}}`` of an ARPA file (backoff 0.0 where absent)."""
  out: ArpaModel = {}
  declared: dict[int, int] = {}
  section = None
  with open(path, encoding="utf-8") as f:
    for lineno, raw_line in enumerate(f, start=1):
      line = raw_line.strip()
      if not line:
        continue
      if line == "\\data\\":
        section = 0
      elif line == "\\end\\":
        break
      elif line.startswith("\\") and line.endswith("-grams:"):
        section = int(line[1:-7])
        out[section] = {}
      elif section == 0 and line.startswith("ngram "):
        k, cnt = line[6:].split("=")
        declared[int(k)] = int(cnt)
      elif section:
        parts = line.split()
        if len(parts) not in (section + 1, section + 2):
          raise ValueError(
              f"{path}:{lineno}: expected {section} tokens after the log-probability"
          )
        bow = float(parts[section + 1]) if len(parts) == section + 2 else 0.0
        out[section][tuple(parts[1 : section + 1])] = (float(parts[0]), bow)
      else:
        raise ValueError(f"{path}:{lineno}: unexpected line {line[:40]!r}")
  for k, cnt in declared.items():
    if len(out.get(k, {})) != cnt:
      raise ValueError(
          f"{path}: header declares {cnt} {k}-grams, found {len(out.get(k, {}))}"
      )
  return out


def logprob10(arpa: ArpaModel, context: Sequence[str], word: str) -> float:
  """log10 p(word | context) under the backoff semantics of an ARPA model from :func:`read`."""
  n = max(arpa)
  h = tuple(context)[-(n - 1) :] if n > 1 else ()
  total = 0.0
  while True:
    entry = arpa.get(len(h) + 1, {}).get(h + (word,))
    if entry is not None:
      return total + entry[0]
    if not h:
      return -math.inf
    total += arpa.get(len(h), {}).get(h, (0.0, 0.0))[1]
    h = h[1:]
