"""The train state and the compiled train and evaluation steps.

Everything a run needs to continue exactly lives in TrainState: parameters,
optimizer state, the truncated-BPTT carry, the step counter and the PRNG key.
Per-step randomness is jax.random.fold_in(key, step), so a resumed run draws
the same dropout masks as an uninterrupted one.

Hyperparameters that vectorised trials may vary are data too: the learning
rate and clipping norm in the optimizer state (see rnnlm_jax.optim), the
dropout rate in ``TrainState.hparams``. ``vectorise`` turns a step into one
over K stacked states, one per trial, sharing the batches.
"""

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax

from rnnlm_jax import losses
from rnnlm_jax import models
from rnnlm_jax.config import ModelConfig


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  opt_state: Any
  carry: Any
  key: jax.Array
  # optax reduce_on_plateau state, stepped on the host with the validation
  # loss once per epoch; its scale multiplies every update (1 unless the
  # plateau schedule is on).
  plateau: Any
  # {"dropout": rate}: a traced value, so trials may differ in it.
  hparams: Any


def init_train_state(
    key, cfg: ModelConfig, tx, batch_size: int, plateau_tx=None
) -> TrainState:
  init_key, state_key = jax.random.split(key)
  params = models.init_lm(init_key, cfg)
  plateau_tx = plateau_tx or optax.contrib.reduce_on_plateau()
  return TrainState(
      step=jnp.zeros((), jnp.int32),
      params=params,
      opt_state=tx.init(params),
      carry=models.init_carry(cfg, batch_size),
      key=jax.random.key_data(state_key),
      plateau=plateau_tx.init(params),
      hparams={"dropout": jnp.float32(cfg.dropout)},
  )


def step_plateau(
    state: TrainState, plateau_tx, valid_loss, stacked: bool = False
) -> TrainState:
  """Feeds one validation loss to the plateau schedule (K losses, one per
  trial, to a stacked state)."""

  def update(plateau, value):
    return plateau_tx.update(jnp.zeros(()), plateau, value=value)[1]

  if stacked:
    update = jax.vmap(update)
  plateau = update(state.plateau, jnp.asarray(valid_loss, jnp.float32))
  return state.replace(plateau=plateau)


def _select(batches, index):
  return {
      k: jax.lax.dynamic_index_in_dim(v, index, keepdims=False)
      for k, v in batches.items()
  }


def make_train_step(cfg: ModelConfig, tx, loss_reduction: str = "mean"):
  """A jitted ``train_step(state, batches) -> (state, metrics)``.

  ``batches`` holds one epoch on the device as arrays [S, B, T] ("x", "y",
  "mask", "reset"); the step takes segment ``state.step % S``, so no data
  crosses from the host during an epoch and the position in the data is a
  function of the step. The carry enters each segment through stop_gradient:
  truncated BPTT. The state is donated.
  """

  def train_step(state: TrainState, batches):
    num_segments = batches["x"].shape[0]
    batch = _select(batches, state.step % num_segments)
    key = jax.random.fold_in(jax.random.wrap_key_data(state.key), state.step)
    carry = jax.lax.stop_gradient(state.carry)

    def loss_fn(params):
      nll_BT, new_carry = models.token_nll(
          params,
          cfg,
          carry,
          batch["x"],
          batch["y"],
          batch["reset"],
          key,
          state.hparams["dropout"],
      )
      objective = losses.training_loss(nll_BT, batch["mask"], loss_reduction)
      return objective, (new_carry, losses.masked_sums(nll_BT, batch["mask"]))

    grads, (new_carry, (nll, count)) = jax.grad(loss_fn, has_aux=True)(
        state.params
    )
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    scale = state.plateau.scale
    params = jax.tree.map(lambda p, u: p + scale * u, state.params, updates)
    new_state = state.replace(
        step=state.step + 1, params=params, opt_state=opt_state, carry=new_carry
    )
    grad_norm = optax.tree.norm(grads)
    return new_state, {"nll": nll, "count": count, "grad_norm": grad_norm}

  return jax.jit(train_step, donate_argnums=0)


def vectorise(step_fn, shared_batches: bool = True):
  """``step(states, batches)`` over K trials stacked on a leading axis, as
  one compiled program: ``batches`` are shared (or stacked per trial when
  ``shared_batches`` is False, as for sentence-mode trials with their own
  shuffles); metrics come back as [K] arrays."""
  in_axes = (0, None if shared_batches else 0)
  return jax.jit(jax.vmap(step_fn, in_axes=in_axes), donate_argnums=0)


def stack(trees):
  """K pytrees of equal structure as one with a leading axis of K."""
  return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def unstack(tree, k: int):
  """Trial k of a stacked pytree."""
  return jax.tree.map(lambda x: x[k], tree)


def make_evaluate(cfg: ModelConfig):
  """A jitted ``evaluate(params, carry, batches) -> (nll_sum, count, carry)``.

  Runs every segment of a split in one compiled lax.scan, carrying the state
  across segments; only the forward pass is built.
  """

  def evaluate(params, carry, batches):
    def body(c, batch):
      nll_BT, c = models.token_nll(
          params, cfg, c, batch["x"], batch["y"], batch["reset"]
      )
      return c, losses.masked_sums(nll_BT, batch["mask"])

    carry, (nll_S, count_S) = jax.lax.scan(body, carry, batches)
    return nll_S.sum(), count_S.sum(), carry

  return jax.jit(evaluate)
