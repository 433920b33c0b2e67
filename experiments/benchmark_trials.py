"""Vectorised trials against K sequential runs: train steps per second.

  python -m experiments.benchmark_trials --trials=3,8
  python -m experiments.benchmark_trials --config=experiments/configs/ptb_lstm.py:small \
      --config.data.source=synthetic --trials=2,4

For each K, K trials of the config (seeds 0..K-1) take one step each,
either as K calls of the single-run step (what K sequential runs do) or as
one call of the vmapped step (rnnlm_jax.trials); the two are timed in
alternation and the report gives the median time per round of K steps and
the speedup. Batches are random token ids of the config's batch size, bptt
and vocabulary (model.vocab_size, or 10,000 where it is 0); writes JSON to
--out.
"""

import json
import os
import statistics
import time

from absl import app
from absl import flags
import jax
from ml_collections import config_flags

from experiments import common
from rnnlm_jax import benchmark
from rnnlm_jax import config as config_lib
from rnnlm_jax import corpus as corpus_lib
from rnnlm_jax import optim
from rnnlm_jax import provenance
from rnnlm_jax import rundir
from rnnlm_jax import steps

_CONFIG = config_flags.DEFINE_config_file(
    "config",
    os.path.join(common.CONFIG_DIR, "default.py"),
    "Experiment config file.",
    lock_config=True,
)
_TRIALS = flags.DEFINE_list("trials", ["3", "8"], "Numbers of trials K.")
_STEPS = flags.DEFINE_integer("steps", 20, "Timed rounds per measurement.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Alternating repetitions.")
_OUT = flags.DEFINE_string("out", None, "Write the report as JSON here.")


def measure(cfg: config_lib.Config, k: int, rounds: int, repeats: int):
  """Median seconds per round of K steps, sequential and vectorised."""
  if not cfg.model.vocab_size:
    vocab = corpus_lib.load_corpus(cfg.data).vocab
    cfg = config_lib.replace(cfg, model={"vocab_size": len(vocab)})
  model, d = cfg.model, cfg.data
  batches = jax.device_put(
      benchmark.random_batches(model.vocab_size, d.batch_size, d.bptt, 8, 0)
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


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  with common.one_line_errors():
    cfg = common.resolve_config(_CONFIG.value)
    try:
      ks = [int(k) for k in _TRIALS.value]
    except ValueError:
      raise config_lib.ConfigError(
          f"--trials must be integers, got {_TRIALS.value}"
      ) from None
    if min(ks) < 1:
      raise config_lib.ConfigError("--trials must be >= 1")
    rows = []
    for k in ks:
      r = measure(cfg, k, _STEPS.value, _REPEATS.value)
      rows.append(r)
      print(
          f"{cfg.name} K={k}: sequential {r['sequential_tok_s']:,.0f} tok/s,"
          f" vectorised {r['vectorised_tok_s']:,.0f} tok/s, speedup "
          f"{r['speedup']:.2f}x",
          flush=True,
      )
  report = {
      "config": cfg.name,
      "provenance": provenance.describe(cfg.train.seed),
      "rows": rows,
  }
  if _OUT.value:
    rundir.write_text_atomic(_OUT.value, json.dumps(report, indent=2))
  print(
      "| K | sequential tok/s | vectorised tok/s | speedup |\n|---|---|---|---|"
  )
  for r in rows:
    print(
        f"| {r['trials']} | {r['sequential_tok_s']:,.0f} | "
        f"{r['vectorised_tok_s']:,.0f} | {r['speedup']:.2f}x |"
    )


if __name__ == "__main__":
  app.run(main, flags_parser=common.parse_flags)
