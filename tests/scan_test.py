"""The fast paths against their references: the hand-written scan backward
against autodiff of the plain lax.scan, rematerialised chunks against one
scan, and the fused softmax loss against losses.token_nll of the logits.

Tight checks run in float64 (jax.enable_x64): the implementations differ
only in the order of floating-point sums.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnnlm_jax import backends
from rnnlm_jax import cells
from rnnlm_jax import config as config_lib
from rnnlm_jax import losses
from rnnlm_jax import models
from rnnlm_jax import scan
from rnnlm_jax.config import ModelConfig

B, I, H, T = 3, 5, 4, 7
V = 11


@pytest.fixture(autouse=True)
def _release_compiled_code():
  """Drops this module's compiled functions after each test. XLA:CPU maps
  each executable's code into memory (about six mappings apiece); this
  module alone compiles enough to approach the kernel's per-process limit
  (vm.max_map_count, 65,530 by default; 52,000 mappings were seen), and the
  whole suite in one process crossed it here, crashing a compile."""
  yield
  jax.clear_caches()


def f64(tree):
  return jax.tree.map(
      lambda a: a.astype(jnp.float64) if a.dtype == jnp.float32 else a, tree
  )


def setup(name, seed=0):
  cell = PEEPHOLE if name == "peephole" else cells.get_cell(name)
  k = jax.random.split(jax.random.key(seed), 5)
  layers = [
      cells.init_params(cell, k[0], I, H, scale=0.5),
      cells.init_params(cell, k[1], H, H, scale=0.5),
  ]
  carries = tuple(
      tuple(
          jax.random.normal(kk, (B, H))
          for kk in jax.random.split(kl, cell.carry_arity)
      )
      for kl in jax.random.split(k[2], 2)
  )
  x_TBI = jax.random.normal(k[3], (T, B, I))
  reset_TB = jax.random.bernoulli(k[4], 0.3, (T, B))
  return cell, layers, carries, x_TBI, reset_TB


def stack_loss(cell, reset_TB, reverse, impl, remat_chunk):
  """A scalar that depends on every output and every final carry."""

  def loss(layers, carries, x_TBI):
    h = x_TBI
    finals = []
    for params, carry in zip(layers, carries):
      carry, h = scan.run_layer(
          cell,
          params,
          carry,
          h,
          reset_TB,
          reverse=reverse,
          impl=impl,
          remat_chunk=remat_chunk,
      )
      finals.append(carry)
    out = jnp.sum(jnp.sin(h) * jnp.arange(1, H + 1))
    return out + sum(jnp.sum(jnp.cos(a)) for a in jax.tree.leaves(finals))

  return loss


def assert_trees_close(a, b, rtol=1e-10, atol=1e-12):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_allclose(x, y, rtol=rtol, atol=atol)


# (impl, remat_chunk) against the autodiff reference without remat; chunks
# of 3 do not divide T = 7, so a remainder chunk is exercised too.
VARIANTS = [("custom_vjp", 0), ("autodiff", 3), ("custom_vjp", 3)]


def _peephole_pointwise(params, xw_gates, hw_gates, carry):
  """An LSTM whose input and forget gates also see c (peepholes): a cell
  with parameters of its own in its elementwise part."""
  _, c = carry
  i, f, g, o = (x + h for x, h in zip(xw_gates, hw_gates))
  p_i, p_f = params["w_peep"]
  c = jax.nn.sigmoid(f + p_f * c) * c + jax.nn.sigmoid(i + p_i * c) * jnp.tanh(
      g
  )
  h = jax.nn.sigmoid(o) * jnp.tanh(c)
  return (h, c), h


PEEPHOLE = cells.Cell(
    "peephole",
    4,
    2,
    _peephole_pointwise,
    additive=False,
    extra_params=lambda h: {"w_peep": (2, h)},
)


# Every cell runs with resets in both directions (its own pointwise code);
# the scan's handling of reverse and reset is the same for every cell, so
# the case without resets runs for one cell of each carry arity, one
# direction each.
SCAN_CASES = [
    (name, reverse, True)
    for name in sorted(cells.CELLS) + ["peephole"]
    for reverse in (False, True)
] + [("lstm", False, False), ("gru", True, False)]


@pytest.mark.parametrize("name, reverse, with_reset", SCAN_CASES)
def test_fast_paths_equal_autodiff_of_plain_scan(name, reverse, with_reset):
  with jax.enable_x64(True):
    cell, layers, carries, x_TBI, reset_TB = setup(name)
    if name == "peephole":
      assert "w_peep" in layers[0]
    layers, carries, x_TBI = f64((layers, carries, x_TBI))
    reset_TB = reset_TB if with_reset else None
    ref = stack_loss(cell, reset_TB, reverse, "autodiff", 0)
    want = jax.jit(jax.value_and_grad(ref, argnums=(0, 1, 2)))(
        layers, carries, x_TBI
    )
    for impl, chunk in VARIANTS:
      fast = stack_loss(cell, reset_TB, reverse, impl, chunk)
      got = jax.jit(jax.value_and_grad(fast, argnums=(0, 1, 2)))(
          layers, carries, x_TBI
      )
      assert_trees_close(got, want)


@pytest.mark.parametrize("name", ["lstm", "gru", "rnn_tanh", "mingru"])
def test_fast_paths_equal_in_float32(name):
  cell, layers, carries, x_TBI, reset_TB = setup(name, seed=1)
  ref = stack_loss(cell, reset_TB, False, "autodiff", 0)
  want = jax.jit(jax.grad(ref, argnums=(0, 1, 2)))(layers, carries, x_TBI)
  for impl, chunk in VARIANTS:
    fast = stack_loss(cell, reset_TB, False, impl, chunk)
    got = jax.jit(jax.grad(fast, argnums=(0, 1, 2)))(layers, carries, x_TBI)
    assert_trees_close(got, want, rtol=1e-5, atol=1e-6)


def test_custom_vjp_under_vmap_equals_each_item():
  """Vectorised trials vmap the train step: the custom VJP must batch."""
  cell, layers, carries, x_TBI, reset_TB = setup("lstm", seed=2)
  grad = jax.jit(jax.grad(stack_loss(cell, reset_TB, False, "custom_vjp", 0)))
  scales = jnp.array([0.5, 1.0, 1.5])
  stacked = jax.tree.map(
      lambda a: a * scales.reshape((3,) + (1,) * a.ndim), layers
  )
  got = jax.jit(jax.vmap(grad, in_axes=(0, None, None)))(
      stacked, carries, x_TBI
  )
  for k in range(3):
    one = grad(jax.tree.map(lambda a: a[k], stacked), carries, x_TBI)
    assert_trees_close(jax.tree.map(lambda a: a[k], got), one, 1e-5, 1e-6)


@pytest.mark.parametrize("remat_chunk", [0, 2])
def test_time_chunks_equal_one_pass(remat_chunk):
  """run_stack in 3 (uneven) or T chunks against one pass:
  outputs, final carries and every gradient, with resets, and with a
  ``between`` that depends on the absolute time step it is given."""
  scale_T = 1.0 + 0.1 * jnp.arange(T)

  def between(l, h, steps):
    return h * scale_T[steps][:, None, None] + l

  def loss(chunks):
    def f(layers, carries, x_TBI):
      finals, h = scan.run_stack(
          cell,
          layers,
          carries,
          x_TBI,
          reset_TB,
          between=between,
          remat_chunk=remat_chunk,
          time_chunks=chunks,
      )
      out = jnp.sum(jnp.sin(h) * jnp.arange(1, H + 1))
      weights = jnp.arange(1.0, T + 1)[:, None, None]
      out = out + jnp.sum(jnp.cos(h) * weights)
      return out + sum(jnp.sum(jnp.cos(a)) for a in jax.tree.leaves(finals))

    return jax.jit(jax.value_and_grad(f, argnums=(0, 1, 2)))

  with jax.enable_x64(True):
    # A carry of two arrays and one of one (the Elman cells' is the GRU's).
    for name in ("lstm", "gru"):
      cell, layers, carries, x_TBI, reset_TB = setup(name, seed=3)
      args = f64((layers, carries, x_TBI))
      want = loss(1)(*args)
      for chunks in (3, T):
        assert_trees_close(loss(chunks)(*args), want)


def test_unknown_impl_is_a_clear_error():
  cell, layers, carries, x_TBI, _ = setup("gru")
  with pytest.raises(ValueError, match="unknown scan impl 'fast'"):
    scan.run_layer(cell, layers[0], carries[0], x_TBI, impl="fast")


def tiny(**kw):
  kw = {"embed_dim": I, **kw}
  return ModelConfig(
      cell="lstm", vocab_size=V, hidden=H, num_layers=2, init_scale=0.4, **kw
  )


@pytest.mark.parametrize("tie", [False, True])
def test_fused_token_nll_equals_loss_of_logits(tie):
  cfg = tiny(embed_dim=H if tie else I, tie_weights=tie, dropout=0.3)
  k = jax.random.split(jax.random.key(3), 4)
  x, y = (jax.random.randint(kk, (B, T), 0, V) for kk in k[:2])
  reset = jax.random.bernoulli(k[2], 0.2, (B, T))

  def fused(params):
    nll, carry = models.token_nll(
        params, cfg, f64(models.init_carry(cfg, B)), x, y, reset, k[3]
    )
    return (nll * jnp.arange(1.0, T + 1)).sum(), (nll, carry)

  def reference(params):
    logits, carry = models.apply_lm(
        params, cfg, f64(models.init_carry(cfg, B)), x, reset, k[3]
    )
    nll = losses.token_nll(logits, y)
    return (nll * jnp.arange(1.0, T + 1)).sum(), (nll, carry)

  with jax.enable_x64(True):
    params = f64(models.init_lm(jax.random.key(4), cfg))
    got = jax.jit(jax.value_and_grad(fused, has_aux=True))(params)
    want = jax.jit(jax.value_and_grad(reference, has_aux=True))(params)
    assert_trees_close(got, want)


def test_config_rejects_unknown_impl_and_negative_chunk():
  with pytest.raises(config_lib.ConfigError, match="model.scan_impl"):
    config_lib.from_dict({"model": {"scan_impl": "fast"}})
  with pytest.raises(config_lib.ConfigError, match="model.remat_chunk"):
    config_lib.from_dict({"model": {"remat_chunk": -1}})
  with pytest.raises(config_lib.ConfigError, match="model.backend"):
    config_lib.from_dict({"model": {"backend": "fast"}})
  with pytest.raises(config_lib.ConfigError, match="model.time_chunks"):
    config_lib.from_dict({"model": {"time_chunks": -1}})


def folds(cfg, tokens, use_dropout):
  path = backends.resolve(cfg)
  return models._folds_embedding(path, cfg, tokens, use_dropout)


def test_folded_embedding_equals_projecting_every_position():
  """V = 11 <= B * T = 21: layer 0 gathers rows of embed @ w_ih."""
  on, off = (tiny(fold_embedding=fold) for fold in (True, False))
  assert folds(on, B * T, use_dropout=False)
  assert not folds(off, B * T, use_dropout=False)
  assert not folds(tiny(backend="reference"), B * T, use_dropout=False)
  k = jax.random.split(jax.random.key(7), 3)
  x, y = (jax.random.randint(kk, (B, T), 0, V) for kk in k[:2])
  reset = jax.random.bernoulli(k[2], 0.2, (B, T))

  def loss(cfg):
    def f(params):
      nll, carry = models.token_nll(
          params, cfg, f64(models.init_carry(cfg, B)), x, y, reset
      )
      finals = sum(jnp.sum(jnp.cos(a)) for a in jax.tree.leaves(carry))
      return (nll * jnp.arange(1.0, T + 1)).sum() + finals

    return f

  with jax.enable_x64(True):
    params = f64(models.init_lm(jax.random.key(8), on))
    got = jax.jit(jax.value_and_grad(loss(on)))(params)
    want = jax.jit(jax.value_and_grad(loss(off)))(params)
    assert_trees_close(got, want)


def test_embedding_is_not_folded_where_it_costs_more():
  cfg = tiny()
  assert not folds(cfg, V - 1, use_dropout=False)
  assert not folds(cfg, B * T, use_dropout=True)
  assert not folds(tiny(remat_chunk=3), B * T, use_dropout=False)
