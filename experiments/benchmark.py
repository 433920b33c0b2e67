"""Tokens/s of training and evaluation, against the PyTorch peer, in one run.

  python -m experiments.benchmark --preset=zaremba_small \
      --peer_script=PATH/torch_lstm_lm.py --torch_python=PATH/bin/python

Each repetition runs every implementation once, in a fresh process, in
alternating order (A B A B ...), so that machine drift hits both alike; the
report gives medians over repetitions and rnnlm_jax / peer ratios, and is
written as JSON to --out. Without --peer_script only rnnlm_jax is measured.
Timings are wall-clock medians of per-step times, warm-up steps excluded.
"""

import json
import os
import statistics
import subprocess
import sys

from absl import app
from absl import flags

PRESETS = {
    # name: (vocab, hidden, layers, batch, bptt)
    "zaremba_small": (10000, 200, 2, 20, 35),
    "zaremba_medium": (10000, 650, 2, 20, 35),
    "char": (65, 512, 2, 32, 100),
    "tiny": (50, 16, 1, 4, 8),
}

_PRESET = flags.DEFINE_enum(
    "preset", "zaremba_small", list(PRESETS), "Model size."
)
_CELL = flags.DEFINE_enum("cell", "lstm", ["lstm", "gru", "rnn_tanh"], "Cell.")
_STEPS = flags.DEFINE_integer("steps", 30, "Timed steps per measurement.")
_WARMUP = flags.DEFINE_integer("warmup", 3, "Untimed steps first.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Alternating repetitions.")
_THREADS = flags.DEFINE_integer("threads", 2, "CPU threads for the peer.")
_PEER = flags.DEFINE_string("peer_script", None, "PyTorch peer script.")
_TORCH_PY = flags.DEFINE_string(
    "torch_python", sys.executable, "Python interpreter that has torch."
)
_OUT = flags.DEFINE_string("out", None, "Write the report as JSON here.")
_WORKER = flags.DEFINE_bool("worker", False, "Internal: one measurement.")


def _jax_once() -> dict:
  from rnnlm_jax import benchmark
  from rnnlm_jax.config import ModelConfig

  vocab, hidden, layers, batch, bptt = PRESETS[_PRESET.value]
  model = ModelConfig(
      cell=_CELL.value,
      vocab_size=vocab,
      hidden=hidden,
      num_layers=layers,
      init_scale=0.1,
  )
  return benchmark.measure(model, batch, bptt, _STEPS.value, _WARMUP.value)


def _run_result(cmd: list[str]) -> dict:
  """One measurement's RESULT. Rates are per-step medians on both sides (the
  peer reports them as *_from_median)."""
  proc = subprocess.run(
      cmd,
      capture_output=True,
      text=True,
      env=dict(os.environ, PYTHONUNBUFFERED="1"),
  )
  for line in proc.stdout.splitlines():
    if line.startswith("RESULT "):
      result = json.loads(line[len("RESULT ") :])
      for key in ("train_tok_s", "eval_tok_s"):
        result[key] = result.get(f"{key}_from_median", result[key])
      return result
  raise RuntimeError(f"{cmd[:3]} printed no RESULT: {proc.stderr[-500:]}")


def _commands() -> dict:
  preset = f"--preset={_PRESET.value}"
  common = [
      preset,
      f"--cell={_CELL.value}",
      f"--steps={_STEPS.value}",
      f"--warmup={_WARMUP.value}",
  ]
  cmds = {
      "rnnlm_jax": [
          sys.executable,
          "-m",
          "experiments.benchmark",
          "--worker",
          *common,
      ]
  }
  if _PEER.value:
    vocab, hidden, layers, batch, bptt = PRESETS[_PRESET.value]
    cell = {"rnn_tanh": "rnn_tanh"}.get(_CELL.value, _CELL.value)
    cmds["torch"] = [
        _TORCH_PY.value,
        _PEER.value,
        f"--vocab={vocab}",
        f"--hidden={hidden}",
        f"--layers={layers}",
        f"--batch={batch}",
        f"--bptt={bptt}",
        f"--cell={cell}",
        f"--steps={_STEPS.value}",
        f"--warmup={_WARMUP.value}",
        f"--threads={_THREADS.value}",
    ]
  return cmds


def _report(runs: dict) -> dict:
  report = {
      "preset": _PRESET.value,
      "cell": _CELL.value,
      "repeats": _REPEATS.value,
      "runs": runs,
      "median": {},
  }
  for impl, results in runs.items():
    report["median"][impl] = {
        k: statistics.median(r[k] for r in results)
        for k in ("train_tok_s", "eval_tok_s", "peak_rss_mb")
    }
  if "torch" in runs:
    ours, peer = report["median"]["rnnlm_jax"], report["median"]["torch"]
    report["ratio"] = {
        k: ours[k] / peer[k] for k in ("train_tok_s", "eval_tok_s")
    }
  return report


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if _WORKER.value:
    print("RESULT " + json.dumps(_jax_once()), flush=True)
    return
  cmds = _commands()
  runs = {impl: [] for impl in cmds}
  for rep in range(_REPEATS.value):
    order = list(cmds) if rep % 2 == 0 else list(reversed(cmds))
    for impl in order:
      result = _run_result(cmds[impl])
      runs[impl].append(result)
      print(
          f"rep {rep} {impl}: train {result['train_tok_s']:,.0f} tok/s, "
          f"eval {result['eval_tok_s']:,.0f} tok/s",
          flush=True,
      )
  report = _report(runs)
  for impl, m in report["median"].items():
    print(
        f"median {impl}: train {m['train_tok_s']:,.0f} tok/s, eval "
        f"{m['eval_tok_s']:,.0f} tok/s, peak RSS {m['peak_rss_mb']:,.0f} MB"
    )
  if "ratio" in report:
    r = report["ratio"]
    print(
        f"ratio rnnlm_jax/torch: train {r['train_tok_s']:.2f}x, "
        f"eval {r['eval_tok_s']:.2f}x"
    )
  if _OUT.value:
    with open(_OUT.value, "w", encoding="utf-8") as f:
      json.dump(report, f, indent=2)


if __name__ == "__main__":
  app.run(main)
