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

import json
import os
import sys

from absl import app
from absl import flags

from experiments import common
from rnnlm_jax import benchmark_report
from rnnlm_jax import benchmark_runner as runner
from rnnlm_jax import rundir

_PRESET = flags.DEFINE_list(
    "preset", ["zaremba_small"], f"Model sizes, of {', '.join(runner.PRESETS)}."
)
_CELL = flags.DEFINE_list(
    "cell", ["lstm"], f"Cells, of {', '.join(runner.CELLS)}."
)
_BATCH = flags.DEFINE_integer("batch", 0, "Batch size; 0: the preset's.")
_HIDDEN = flags.DEFINE_integer("hidden", 0, "Hidden width; 0: the preset's.")
_IMPLS = flags.DEFINE_list(
    "impls", list(runner.IMPLS), "Implementations to time."
)
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
_BACKEND = flags.DEFINE_string(
    "backend", "", "rnnlm_jax's model.backend; empty: the default."
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
    runner.DEFAULT_PEER if os.path.exists(runner.DEFAULT_PEER) else None,
    "PyTorch peer script.",
)
_TORCH_PY = flags.DEFINE_string(
    "torch_python",
    os.environ.get(common.TORCH_ENV),
    f"Python interpreter that has torch (default ${common.TORCH_ENV}).",
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


def _options() -> runner.Options:
  return runner.Options(
      presets=tuple(_PRESET.value),
      cells=tuple(_CELL.value),
      batch=_BATCH.value,
      hidden=_HIDDEN.value,
      impls=tuple(_IMPLS.value),
      variants=tuple(_VARIANTS.value),
      variant=_VARIANT.value,
      peer_device=_PEER_DEVICE.value,
      matmul_precision=_PRECISION.value,
      steps=_STEPS.value,
      warmup=_WARMUP.value,
      repeats=_REPEATS.value,
      threads=_THREADS.value,
      gemm_n=_GEMM_N.value,
      scan_impl=_SCAN_IMPL.value,
      unroll=_UNROLL.value,
      backend=_BACKEND.value,
      time_chunks=_TIME_CHUNKS.value,
      gemm=_MODEL_GEMM.value,
      fold_embedding=_FOLD.value,
      sweep_batch=tuple(_SWEEP_BATCH.value),
      sweep_hidden=tuple(_SWEEP_HIDDEN.value),
      peer_script=_PEER.value,
      torch_python=_TORCH_PY.value,
      deadline_s=_DEADLINE.value,
      host_memory=common.HOST_MEMORY.value,
  )


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  with common.one_line_errors():
    opts = _options()
    runner.check_options(opts)
    if _WORKER.value:
      result = runner.worker_result(opts, _WORKER.value)
      print("RESULT " + json.dumps(result), flush=True)
      return
    report = runner.run_benchmark(opts, common.torch_unavailable)
    print(benchmark_report.markdown(report))
    if _OUT.value:
      rundir.write_text_atomic(_OUT.value, json.dumps(report, indent=2))
    if report["failed"] or report["not_run"]:
      print(benchmark_report.incomplete(report), file=sys.stderr)
      sys.exit(1)


if __name__ == "__main__":
  app.run(main, flags_parser=common.parse_flags)
