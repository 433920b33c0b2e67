"""fp32 GEMM rates: XLA:CPU (a jitted a @ b), the BLAS libraries of
rnnlm_jax.blas (model.gemm's custom call, jitted the same way) and PyTorch's
torch.mm.

  python -m experiments.gemm --torch_python=/path/to/python-with-torch
  python -m experiments.gemm --shapes=700x650x10000,20x650x2600 --calls=10
  python -m experiments.gemm --libraries=mkl   # XLA and MKL only

Each shape M x K x N is timed as the median of --calls calls after one
warm-up call, in this process for XLA and in one process of --torch_python
(or $TORCH_PYTHON) for PyTorch, skipped with the reason when that
interpreter cannot import torch. Each of --libraries is timed in this
process after XLA, and skipped with the reason where it cannot be used. torch is never imported here. The default
shapes are the benchmark's: a 2048 cube, Zaremba medium's softmax and its two
gradients, one of its input projections and one recurrent step.
"""

import json
import os
import statistics
import subprocess
import time

from absl import app
from absl import flags

from experiments import common
from rnnlm_jax import config as config_lib
from rnnlm_jax.backends import hostmem
from rnnlm_jax import rundir

DEFAULT_SHAPES = [
    "2048x2048x2048",
    "700x650x10000",
    "700x10000x650",
    "650x700x10000",
    "700x650x2600",
    "20x650x2600",
]

_SHAPES = flags.DEFINE_list("shapes", DEFAULT_SHAPES, "M x K x N shapes.")
_CALLS = flags.DEFINE_integer("calls", 10, "Timed calls per shape.")
_TORCH_PY = flags.DEFINE_string(
    "torch_python",
    os.environ.get(common.TORCH_ENV),
    f"Python interpreter that has torch (default ${common.TORCH_ENV}).",
)
_LIBRARIES = flags.DEFINE_list(
    "libraries",
    ["mkl", "openblas"],
    "BLAS libraries to time through rnnlm_jax.blas beside XLA.",
)
_OUT = flags.DEFINE_string("out", None, "Write the report as JSON here.")

# Run by the torch interpreter: argv[1] the shapes as JSON, argv[2] calls;
# prints {"MxKxN": seconds}.
_TORCH_TIMER = """
import json, statistics, sys, time, torch
shapes, calls = json.loads(sys.argv[1]), int(sys.argv[2])
out = {}
for m, k, n in shapes:
  a, b = torch.rand(m, k), torch.rand(k, n)
  torch.mm(a, b)
  times = []
  for _ in range(calls):
    t0 = time.perf_counter()
    torch.mm(a, b)
    times.append(time.perf_counter() - t0)
  out[f"{m}x{k}x{n}"] = statistics.median(times)
print(json.dumps(out))
"""


def parse_shapes(values: list[str]) -> list[tuple[int, int, int]]:
  shapes = []
  for v in values:
    dims = v.lower().split("x")
    if len(dims) != 3 or not all(d.isdigit() and int(d) > 0 for d in dims):
      raise config_lib.ConfigError(
          f"--shapes: {v!r} is not M x K x N with positive sizes (700x650x2600)"
      )
    shapes.append(tuple(int(d) for d in dims))
  if not shapes:
    raise config_lib.ConfigError("--shapes: give at least one M x K x N")
  return shapes


def time_xla(shapes, calls: int, gemm: str = "xla") -> dict:
  """Median seconds of a jitted a @ b per shape, through ``gemm`` (a
  backend of rnnlm_jax.blas)."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

  from rnnlm_jax.backends import blas  # pylint: disable=g-import-not-at-top

  out = {}
  for m, k, n in shapes:
    a = jax.random.uniform(jax.random.key(0), (m, k), jnp.float32)
    b = jax.random.uniform(jax.random.key(1), (k, n), jnp.float32)
    product = lambda a, b: blas.dot(a, b, gemm)
    matmul = jax.jit(product).lower(a, b).compile()
    jax.block_until_ready(matmul(a, b))
    times = []
    for _ in range(calls):
      t0 = time.perf_counter()
      jax.block_until_ready(matmul(a, b))
      times.append(time.perf_counter() - t0)
    out[f"{m}x{k}x{n}"] = statistics.median(times)
  return out


def time_torch(python: str, shapes, calls: int) -> dict:
  proc = subprocess.run(
      [python, "-c", _TORCH_TIMER, json.dumps(shapes), str(calls)],
      capture_output=True,
      text=True,
      timeout=1800,
      env=hostmem.child_env(dict(os.environ), common.HOST_MEMORY.value),
  )
  if proc.returncode:
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    raise RuntimeError(f"the torch timer failed: {tail}")
  return json.loads(proc.stdout.strip().splitlines()[-1])


def report(
    shapes, xla: dict, torch: dict | None, libraries: dict | None = None
) -> dict:
  """libraries: {name: seconds per shape} of the BLAS backends timed."""
  rows = []
  for m, k, n in shapes:
    key, flop = f"{m}x{k}x{n}", 2.0 * m * k * n
    row = {"shape": key, "xla_s": xla[key], "xla_flops": flop / xla[key]}
    for name, times in (libraries or {}).items():
      row[f"{name}_s"] = times[key]
      row[f"{name}_flops"] = flop / times[key]
      row[f"{name}_over_xla"] = xla[key] / times[key]
    if torch is not None:
      row.update(torch_s=torch[key], torch_flops=flop / torch[key])
      row["torch_over_xla"] = xla[key] / torch[key]
    rows.append(row)
  return {
      "calls": _CALLS.value,
      "libraries": list(libraries or {}),
      "rows": rows,
  }


def markdown(rep: dict) -> str:
  with_torch = "torch_flops" in rep["rows"][0]
  libraries = rep.get("libraries", [])
  head = "| M x K x N | XLA:CPU GFLOP/s |"
  head += "".join(f" {n} GFLOP/s | {n} / XLA |" for n in libraries)
  head += " PyTorch GFLOP/s | PyTorch / XLA |" if with_torch else ""
  columns = 1 + 2 * len(libraries) + (2 if with_torch else 0)
  lines = [head, "|---|" + "---:|" * columns]
  for r in rep["rows"]:
    line = f"| {r['shape']} | {r['xla_flops'] / 1e9:,.1f} |"
    for n in libraries:
      line += f" {r[f'{n}_flops'] / 1e9:,.1f} | {r[f'{n}_over_xla']:.2f}x |"
    if with_torch:
      line += f" {r['torch_flops'] / 1e9:,.1f} | {r['torch_over_xla']:.2f}x |"
    lines.append(line)
  return "\n".join(lines)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  with common.one_line_errors():
    shapes = parse_shapes(_SHAPES.value)
    if _CALLS.value < 1:
      raise config_lib.ConfigError("--calls must be >= 1")
    from rnnlm_jax.backends import blas  # pylint: disable=g-import-not-at-top

    bad = [n for n in _LIBRARIES.value if n not in blas.LIBRARIES]
    if bad:
      raise config_lib.ConfigError(
          f"--libraries: {bad[0]!r} is not one of {', '.join(blas.LIBRARIES)}"
      )
    libraries, skipped = {}, {}
    for name in _LIBRARIES.value:
      skipped[name] = blas.unavailable(name)
      if skipped[name]:
        print(f"{name} skipped: {skipped[name]}", flush=True)
    reason = common.torch_unavailable(_TORCH_PY.value)
    if reason:
      print(f"torch skipped: {reason}", flush=True)
    torch = None if reason else time_torch(_TORCH_PY.value, shapes, _CALLS.value)
    xla = time_xla(shapes, _CALLS.value)
    for name in _LIBRARIES.value:
      if not skipped[name]:
        libraries[name] = time_xla(shapes, _CALLS.value, name)
    rep = report(shapes, xla, torch, libraries)
    rep["torch_skipped"] = reason
    rep["libraries_skipped"] = {n: r for n, r in skipped.items() if r}
    print(markdown(rep))
    if _OUT.value:
      rundir.write_text_atomic(_OUT.value, json.dumps(rep, indent=2))


if __name__ == "__main__":
  app.run(main, flags_parser=common.parse_flags)
