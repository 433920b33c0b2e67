"""Text from a trained model: ancestral sampling with a temperature.

Every model family samples the way it is evaluated: the stream starts with
the boundary token (<eos>, or a newline for characters), then the prompt,
then one token at a time drawn from the model's next-token distribution.
The neural models (recurrent and fixed-window) run one compiled lax.scan
over the whole sample, all samples in parallel; the count-based n-gram
model draws with NumPy.
"""

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np

from rnnlm_jax import checkpoint
from rnnlm_jax import data
from rnnlm_jax import models
from rnnlm_jax import ngram
from rnnlm_jax import rundir
from rnnlm_jax.config import ModelConfig


class SamplingError(ValueError):
  """A sampling request that cannot be met."""


def _check(num_samples: int, max_len: int, temperature: float) -> None:
  if num_samples < 1:
    raise SamplingError(f"num_samples must be >= 1, got {num_samples}")
  if max_len < 1:
    raise SamplingError(f"max_len must be >= 1, got {max_len}")
  if not temperature > 0:
    raise SamplingError(f"temperature must be > 0, got {temperature}")


@functools.partial(jax.jit, static_argnames=("cfg", "num_samples", "max_len"))
def sample_ids(
    params,
    cfg: ModelConfig,
    key,
    prefix,
    num_samples: int,
    max_len: int,
    temperature=1.0,
):
  """Int32 [num_samples, max_len]: tokens drawn after ``prefix`` (int [P],
  P >= 1, starting with the boundary id) from a neural model."""
  carry = models.init_carry(cfg, num_samples)
  x = jnp.broadcast_to(prefix, (num_samples, prefix.shape[0]))
  logits, carry = models.apply_lm(params, cfg, carry, x)

  def step(state, k):
    logits_BV, carry = state
    tok = jax.random.categorical(k, logits_BV / temperature, axis=-1)
    logits, carry = models.apply_lm(params, cfg, carry, tok[:, None])
    return (logits[:, 0], carry), tok

  keys = jax.random.split(key, max_len)
  _, toks = jax.lax.scan(step, (logits[:, -1], carry), keys)
  return toks.T.astype(jnp.int32)


def sample_counted(
    model: ngram.NGramLM,
    seed: int,
    prefix: list[int],
    num_samples: int,
    max_len: int,
    temperature: float = 1.0,
) -> np.ndarray:
  """The same for a count-based model: int [num_samples, max_len]."""
  rng = np.random.default_rng(seed)
  out = np.zeros((num_samples, max_len), np.int32)
  for i in range(num_samples):
    out[i] = model.sample(
        rng, prefix[0], max_len, prompt=prefix[1:], temperature=temperature
    )
  return out


def cut_at(ids_BL: np.ndarray, stop_id: int | None) -> list[list[int]]:
  """Each row up to and including its first stop_id."""
  rows = []
  for row in np.asarray(ids_BL).tolist():
    if stop_id is not None and stop_id in row:
      row = row[: row.index(stop_id) + 1]
    rows.append(row)
  return rows


def detokenize(tokens: list[str], level: str) -> str:
  if level == "char":
    return "".join(tokens)
  return " ".join(t for t in tokens if t != data.EOS)


def encode_prompt(vocab: data.Vocab, level: str, prompt: str) -> list[int]:
  """[boundary id] + the prompt's ids (unknown words become <unk>)."""
  tokens = list(prompt) if level == "char" else prompt.split()
  return [vocab.boundary_id, *vocab.encode(tokens).tolist()]


def sample_run(
    workdir: str,
    num_samples: int = 5,
    max_len: int = 50,
    seed: int = 0,
    temperature: float = 1.0,
    prompt: str = "",
    slot: str = "best",
) -> list[str]:
  """Samples from a run directory's model, as text (the prompt included).

  At word level each sample ends at its first <eos> (or after max_len
  tokens); at character level it is max_len characters long.
  """
  _check(num_samples, max_len, temperature)
  cfg = rundir.load_run_config(workdir)
  vocab = data.Vocab.load(os.path.join(workdir, rundir.VOCAB_FILE))
  level = cfg.data.level
  prefix = encode_prompt(vocab, level, prompt)
  if cfg.model.kind == "count_ngram":
    model = ngram.load(os.path.join(workdir, rundir.NGRAM_FILE))
    ids = sample_counted(model, seed, prefix, num_samples, max_len, temperature)
  else:
    params, _ = checkpoint.restore_params(workdir, slot)
    ids = jax.device_get(
        sample_ids(
            params,
            cfg.model,
            jax.random.key(seed),
            jnp.asarray(prefix, jnp.int32),
            num_samples,
            max_len,
            temperature,
        )
    )
  stop = vocab.eos_id if level == "word" else None
  return [
      detokenize(vocab.decode(prefix[1:] + row), level)
      for row in cut_at(ids, stop)
  ]
