"""Optimizer wiring: schedules, plateau, accumulation, non-finite skips."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from rnnlm_jax import config as config_lib
from rnnlm_jax import optim
from rnnlm_jax import steps
from rnnlm_jax.config import OptimConfig


def lrs_per_epoch(cfg, steps_per_epoch, epochs):
  _, schedule = optim.make_optimizer(cfg, steps_per_epoch, epochs)
  return [float(schedule(e * steps_per_epoch)) for e in range(epochs)]


def test_epoch_decay_follows_zaremba():
  cfg = OptimConfig(
      learning_rate=1.0,
      schedule="epoch_decay",
      decay_factor=0.5,
      decay_after_epochs=4,
  )
  assert lrs_per_epoch(cfg, 7, 7) == [1, 1, 1, 1, 0.5, 0.25, 0.125]
  _, schedule = optim.make_optimizer(cfg, 7, 7)
  assert float(schedule(4 * 7 - 1)) == 1.0  # Constant within an epoch.


def test_warmup_cosine_peaks_after_warmup():
  cfg = OptimConfig(
      learning_rate=2.0,
      schedule="warmup_cosine",
      warmup_steps=10,
      min_lr_ratio=0.1,
  )
  _, schedule = optim.make_optimizer(cfg, 10, 5)
  assert float(schedule(0)) == 0.0
  assert float(schedule(10)) == pytest.approx(2.0)
  assert float(schedule(50)) == pytest.approx(0.2)


def run_updates(cfg, grads_seq, steps_per_epoch, values=None):
  tx, _ = optim.make_optimizer(cfg, steps_per_epoch, 10)
  params = {"w": jnp.zeros(2)}
  state = tx.init(params)
  update = jax.jit(tx.update)  # One compile, not one per op and step.
  history = []
  for i, g in enumerate(grads_seq):
    value = jnp.float32(1.0 if values is None else values[i])
    updates, state = update(
        {"w": jnp.asarray(g, jnp.float32)}, state, params, value=value
    )
    params = optax.apply_updates(params, updates)
    history.append(np.asarray(params["w"]))
  return history


@pytest.mark.parametrize(
    "patience, want",
    [
        (0, [1.0, 1.0, 0.5, 0.25, 0.25]),
        (1, [1.0, 1.0, 1.0, 0.5, 0.5]),
    ],
)
def test_plateau_follows_the_validation_loss(patience, want):
  cfg = OptimConfig(
      schedule="plateau", plateau_factor=0.5, plateau_patience=patience
  )
  plateau_tx = optim.make_plateau(cfg)
  state = steps.TrainState(
      step=0,
      params={},
      opt_state=(),
      carry=(),
      key=0,
      plateau=plateau_tx.init({}),
      hparams={},
  )
  scales = []
  for valid_loss in [
      2.0,
      1.5,
      1.6,
      1.55,
      1.0,
  ]:  # Improves, stalls twice, improves.
    state = steps.step_plateau(state, plateau_tx, valid_loss)
    scales.append(float(state.plateau.scale))
  assert scales == want


def test_accumulation_applies_the_mean_every_k_steps():
  cfg = OptimConfig(learning_rate=1.0, clip_norm=0.0, grad_accum_steps=3)
  history = run_updates(cfg, [[3.0, 0], [6.0, 0], [0.0, 0], [1.0, 0]], 10)
  assert [h[0] for h in history] == [0.0, 0.0, -3.0, -3.0]


def test_full_batch_is_one_update_per_epoch():
  cfg = OptimConfig(learning_rate=1.0, clip_norm=0.0, grad_accum_steps=-1)
  history = run_updates(cfg, [[1.0, 0]] * 8, steps_per_epoch=4)
  assert [h[0] for h in history] == [0, 0, 0, -1, -1, -1, -1, -2]


@pytest.mark.parametrize("accum", [1, 2])
def test_non_finite_gradients_are_never_applied(accum):
  cfg = OptimConfig(learning_rate=1.0, clip_norm=5.0, grad_accum_steps=accum)
  history = run_updates(cfg, [[np.nan, 1.0]] * 4, 10)
  assert all(np.all(h == 0.0) for h in history)


def test_skip_if_not_finite_is_apply_if_finite():
  # Adam's moments show whether a rejected step left the inner state alone;
  # two bad steps in a row are allowed, the third goes through.
  inner = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(0.1))
  ours = optim.skip_if_not_finite(inner, 2)
  ref = optax.apply_if_finite(inner, 2)
  params = {"a": jnp.ones(3), "b": jnp.ones((2, 2))}
  s_ours, s_ref = ours.init(params), ref.init(params)
  update_ours, update_ref = jax.jit(ours.update), jax.jit(ref.update)
  rows = [1.0, np.nan, 2.0, np.inf, -np.inf, np.nan, 0.5, -3.0]
  for i, x in enumerate(rows):
    grads = {"a": jnp.full(3, x), "b": jnp.full((2, 2), 0.1 * i)}
    u_ours, s_ours = update_ours(grads, s_ours, params)
    u_ref, s_ref = update_ref(grads, s_ref, params)
    jax.tree.map(
        np.testing.assert_array_equal, (u_ours, s_ours), (u_ref, s_ref)
    )
  assert int(s_ours.total_notfinite) == 4


def test_a_gradient_norm_beyond_the_float_range_is_skipped():
  # Finite entries whose global norm overflows float32: the training loop
  # calls that step non-finite, and so does the optimizer.
  tx = optim.skip_if_not_finite(optax.sgd(1.0), 5)
  params = {"w": jnp.zeros(2)}
  updates, state = tx.update({"w": jnp.full(2, 3e38)}, tx.init(params), params)
  np.testing.assert_array_equal(updates["w"], 0.0)
  assert not bool(state.last_finite)


def test_clipping_bounds_the_global_norm():
  cfg = OptimConfig(learning_rate=1.0, clip_norm=1.0)
  (p,) = run_updates(cfg, [[30.0, 40.0]], 10)
  np.testing.assert_allclose(p, [-0.6, -0.8], rtol=1e-6)


def test_sgd_weight_decay_is_l2_added_after_clipping():
  # PyTorch's SGD(weight_decay): p -= lr * (clip(g) + wd * p).
  cfg = OptimConfig(learning_rate=0.5, weight_decay=0.1, clip_norm=1.0)
  tx, _ = optim.make_optimizer(cfg, 1, 1)
  params = {"w": jnp.array([2.0, -4.0])}
  grads = {"w": jnp.array([30.0, 40.0])}  # Norm 50, clipped to [0.6, 0.8].
  updates, _ = tx.update(grads, tx.init(params), params)
  want = -0.5 * (np.array([0.6, 0.8]) + 0.1 * np.array([2.0, -4.0]))
  np.testing.assert_allclose(updates["w"], want, rtol=1e-6)


def test_momentum_weight_decay_enters_the_velocity():
  cfg = OptimConfig(
      name="momentum", learning_rate=1.0, momentum=0.5, weight_decay=0.1,
      clip_norm=0.0,
  )  # fmt: skip
  tx, _ = optim.make_optimizer(cfg, 1, 1)
  params = {"w": jnp.array([1.0])}
  state = tx.init(params)
  v, p = 0.0, 1.0
  update = jax.jit(tx.update)
  for _ in range(3):
    updates, state = update({"w": jnp.zeros(1)}, state, params)
    params = optax.apply_updates(params, updates)
    v = 0.5 * v + 0.1 * p
    p -= v
  np.testing.assert_allclose(params["w"], [p], rtol=1e-6)


@pytest.mark.parametrize("init, decay", [(0.0, 0.0), (0.1, 0.0), (0.0, 0.3)])
def test_adagrad_steps_by_its_accumulated_squares(init, decay):
  """With weight decay, the L2 term decay * param joins the gradient before
  it is squared into the accumulator (PyTorch's Adagrad(weight_decay))."""
  cfg = OptimConfig(
      name="adagrad", learning_rate=0.5, adagrad_init=init, clip_norm=0.0,
      weight_decay=decay,
  )  # fmt: skip
  tx, _ = optim.make_optimizer(cfg, 100, 1)
  params = {"w": jnp.array([1.0, -2.0])}
  state = tx.init(params)
  acc, want = np.full(2, init), np.array([1.0, -2.0])
  update = jax.jit(tx.update)
  for g in ([1e-3, 2.0], [3e-3, -1.0], [0.0, 0.5]):
    g = np.asarray(g)
    total = g + decay * want
    acc += total**2
    want = want - 0.5 * total / np.sqrt(acc + cfg.eps)
    updates, state = update({"w": jnp.asarray(g)}, state, params)
    params = optax.apply_updates(params, updates)
  np.testing.assert_allclose(params["w"], want, rtol=1e-5)


def test_weight_decay_under_adam_is_refused():
  with pytest.raises(config_lib.ConfigError, match="use 'adamw'"):
    config_lib.from_dict({"optim": {"name": "adam", "weight_decay": 0.01}})
  config_lib.from_dict({"optim": {"name": "adam"}})  # No decay: fine.
