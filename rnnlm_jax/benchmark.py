"""Throughput of the train step and of evaluation, measured the way the
PyTorch peer measures it: random token ids, the state carried from segment
to segment, SGD with global-norm clipping, warm-up steps excluded."""

import resource
import statistics
import time

import jax
import numpy as np

from rnnlm_jax import models
from rnnlm_jax import optim
from rnnlm_jax import steps
from rnnlm_jax.config import ModelConfig, OptimConfig


def random_batches(vocab, batch, bptt, segments, seed):
  rng = np.random.default_rng(seed)
  stream = rng.integers(0, vocab, (batch, segments * bptt + 1), dtype=np.int32)
  x = np.stack([stream[:, i * bptt : (i + 1) * bptt] for i in range(segments)])
  y = np.stack(
      [stream[:, i * bptt + 1 : (i + 1) * bptt + 1] for i in range(segments)]
  )
  return {
      "x": x,
      "y": y,
      "mask": np.ones(x.shape, np.float32),
      "reset": np.zeros(x.shape, bool),
  }


def peak_rss_mb() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def measure(
    model: ModelConfig,
    batch: int,
    bptt: int,
    steps_timed: int,
    warmup: int = 3,
    lr: float = 1.0,
    clip: float = 5.0,
    seed: int = 0,
) -> dict:
  """Train-step and evaluation tokens/s, compile times and peak memory."""
  tx, _ = optim.make_optimizer(
      OptimConfig(name="sgd", learning_rate=lr, clip_norm=clip), 8, 1
  )
  state = steps.init_train_state(jax.random.key(seed), model, tx, batch)
  batches = jax.device_put(
      random_batches(model.vocab_size, batch, bptt, 8, seed)
  )

  t0 = time.perf_counter()
  train_step = steps.make_train_step(model, tx).lower(state, batches).compile()
  compile_train = time.perf_counter() - t0
  times = []
  for i in range(warmup + steps_timed):
    t0 = time.perf_counter()
    state, metrics = train_step(state, batches)
    jax.block_until_ready(metrics)
    times.append(time.perf_counter() - t0)
  train_times = times[warmup:]

  # Evaluation runs a whole split per call: time calls over `steps_timed`
  # segments and divide.
  eval_batches = jax.device_put(
      random_batches(model.vocab_size, batch, bptt, steps_timed, seed + 1)
  )
  carry = models.init_carry(model, batch)
  t0 = time.perf_counter()
  evaluate = (
      steps.make_evaluate(model)
      .lower(state.params, carry, eval_batches)
      .compile()
  )
  compile_eval = time.perf_counter() - t0
  eval_times = []
  for _ in range(max(2, warmup)):
    t0 = time.perf_counter()
    jax.block_until_ready(evaluate(state.params, carry, eval_batches))
    eval_times.append((time.perf_counter() - t0) / steps_timed)
  eval_times = eval_times[1:]

  tokens = batch * bptt
  return {
      "impl": "rnnlm_jax",
      "cell": model.cell,
      "vocab": model.vocab_size,
      "hidden": model.hidden,
      "layers": model.num_layers,
      "batch": batch,
      "bptt": bptt,
      "steps": steps_timed,
      "train_tok_s": tokens / statistics.median(train_times),
      "eval_tok_s": tokens / statistics.median(eval_times),
      "train_step_ms_median": 1e3 * statistics.median(train_times),
      "eval_step_ms_median": 1e3 * statistics.median(eval_times),
      "compile_train_s": compile_train,
      "compile_eval_s": compile_eval,
      "peak_rss_mb": peak_rss_mb(),
      "device": str(jax.devices()[0]),
      "last_train_loss": float(metrics["nll"] / metrics["count"]),
  }
