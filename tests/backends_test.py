"""The dispatcher: fast paths only for the cells they compute, checked.

An edit to a cell's Python math must change what runs at every segment
length: the fused kernels no longer match it, the check finds that, and
the run takes the reference scan (or, where a fast path was asked for by
name, stops with one line).
"""

import contextlib
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnnlm_jax import backends
from rnnlm_jax import cells
from rnnlm_jax import config as config_lib
from rnnlm_jax import models
from rnnlm_jax.backends import fused
from rnnlm_jax.config import ModelConfig

V, B = 30, 3
CFG = ModelConfig(vocab_size=V, hidden=8, num_layers=1)
FUSES = not backends.blas.builtin_unavailable()
needs_fused = pytest.mark.skipif(
    not FUSES,
    reason=f"no fused layers here: {backends.blas.builtin_unavailable()}",
)


def _forget_plus_one(params, xw_gates, hw_gates, carry):
  del params
  _, c = carry
  i, f, g, o = (x + h for x, h in zip(xw_gates, hw_gates))
  c = jax.nn.sigmoid(f + 1.0) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
  h = jax.nn.sigmoid(o) * jnp.tanh(c)
  return (h, c), h


@contextlib.contextmanager
def edited_lstm():
  """cells.lstm's function with other code, as after an edit of cells.py:
  the same object, so anything keyed by name or object alone is fooled."""
  fn = cells.CELLS["lstm"].pointwise
  saved = fn.__code__
  fn.__code__ = _forget_plus_one.__code__
  try:
    yield
  finally:
    fn.__code__ = saved


def loss(cfg, params, steps):
  x = jax.random.randint(jax.random.key(steps), (B, steps + 1), 0, V)
  run = lambda p: models.token_nll(
      p, cfg, models.init_carry(cfg, B), x[:, :-1], x[:, 1:]
  )[0].mean()
  return float(jax.jit(run)(params))


@needs_fused
def test_an_edited_cell_changes_the_loss_at_every_segment_length():
  params = models.init_lm(jax.random.key(0), CFG)
  assert backends.resolve(CFG).layer(40, jnp.float32) is not None
  before = {t: loss(CFG, params, t) for t in (20, 40)}
  with edited_lstm():
    after = {t: loss(CFG, params, t) for t in (20, 40)}
    path = backends.resolve(CFG)
    assert path.layer(40, jnp.float32) is None
    assert "differs from cells.lstm" in backends.summary(path.describe())
    reference = config_lib.replace(
        config_lib.Config(model=CFG), model={"backend": "reference"}
    ).model
    want = {t: loss(reference, params, t) for t in (20, 40)}
  for t in (20, 40):
    assert abs(after[t] - before[t]) > 1e-4, t
    np.testing.assert_allclose(after[t], want[t], rtol=1e-5)
  # Restored, the kernel is taken again.
  assert backends.resolve(CFG).kernel == "fused"


@needs_fused
def test_a_fast_path_asked_for_by_name_refuses_an_edited_cell():
  fused_cfg = ModelConfig(vocab_size=V, hidden=8, scan_impl="fused")
  assert backends.resolve(fused_cfg).kernel == "fused"
  with edited_lstm():
    with pytest.raises(backends.BackendError) as e:
      backends.resolve(fused_cfg)
  assert "\n" not in str(e.value)
  assert "model.scan_impl='fused'" in str(e.value)


def test_a_new_cell_under_a_known_name_gets_no_kernel(monkeypatch):
  """Same math, another function object: the kernel is not keyed to it, so
  it runs the reference scan (and agrees with the kernel's cell)."""
  lstm = cells.CELLS["lstm"]
  copy = lstm._replace(pointwise=lambda *a: lstm.pointwise(*a))
  monkeypatch.setitem(cells.CELLS, "lstm", copy)
  path = backends.resolve(CFG)
  assert path.kernel == ""
  assert copy not in fused.KERNELS
  assert path.layer(64, jnp.float32) is None
  # A partial, or a closure over an array, is checked as well.
  data = jnp.ones(3)
  for fn in (
      functools.partial(lstm.pointwise),
      lambda *a: lstm.pointwise(*a) if data.size else None,
  ):
    monkeypatch.setitem(cells.CELLS, "lstm", lstm._replace(pointwise=fn))
    assert backends.resolve(CFG).scan == "custom_vjp"


def test_a_wrong_derivative_contract_is_caught(monkeypatch):
  """The GRU declared additive: scan's custom_vjp would then return wrong
  gradients; the check finds them and auto takes autodiff."""
  wrong = cells.CELLS["gru"]._replace(additive=True)
  monkeypatch.setitem(cells.CELLS, "gru", wrong)
  cfg = ModelConfig(vocab_size=V, hidden=8, cell="gru")
  path = backends.resolve(cfg)
  assert path.scan == "autodiff"
  assert "custom_vjp differs from autodiff" in backends.summary(path.describe())
  with pytest.raises(backends.BackendError, match="custom_vjp"):
    backends.resolve(
        ModelConfig(vocab_size=V, cell="gru", scan_impl="custom_vjp")
    )


def test_reference_backend_turns_every_fast_path_off():
  cfg = ModelConfig(vocab_size=V, hidden=8, backend="reference")
  path = backends.resolve(cfg)
  assert (path.scan, path.kernel, path.gemm, path.softmax) == (
      "autodiff",
      "",
      "xla",
      "xla",
  )
  assert not path.fold_embedding
  assert backends.time_chunks(path, 100, False) == 1
  assert path.layer(100, jnp.float32) is None
  assert path.softmax_kernel(jnp.float32) is None
  params = models.init_lm(jax.random.key(1), CFG)
  np.testing.assert_allclose(
      loss(cfg, params, 40), loss(CFG, params, 40), rtol=1e-5
  )


def test_reference_backend_refuses_a_fast_path_by_name():
  with pytest.raises(config_lib.ConfigError, match="reference"):
    config_lib.from_dict(
        {"model": {"backend": "reference", "scan_impl": "fused"}}
    )


def test_describe_says_what_runs():
  d = backends.resolve(CFG).describe()
  assert d["backend"] == "auto" and d["cell"] == "lstm"
  assert d["scan"] == "custom_vjp"
  assert d["kernel"] == ("fused (segments >= 32 steps)" if FUSES else "none")
  assert d["gemm"] in ("xla", "mkl")


def test_cells_without_kernels_check_their_custom_vjp():
  diffs = backends.check(cells.CELLS["mingru"], ["custom_vjp"], "xla")
  assert diffs == {"custom_vjp": None}


def test_time_chunks_settings_are_honoured():
  """The auto heuristic is a speed choice (the same function: scan_test);
  an explicit setting and the reference are what they say."""
  path = backends.resolve(ModelConfig(vocab_size=V, hidden=8, time_chunks=3))
  assert backends.time_chunks(path, 100, False) == 3
  assert backends.time_chunks(path, 2, False) == 2
  assert backends.time_chunks(backends.resolve(CFG), 100, True) == 1
