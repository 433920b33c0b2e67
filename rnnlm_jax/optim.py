"""Optimizers and learning-rate schedules, all from optax.

The peak learning rate and the clipping norm are held in the optimizer
state (optax.inject_hyperparams), not closed over: trials that differ only
in them share one compiled step and are vmapped over their states
(rnnlm_jax.trials). The schedule's shape is built at learning rate 1 and
scaled by the stored rate, which every optimizer here allows (each update
is linear in its learning rate).

Non-finite gradients never reach the parameters: the update is skipped
(``skip_if_not_finite`` below, or MultiSteps' skip_not_finite under gradient
accumulation) and the training loop stops with the step range at its next
metrics fetch.

optim.weight_decay is decoupled weight decay under adamw (Loshchilov and
Hutter) and L2 regularisation under sgd, momentum and adagrad: weight_decay
* param is added to the (clipped) gradient before the optimizer sees it, as
PyTorch's SGD(weight_decay=...) and Adagrad(weight_decay=...) do (for the
maxent model, the L2 prior of the published log-linear models). adam refuses
it (config.validate): its L2 and decoupled decay differ, and adamw is the
decoupled one.
"""

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from rnnlm_jax.config import OptimConfig

# The key of a parameter dict's arrays that training never updates: built
# from the data with the model (the exact maxent features' index,
# rnnlm_jax.maxent_features), checkpointed and read with the parameters.
FROZEN = "frozen"

# Consecutive non-finite updates tolerated before apply_if_finite gives up;
# the host-side check stops training long before that.
_MAX_BAD_UPDATES = 1_000_000
# Optimizers whose optim.weight_decay is L2 on the gradient (adamw's is
# decoupled and its own; the others refuse it).
L2_OPTIMIZERS = ("sgd", "momentum", "adagrad")


def trainable(params):
  """The parameters the optimizer updates: params without params[FROZEN]."""
  if isinstance(params, dict) and FROZEN in params:
    return {k: v for k, v in params.items() if k != FROZEN}
  return params


def with_frozen(trained, params):
  """``trained`` (a trainable(params) tree) with params' frozen arrays."""
  if isinstance(params, dict) and FROZEN in params:
    return {**trained, FROZEN: params[FROZEN]}
  return trained


def updates_per_epoch(cfg: OptimConfig, steps_per_epoch: int) -> int:
  """Optimizer updates per epoch once gradient accumulation is applied."""
  k = accum_steps(cfg, steps_per_epoch)
  return max(1, steps_per_epoch // k)


def accum_steps(cfg: OptimConfig, steps_per_epoch: int) -> int:
  return steps_per_epoch if cfg.grad_accum_steps == -1 else cfg.grad_accum_steps


def make_schedule(cfg: OptimConfig, steps_per_epoch: int, num_epochs: int):
  """Learning rate as a function of the optimizer's update count."""
  per_epoch = updates_per_epoch(cfg, steps_per_epoch)
  if cfg.schedule in ("constant", "plateau"):  # plateau: see make_plateau.
    return optax.constant_schedule(cfg.learning_rate)
  if cfg.schedule == "epoch_decay":
    # Epoch i (from 0) runs at lr * factor ** max(0, i + 1 - k).
    return optax.exponential_decay(
        cfg.learning_rate,
        transition_steps=per_epoch,
        decay_rate=cfg.decay_factor,
        transition_begin=max(0, cfg.decay_after_epochs - 1) * per_epoch,
        staircase=True,
    )
  if cfg.schedule == "warmup_cosine":
    total = max(per_epoch * num_epochs, cfg.warmup_steps + 1)
    return optax.warmup_cosine_decay_schedule(
        0.0,
        cfg.learning_rate,
        cfg.warmup_steps,
        total,
        end_value=cfg.learning_rate * cfg.min_lr_ratio,
    )
  if cfg.schedule == "linear":
    # word2vec's: from the peak down to lr * min_lr_ratio over the run.
    return optax.linear_schedule(
        cfg.learning_rate,
        cfg.learning_rate * cfg.min_lr_ratio,
        max(per_epoch * num_epochs, 1),
    )
  raise ValueError(f"unknown schedule {cfg.schedule!r}")


def _base(cfg: OptimConfig, lr):
  if cfg.name == "sgd":
    return optax.sgd(lr)
  if cfg.name == "momentum":
    return optax.sgd(lr, momentum=cfg.momentum)
  if cfg.name == "adagrad":
    # The classic choice for sparse features (maxent): a feature's rate
    # shrinks only with its own gradients.
    return optax.adagrad(
        lr, initial_accumulator_value=cfg.adagrad_init, eps=cfg.eps
    )
  if cfg.name == "adam":
    return optax.adam(lr, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps)
  if cfg.name == "adamw":
    return optax.adamw(
        lr, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps, weight_decay=cfg.weight_decay
    )
  raise ValueError(f"unknown optimizer {cfg.name!r}")


def skip_if_not_finite(inner, max_consecutive_errors: int):
  """optax.apply_if_finite's rule and state, decided by a select.

  An update whose gradient has a non-finite global norm (a NaN or an
  infinity in it, or a norm beyond the float range: the training loop's own
  test of a step) is replaced by zeros and leaves the inner state as it
  was, until more than ``max_consecutive_errors`` come in a row. The state
  is optax.ApplyIfFiniteState, so checkpoints are those of apply_if_finite.
  optax chooses with lax.cond, whose branches XLA:CPU cannot fuse into the
  parameter update; this select measured about three times faster at
  Zaremba medium (docs/performance.md).
  """
  inner = optax.with_extra_args_support(inner)
  wrapped = optax.apply_if_finite(inner, max_consecutive_errors)

  def update(updates, state, params=None, **extra_args):
    finite = jnp.isfinite(optax.tree.norm(updates))
    bad_run = jnp.where(
        finite, 0, optax.safe_int32_increment(state.notfinite_count)
    )
    take = finite | (bad_run > max_consecutive_errors)
    new_updates, new_inner = inner.update(
        updates, state.inner_state, params, **extra_args
    )
    keep = lambda new, old: jnp.where(take, new, old)
    zeroed = lambda u: keep(u, jnp.zeros_like(u))
    return jax.tree.map(zeroed, new_updates), optax.ApplyIfFiniteState(
        notfinite_count=bad_run,
        last_finite=finite,
        total_notfinite=jnp.where(
            finite,
            state.total_notfinite,
            optax.safe_int32_increment(state.total_notfinite),
        ),
        inner_state=jax.tree.map(keep, new_inner, state.inner_state),
    )

  return optax.GradientTransformationExtraArgs(wrapped.init, update)


def scale_by_lr_scale():
  """Multiplies the updates by the extra argument ``lr_scale`` of each
  update (a segment's learning-rate factor under variable-length BPTT)."""

  def update(updates, state, params=None, *, lr_scale=1.0, **extra_args):
    del params, extra_args
    return jax.tree.map(lambda u: u * lr_scale, updates), state

  return optax.GradientTransformationExtraArgs(
      lambda params: optax.EmptyState(), update
  )


class AverageState(NamedTuple):
  """Iterate averaging (average_iterates): whether it is on, how many
  iterates the average holds, and the average (shaped as the parameters)."""

  averaging: jax.Array
  average_count: jax.Array
  average: Any


def average_iterates(start_on: bool):
  """The last transformation of a chain: passes the updates through and
  keeps the running mean of the iterates params + updates made while its
  ``averaging`` flag is on (set at the start for ``start_on``, else by
  start_averaging). The first iterate after the flag goes up replaces the
  average: averaged SGD from that point (PyTorch's ASGD with t0=0 and
  lambd=0, which AWD-LSTM's NT-ASGD uses)."""

  def init(params):
    return AverageState(
        averaging=jnp.asarray(start_on),
        average_count=jnp.zeros((), jnp.int32),
        average=jax.tree.map(jnp.array, params),
    )

  def update(updates, state, params=None):
    count = state.average_count + state.averaging.astype(jnp.int32)
    weight = jnp.where(state.averaging, 1.0 / jnp.maximum(count, 1), 0.0)

    def mean(a, p, u):
      return a + weight.astype(a.dtype) * (p + u - a)

    average = jax.tree.map(mean, state.average, params, updates)
    return updates, AverageState(state.averaging, count, average)

  return optax.GradientTransformation(init, update)


def _average_state(opt_state) -> AverageState | None:
  is_average = lambda x: isinstance(x, AverageState)
  found = jax.tree.leaves(opt_state, is_leaf=is_average)
  return next((x for x in found if is_average(x)), None)


def is_averaging(opt_state):
  """The averaging flag (one per trial of stacked states), or None for an
  optimizer without averaging."""
  state = _average_state(opt_state)
  return None if state is None else state.averaging


def start_averaging(opt_state, which):
  """The optimizer state with averaging switched on where ``which`` (a
  bool, or [K] bools over stacked trials) is true; the next update starts
  the average afresh there."""

  def switch(x):
    if not isinstance(x, AverageState):
      return x
    on = jnp.asarray(which, bool).reshape(x.averaging.shape)
    return x._replace(
        averaging=x.averaging | on,
        average_count=jnp.where(on & ~x.averaging, 0, x.average_count),
    )

  return jax.tree.map(
      switch, opt_state, is_leaf=lambda x: isinstance(x, AverageState)
  )


def eval_params(params, opt_state):
  """The parameters to validate, keep as 'best' and report: the average of
  the iterates where averaging is on (and holds an iterate), else
  ``params``. Stacked trials choose each their own."""
  state = _average_state(opt_state)
  if state is None:
    return params
  use = state.averaging & (state.average_count > 0)

  def pick(a, p):
    return jnp.where(use.reshape(use.shape + (1,) * (p.ndim - use.ndim)), a, p)

  return with_frozen(
      jax.tree.map(pick, state.average, trainable(params)), params
  )


def make_optimizer(
    cfg: OptimConfig,
    steps_per_epoch: int,
    num_epochs: int,
    lr_scaled: bool = False,
):
  """The full gradient transformation and its learning-rate schedule.

  Gradient accumulation (optax.MultiSteps) turns one update into the mean of
  k micro-batch gradients: grad_accum_steps=1 with batch size 1 is online
  SGD, 1 with batch B is minibatch SGD, and -1 is full-batch gradient descent
  (one update per epoch).

  Args:
    cfg: the optimizer config.
    steps_per_epoch: train steps per epoch.
    num_epochs: epochs (for schedules that need the total).
    lr_scaled: each update takes an extra argument ``lr_scale`` that
      multiplies the learning rate (variable-length BPTT).

  Returns:
    (optax.GradientTransformationExtraArgs, schedule(update_count) -> lr).
  """
  unit = make_schedule(
      dataclasses.replace(cfg, learning_rate=1.0), steps_per_epoch, num_epochs
  )
  # Clipping is always in the chain, at an infinite norm (which leaves the
  # gradients exactly as they are) for clip_norm 0: every run's optimizer
  # state has one structure, so a trial's checkpoint resumes alone and a
  # lone run's joins a group.
  clip_norm = cfg.clip_norm if cfg.clip_norm > 0 else float("inf")
  parts = [
      optax.inject_hyperparams(optax.clip_by_global_norm)(max_norm=clip_norm)
  ]
  if cfg.weight_decay and cfg.name in L2_OPTIMIZERS:
    parts.append(optax.add_decayed_weights(cfg.weight_decay))
  tail = [scale_by_lr_scale()] if lr_scaled else []
  if cfg.averaging != "none":
    tail.append(average_iterates(cfg.averaging == "always"))
  tx = optax.chain(
      *parts,
      _base(cfg, unit),
      optax.inject_hyperparams(optax.scale)(step_size=cfg.learning_rate),
      *tail,
  )
  schedule = lambda count: cfg.learning_rate * unit(count)
  k = accum_steps(cfg, steps_per_epoch)
  if k > 1:
    tx = optax.MultiSteps(
        tx, every_k_schedule=k, should_skip_update_fn=optax.skip_not_finite
    )
    return optax.with_extra_args_support(tx.gradient_transformation()), schedule
  return (
      skip_if_not_finite(tx, _MAX_BAD_UPDATES),
      schedule,
  )


def make_plateau(cfg: OptimConfig):
  """optax's reduce_on_plateau, stepped at each validation with the validation
  loss; its ``scale`` multiplies every update. With another schedule the
  scale stays 1 (the transformation is never stepped)."""
  return optax.contrib.reduce_on_plateau(
      factor=cfg.plateau_factor, patience=cfg.plateau_patience + 1
  )
