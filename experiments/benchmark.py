"""Tokens/s of training and evaluation: rnnlm_jax, flax.linen and PyTorch.

  python -m experiments.benchmark --preset=zaremba_small,char --cell=lstm,gru \
      --repeats=3 --out=bench.json
  python -m experiments.benchmark --preset=zaremba_small \
      --sweep_batch=20,64,128 --sweep_hidden=200,650      # scaling, ours only
  python -m experiments.benchmark --preset=tiny --steps=3 --repeats=1  # CI
  python -m experiments.benchmark --preset=zaremba_medium,zaremba_large \
      --peer_device=cuda --gemm_n=8192 \
      --variants=cudnn:scan_impl=cudnn,bf16:gemm=bf16,unroll8:unroll=8  # GPU

Implementations (--impls): rnnlm_jax; "flax", the same model written with
flax.linen's nn.RNN over OptimizedLSTMCell / GRUCell / SimpleCell; "torch",
the PyTorch peer script (--peer_script, by default ../shared/peers/
torch_lstm_lm.py beside the repository) run by the interpreter in
--torch_python or $TORCH_PYTHON, and skipped, with the reason in the report,
when that interpreter cannot import torch. torch is never imported here.
--variants adds rnnlm_jax with other model settings as more implementations,
"rnnlm_jax[NAME]" (NAME:field=value+field=value, fields of ModelConfig),
timed in the same repetitions; --peer_device=cuda runs the peer on a GPU
(cuDNN's kernels). Every implementation gets a ratio of rnnlm_jax to it, and
one of it to torch.

Every measurement is a fresh process. Each repetition measures the peak fp32
GEMM rate through XLA (a jitted --gemm_n cube matmul, best of five), then
every (preset, cell) row with every implementation, the order of the
implementations rotating from one repetition to the next (A B C, B C A, ...)
so that machine drift hits all alike. The report gives medians over
repetitions, rnnlm_jax / peer ratios, achieved FLOP/s as a fraction of the
GEMM peak (FLOPs counted analytically: rnnlm_jax.benchmark.flops_per_token,
training as three forward passes), compile times, peak RSS per process and,
for the jax implementations, XLA's memory analysis of the compiled train
step (argument + temporary bytes). It is printed as a markdown table and
written as JSON to --out. Timings are medians of per-step wall times,
warm-up steps excluded.

--deadline_s bounds the whole run (a lent accelerator's time, say): at
the deadline a running measurement is killed, the ones not started are
listed, and the report holds what was measured.

--host_memory (reuse by default) applies to every process alike, the peer's
included: "reuse" starts each one with malloc keeping freed blocks
(rnnlm_jax.hostmem), "system" with malloc's defaults.

On an accelerator the GEMM worker also measures the bfloat16 peak, against
which rows whose model.gemm is "bf16" are put; float32 products there run at
XLA's default precision (TF32 on NVIDIA GPUs) unless --matmul_precision
(jax_default_matmul_precision, for every jax process) says otherwise.
"""

import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time

from absl import app
from absl import flags

from experiments import common
from rnnlm_jax import config as config_lib
from rnnlm_jax.backends import hostmem
from rnnlm_jax import rundir

PRESETS = {
    # name: (vocab, hidden, layers, batch, bptt)
    "zaremba_small": (10000, 200, 2, 20, 35),
    "zaremba_medium": (10000, 650, 2, 20, 35),
    "zaremba_large": (10000, 1500, 2, 20, 35),
    "char": (65, 512, 2, 32, 100),
    "tiny": (50, 16, 1, 4, 8),
}
CELLS = ("lstm", "gru", "rnn_tanh")
IMPLS = ("rnnlm_jax", "flax", "torch")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_PEER = os.path.join(ROOT, "..", "shared", "peers", "torch_lstm_lm.py")
TORCH_ENV = common.TORCH_ENV

_PRESET = flags.DEFINE_list(
    "preset", ["zaremba_small"], f"Model sizes, of {', '.join(PRESETS)}."
)
_CELL = flags.DEFINE_list("cell", ["lstm"], f"Cells, of {', '.join(CELLS)}.")
_BATCH = flags.DEFINE_integer("batch", 0, "Batch size; 0: the preset's.")
_HIDDEN = flags.DEFINE_integer("hidden", 0, "Hidden width; 0: the preset's.")
_IMPLS = flags.DEFINE_list("impls", list(IMPLS), "Implementations to time.")
_VARIANTS = flags.DEFINE_list(
    "variants",
    [],
    "More rnnlm_jax implementations, NAME:field=value"
    "+field=value (ModelConfig fields), e.g. cudnn:scan_impl=cudnn.",
)
_VARIANT = flags.DEFINE_string(
    "variant", "", "Internal: a worker's field=value+... overrides."
)
_PEER_DEVICE = flags.DEFINE_enum(
    "peer_device", "cpu", ["cpu", "cuda"], "The PyTorch peer's device."
)
_PRECISION = flags.DEFINE_string(
    "matmul_precision",
    "",
    "jax_default_matmul_precision for every jax "
    "process (highest: full float32 products on GPUs); empty: the default.",
)
_STEPS = flags.DEFINE_integer("steps", 30, "Timed steps per measurement.")
_WARMUP = flags.DEFINE_integer("warmup", 3, "Untimed steps first.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Alternating repetitions.")
_THREADS = flags.DEFINE_integer("threads", 2, "CPU threads for the peer.")
_GEMM_N = flags.DEFINE_integer("gemm_n", 2048, "Size of the peak GEMM.")
_SCAN_IMPL = flags.DEFINE_string(
    "scan_impl", "", "rnnlm_jax's model.scan_impl; empty: the default."
)
_UNROLL = flags.DEFINE_integer("unroll", 1, "rnnlm_jax's model.unroll.")
_SCAN_LAYOUT = flags.DEFINE_string(
    "scan_layout", "", "rnnlm_jax's model.scan_layout; empty: the default."
)
_TIME_CHUNKS = flags.DEFINE_integer(
    "time_chunks", 0, "rnnlm_jax's model.time_chunks; 0: auto."
)
_MODEL_GEMM = flags.DEFINE_string(
    "gemm",
    "",
    "rnnlm_jax's model.gemm (auto, xla, bf16, mkl, openblas); "
    "empty: the default.",
)
_FOLD = flags.DEFINE_boolean(
    "fold_embedding", True, "rnnlm_jax's model.fold_embedding."
)
_SWEEP_BATCH = flags.DEFINE_list(
    "sweep_batch", [], "Scaling mode: batch sizes (rnnlm_jax only)."
)
_SWEEP_HIDDEN = flags.DEFINE_list(
    "sweep_hidden", [], "Scaling mode: hidden widths (rnnlm_jax only)."
)
_PEER = flags.DEFINE_string(
    "peer_script",
    DEFAULT_PEER if os.path.exists(DEFAULT_PEER) else None,
    "PyTorch peer script.",
)
_TORCH_PY = flags.DEFINE_string(
    "torch_python",
    os.environ.get(TORCH_ENV),
    f"Python interpreter that has torch (default ${TORCH_ENV}).",
)
_DEADLINE = flags.DEFINE_float(
    "deadline_s",
    0,
    "Wall seconds the whole run may take (0: no limit). "
    "At the deadline a running measurement is killed and recorded as "
    "failed, the ones not started are listed as not run, the report is "
    "written with what was measured, and the run exits 1.",
)
_OUT = flags.DEFINE_string("out", None, "Write the report as JSON here.")
_WORKER = flags.DEFINE_enum(
    "worker", None, ["rnnlm_jax", "flax", "gemm"], "Internal: one measurement."
)


def _shape(preset: str, batch: int = 0, hidden: int = 0) -> dict:
  vocab, h, layers, b, bptt = PRESETS[preset]
  return {
      "vocab": vocab,
      "hidden": hidden or h,
      "layers": layers,
      "batch": batch or b,
      "bptt": bptt,
  }


def _overrides(spec: str) -> dict:
  """ModelConfig fields from "field=value+field=value", each value parsed
  by its field's type."""
  fields = {f.name: f.type for f in dataclasses.fields(config_lib.ModelConfig)}
  out = {}
  for item in filter(None, spec.split("+")):
    name, sep, value = item.partition("=")
    if not sep or name not in fields:
      raise config_lib.ConfigError(
          f"--variants: {item!r} is not field=value of a ModelConfig field"
      )
    kind = fields[name]
    if kind is bool:
      out[name] = value.lower() in ("1", "true", "yes")
      continue
    try:
      out[name] = kind(value)
    except (TypeError, ValueError):
      raise config_lib.ConfigError(
          f"--variants: {item!r}: {value!r} is no {kind.__name__}"
      ) from None
  return out


def _variants() -> dict[str, str]:
  """--variants as {implementation name: overrides spec}."""
  out = {}
  for item in _VARIANTS.value:
    name, sep, spec = item.partition(":")
    if not sep or not name:
      raise config_lib.ConfigError(
          f"--variants: {item!r} is not NAME:field=value+..."
      )
    # The configuration's own checks (a cuDNN variant without a GPU, say).
    config_lib.from_dict({"model": _overrides(spec)})
    out[f"rnnlm_jax[{name}]"] = spec
  return out


def _worker_result() -> dict:
  from rnnlm_jax import benchmark
  from rnnlm_jax.config import ModelConfig

  if _PRECISION.value:
    import jax

    jax.config.update("jax_default_matmul_precision", _PRECISION.value)
  if _WORKER.value == "gemm":
    return benchmark.peak_gemms(_GEMM_N.value)
  shape = _shape(_PRESET.value[0], _BATCH.value, _HIDDEN.value)
  model = ModelConfig(
      cell=_CELL.value[0],
      vocab_size=shape["vocab"],
      hidden=shape["hidden"],
      num_layers=shape["layers"],
      init_scale=0.1,
      unroll=_UNROLL.value,
      fold_embedding=_FOLD.value,
      time_chunks=_TIME_CHUNKS.value,
      **({"scan_impl": _SCAN_IMPL.value} if _SCAN_IMPL.value else {}),
      **({"scan_layout": _SCAN_LAYOUT.value} if _SCAN_LAYOUT.value else {}),
      **({"gemm": _MODEL_GEMM.value} if _MODEL_GEMM.value else {}),
  )
  model = dataclasses.replace(model, **_overrides(_VARIANT.value))
  measure = {"rnnlm_jax": benchmark.measure, "flax": benchmark.measure_flax}
  return measure[_WORKER.value](
      model, shape["batch"], shape["bptt"], _STEPS.value, _WARMUP.value
  )


def _run_result(cmd: list[str], timeout: float | None = None) -> dict:
  """One measurement's RESULT line. Rates are per-step medians on every side
  (the peer reports them as *_from_median). ``timeout``: seconds until the
  run's deadline, where it has one."""
  try:
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=hostmem.child_env(
            dict(os.environ, PYTHONUNBUFFERED="1"), common.HOST_MEMORY.value
        ),
        timeout=timeout,
    )
  except subprocess.TimeoutExpired:
    raise RuntimeError(
        f"{cmd[:4]} killed at the deadline (--deadline_s="
        f"{_DEADLINE.value:g}), {timeout:.0f} s after it started"
    ) from None
  for line in proc.stdout.splitlines():
    if line.startswith("RESULT "):
      result = json.loads(line[len("RESULT ") :])
      for key in ("train_tok_s", "eval_tok_s"):
        if key in result:
          result[key] = result.get(f"{key}_from_median", result[key])
      return result
  raise RuntimeError(f"{cmd[:4]} printed no RESULT: {proc.stderr[-800:]}")


def _worker_cmd(
    worker: str, preset="tiny", cell="lstm", batch=0, hidden=0, variant=""
):
  return [
      sys.executable,
      "-m",
      "experiments.benchmark",
      f"--worker={worker}",
      f"--preset={preset}",
      f"--cell={cell}",
      f"--batch={batch}",
      f"--hidden={hidden}",
      f"--steps={_STEPS.value}",
      f"--warmup={_WARMUP.value}",
      f"--gemm_n={_GEMM_N.value}",
      f"--scan_impl={_SCAN_IMPL.value}",
      f"--unroll={_UNROLL.value}",
      f"--scan_layout={_SCAN_LAYOUT.value}",
      f"--fold_embedding={_FOLD.value}",
      f"--time_chunks={_TIME_CHUNKS.value}",
      f"--gemm={_MODEL_GEMM.value}",
      f"--host_memory={common.HOST_MEMORY.value}",
      f"--variant={variant}",
      f"--matmul_precision={_PRECISION.value}",
  ]


def _torch_cmd(shape: dict, cell: str) -> list[str]:
  return [
      _TORCH_PY.value,
      _PEER.value,
      f"--vocab={shape['vocab']}",
      f"--hidden={shape['hidden']}",
      f"--layers={shape['layers']}",
      f"--batch={shape['batch']}",
      f"--bptt={shape['bptt']}",
      f"--cell={cell}",
      f"--steps={_STEPS.value}",
      f"--warmup={_WARMUP.value}",
      f"--threads={_THREADS.value}",
      f"--device={_PEER_DEVICE.value}",
  ]


def _torch_unavailable() -> str | None:
  """Why the torch peer cannot run, or None."""
  if not _PEER.value or not os.path.exists(_PEER.value):
    return f"no peer script (--peer_script={_PEER.value})"
  return common.torch_unavailable(_TORCH_PY.value)


def _check_flags() -> None:
  for name, given, known in (
      ("preset", _PRESET.value, PRESETS),
      ("cell", _CELL.value, CELLS),
      ("impls", _IMPLS.value, IMPLS),
  ):
    bad = [v for v in given if v not in known]
    if bad or not given:
      raise config_lib.ConfigError(
          f"--{name}={','.join(given)}: choose from {', '.join(known)}"
      )
  for name, values in (
      ("sweep_batch", _SWEEP_BATCH.value),
      ("sweep_hidden", _SWEEP_HIDDEN.value),
  ):
    if not all(v.isdigit() and int(v) > 0 for v in values):
      raise config_lib.ConfigError(
          f"--{name}={','.join(values)}: give positive integers"
      )
  from rnnlm_jax import scan

  if _SCAN_IMPL.value and _SCAN_IMPL.value not in scan.IMPLS:
    raise config_lib.ConfigError(
        f"--scan_impl={_SCAN_IMPL.value}: choose from {', '.join(scan.IMPLS)}"
    )
  if _SCAN_LAYOUT.value and _SCAN_LAYOUT.value not in scan.LAYOUTS:
    raise config_lib.ConfigError(
        f"--scan_layout={_SCAN_LAYOUT.value}: choose from "
        f"{', '.join(scan.LAYOUTS)}"
    )
  from rnnlm_jax.backends import blas

  if _MODEL_GEMM.value and _MODEL_GEMM.value not in blas.CHOICES:
    raise config_lib.ConfigError(
        f"--gemm={_MODEL_GEMM.value}: choose from {', '.join(blas.CHOICES)}"
    )
  if _MODEL_GEMM.value in blas.LIBRARIES:
    reason = blas.unavailable(_MODEL_GEMM.value)
    if reason:
      raise config_lib.ConfigError(f"--gemm={_MODEL_GEMM.value}: {reason}")
  if _UNROLL.value < 1:
    raise config_lib.ConfigError("--unroll must be >= 1")
  if _TIME_CHUNKS.value < 0:
    raise config_lib.ConfigError("--time_chunks must be >= 0 (0: auto)")
  _variants()
  if _DEADLINE.value < 0:
    raise config_lib.ConfigError("--deadline_s must be >= 0 (0: no limit)")
  if min(_STEPS.value, _REPEATS.value) < 1 or _WARMUP.value < 0:
    raise config_lib.ConfigError("--steps and --repeats must be >= 1")


def _median(results: list[dict], key: str):
  values = [r[key] for r in results if key in r]
  return statistics.median(values) if values else None


def _xla_mb(result: dict) -> float | None:
  memory = result.get("train_memory") or {}
  if "temp_bytes" not in memory:
    return None
  return (memory["temp_bytes"] + memory["argument_bytes"]) / 2**20


def _peak(gemm_runs: list[dict], bf16: bool) -> float | None:
  """The run's highest GEMM peak: bfloat16's where ``bf16`` and measured
  (accelerators), else float32's; None where no GEMM run finished."""
  key = "gemm_peak_flops_bf16"
  if not gemm_runs:
    return None
  if bf16 and all(key in g for g in gemm_runs):
    return max(g[key] for g in gemm_runs)
  return max(g["gemm_peak_flops"] for g in gemm_runs)


def _summary(results: list[dict], flops_fwd: float, peak: float | None) -> dict:
  m = {
      k: _median(results, k)
      for k in (
          "train_tok_s",
          "eval_tok_s",
          "compile_train_s",
          "compile_eval_s",
          "peak_rss_mb",
      )
  }
  xla = [v for v in map(_xla_mb, results) if v is not None]
  m["train_xla_mb"] = statistics.median(xla) if xla else None
  m["train_flops_s"] = m["train_tok_s"] * 3 * flops_fwd
  m["eval_flops_s"] = m["eval_tok_s"] * flops_fwd
  for key in ("train", "eval"):
    m[f"{key}_frac_peak"] = m[f"{key}_flops_s"] / peak if peak else None
  return m


def _rotated(items: list, rep: int) -> list:
  k = rep % len(items)
  return items[k:] + items[:k]


def _benchmark(impls: list[str]) -> dict:
  from rnnlm_jax import benchmark

  sweep = bool(_SWEEP_BATCH.value or _SWEEP_HIDDEN.value)
  rows = []
  if sweep:
    preset, cell = _PRESET.value[0], _CELL.value[0]
    for b in _SWEEP_BATCH.value or [_BATCH.value]:
      for h in _SWEEP_HIDDEN.value or [_HIDDEN.value]:
        rows.append((preset, cell, _shape(preset, int(b), int(h))))
    impls = ["rnnlm_jax"]
  else:
    for preset in _PRESET.value:
      for cell in _CELL.value:
        rows.append((preset, cell, _shape(preset, _BATCH.value, _HIDDEN.value)))

  variants = _variants()

  def cmd(impl, preset, cell, shape):
    if impl == "torch":
      return _torch_cmd(shape, cell)
    worker = "rnnlm_jax" if impl in variants else impl
    return _worker_cmd(
        worker,
        preset,
        cell,
        shape["batch"],
        shape["hidden"],
        variants.get(impl, ""),
    )

  gemm, failed, not_run = [], [], []
  deadline = time.monotonic() + _DEADLINE.value if _DEADLINE.value else None

  def measured(where: str, command: list[str]) -> dict | None:
    """The measurement's result; None where it failed or was not run, which
    the report records, the other measurements standing (a GPU kernel
    missing, say); main then exits non-zero."""
    left = None if deadline is None else deadline - time.monotonic()
    if left is not None and left <= 0:
      not_run.append(where)
      return None
    try:
      return _run_result(command, left)
    except RuntimeError as e:
      failed.append({"measurement": where, "error": str(e)})
      print(f"{where}: FAILED: {str(e).strip().splitlines()[-1]}", flush=True)
      return None

  runs = [{impl: [] for impl in impls} for _ in rows]
  for rep in range(_REPEATS.value):
    result = measured(f"rep {rep} peak GEMM", _worker_cmd("gemm"))
    if result:
      gemm.append(result)
      print(
          f"rep {rep} peak GEMM {result['gemm_peak_flops'] / 1e9:,.1f} GFLOP/s",
          flush=True,
      )
    for (preset, cell, shape), row_runs in zip(rows, runs):
      for impl in _rotated(impls, rep):
        where = (
            f"rep {rep} {preset} {cell} B={shape['batch']} H={shape['hidden']}"
            f" {impl}"
        )
        result = measured(where, cmd(impl, preset, cell, shape))
        if result is None:
          continue
        row_runs[impl].append(result)
        print(
            f"{where}: train {result['train_tok_s']:,.0f} tok/s, eval "
            f"{result['eval_tok_s']:,.0f} tok/s",
            flush=True,
        )

  peak = _peak(gemm, False)
  is_bf16 = {
      impl: _overrides(variants.get(impl, "")).get("gemm", _MODEL_GEMM.value)
      == "bf16"
      for impl in impls
  }
  report_rows = []
  for (preset, cell, shape), row_runs in zip(rows, runs):
    model = config_lib.ModelConfig(
        cell=cell,
        vocab_size=shape["vocab"],
        hidden=shape["hidden"],
        num_layers=shape["layers"],
    )
    flops_fwd = benchmark.flops_per_token(model)
    median = {
        impl: _summary(results, flops_fwd, _peak(gemm, is_bf16[impl]))
        for impl, results in row_runs.items()
        if results
    }
    rate = lambda a, b: {
        k: median[a][k] / median[b][k] for k in ("train_tok_s", "eval_tok_s")
    }
    ratio, vs_torch = {}, {}
    for impl in median:
      if impl != "rnnlm_jax" and "rnnlm_jax" in median:
        ratio[impl] = rate("rnnlm_jax", impl)
      if impl != "torch" and "torch" in median:
        vs_torch[impl] = rate(impl, "torch")
    report_rows.append(
        {
            "preset": preset,
            "cell": cell,
            **shape,
            "flops_per_token_forward": flops_fwd,
            "runs": row_runs,
            "median": median,
            "ratio": ratio,
            "vs_torch": vs_torch,
        }
    )
  return {
      "mode": "scaling" if sweep else "compare",
      "steps": _STEPS.value,
      "warmup": _WARMUP.value,
      "repeats": _REPEATS.value,
      "peer_threads": _THREADS.value,
      "scan_impl": _SCAN_IMPL.value or "default",
      "unroll": _UNROLL.value,
      "scan_layout": _SCAN_LAYOUT.value or "default",
      "fold_embedding": _FOLD.value,
      "time_chunks": _TIME_CHUNKS.value or "auto",
      "model_gemm": _MODEL_GEMM.value or "default",
      "host_memory": common.HOST_MEMORY.value,
      "gemm": {
          "runs": gemm,
          "peak_flops": peak,
          "peak_flops_bf16": max(
              (g.get("gemm_peak_flops_bf16", 0) for g in gemm), default=0
          )
          or None,
      },
      "variants": variants,
      "peer_device": _PEER_DEVICE.value,
      "matmul_precision": _PRECISION.value or "default",
      "rows": report_rows,
      "failed": failed,
      "not_run": not_run,
      "deadline_s": _DEADLINE.value or None,
  }


def _fmt(value, spec: str) -> str:
  return "" if value is None else format(value, spec)


def _percent(fraction: float | None) -> float | None:
  return None if fraction is None else 100 * fraction


def _resolved_gemm(report: dict) -> str:
  """The GEMM backend rnnlm_jax's processes ran (model.gemm resolved)."""
  used = sorted(
      {
          run["gemm"]
          for row in report["rows"]
          for run in row["runs"].get("rnnlm_jax", [])
          if "gemm" in run
      }
  )
  return "/".join(used) or "xla"


def markdown(report: dict) -> str:
  """The report as one markdown table (one line per row and implementation)."""
  peak = report["gemm"]["peak_flops"]
  lines = [
      f"Peak fp32 GEMM through XLA: {_fmt(peak and peak / 1e9, ',.1f')} "
      f"GFLOP/s; medians of "
      f"{report['repeats']} fresh-process repetitions, {report['steps']} "
      f"timed steps each; rnnlm_jax scan_impl={report['scan_impl']}, "
      f"scan_layout={report.get('scan_layout', 'default')}, "
      f"fold_embedding={report.get('fold_embedding', True)}, "
      f"time_chunks={report.get('time_chunks', 1)}, "
      f"gemm={_resolved_gemm(report)}, "
      f"unroll={report['unroll']}; host memory "
      f"{report.get('host_memory', 'system')} for every implementation.",
  ]
  extra = [f"{k} = {v}" for k, v in report.get("variants", {}).items()]
  bf16 = report["gemm"].get("peak_flops_bf16")
  if bf16:
    extra.append(
        f"peak bf16 GEMM {bf16 / 1e9:,.1f} GFLOP/s (bf16 rows' % peak)"
    )
  if report.get("matmul_precision", "default") != "default":
    extra.append(f"jax matmul precision {report['matmul_precision']}")
  if report.get("peer_device", "cpu") != "cpu":
    extra.append(f"PyTorch on {report['peer_device']}")
  if extra:
    lines[-1] += " " + "; ".join(extra) + "."
  lines += [
      "",
      "| preset | cell | B | H | impl | train tok/s | eval tok/s | "
      "ours/impl train | ours/impl eval | vs torch train / eval | "
      "train % peak | eval % peak | "
      "compile train s | peak RSS MB | XLA train MB |",
      "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
  ]
  for row in report["rows"]:
    for impl, m in row["median"].items():
      r = row["ratio"].get(impl, {})
      t = row.get("vs_torch", {}).get(impl)
      vs_torch = f"{t['train_tok_s']:.2f} / {t['eval_tok_s']:.2f}" if t else ""
      lines.append(
          f"| {row['preset']} | {row['cell']} | {row['batch']} | "
          f"{row['hidden']} | {impl} | {m['train_tok_s']:,.0f} | "
          f"{m['eval_tok_s']:,.0f} | {_fmt(r.get('train_tok_s'), '.2f')} | "
          f"{_fmt(r.get('eval_tok_s'), '.2f')} | {vs_torch} | "
          f"{_fmt(_percent(m['train_frac_peak']), '.1f')} | "
          f"{_fmt(_percent(m['eval_frac_peak']), '.1f')} | "
          f"{'-' if impl == 'torch' else _fmt(m['compile_train_s'], '.1f')} | "
          f"{m['peak_rss_mb']:,.0f} | {_fmt(m['train_xla_mb'], ',.1f')} |"
      )
  for f in report.get("failed", []):
    error = f["error"].strip().splitlines() or [""]
    lines.append(f"\nFailed: {f['measurement']}: {error[-1]}")
  if report.get("not_run"):
    lines.append(
        f"\nNot run (past --deadline_s={report['deadline_s']:g}): "
        + "; ".join(report["not_run"])
    )
  return "\n".join(lines)


def _incomplete(report: dict) -> str:
  """The one error line of a run with measurements failed or not run."""
  parts = []
  if report["failed"]:
    first = report["failed"][0]
    parts.append(
        f"{len(report['failed'])} measurement(s) failed, the first "
        f"({first['measurement']}): "
        f"{first['error'].strip().splitlines()[-1]}"
    )
  if report["not_run"]:
    parts.append(
        f"{len(report['not_run'])} not run (past --deadline_s="
        f"{report['deadline_s']:g})"
    )
  return "error: " + "; ".join(parts)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  with common.one_line_errors():
    _check_flags()
    if _WORKER.value:
      print("RESULT " + json.dumps(_worker_result()), flush=True)
      return
    impls = list(dict.fromkeys(_IMPLS.value)) + list(_variants())
    skipped = {}
    if "torch" in impls:
      reason = _torch_unavailable()
      if reason:
        skipped["torch"] = reason
        impls.remove("torch")
        print(f"torch peer skipped: {reason}", flush=True)
    report = {**_benchmark(impls), "skipped": skipped}
    print(markdown(report))
    if _OUT.value:
      rundir.write_text_atomic(_OUT.value, json.dumps(report, indent=2))
    if report["failed"] or report["not_run"]:
      print(_incomplete(report), file=sys.stderr)
      sys.exit(1)


if __name__ == "__main__":
  app.run(main, flags_parser=common.parse_flags)
