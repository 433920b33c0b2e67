"""The fast paths, behind one dispatcher.

The core (cells, scan, models, steps, train) computes everything in plain
JAX: the reference. This package holds what may replace parts of it with
faster code computing the same function, and this module is the only one
the core imports from it:

  blas     the GEMM of a BLAS library (MKL, OpenBLAS) as an XLA custom call,
           and XLA's from bfloat16 operands ("bf16", a close function);
  fused    LSTM, GRU and Elman layers, the softmax loss and word2vec's
           sparse SGD step, as one C++ custom call each on CPU (csrc/);
  cudnn    the LSTM layer as cuDNN's kernel on a GPU;
  hostmem  malloc settings for the training process (used by experiments).

``resolve(model_cfg)`` decides, at the start of a run, which of them the
run takes: a ``Path``, which the run prints and records (``describe``).
A fast layer is keyed to the cell *object* of rnnlm_jax.cells whose math it
implements, never to a name, and before it is used it is run against the
reference scan of that cell on random inputs, forward and backward (``check``,
once per process and cell function): a cell whose Python math was edited no
longer matches the kernel, and the run then takes the reference scan (with
``model.scan_impl="auto"``) or stops with one line (a fast path asked for by
name). The hand-written backward of scan (custom_vjp) is checked the same
way against autodiff, since it relies on the cell's declared derivative
contract. ``model.backend="reference"`` turns every fast path off.
"""

import dataclasses
import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from rnnlm_jax import cells as cells_lib
from rnnlm_jax import config as config_lib
from rnnlm_jax import scan
from rnnlm_jax.backends import blas
from rnnlm_jax.backends import cudnn
from rnnlm_jax.backends import fused

# The fused layer regroups and packs its weight once a call: over 35 and
# 100 steps it was faster than custom_vjp, over one step (a sampler's)
# slower, and still behind over 8 and 16 steps (docs/performance.md).
FUSED_MIN_STEPS = 32
# The largest difference a fast layer may show from the reference on the
# check's random problem, in each output (the loss, every gradient) relative
# to that output's largest value: float32 rounding gave at most 4e-7 for
# every registered cell; an edited forget gate (+1) gave 0.43.
CHECK_TOLERANCE = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-9}


class BackendError(config_lib.ConfigError):
  """A fast path that cannot run here, or does not compute its cell."""


@dataclasses.dataclass(frozen=True)
class FastLayer:
  """A layer implementation that replaces scan's for one cell.

  ``fn(params, carry, xw_TBG, reset_TB, reverse) -> (carry, h_TBH)``, or,
  ``on_inputs``, the same over the layer's inputs x_TBI (cuDNN projects its
  own)."""

  name: str
  fn: Callable
  on_inputs: bool = False

  def __call__(self, *args):
    return self.fn(*args)


@dataclasses.dataclass(frozen=True)
class Path:
  """What a run computes with (see the module docstring).

  scan: how layers without a kernel run and are differentiated
    ("custom_vjp" or "autodiff", rnnlm_jax.scan).
  kernel: the layer kernel for segments of at least ``kernel_min_steps``
    steps ("fused", "cudnn") or "" for none.
  gemm: the matmuls' GEMM ("xla", "mkl", "openblas", "bf16").
  softmax: "fused" (the C++ loss and gradient, in training: evaluation
    computes no gradient and runs the plain loss) or "xla". It replaces no
    cell's math and is tested against the plain loss (tests/fused_test.py)
    rather than checked at the start of a run.
  fold_embedding, time_chunks: the model's pure-JAX rearrangements, on or
    off (the reference turns them off).
  notes: why a fast path asked for was not taken.
  """

  backend: str
  cell: cells_lib.Cell
  scan: str
  kernel: str
  kernel_min_steps: int
  gemm: str
  softmax: str
  fold_embedding: bool
  time_chunks: int
  notes: tuple = ()

  @property
  def dot(self):
    return blas.dot_fn(self.gemm)

  def layer(self, steps: int, *dtypes) -> FastLayer | None:
    """The kernel for a layer of ``steps`` steps whose weights and carry
    are of ``dtypes``, or None."""
    if not self.kernel or steps < self.kernel_min_steps:
      return None
    if self.kernel == "cudnn":
      return FastLayer("cudnn", _cudnn_layer, on_inputs=True)
    if fused.supported(self.cell, self.gemm, list(dtypes)):
      return None
    return fused_layer(self.cell, self.gemm)

  def softmax_kernel(self, dtype) -> Callable | None:
    """The softmax loss-and-gradient kernel for ``dtype`` activations
    (``fn(h_NH, w_HV, b_V, y_N) -> (nll_N, softmax - onehot)``), or
    None."""
    if self.softmax != "fused" or not fused.softmax_supported(
        self.gemm, [dtype]
    ):
      return None
    return fused_softmax(self.gemm)

  def describe(self) -> dict:
    """The path as flat, JSON-ready fields for logs, results and
    provenance."""
    kernel = "none"
    if self.kernel:
      kernel = f"{self.kernel} (segments >= {self.kernel_min_steps} steps)"
    return {
        "backend": self.backend,
        "cell": self.cell.name,
        "scan": self.scan,
        "kernel": kernel,
        "gemm": self.gemm,
        "softmax": self.softmax
        + (" (training)" if self.softmax == "fused" else ""),
        "fold_embedding": self.fold_embedding,
        "time_chunks": self.time_chunks,
        "notes": list(self.notes),
    }


def _cudnn_layer(params, carry, x_TBI, reset_TB, reverse):
  del reverse  # Refused by the configuration.
  return cudnn.layer(params, carry, x_TBI, reset_TB)


@functools.cache
def fused_layer(cell, gemm: str) -> FastLayer:
  """The fused kernel of ``cell`` (a cell of fused.KERNELS) under ``gemm``,
  unchecked (``resolve`` checks it before a model uses it)."""

  def run(params, carry, xw_TBG, reset_TB, reverse):
    return fused.layer(cell, params, carry, xw_TBG, reset_TB, reverse, gemm)

  return FastLayer(f"fused {fused.KERNELS[cell]}", run)


@functools.cache
def fused_softmax(gemm: str) -> Callable:
  """The fused softmax loss-and-gradient kernel under ``gemm`` (a BLAS
  library)."""

  def run(h_NH, w_HV, b_V, y_N):
    return fused.softmax_xent_grad(h_NH, w_HV, b_V, y_N, gemm)

  return run


# The C++ word2vec step sums each row's updates in another order than XLA's
# scatter: float32 rounding gave about 1e-7 of each output's largest value.
WORD2VEC_TOLERANCE = 1e-4


def word2vec_kernel(cfg: config_lib.ModelConfig) -> tuple[Callable | None, str]:
  """The word2vec step a run takes: (fused.word2vec_update, or None for
  rnnlm_jax.word2vec's JAX update, and the line that says which and why).
  The C++ step runs on a single CPU device where the handlers' library
  builds, unless model.backend is "reference"; before its first use in a
  process it is run against the JAX update on a random problem, skip-gram
  and CBOW, and a difference beyond WORD2VEC_TOLERANCE (of the largest
  value of each output: the tables, the loss, the gradient norm) takes the
  JAX update."""
  if cfg.backend == "reference":
    return None, "update=jax (model.backend='reference')"
  if jax.default_backend() != "cpu" or jax.device_count() != 1:
    return None, "update=jax (the C++ step runs on a single CPU device)"
  reason = blas._handlers_error()  # pylint: disable=protected-access
  if reason is not None:
    return None, f"update=jax ({reason})"
  diff = _word2vec_difference()
  if not diff <= WORD2VEC_TOLERANCE:
    return None, (
        f"update=jax (the C++ step differs from the JAX update by {diff:.2g})"
    )
  return fused.word2vec_update, (
      f"update=c++ (csrc/word2vec.cc; checked against the JAX update, "
      f"largest difference {diff:.1e})"
  )


@functools.cache
def _word2vec_difference() -> float:
  """The C++ word2vec step's largest relative difference from the JAX
  update on a random problem, over both modes and every output."""
  from rnnlm_jax import word2vec  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng(0)
  v, d, b, c, negatives = 40, 24, 12, 6, 3
  params = {
      name: jnp.asarray(rng.normal(size=(v, d)) * 0.3, jnp.float32)
      for name in ("input", "output")
  }
  batch = {
      "centre": jnp.asarray(rng.integers(0, v, b), jnp.int32),
      "context": jnp.asarray(rng.integers(0, v, (b, c)), jnp.int32),
      "mask": jnp.asarray(rng.random((b, c)) < 0.7),
      "index": jnp.arange(b, dtype=jnp.int32),
  }
  table = tuple(map(jnp.asarray, word2vec.alias_table(np.full(v, 1 / v))))
  key = jax.random.key(0)
  worst = 0.0
  for update in (word2vec.skipgram_update, word2vec.cbow_update):
    runs = [
        jax.jit(
            lambda p, kernel=kernel: update(
                p, batch, key, table, negatives, 0.1, kernel=kernel
            )
        )(params)
        for kernel in (None, fused.word2vec_update)
    ]
    (ref, ref_sums), (fast, fast_sums) = jax.device_get(runs)
    pairs = [(ref[n], fast[n]) for n in ("input", "output")] + [
        (ref_sums[n], fast_sums[n]) for n in ("loss", "grad_norm")
    ]
    for want, got in pairs:
      scale = max(float(np.max(np.abs(want))), 1e-30)
      worst = max(worst, float(np.max(np.abs(got - want))) / scale)
  return worst


def summary(described: dict) -> str:
  """One line for the start of a run, from ``Path.describe()``."""
  d = described
  line = (
      f"path: backend={d['backend']} cell={d['cell']} scan={d['scan']} "
      f"kernel={d['kernel']} gemm={d['gemm']} softmax={d['softmax']}"
  )
  return line + "".join(f"; {n}" for n in d["notes"])


def resolve(cfg: config_lib.ModelConfig, dtype=jnp.float32) -> Path:
  """The path a recurrent model of ``cfg`` takes here, its fast layers
  checked against their cells (``check``). Raises BackendError (one line)
  where a fast path named in the config cannot run or does not compute its
  cell."""
  cell = cells_lib.get_cell(cfg.cell)
  if cfg.backend == "reference":
    return Path("reference", cell, "autodiff", "", 0, "xla", "xla", False, 1)
  try:
    gemm = blas.resolve(cfg.gemm)
  except blas.Unavailable as e:
    raise BackendError(f"model.gemm={cfg.gemm!r}: {e}") from None
  notes = []
  scan_impl = "autodiff" if cfg.scan_impl == "autodiff" else "custom_vjp"
  wanted = [scan_impl] if scan_impl == "custom_vjp" else []
  if cfg.scan_impl in ("auto", "fused") and not fused.supported(
      cell, gemm, [dtype]
  ):
    wanted.append("fused")
  diffs = check(cell, wanted, gemm, dtype) if wanted else {}
  if scan_impl == "custom_vjp":
    diff = diffs["custom_vjp"]
    if diff is not None:
      what = f"scan's custom_vjp differs from autodiff by {diff:.2g}"
      if cfg.scan_impl == "custom_vjp":
        raise BackendError(f"model.scan_impl='custom_vjp': {what}")
      notes.append(what + "; autodiff runs")
      scan_impl = "autodiff"
  kernel = _kernel(cfg, cell, gemm, dtype, diffs.get("fused"), notes)
  softmax = "fused" if fused.softmax_supported(gemm, [dtype]) else "xla"
  return Path(
      "auto",
      cell,
      scan_impl,
      kernel,
      FUSED_MIN_STEPS if cfg.scan_impl == "auto" else 1,
      gemm,
      softmax,
      cfg.fold_embedding and kernel != "cudnn",
      cfg.time_chunks,
      tuple(notes),
  )


def _kernel(cfg, cell, gemm, dtype, fused_diff, notes) -> str:
  """The layer kernel ``cfg`` asks for and that runs here, or "";
  fused_diff: the fused layer's check (``check``)."""
  if cfg.scan_impl == "cudnn":
    reason = cudnn.unavailable()
    if cell != cudnn.CELL:
      reason = f"cuDNN runs rnnlm_jax.cells' LSTM, not this {cell.name!r}"
    if reason:
      raise BackendError(f"model.scan_impl='cudnn': {reason}")
    diff = check(cell, ["cudnn"], gemm, dtype)["cudnn"]
    if diff is not None:
      raise BackendError(
          f"model.scan_impl='cudnn': cuDNN's LSTM differs from "
          f"cells.{cell.name} by {diff:.2g}"
      )
    return "cudnn"
  if cfg.scan_impl not in ("auto", "fused"):
    return ""
  why_not = fused.supported(cell, gemm, [dtype])
  if not why_not and fused_diff is not None:
    why_not = (
        f"the fused {cell.name} layer differs from cells.{cell.name} by "
        f"{fused_diff:.2g} (was the cell's math edited?)"
    )
  if not why_not:
    return "fused"
  if cfg.scan_impl == "fused":
    raise BackendError(f"model.scan_impl='fused': {why_not}")
  if cell in fused.KERNELS:  # Expected to fuse: say why it does not.
    notes.append(f"not fused: {why_not}")
  return ""


def time_chunks(path: Path, steps: int, kernel: bool) -> int:
  """How many chunks scan.run_stack splits ``steps`` time steps into:
  the setting if > 0 (at most one a step); 0 (auto): on CPU, as many chunks
  of at least 25 steps as fit, at most 4, unless the layers run a kernel
  (each step of a fused layer is split over the cores already); 1 elsewhere
  and in the reference. Faster on 2 cores at 100 steps, not at 35
  (docs/performance.md)."""
  if path.backend == "reference":
    return 1
  if path.time_chunks > 0:
    return min(path.time_chunks, steps)
  if jax.default_backend() != "cpu" or kernel:
    return 1
  return max(1, min(4, steps // 25))


def _hashable(value):
  try:
    hash(value)
    return value
  except TypeError:
    return ("id", id(value))


def _fingerprint(cell: cells_lib.Cell):
  """What identifies a cell's math in this process: the object, and the
  code, defaults and closure of its pointwise function (which an edit
  changes); for a callable that is no plain function (a partial, a jitted
  or callable object), the object itself."""
  fn = cell.pointwise
  parts = []
  while isinstance(fn, functools.partial):
    parts.append((_hashable(fn.args), _hashable(tuple(fn.keywords.items()))))
    fn = fn.func
  code = getattr(fn, "__code__", None)
  if code is None:
    return cell, tuple(parts), ("id", id(fn))
  closure = tuple(_hashable(c.cell_contents) for c in fn.__closure__ or ())
  defaults = _hashable(fn.__defaults__)
  return cell, tuple(parts), code, closure, defaults


def check(cell, impls, gemm: str, dtype=jnp.float32) -> dict:
  """For each of ``impls`` ("custom_vjp", "fused", "cudnn"): None if it
  computes the same function as autodiff of the reference scan for
  ``cell``, forward and backward, on a small random problem with resets, in
  both directions; else the largest relative difference seen. One compiled
  program, cached per cell function."""
  impls = tuple(impls)
  x64 = bool(jax.config.jax_enable_x64)
  diffs = _check(_fingerprint(cell), impls, gemm, np.dtype(dtype), x64)
  return dict(zip(impls, diffs))


@functools.cache
def _check(fingerprint, impls, gemm, dtype, x64):
  del x64  # A key only: float64 computes as float32 without it.
  cell = fingerprint[0]
  cudnn_only = impls == ("cudnn",)
  directions = (False,) if cudnn_only else (False, True)
  with jax.ensure_compile_time_eval():
    problem = _problem(cell, dtype, first_only=cudnn_only)
    # The fingerprint, not the cell, keys jit's cache: an edited cell is
    # the same object with other code.
    worst = jax.jit(_differences, static_argnums=(0, 1, 2, 3))(
        fingerprint, impls, gemm, directions, *problem
    )
    worst = [float(w) for w in worst]
  tolerance = CHECK_TOLERANCE.get(dtype, 1e-2)
  if cudnn_only:  # TF32 products unless full precision is asked for.
    tolerance = 1e-2
  return tuple(None if w <= tolerance else w for w in worst)


def _problem(cell, dtype, first_only: bool):
  """A small random layer, carry, inputs and resets (at the first position
  only, where ``first_only``: cuDNN resets nowhere else). Drawn with numpy:
  jax.random here would compile dozens of small programs at the start of
  every process."""
  steps, batch, inputs, hidden = 6, 3, 5, 8
  rng = np.random.default_rng(20240611)
  shapes = jax.eval_shape(
      lambda k: cells_lib.init_params(cell, k, inputs, hidden, 0.5),
      jax.random.key(0),
  )
  params = jax.tree.map(lambda s: rng.uniform(-0.5, 0.5, s.shape), shapes)
  carry = tuple(
      rng.normal(size=(batch, hidden)) for _ in range(cell.carry_arity)
  )
  x = rng.normal(size=(steps, batch, inputs))
  reset = rng.random((steps, batch)) < 0.3
  if first_only:
    reset[1:] = False
    reset[0, 0], reset[0, 1] = True, False
  else:
    reset[0] = False
  cast = lambda t: jax.tree.map(lambda a: jnp.asarray(a, dtype), t)
  return cast(params), cast(carry), cast(x), jnp.asarray(reset)


def _differences(fingerprint, impls, gemm, directions, params, carry, x, reset):
  """For each of ``impls``, the largest difference, relative to the largest
  value, between its loss and gradients and autodiff's, over
  ``directions``."""
  cell = fingerprint[0]
  weights = jnp.linspace(0.5, 1.5, x.shape[0] * carry[0].shape[-1])
  weights = weights.reshape(x.shape[0], 1, -1).astype(x.dtype)
  options = {"custom_vjp": {"impl": "custom_vjp", "dot": blas.dot_fn(gemm)}}
  if "cudnn" in impls:
    options["cudnn"] = {"fast": FastLayer("cudnn", _cudnn_layer, True)}
  if "fused" in impls:
    options["fused"] = {
        "fast": fused_layer(cell, gemm),
        "dot": blas.dot_fn(gemm),
    }

  def loss(run_options, reverse, params, carry, x):
    final, h = scan.run_layer(
        cell, params, carry, x, reset, reverse, **run_options
    )
    out = jnp.sum(jnp.sin(h) * weights)
    return out + sum(jnp.sum(jnp.cos(a)) for a in final)

  worst = {impl: [] for impl in impls}
  for reverse in directions:
    grads = lambda o: jax.tree.leaves(
        jax.value_and_grad(
            functools.partial(loss, o, reverse), argnums=(0, 1, 2)
        )(params, carry, x)
    )
    # The same GEMM on both sides: what is checked is the cell's math (the
    # GEMMs themselves are tested against numpy: tests/blas_test.py).
    want = grads({"impl": "autodiff", "dot": blas.dot_fn(gemm)})
    for impl in impls:
      got = grads(options[impl])
      diff = jnp.stack(
          [
              jnp.max(jnp.abs(g - w)) / jnp.maximum(jnp.max(jnp.abs(w)), 1e-6)
              for g, w in zip(got, want)
          ]
      )
      worst[impl].append(jnp.max(diff))
  return [jnp.max(jnp.stack(worst[impl])) for impl in impls]
