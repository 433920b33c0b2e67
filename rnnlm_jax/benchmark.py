"""Throughput of the train step and of evaluation, measured the way the
PyTorch peer measures it: random token ids, the state carried from segment
to segment, SGD with global-norm clipping, warm-up steps excluded.

``measure`` times rnnlm_jax itself, ``measure_flax`` the same model written
with flax.linen's ``nn.RNN`` over its stock cells (the baseline a Flax user
would write), and ``peak_gemm_flops`` the machine's matmul rate through
XLA (float32, and bfloat16 on accelerators), against which
``flops_per_token`` turns tokens/s into a fraction of peak.
``measure_trials`` times K trials as K sequential steps against one
vectorised step.
"""

import resource
import statistics
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from rnnlm_jax import backends
from rnnlm_jax import cells
from rnnlm_jax import config as config_lib
from rnnlm_jax import corpus as corpus_lib
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


def flops_per_token(model: ModelConfig) -> float:
  """Forward FLOPs per token, counting matmuls only: 2 (I G + H G) per layer
  (input and recurrent projections) plus 2 H V for the softmax. Training
  costs about three times this (forward, and two matmuls per matmul in the
  backward pass)."""
  cell = cells.get_cell(model.cell)
  gates = cell.gates * model.hidden
  recurrent = model.hidden * gates if cell.recurrent else 0
  total = 2.0 * model.hidden * model.vocab_size
  for layer in range(model.num_layers):
    inputs = models.embed_dim(model) if layer == 0 else model.hidden
    total += 2.0 * (inputs * gates + recurrent)
  return total


def peak_gemm_flops(n: int = 2048, repeats: int = 5, dtype=jnp.float32) -> dict:
  """The best rate of one jitted n x n x n matmul of ``dtype`` operands
  (float32 accumulation) over ``repeats``."""
  a = jax.random.normal(jax.random.key(0), (n, n), dtype)
  b = jax.random.normal(jax.random.key(1), (n, n), dtype)
  product = lambda a, b: jnp.matmul(a, b, preferred_element_type=jnp.float32)
  matmul = jax.jit(product).lower(a, b).compile()
  jax.block_until_ready(matmul(a, b))
  best = float("inf")
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(matmul(a, b))
    best = min(best, time.perf_counter() - t0)
  return {
      "gemm_n": n,
      "gemm_peak_flops": 2.0 * n**3 / best,
      "device": str(jax.devices()[0]),
  }


def peak_gemms(n: int = 2048) -> dict:
  """peak_gemm_flops of float32, and on an accelerator also of bfloat16
  (as gemm_peak_flops_bf16)."""
  peaks = peak_gemm_flops(n)
  if jax.default_backend() != "cpu":
    bf16 = peak_gemm_flops(n, dtype=jnp.bfloat16)
    peaks["gemm_peak_flops_bf16"] = bf16["gemm_peak_flops"]
  return peaks


def memory_stats(compiled) -> dict:
  """What XLA reserves for a compiled function (bytes), where it says."""
  try:
    stats = compiled.memory_analysis()
  except (NotImplementedError, RuntimeError):
    stats = None
  if stats is None:
    return {}
  return {
      "argument_bytes": stats.argument_size_in_bytes,
      "temp_bytes": stats.temp_size_in_bytes,
      "output_bytes": stats.output_size_in_bytes,
      "alias_bytes": stats.alias_size_in_bytes,
  }


def _time_calls(fn: Callable[[], object], calls: int) -> list[float]:
  times = []
  for _ in range(calls):
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - t0)
  return times


def _compile(fn, *args):
  t0 = time.perf_counter()
  compiled = fn.lower(*args).compile()
  return compiled, time.perf_counter() - t0


def _time_evaluation(evaluate_fn, args, warmup: int, steps_timed: int):
  """Compiles and times evaluation over ``steps_timed`` segments: (seconds
  per segment of each timed call, {compile_eval_s, eval_memory})."""
  evaluate, compile_eval = _compile(evaluate_fn, *args)
  calls = _time_calls(lambda: evaluate(*args), max(2, warmup))
  return [t / steps_timed for t in calls[1:]], {
      "compile_eval_s": compile_eval,
      "eval_memory": memory_stats(evaluate),
  }


def _result(
    impl,
    model,
    batch,
    bptt,
    steps_timed,
    train_times,
    eval_times,
    compiled: dict,
    last_train_loss: float,
) -> dict:
  """One measurement's record. compiled: compile_train_s, compile_eval_s,
  train_memory and eval_memory."""
  tokens = batch * bptt
  return {
      "impl": impl,
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
      "flops_per_token_forward": flops_per_token(model),
      "device": str(jax.devices()[0]),
      "versions": {"jax": jax.__version__, "flax": _flax_version()},
      **compiled,
      "peak_rss_mb": peak_rss_mb(),
      "last_train_loss": last_train_loss,
  }


def _flax_version() -> str:
  import flax

  return flax.__version__


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
  """rnnlm_jax's train-step and evaluation tokens/s, compile times, peak
  memory and XLA's memory analysis of both compiled functions."""
  tx, _ = optim.make_optimizer(
      OptimConfig(name="sgd", learning_rate=lr, clip_norm=clip), 8, 1
  )
  state = steps.init_train_state(jax.random.key(seed), model, tx, batch)
  batches = jax.device_put(
      random_batches(model.vocab_size, batch, bptt, 8, seed)
  )
  train_step, compile_train = _compile(
      steps.make_train_step(model, tx), state, batches
  )
  train_memory = memory_stats(train_step)
  train_times = []
  for _ in range(warmup + steps_timed):
    t0 = time.perf_counter()
    state, metrics = train_step(state, batches)
    jax.block_until_ready(metrics)
    train_times.append(time.perf_counter() - t0)

  # Evaluation runs a whole split per call: time calls over `steps_timed`
  # segments and divide.
  eval_batches = jax.device_put(
      random_batches(model.vocab_size, batch, bptt, steps_timed, seed + 1)
  )
  carry = models.init_carry(model, batch)
  eval_times, compiled = _time_evaluation(
      steps.make_evaluate(model),
      (state.params, carry, eval_batches),
      warmup,
      steps_timed,
  )
  compiled.update(compile_train_s=compile_train, train_memory=train_memory)
  path = backends.resolve(model)
  fused_layers = path.layer(bptt, jnp.float32) is not None
  return {
      "gemm": path.gemm,
      "fused_layers": fused_layers,
      "path": path.describe(),
  } | _result(
      "rnnlm_jax",
      model,
      batch,
      bptt,
      steps_timed,
      train_times[warmup:],
      eval_times,
      compiled,
      float(metrics["nll"] / metrics["count"]),
  )


def _flax_lm(model: ModelConfig):
  """The benchmark model in flax.linen: embedding, ``num_layers`` nn.RNN
  layers over flax's own cells carrying state across calls, a Dense
  softmax. Returns (module, cell class)."""
  import flax.linen as nn

  cell_cls = {
      "lstm": nn.OptimizedLSTMCell,
      "gru": nn.GRUCell,
      "rnn_tanh": nn.SimpleCell,
  }[model.cell]

  class LM(nn.Module):

    @nn.compact
    def __call__(self, carry, x_BT):
      h_BTH = nn.Embed(model.vocab_size, model.hidden)(x_BT)
      new_carry = []
      for layer in range(model.num_layers):
        c, h_BTH = nn.RNN(cell_cls(model.hidden), return_carry=True)(
            h_BTH, initial_carry=carry[layer]
        )
        new_carry.append(c)
      return nn.Dense(model.vocab_size)(h_BTH), tuple(new_carry)

  return LM(), cell_cls


def measure_flax(
    model: ModelConfig,
    batch: int,
    bptt: int,
    steps_timed: int,
    warmup: int = 3,
    lr: float = 1.0,
    clip: float = 5.0,
    seed: int = 0,
) -> dict:
  """``measure`` for the flax.linen baseline: the same protocol (segments on
  the device, picked by step; state carried through stop_gradient; SGD with
  global-norm clipping; mean token cross-entropy; evaluation as one scan)."""
  if model.cell not in ("lstm", "gru", "rnn_tanh"):
    raise ValueError(f"no flax baseline for cell {model.cell!r}")
  lm, cell_cls = _flax_lm(model)
  # A function: the train state's copy is donated to the step.
  zero_carry = lambda: tuple(
      cell_cls(model.hidden).initialize_carry(
          jax.random.key(0), (batch, model.hidden)
      )
      for _ in range(model.num_layers)
  )
  host_batches = random_batches(model.vocab_size, batch, bptt, 8, seed)
  params = lm.init(jax.random.key(seed), zero_carry(), host_batches["x"][0])
  tx = optax.chain(optax.clip_by_global_norm(clip), optax.sgd(lr))
  state = (jnp.zeros((), jnp.int32), params, tx.init(params), zero_carry())
  batches = jax.device_put(host_batches)

  def loss_fn(params, carry, x_BT, y_BT):
    logits_BTV, carry = lm.apply(params, carry, x_BT)
    nll = optax.softmax_cross_entropy_with_integer_labels(logits_BTV, y_BT)
    return nll.mean(), carry

  def train_step(state, batches):
    step, params, opt_state, carry = state
    i = step % batches["x"].shape[0]
    x_BT, y_BT = batches["x"][i], batches["y"][i]
    (loss, carry), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        params, jax.lax.stop_gradient(carry), x_BT, y_BT
    )
    updates, opt_state = tx.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    return (step + 1, params, opt_state, carry), loss

  def evaluate(params, carry, batches):
    def body(c, xy):
      nll, c = loss_fn(params, c, *xy)
      return c, nll

    carry, nll_S = jax.lax.scan(body, carry, (batches["x"], batches["y"]))
    return nll_S.mean(), carry

  train_step, compile_train = _compile(
      jax.jit(train_step, donate_argnums=0), state, batches
  )
  train_memory = memory_stats(train_step)
  train_times = []
  for _ in range(warmup + steps_timed):
    t0 = time.perf_counter()
    state, loss = train_step(state, batches)
    jax.block_until_ready(loss)
    train_times.append(time.perf_counter() - t0)

  eval_batches = jax.device_put(
      random_batches(model.vocab_size, batch, bptt, steps_timed, seed + 1)
  )
  params, carry = state[1], zero_carry()
  eval_times, compiled = _time_evaluation(
      jax.jit(evaluate), (params, carry, eval_batches), warmup, steps_timed
  )
  compiled.update(compile_train_s=compile_train, train_memory=train_memory)
  return _result(
      "flax",
      model,
      batch,
      bptt,
      steps_timed,
      train_times[warmup:],
      eval_times,
      compiled,
      float(loss),
  )


def measure_trials(
    cfg: config_lib.Config, k: int, rounds: int, repeats: int
) -> dict:
  """Median seconds per round of K steps: K calls of the single-run step
  (what K sequential runs do) against one call of the vmapped step
  (rnnlm_jax.trials), timed in alternation over ``repeats``; tokens/s of
  both and the speedup. Batches are random token ids of the config's batch
  size, bptt and vocabulary (model.vocab_size, or the corpus's where it is
  0)."""
  if not cfg.model.vocab_size:
    vocab = corpus_lib.load_corpus(cfg.data).vocab
    cfg = config_lib.replace(cfg, model={"vocab_size": len(vocab)})
  model, d = cfg.model, cfg.data
  batches = jax.device_put(
      random_batches(model.vocab_size, d.batch_size, d.bptt, 8, 0)
  )
  tx, _ = optim.make_optimizer(cfg.optim, 8, 1)
  states = [
      steps.init_train_state(jax.random.key(i), model, tx, d.batch_size)
      for i in range(k)
  ]
  step = steps.make_train_step(model, tx, cfg.optim.loss_reduction)
  single = step.lower(states[0], batches).compile()
  stacked = steps.stack(states)
  vmapped = steps.vectorise(step).lower(stacked, batches).compile()

  def sequential(states):
    out = [single(s, batches) for s in states]
    jax.block_until_ready(out)
    return [s for s, _ in out]

  def vectorised(stacked):
    stacked, m = vmapped(stacked, batches)
    jax.block_until_ready(m)
    return stacked

  times = {"sequential": [], "vectorised": []}
  states = sequential(states)  # Warm-up.
  stacked = vectorised(stacked)
  for _ in range(repeats):
    t0 = time.perf_counter()
    for _ in range(rounds):
      states = sequential(states)
    times["sequential"].append((time.perf_counter() - t0) / rounds)
    t0 = time.perf_counter()
    for _ in range(rounds):
      stacked = vectorised(stacked)
    times["vectorised"].append((time.perf_counter() - t0) / rounds)
  seq = statistics.median(times["sequential"])
  vec = statistics.median(times["vectorised"])
  tokens = k * d.batch_size * d.bptt
  return {
      "trials": k,
      "sequential_s_per_round": seq,
      "vectorised_s_per_round": vec,
      "sequential_tok_s": tokens / seq,
      "vectorised_tok_s": tokens / vec,
      "speedup": seq / vec,
      "times": times,
  }


def trials_markdown(rows: list[dict]) -> str:
  """The rows of :func:`measure_trials` as a markdown table."""
  lines = [
      "| K | sequential tok/s | vectorised tok/s | speedup |",
      "|---|---|---|---|",
  ]
  for r in rows:
    lines.append(
        f"| {r['trials']} | {r['sequential_tok_s']:,.0f} | "
        f"{r['vectorised_tok_s']:,.0f} | {r['speedup']:.2f}x |"
    )
  return "\n".join(lines)
