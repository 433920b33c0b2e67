"""Text from a trained model: ancestral sampling with temperature, top-k and
top-p (nucleus) filtering, or greedy decoding.

Every model family samples the way it is evaluated: the stream starts with
the boundary token (<eos>, or a newline for characters), then the prompt,
then one token at a time drawn from the model's next-token distribution.
The neural models (recurrent and fixed-window) run one compiled lax.scan
over prompt and sample together, every prompt and sample of a batch in
parallel (prompts of different lengths are fed token by token, so no
padding ever enters a state); the count-based n-gram model draws with
NumPy.

The distribution is shaped in this order: temperature (0 means greedy:
always the most probable token), then top-k (keep the k most probable),
then top-p (keep the smallest set of most probable tokens whose mass is at
least p).
"""

import dataclasses
import functools
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from rnnlm_jax.errors import DataError
from rnnlm_jax.vocab import EOS, Vocab
from rnnlm_jax import decoding as decoding_lib
from rnnlm_jax import models
from rnnlm_jax import ngram
from rnnlm_jax import rundir
from rnnlm_jax.config import ModelConfig


class SamplingError(ValueError):
  """A sampling request that cannot be met."""


@dataclasses.dataclass(frozen=True)
class Decoding:
  temperature: float = 1.0  # 0: greedy.
  top_k: int = 0  # 0: no top-k filter.
  top_p: float = 1.0  # 1: no nucleus filter.

  def check(self) -> "Decoding":
    if not self.temperature >= 0:
      raise SamplingError(f"temperature must be >= 0, got {self.temperature}")
    if self.top_k < 0:
      raise SamplingError(f"top_k must be >= 0, got {self.top_k}")
    if not 0 < self.top_p <= 1:
      raise SamplingError(f"top_p must be in (0, 1], got {self.top_p}")
    return self


def filter_logits(logits, decoding: Decoding):
  """Logits [..., V] with the tokens outside top-k / top-p set to -inf,
  after dividing by the temperature (> 0)."""
  logits = logits / decoding.temperature
  if decoding.top_k:
    kth = jax.lax.top_k(logits, decoding.top_k)[0][..., -1:]
    logits = jnp.where(logits < kth, -jnp.inf, logits)
  if decoding.top_p < 1.0:
    desc = -jnp.sort(-logits, axis=-1)
    probs = jax.nn.softmax(desc, axis=-1)
    before = jnp.cumsum(probs, axis=-1) - probs  # mass strictly above
    kept = jnp.where(before < decoding.top_p, desc, jnp.inf)
    threshold = jnp.min(kept, axis=-1, keepdims=True)
    logits = jnp.where(logits < threshold, -jnp.inf, logits)
  return logits


def _choose(key, logits_BV, decoding: Decoding):
  if decoding.temperature == 0:
    return jnp.argmax(logits_BV, axis=-1)
  return jax.random.categorical(key, filter_logits(logits_BV, decoding), -1)


@functools.partial(jax.jit, static_argnames=("cfg", "max_len", "decoding"))
def sample_ids(
    params,
    cfg: ModelConfig,
    key,
    prompts_BP,
    prompt_len_B,
    max_len: int,
    decoding: Decoding = Decoding(),
):
  """The whole stream [B, P + max_len]: row b is prompts_BP[b, :len_b]
  (starting with the boundary id) followed by max_len drawn tokens, then
  whatever follows (to be cut on the host)."""
  B, P = prompts_BP.shape
  steps = P - 1 + max_len
  prompts = jnp.pad(prompts_BP, ((0, 0), (0, max_len)))

  def step(carry_x, t):
    carry, x_B = carry_x
    logits, carry = models.apply_lm(params, cfg, carry, x_B[:, None])
    drawn = _choose(jax.random.fold_in(key, t), logits[:, 0], decoding)
    nxt = jnp.where(t + 1 < prompt_len_B, prompts[:, t + 1], drawn)
    return (carry, nxt.astype(jnp.int32)), nxt.astype(jnp.int32)

  init = (models.init_carry(cfg, B), prompts[:, 0].astype(jnp.int32))
  _, toks = jax.lax.scan(step, init, jnp.arange(steps))
  return jnp.concatenate([prompts[:, :1], toks.T], axis=1)


def _lm_step(cfg: ModelConfig, params, carry, x_N):
  logits_N1V, carry = models.apply_lm(params, cfg, carry, x_N[:, None])
  return carry, jax.nn.log_softmax(logits_N1V[:, 0])


@functools.partial(jax.jit, static_argnames=("cfg", "beam", "max_len"))
def beam_search(
    params,
    cfg: ModelConfig,
    prefix_P,
    beam: int,
    max_len: int,
    stop_id: int = -1,
    alpha: float = 0.0,
):
  """The ``beam`` most likely continuations of ``prefix_P`` (int [P], from
  the boundary id) of up to max_len tokens, best first:
  decoding.beam_search_batched for one sentence, whose state is the model's
  carry after prefix_P[:-1].

  A hypothesis ends at its first stop_id (none when -1). Hypotheses are
  ranked by log p / length ** alpha (alpha 0: the raw log-probability,
  which favours short continuations; 1: per-token average).

  Returns:
    (tokens [beam, max_len] (after a stop, stop_id repeated), lengths
    [beam], log-probabilities [beam], normalised scores [beam]).
  """
  carry = models.init_carry(cfg, 1)
  if prefix_P.shape[0] > 1:
    _, carry = models.apply_lm(params, cfg, carry, prefix_P[None, :-1])
  best = decoding_lib.beam_search_batched(
      functools.partial(_lm_step, cfg),
      params,
      carry,
      prefix_P[-1:],
      beam,
      max_len,
      stop_id,
      alpha,
  )
  return tuple(x[0] for x in best)


def beam_search_counted(
    model: ngram.NGramLM,
    prefix: list[int],
    beam: int,
    max_len: int,
    stop_id: int = -1,
    alpha: float = 0.0,
) -> list[tuple[list[int], float, float]]:
  """beam_search for a count-based model, in NumPy: up to ``beam``
  (tokens, log-probability, normalised score), best first."""
  # (tokens, log p, finished)
  hyps = [([], 0.0, False)]
  for _ in range(max_len):
    cands = []
    for toks, lp, done in hyps:
      if done:
        cands.append((toks, lp, True))
        continue
      logp = model.logprob_next(model.context(prefix[1:] + toks, prefix[0]))
      for tok in np.argsort(-logp)[:beam]:
        if np.isfinite(logp[tok]):
          cands.append(
              (toks + [int(tok)], lp + float(logp[tok]), int(tok) == stop_id)
          )
    hyps = sorted(cands, key=lambda h: -h[1])[:beam]
    if all(done for _, _, done in hyps):
      break
  scored = [(toks, lp, lp / max(len(toks), 1) ** alpha) for toks, lp, _ in hyps]
  return sorted(scored, key=lambda h: -h[2])


def reweight(p: np.ndarray, decoding: Decoding) -> np.ndarray:
  """filter_logits for a probability vector, in NumPy: unnormalised
  weights (one-hot at the argmax when greedy)."""
  if decoding.temperature == 0:
    return np.eye(p.size)[int(np.argmax(p))]
  with np.errstate(divide="ignore"):
    logits = np.log(p)
  if not np.isfinite(logits.max()):
    return p * 0
  w = np.asarray(
      jax.nn.softmax(filter_logits(jnp.asarray(logits), decoding)), np.float64
  )
  return w


def sample_counted(
    model: ngram.NGramLM,
    seed: int,
    prompts: list[list[int]],
    max_len: int,
    decoding: Decoding = Decoding(),
) -> list[list[int]]:
  """For a count-based model: max_len ids drawn after each prompt (whose
  first id is the boundary id)."""
  rng = np.random.default_rng(seed)
  return [
      model.sample(
          rng,
          prompt[0],
          max_len,
          prompt=prompt[1:],
          reweight=lambda p: reweight(p, decoding),
      )
      for prompt in prompts
  ]


def cut_at(row: list[int], stop_id: int | None) -> list[int]:
  """row up to and including its first stop_id."""
  if stop_id is not None and stop_id in row:
    return row[: row.index(stop_id) + 1]
  return row


def detokenize(tokens: list[str], level: str) -> str:
  if level == "char":
    return "".join(tokens)
  return " ".join(t for t in tokens if t != EOS)


def encode_prompt(
    vocab: Vocab, level: str, prompt: str, strict: bool = False
) -> list[int]:
  """[boundary id] + the prompt's ids (unknown words become <unk>; with
  ``strict``, a DataError naming the first)."""
  tokens = list(prompt) if level == "char" else prompt.split()
  unknown = [t for t in tokens if t not in vocab] if strict else []
  if unknown:
    raise DataError(
        f"the prompt {prompt!r} has {unknown[0]!r}, which is not in the "
        "run's vocabulary"
    )
  return [vocab.boundary_id, *vocab.encode(tokens).tolist()]


def _drawn(stream, encoded: list[list[int]], max_len: int) -> list[list[int]]:
  """The max_len drawn ids of each row of sample_ids' stream (on the host)."""
  stream = np.asarray(stream)
  return [
      stream[b, len(p) : len(p) + max_len].tolist()
      for b, p in enumerate(encoded)
  ]


def _texts(encoded, drawn, vocab: Vocab, level: str) -> list[str]:
  """Each prompt with its drawn ids as text, cut after the first <eos> at
  word level."""
  stop = vocab.eos_id if level == "word" else None
  return [
      detokenize(vocab.decode(p[1:] + cut_at(row, stop)), level)
      for p, row in zip(encoded, drawn)
  ]


def _padded(encoded: list[list[int]]):
  """Prompts as sample_ids takes them: int32 [B, P] (zero-padded) and their
  lengths [B]."""
  lens = np.array([len(p) for p in encoded], np.int32)
  padded = np.zeros((len(encoded), lens.max()), np.int32)
  for b, p in enumerate(encoded):
    padded[b, : len(p)] = p
  return jnp.asarray(padded), jnp.asarray(lens)


def make_sampler(
    cfg: ModelConfig,
    vocab: Vocab,
    level: str,
    prompt: str,
    max_len: int,
    num_samples: int,
    decoding: Decoding,
) -> Callable[[Any, jax.Array], list[str]]:
  """A function (params, key) -> num_samples texts continuing ``prompt``
  by max_len tokens (as sample_run's), for a neural model's parameters:
  sample_ids compiled at the first call, once. The prompt is checked now:
  a token not in the vocabulary is a DataError."""
  decoding.check()
  encoded = [encode_prompt(vocab, level, prompt, strict=True)] * num_samples
  prompts_BP, lens_B = _padded(encoded)
  compiled = []

  def sample(params, key) -> list[str]:
    if not compiled:
      compiled.append(
          sample_ids.lower(
              params, cfg, key, prompts_BP, lens_B, max_len, decoding
          ).compile()
      )
    stream = jax.device_get(compiled[0](params, key, prompts_BP, lens_B))
    return _texts(encoded, _drawn(stream, encoded, max_len), vocab, level)

  return sample


def sample_run(
    workdir: str,
    num_samples: int = 5,
    max_len: int = 50,
    seed: int = 0,
    decoding: Decoding = Decoding(),
    prompts: tuple[str, ...] = ("",),
    slot: str = "best",
) -> tuple[list[str], dict]:
  """Samples from a run directory's model, as text (each prompt included),
  and {"tokens", "seconds", "tokens_per_s"} of the generation.

  num_samples per prompt; at word level each sample ends at its first
  <eos> (or after max_len tokens); at character level it is max_len
  characters long.
  """
  if num_samples < 1:
    raise SamplingError(f"num_samples must be >= 1, got {num_samples}")
  if max_len < 1:
    raise SamplingError(f"max_len must be >= 1, got {max_len}")
  decoding.check()
  t = rundir.load_trained(workdir, slot)
  vocab, level = t.vocab, t.cfg.data.level
  encoded = [
      encode_prompt(vocab, level, p)
      for p in prompts
      for _ in range(num_samples)
  ]
  t0 = time.perf_counter()
  if t.counts is not None:
    drawn = sample_counted(t.counts, seed, encoded, max_len, decoding)
  else:
    prompts_BP, lens_B = _padded(encoded)
    stream = sample_ids(
        t.params,
        t.cfg.model,
        jax.random.key(seed),
        prompts_BP,
        lens_B,
        max_len,
        decoding,
    )
    drawn = _drawn(jax.device_get(stream), encoded, max_len)
  seconds = time.perf_counter() - t0
  texts = _texts(encoded, drawn, vocab, level)
  count = len(encoded) * max_len
  return texts, {
      "tokens": count,
      "seconds": seconds,
      "tokens_per_s": count / max(seconds, 1e-9),
  }


def beam_run(
    workdir: str,
    beam: int,
    max_len: int = 50,
    alpha: float = 0.0,
    prompts: tuple[str, ...] = ("",),
    num_best: int = 1,
    slot: str = "best",
) -> list[tuple[str, float, float]]:
  """The num_best most likely continuations of each prompt by beam search,
  as (text, log-probability, normalised score); word level stops at <eos>."""
  if not 1 <= num_best <= beam:
    raise SamplingError(f"need 1 <= num_samples <= beam={beam}, got {num_best}")
  if max_len < 1:
    raise SamplingError(f"max_len must be >= 1, got {max_len}")
  t = rundir.load_trained(workdir, slot)
  vocab, level = t.vocab, t.cfg.data.level
  stop = vocab.eos_id if level == "word" else None
  out = []
  if t.counts is not None:
    for prompt in prompts:
      prefix = encode_prompt(vocab, level, prompt)
      best = beam_search_counted(
          t.counts, prefix, beam, max_len, -1 if stop is None else stop, alpha
      )
      for toks, lp, sc in best[:num_best]:
        text = detokenize(vocab.decode(prefix[1:] + toks), level)
        out.append((text, lp, sc))
    return out
  for prompt in prompts:
    prefix = encode_prompt(vocab, level, prompt)
    toks, lens, logp, norm = jax.device_get(
        beam_search(
            t.params,
            t.cfg.model,
            jnp.asarray(prefix, jnp.int32),
            beam,
            max_len,
            -1 if stop is None else stop,
            alpha,
        )
    )
    for row, n, lp, sc in list(zip(toks, lens, logp, norm))[:num_best]:
      text = detokenize(vocab.decode(prefix[1:] + row[:n].tolist()), level)
      out.append((text, float(lp), float(sc)))
  return out
