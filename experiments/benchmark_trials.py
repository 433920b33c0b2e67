"""Vectorised trials against K sequential runs: train steps per second.

  python -m experiments.benchmark_trials --trials=3,8
  python -m experiments.benchmark_trials --config=experiments/configs/ptb_lstm.py:small \
      --config.data.source=synthetic --trials=2,4

For each K, K trials of the config (seeds 0..K-1) take one step each, as K
calls of the single-run step or as one call of the vmapped step
(rnnlm_jax.benchmark.measure_trials); prints the median tokens/s of both and
the speedup, and writes JSON to --out.
"""

import json

from absl import app
from absl import flags

from experiments import common
from rnnlm_jax import benchmark
from rnnlm_jax import config as config_lib
from rnnlm_jax import provenance
from rnnlm_jax import rundir

_CONFIG = common.define_config()
_TRIALS = flags.DEFINE_list("trials", ["3", "8"], "Numbers of trials K.")
_STEPS = flags.DEFINE_integer("steps", 20, "Timed rounds per measurement.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Alternating repetitions.")
_OUT = flags.DEFINE_string("out", None, "Write the report as JSON here.")


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
      r = benchmark.measure_trials(cfg, k, _STEPS.value, _REPEATS.value)
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
  print(benchmark.trials_markdown(rows))


if __name__ == "__main__":
  app.run(main, flags_parser=common.parse_flags)
