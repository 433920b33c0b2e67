"""Matrix products through a BLAS library on CPU, as XLA custom calls.

XLA:CPU's own fp32 GEMM runs behind the one PyTorch calls on some CPUs
(Intel MKL's; docs/performance.md). ``dot`` runs op(a) @ op(b) through the
``cblas_?gemm`` of a BLAS library instead, inside the compiled step: an XLA
FFI handler (``csrc/gemm.cc``) that splits the product into blocks run on
XLA's own thread pool, each block one single-threaded BLAS call, so that the
library's threads never compete with XLA's for the cores.

Libraries (``LIBRARIES``):
  "mkl": Intel MKL's ``libmkl_rt`` (``pip install mkl``; x86-64), found in
      the environment's ``lib`` folder or on the loader's path.
  "openblas": the OpenBLAS that numpy's wheels bundle (ILP64, symbols with
      the ``scipy_`` prefix), else a system ``libopenblas``.

The handlers of ``csrc/`` (this GEMM; the layers and the softmax
cross-entropy of rnnlm_jax.backends.fused)
are compiled into one library, once per source, jaxlib version and CPU
(``-march=native``), with the system's C++ compiler ($CXX, else c++ / g++ /
clang++) against the FFI headers that jaxlib ships, and kept under
$XDG_CACHE_HOME/rnnlm_jax (~/.cache/rnnlm_jax); it is written whole or not at
all. Where any of that is missing,
``unavailable(name)`` says why, and ``resolve("auto")`` falls back to XLA.

One more backend is XLA's own, for accelerators: "bf16" casts both operands
of every product to bfloat16 and accumulates and returns float32
(``preferred_element_type``), the gradients' products alike; what is not a
matmul (the cells' state and gate arithmetic, the softmax's reductions, the
parameters and optimizer) stays float32.
"""

import ctypes
import ctypes.util
import dataclasses
import functools
import glob
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile

import jax
import jax.numpy as jnp
import numpy as np

from rnnlm_jax import matmul

LIBRARIES = ("mkl", "openblas")
BF16 = "bf16"
BACKENDS = ("xla", BF16) + LIBRARIES
CHOICES = ("auto",) + BACKENDS
_CSRC = os.path.join(os.path.dirname(__file__), "csrc")
# Built into one library, with the headers.
_SOURCES = ("gemm.cc", "recurrence.cc", "softmax.cc", "word2vec.cc")
_HEADERS = ("blas.h", "fastmath.h")
# The cells whose whole layer the library runs (rnnlm_jax.fused).
RECURRENCE_CELLS = ("lstm", "gru", "rnn_tanh", "rnn_sigmoid", "rnn_relu")
_TARGETS = {np.dtype(np.float32): "rnnlm_gemm_f32",
            np.dtype(np.float64): "rnnlm_gemm_f64"}
# Every FFI target of the library: its name in XLA, its symbol.
_FFI_SYMBOLS = {
    "rnnlm_gemm_f32": "RnnlmGemmF32",
    "rnnlm_gemm_f64": "RnnlmGemmF64",
    "rnnlm_softmax_xent_f32": "RnnlmSoftmaxXentF32",
    "rnnlm_softmax_xent_f64": "RnnlmSoftmaxXentF64",
    "rnnlm_word2vec_f32": "RnnlmWord2vecF32",
    **{
        f"rnnlm_{cell}_{way}_{t}":
            f"Rnnlm{cell.title().replace('_', '')}{way.title()}{t.upper()}"
        for cell in RECURRENCE_CELLS
        for way in ("fwd", "bwd")
        for t in ("f32", "f64")
    },
}
# Products under twice this many FLOPs run as one block: splitting them
# costs more in scheduling than the second core gives back.
_MIN_BLOCK_FLOPS = 1_000_000
_MKL_THREADING_SEQUENTIAL = 1


class Unavailable(RuntimeError):
  """A BLAS backend that cannot be used here (the message says why)."""


@dataclasses.dataclass(frozen=True)
class _Found:
  path: str
  sgemm: str
  dgemm: str
  ilp64: bool
  threads_local: str | None  # Sets the calling thread's thread count.


def _mkl() -> _Found | None:
  paths = sorted(glob.glob(os.path.join(sys.prefix, "lib", "libmkl_rt.so*")))
  path = paths[0] if paths else ctypes.util.find_library("mkl_rt")
  if not path:
    return None
  return _Found(path, "cblas_sgemm", "cblas_dgemm", False,
                "MKL_Set_Num_Threads_Local")


def _openblas() -> _Found | None:
  numpy_libs = os.path.join(os.path.dirname(np.__file__), "..", "numpy.libs")
  bundled = sorted(glob.glob(os.path.join(numpy_libs, "libscipy_openblas64_*")))
  if bundled:
    return _Found(os.path.realpath(bundled[0]), "scipy_cblas_sgemm64_",
                  "scipy_cblas_dgemm64_", True,
                  "openblas_set_num_threads_local")
  path = ctypes.util.find_library("openblas")
  if not path:
    return None
  return _Found(path, "cblas_sgemm", "cblas_dgemm", False,
                "openblas_set_num_threads_local")


_FINDERS = {"mkl": _mkl, "openblas": _openblas}


def _cache_dir() -> str:
  base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
  return os.path.join(base, "rnnlm_jax")


def _compiler() -> str | None:
  for name in (os.environ.get("CXX"), "c++", "g++", "clang++"):
    if name and shutil.which(name):
      return shutil.which(name)
  return None


def _cpu() -> bytes:
  """What identifies this CPU's instruction set (the library is built for
  the CPU it runs on, and a cache folder may be shared between machines)."""
  try:
    with open("/proc/cpuinfo", "rb") as f:
      lines = f.read().splitlines()
  except OSError:
    return b""
  keep = (b"model name", b"flags")
  return b"\n".join(
      dict((l.split(b":")[0].strip(), l) for l in lines
           if l.split(b":")[0].strip() in keep).values()
  )


@functools.cache
def _handlers() -> ctypes.CDLL:
  """Builds (once; cached on disk) and loads the FFI handlers, registering
  them with XLA."""
  if sys.platform != "linux":
    raise Unavailable(f"the BLAS backends are built for Linux, not {sys.platform}")
  digest = hashlib.sha256()
  for name in _SOURCES + _HEADERS:
    with open(os.path.join(_CSRC, name), "rb") as f:
      digest.update(f.read())
  import jaxlib

  digest.update(jaxlib.__version__.encode() + _cpu())
  target = os.path.join(_cache_dir(), f"rnnlm-{digest.hexdigest()[:16]}.so")
  try:
    if not os.path.exists(target):
      _build(target)
    lib = ctypes.CDLL(target)
  except OSError as e:
    raise Unavailable(f"cannot build or load {target}: {e}") from None
  lib.rnnlm_gemm_set_packed.restype = ctypes.c_int
  lib.rnnlm_gemm_set_packed.argtypes = [ctypes.c_int] + [ctypes.c_void_p] * 6
  lib.rnnlm_gemm_set.restype = ctypes.c_int
  lib.rnnlm_gemm_set.argtypes = [ctypes.c_int, ctypes.c_void_p,
                                 ctypes.c_void_p, ctypes.c_int,
                                 ctypes.c_void_p, ctypes.c_int64]
  for name, symbol in _FFI_SYMBOLS.items():
    capsule = jax.ffi.pycapsule(getattr(lib, symbol))
    jax.ffi.register_ffi_target(name, capsule, platform="cpu")
  return lib


def _build(target: str) -> None:
  """Compiles csrc/ to ``target``, for this CPU, whole or not at all: each
  source in its own compiler process, at once, then one link."""
  cxx = _compiler()
  if cxx is None:
    raise Unavailable("no C++ compiler (set $CXX, or install g++)")
  os.makedirs(os.path.dirname(target), exist_ok=True)
  flags = ["-O3", "-march=native", "-std=c++17", "-fPIC", "-w"]
  with tempfile.TemporaryDirectory(dir=os.path.dirname(target)) as tmp:
    objects = [os.path.join(tmp, name + ".o") for name in _SOURCES]
    compiles = [
        subprocess.Popen(
            [cxx, *flags, f"-I{jax.ffi.include_dir()}", "-c",
             os.path.join(_CSRC, name), "-o", obj],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        for name, obj in zip(_SOURCES, objects)
    ]
    link = os.path.join(tmp, "rnnlm.so")
    steps = [(c, c.communicate()[1]) for c in compiles]
    failed = [err for c, err in steps if c.returncode != 0]
    if not failed:
      done = subprocess.run([cxx, "-shared", *objects, "-o", link],
                            capture_output=True, text=True)
      failed = [done.stderr] if done.returncode != 0 else []
    if failed:
      last = (failed[0].strip().splitlines() or ["?"])[-1]
      raise Unavailable(f"building {_CSRC} failed: {last}")
    os.replace(link, target)


def _symbol(lib: ctypes.CDLL, name: str | None):
  if name is None or not hasattr(lib, name):
    return None
  return ctypes.cast(getattr(lib, name), ctypes.c_void_p)


def library_index(name: str) -> int:
  """The index under which library ``name`` is set in the handlers (their
  ``library`` attribute); raises Unavailable where it cannot be used."""
  if name not in LIBRARIES:
    raise ValueError(f"unknown BLAS library {name!r}; choose one of {LIBRARIES}")
  index, reason = _loaded(name)
  if reason is not None:
    raise Unavailable(reason)
  return index


@functools.cache
def _loaded(name: str) -> tuple[int | None, str | None]:
  """(index, None), or (None, why not): failures are remembered too, so a
  missing compiler is not looked for again at every trace."""
  try:
    return _set_library(name), None
  except Unavailable as e:
    return None, str(e)


def _set_library(name: str) -> int:
  found = _FINDERS[name]()
  if found is None:
    hint = " (pip install mkl)" if name == "mkl" else ""
    raise Unavailable(f"no {name} library found{hint}")
  handlers = _handlers()
  try:
    blas = ctypes.CDLL(found.path, mode=ctypes.RTLD_GLOBAL)
  except OSError as e:
    raise Unavailable(f"cannot load {found.path}: {e}") from None
  if not hasattr(blas, found.sgemm):
    raise Unavailable(f"{found.path} has no {found.sgemm}")
  if name == "mkl":
    # Before MKL's first call: each block runs on one thread (gemm.cc).
    blas.MKL_Set_Threading_Layer(_MKL_THREADING_SEQUENTIAL)
    # The packed-operand API, for a weight multiplied at every step.
    handlers.rnnlm_gemm_set_packed(
        LIBRARIES.index(name),
        *(_symbol(blas, f"cblas_{t}gemm_{op}")
          for t in "sd" for op in ("pack_get_size", "pack", "compute")),
    )
  index = LIBRARIES.index(name)
  handlers.rnnlm_gemm_set(
      index,
      _symbol(blas, found.sgemm),
      _symbol(blas, found.dgemm),
      int(found.ilp64),
      _symbol(blas, found.threads_local),
      _MIN_BLOCK_FLOPS,
  )
  return index


# The handlers' ``library`` index for no BLAS library: the fused layers'
# per-step products then run through the built-in packed product
# (csrc/blas.h: kBuiltIn).
BUILTIN_INDEX = -1


@functools.cache
def _handlers_error() -> str | None:
  try:
    _handlers()
  except Unavailable as e:
    return str(e)
  return None


def builtin_unavailable() -> str | None:
  """Why the fused layers cannot run under XLA's GEMM here, with their
  per-step products from the built-in packed product, or None: that needs a
  single CPU device (a custom call is not split across devices) and the
  handlers' library built."""
  if jax.default_backend() != "cpu" or jax.device_count() != 1:
    return "under XLA's GEMM the fused layer runs on a single CPU device"
  return _handlers_error()


def recurrence_index(gemm: str) -> int:
  """The handlers' ``library`` index for the fused layers' per-step
  products under ``gemm``: the BLAS library's, or under "xla" the built-in
  packed product's (BUILTIN_INDEX); raises Unavailable where it cannot
  run."""
  if gemm == "xla":
    reason = builtin_unavailable()
    if reason is not None:
      raise Unavailable(reason)
    return BUILTIN_INDEX
  return library_index(gemm)


def unavailable(name: str) -> str | None:
  """Why BLAS library ``name`` cannot be used here, or None if it can."""
  if name not in LIBRARIES:
    raise ValueError(f"unknown BLAS library {name!r}; choose one of {LIBRARIES}")
  return _loaded(name)[1]


@functools.cache
def cpu_vendor() -> str:
  """This CPU's vendor string ("GenuineIntel", "AuthenticAMD", ...), or ""
  where /proc/cpuinfo does not say."""
  try:
    with open("/proc/cpuinfo", "rb") as f:
      for line in f:
        key, _, value = line.partition(b":")
        if key.strip() == b"vendor_id":
          return value.strip().decode(errors="replace")
  except OSError:
    pass
  return ""


def resolve(gemm: str) -> str:
  """The backend ``gemm`` (one of CHOICES) stands for: "auto" is "mkl" on a
  single device of an Intel CPU where MKL loads, else "xla" (a custom call
  is not split across devices, and XLA's own GEMM is the one to use on
  accelerators); a named library that cannot be used raises Unavailable.

  Intel only, because MKL's fast kernels are: on an AMD EPYC (Zen 5) its
  GEMM measured slower than XLA's (docs/performance.md)."""
  if gemm not in CHOICES:
    raise ValueError(f"unknown gemm {gemm!r}; choose one of {CHOICES}")
  if gemm == "auto":
    if jax.default_backend() != "cpu" or jax.device_count() != 1:
      return "xla"
    if cpu_vendor() != "GenuineIntel":
      return "xla"
    return "xla" if unavailable("mkl") else "mkl"
  if gemm in LIBRARIES:
    library_index(gemm)
  return gemm


def _ffi_gemm(a, b, backend: str, trans_a: bool, trans_b: bool):
  m = a.shape[1] if trans_a else a.shape[0]
  n = b.shape[0] if trans_b else b.shape[1]
  call = jax.ffi.ffi_call(
      _TARGETS[np.dtype(a.dtype)],
      jax.ShapeDtypeStruct((m, n), a.dtype),
      vmap_method="sequential",
  )
  return call(a, b, trans_a=trans_a, trans_b=trans_b,
              library=np.int64(library_index(backend)))


def _xla_gemm(a, b, trans_a: bool, trans_b: bool):
  return (a.T if trans_a else a) @ (b.T if trans_b else b)


def _bf16_gemm(a, b, trans_a: bool, trans_b: bool):
  """op(a) @ op(b) from bfloat16 operands, accumulated and returned in
  their (float) dtype."""
  dims = (((0 if trans_a else 1,), (1 if trans_b else 0,)), ((), ()))
  return jax.lax.dot_general(
      a.astype(jnp.bfloat16), b.astype(jnp.bfloat16), dims,
      preferred_element_type=jnp.promote_types(a.dtype, b.dtype),
  )


def dot(a, b, backend: str = "xla", trans_a: bool = False,
        trans_b: bool = False):
  """op(a) @ op(b) for 2-D a and b, op transposing where trans_* is set,
  through ``backend`` (one of BACKENDS, already resolved): a BLAS library
  for float32 and float64 operands of one dtype, XLA otherwise (plain jnp
  matmul, differentiated by JAX); "bf16", XLA's from bfloat16 operands for
  float operands. Differentiable either way: through a library or bf16,
  each gradient is one more such product."""
  if a.ndim == b.ndim == 2 and a.dtype == b.dtype:
    if backend in LIBRARIES and np.dtype(a.dtype) in _TARGETS:
      return _blas_dot(a, b, backend, trans_a, trans_b)
    if backend == BF16 and jnp.issubdtype(a.dtype, jnp.floating):
      return _blas_dot(a, b, backend, trans_a, trans_b)
  return _xla_gemm(a, b, trans_a, trans_b)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _blas_dot(a, b, backend, trans_a, trans_b):
  if backend == BF16:
    return _bf16_gemm(a, b, trans_a, trans_b)
  return _ffi_gemm(a, b, backend, trans_a, trans_b)


def _dot_fwd(a, b, backend, trans_a, trans_b):
  return _blas_dot(a, b, backend, trans_a, trans_b), (a, b)


def _dot_bwd(backend, trans_a, trans_b, res, g):
  a, b = res
  # C = op(a) op(b): d op(a) = g op(b)^T, d op(b) = op(a)^T g.
  if trans_a:
    da = dot(b, g, backend, trans_b, True)
  else:
    da = dot(g, b, backend, False, not trans_b)
  if trans_b:
    db = dot(g, a, backend, True, trans_a)
  else:
    db = dot(a, g, backend, not trans_a, False)
  return da.astype(a.dtype), db.astype(b.dtype)


_blas_dot.defvjp(_dot_fwd, _dot_bwd)


@functools.cache
def dot_fn(backend: str):
  """``dot`` bound to a resolved ``backend``, as the GEMM the core takes
  (rnnlm_jax.matmul): ``f(a, b, trans_a=False, trans_b=False)``."""
  if backend == "xla":
    return matmul.xla_dot

  def gemm(a, b, trans_a: bool = False, trans_b: bool = False):
    return dot(a, b, backend, trans_a, trans_b)

  gemm.__name__ = f"{backend}_dot"
  return gemm
