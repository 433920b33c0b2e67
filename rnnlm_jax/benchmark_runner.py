"""Tokens/s of training and evaluation compared across implementations:
rnnlm_jax, flax.linen and PyTorch, each measurement in a fresh process.

Implementations: rnnlm_jax; "flax", the same model written with flax.linen's
nn.RNN over OptimizedLSTMCell / GRUCell / SimpleCell; "torch", the PyTorch
peer script run by another interpreter (torch is never imported here), and
skipped, with the reason in the report, when that interpreter cannot import
torch. Variants add rnnlm_jax with other model settings as more
implementations, "rnnlm_jax[NAME]" (NAME:field=value+field=value, fields of
ModelConfig), timed in the same repetitions. Every implementation gets a
ratio of rnnlm_jax to it, and one of it to torch.

Each repetition measures the peak fp32 GEMM rate through XLA (a jitted
``gemm_n`` cube matmul, best of five), then every (preset, cell) row with
every implementation, the order of the implementations rotating from one
repetition to the next (A B C, B C A, ...) so that machine drift hits all
alike. The report gives medians over repetitions, rnnlm_jax / peer ratios,
achieved FLOP/s as a fraction of the GEMM peak (FLOPs counted analytically:
rnnlm_jax.benchmark.flops_per_token, training as three forward passes),
compile times, peak RSS per process and, for the jax implementations, XLA's
memory analysis of the compiled train step (argument + temporary bytes).
Timings are medians of per-step wall times, warm-up steps excluded.

A deadline bounds the whole run (a lent accelerator's time, say): at the
deadline a running measurement is killed, the ones not started are listed,
and the report holds what was measured.

On an accelerator the GEMM worker also measures the bfloat16 peak, against
which rows whose model.gemm is "bf16" are put; float32 products there run at
XLA's default precision (TF32 on NVIDIA GPUs) unless ``matmul_precision``
(jax_default_matmul_precision, for every jax process) says otherwise.

Each measurement is a process running the command line's worker mode,
``python -m experiments.benchmark --worker=...``; the options name the
flags of that command line in their errors.
"""

import dataclasses
import json
import os
import subprocess
import sys
import time
from typing import Callable

from rnnlm_jax import benchmark_report
from rnnlm_jax import config as config_lib
from rnnlm_jax.backends import hostmem

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
# The command line whose worker mode makes one measurement.
WORKER_MODULE = "experiments.benchmark"


@dataclasses.dataclass(frozen=True)
class Options:
  """What to measure and how; the fields are the command line's flags."""

  presets: tuple[str, ...] = ("zaremba_small",)
  cells: tuple[str, ...] = ("lstm",)
  batch: int = 0  # 0: the preset's
  hidden: int = 0  # 0: the preset's
  impls: tuple[str, ...] = IMPLS
  variants: tuple[str, ...] = ()  # NAME:field=value+field=value
  variant: str = ""  # a worker's field=value+... overrides
  peer_device: str = "cpu"
  matmul_precision: str = ""
  steps: int = 30
  warmup: int = 3
  repeats: int = 3
  threads: int = 2  # the peer's CPU threads
  gemm_n: int = 2048
  scan_impl: str = ""
  unroll: int = 1
  backend: str = ""
  time_chunks: int = 0
  gemm: str = ""  # model.gemm; empty: the default
  fold_embedding: bool = True
  sweep_batch: tuple[str, ...] = ()
  sweep_hidden: tuple[str, ...] = ()
  peer_script: str | None = None
  torch_python: str | None = None
  deadline_s: float = 0.0  # 0: no limit
  host_memory: str = "reuse"


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


def variants(opts: Options) -> dict[str, str]:
  """--variants as {implementation name: overrides spec}."""
  out = {}
  for item in opts.variants:
    name, sep, spec = item.partition(":")
    if not sep or not name:
      raise config_lib.ConfigError(
          f"--variants: {item!r} is not NAME:field=value+..."
      )
    # The configuration's own checks (a cuDNN variant without a GPU, say).
    config_lib.from_dict({"model": _overrides(spec)})
    out[f"rnnlm_jax[{name}]"] = spec
  return out


def worker_result(opts: Options, worker: str) -> dict:
  """One measurement, in this process: ``worker`` is "gemm", "rnnlm_jax" or
  "flax", of the first preset and cell of ``opts``."""
  from rnnlm_jax import benchmark  # pylint: disable=g-import-not-at-top

  if opts.matmul_precision:
    import jax

    jax.config.update("jax_default_matmul_precision", opts.matmul_precision)
  if worker == "gemm":
    return benchmark.peak_gemms(opts.gemm_n)
  shape = _shape(opts.presets[0], opts.batch, opts.hidden)
  model = config_lib.ModelConfig(
      cell=opts.cells[0],
      vocab_size=shape["vocab"],
      hidden=shape["hidden"],
      num_layers=shape["layers"],
      init_scale=0.1,
      unroll=opts.unroll,
      fold_embedding=opts.fold_embedding,
      time_chunks=opts.time_chunks,
      **({"scan_impl": opts.scan_impl} if opts.scan_impl else {}),
      **({"backend": opts.backend} if opts.backend else {}),
      **({"gemm": opts.gemm} if opts.gemm else {}),
  )
  model = dataclasses.replace(model, **_overrides(opts.variant))
  measure = {"rnnlm_jax": benchmark.measure, "flax": benchmark.measure_flax}
  return measure[worker](
      model, shape["batch"], shape["bptt"], opts.steps, opts.warmup
  )


def _run_result(
    opts: Options, cmd: list[str], timeout: float | None = None
) -> dict:
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
            dict(os.environ, PYTHONUNBUFFERED="1"), opts.host_memory
        ),
        timeout=timeout,
    )
  except subprocess.TimeoutExpired:
    raise RuntimeError(
        f"{cmd[:4]} killed at the deadline (--deadline_s="
        f"{opts.deadline_s:g}), {timeout:.0f} s after it started"
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
    opts: Options,
    worker: str,
    preset="tiny",
    cell="lstm",
    batch=0,
    hidden=0,
    variant="",
):
  return [
      sys.executable,
      "-m",
      WORKER_MODULE,
      f"--worker={worker}",
      f"--preset={preset}",
      f"--cell={cell}",
      f"--batch={batch}",
      f"--hidden={hidden}",
      f"--steps={opts.steps}",
      f"--warmup={opts.warmup}",
      f"--gemm_n={opts.gemm_n}",
      f"--scan_impl={opts.scan_impl}",
      f"--unroll={opts.unroll}",
      f"--backend={opts.backend}",
      f"--fold_embedding={opts.fold_embedding}",
      f"--time_chunks={opts.time_chunks}",
      f"--gemm={opts.gemm}",
      f"--host_memory={opts.host_memory}",
      f"--variant={variant}",
      f"--matmul_precision={opts.matmul_precision}",
  ]


def _torch_cmd(opts: Options, shape: dict, cell: str) -> list[str]:
  return [
      opts.torch_python,
      opts.peer_script,
      f"--vocab={shape['vocab']}",
      f"--hidden={shape['hidden']}",
      f"--layers={shape['layers']}",
      f"--batch={shape['batch']}",
      f"--bptt={shape['bptt']}",
      f"--cell={cell}",
      f"--steps={opts.steps}",
      f"--warmup={opts.warmup}",
      f"--threads={opts.threads}",
      f"--device={opts.peer_device}",
  ]


def _torch_unavailable(
    opts: Options, torch_unavailable: Callable[[str | None], str | None]
) -> str | None:
  """Why the torch peer cannot run, or None."""
  if not opts.peer_script or not os.path.exists(opts.peer_script):
    return f"no peer script (--peer_script={opts.peer_script})"
  return torch_unavailable(opts.torch_python)


def check_options(opts: Options) -> None:
  """Raises ConfigError, naming the command-line flag, for a bad option."""
  for name, given, known in (
      ("preset", opts.presets, PRESETS),
      ("cell", opts.cells, CELLS),
      ("impls", opts.impls, IMPLS),
  ):
    bad = [v for v in given if v not in known]
    if bad or not given:
      raise config_lib.ConfigError(
          f"--{name}={','.join(given)}: choose from {', '.join(known)}"
      )
  for name, values in (
      ("sweep_batch", opts.sweep_batch),
      ("sweep_hidden", opts.sweep_hidden),
  ):
    if not all(v.isdigit() and int(v) > 0 for v in values):
      raise config_lib.ConfigError(
          f"--{name}={','.join(values)}: give positive integers"
      )
  for name, value, choices in (
      ("scan_impl", opts.scan_impl, config_lib.SCAN_IMPLS),
      ("backend", opts.backend, config_lib.BACKENDS),
      ("gemm", opts.gemm, config_lib.GEMMS),
  ):
    if value and value not in choices:
      raise config_lib.ConfigError(
          f"--{name}={value}: choose from {', '.join(choices)}"
      )
  from rnnlm_jax.backends import blas

  if opts.gemm in blas.LIBRARIES:
    reason = blas.unavailable(opts.gemm)
    if reason:
      raise config_lib.ConfigError(f"--gemm={opts.gemm}: {reason}")
  if opts.unroll < 1:
    raise config_lib.ConfigError("--unroll must be >= 1")
  if opts.time_chunks < 0:
    raise config_lib.ConfigError("--time_chunks must be >= 0 (0: auto)")
  variants(opts)
  if opts.deadline_s < 0:
    raise config_lib.ConfigError("--deadline_s must be >= 0 (0: no limit)")
  if min(opts.steps, opts.repeats) < 1 or opts.warmup < 0:
    raise config_lib.ConfigError("--steps and --repeats must be >= 1")


def _rotated(items: list, rep: int) -> list:
  k = rep % len(items)
  return items[k:] + items[:k]


def _benchmark(opts: Options, impls: list[str]) -> dict:
  from rnnlm_jax import benchmark  # pylint: disable=g-import-not-at-top

  sweep = bool(opts.sweep_batch or opts.sweep_hidden)
  rows = []
  if sweep:
    preset, cell = opts.presets[0], opts.cells[0]
    for b in opts.sweep_batch or [opts.batch]:
      for h in opts.sweep_hidden or [opts.hidden]:
        rows.append((preset, cell, _shape(preset, int(b), int(h))))
    impls = ["rnnlm_jax"]
  else:
    for preset in opts.presets:
      for cell in opts.cells:
        rows.append((preset, cell, _shape(preset, opts.batch, opts.hidden)))

  named_variants = variants(opts)

  def cmd(impl, preset, cell, shape):
    if impl == "torch":
      return _torch_cmd(opts, shape, cell)
    worker = "rnnlm_jax" if impl in named_variants else impl
    return _worker_cmd(
        opts,
        worker,
        preset,
        cell,
        shape["batch"],
        shape["hidden"],
        named_variants.get(impl, ""),
    )

  gemm, failed, not_run = [], [], []
  deadline = time.monotonic() + opts.deadline_s if opts.deadline_s else None

  def measured(where: str, command: list[str]) -> dict | None:
    """The measurement's result; None where it failed or was not run, which
    the report records, the other measurements standing (a GPU kernel
    missing, say); main then exits non-zero."""
    left = None if deadline is None else deadline - time.monotonic()
    if left is not None and left <= 0:
      not_run.append(where)
      return None
    try:
      return _run_result(opts, command, left)
    except RuntimeError as e:
      failed.append({"measurement": where, "error": str(e)})
      print(f"{where}: FAILED: {str(e).strip().splitlines()[-1]}", flush=True)
      return None

  runs = [{impl: [] for impl in impls} for _ in rows]
  for rep in range(opts.repeats):
    result = measured(f"rep {rep} peak GEMM", _worker_cmd(opts, "gemm"))
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

  peak = benchmark_report.peak(gemm, False)
  is_bf16 = {
      impl: _overrides(named_variants.get(impl, "")).get("gemm", opts.gemm)
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
        impl: benchmark_report.summarise(
            results, flops_fwd, benchmark_report.peak(gemm, is_bf16[impl])
        )
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
      "steps": opts.steps,
      "warmup": opts.warmup,
      "repeats": opts.repeats,
      "peer_threads": opts.threads,
      "scan_impl": opts.scan_impl or "default",
      "unroll": opts.unroll,
      "backend": opts.backend or "default",
      "fold_embedding": opts.fold_embedding,
      "time_chunks": opts.time_chunks or "auto",
      "model_gemm": opts.gemm or "default",
      "host_memory": opts.host_memory,
      "gemm": {
          "runs": gemm,
          "peak_flops": peak,
          "peak_flops_bf16": max(
              (g.get("gemm_peak_flops_bf16", 0) for g in gemm), default=0
          )
          or None,
      },
      "variants": named_variants,
      "peer_device": opts.peer_device,
      "matmul_precision": opts.matmul_precision or "default",
      "rows": report_rows,
      "failed": failed,
      "not_run": not_run,
      "deadline_s": opts.deadline_s or None,
  }


def run_benchmark(
    opts: Options, torch_unavailable: Callable[[str | None], str | None]
) -> dict:
  """Every measurement of ``opts``, printing progress; returns the report.

  ``torch_unavailable(python)`` says why that interpreter cannot run torch,
  or None. Measurements that failed or were not run before the deadline
  are listed in the report's "failed" and "not_run"
  (rnnlm_jax.benchmark_report.incomplete).
  """
  impls = list(dict.fromkeys(opts.impls)) + list(variants(opts))
  skipped = {}
  if "torch" in impls:
    reason = _torch_unavailable(opts, torch_unavailable)
    if reason:
      skipped["torch"] = reason
      impls.remove("torch")
      print(f"torch peer skipped: {reason}", flush=True)
  return {**_benchmark(opts, impls), "skipped": skipped}
