"""The train state and the compiled train step, for any task.

The step knows a task (rnnlm_jax.tasks) only by its loss. Everything a run
needs to continue exactly lives in TrainState: parameters, optimizer state,
the task's carry (the truncated-BPTT state), the step counter and the PRNG
key.
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

from rnnlm_jax import buckets
from rnnlm_jax import optim
from rnnlm_jax.config import ModelConfig
from rnnlm_jax.tasks import lm


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  opt_state: Any
  carry: Any
  key: jax.Array
  # optax reduce_on_plateau state, stepped on the host with the validation
  # loss at each validation; its scale multiplies every update (1 unless the
  # plateau schedule is on).
  plateau: Any
  # {"dropout": rate}: a traced value, so trials may differ in it.
  hparams: Any


def _as_task(task, batch_size: int = 0, loss_reduction: str = "mean"):
  """A task (rnnlm_jax.tasks.Task); a bare ModelConfig stands for its
  language model over ``batch_size`` streams."""
  if isinstance(task, ModelConfig):
    return lm.Model(task, batch_size, loss_reduction)
  return task


def init_train_state(
    key, task, tx, batch_size: int = 0, plateau_tx=None
) -> TrainState:
  """The initial state of a task (or of a ModelConfig's language model over
  ``batch_size`` streams): parameters, optimizer state, carry, step 0."""
  task = _as_task(task, batch_size)
  init_key, state_key = jax.random.split(key)
  params = task.init_params(init_key)
  plateau_tx = plateau_tx or optax.contrib.reduce_on_plateau()
  return TrainState(
      step=jnp.zeros((), jnp.int32),
      params=params,
      opt_state=tx.init(optim.trainable(params)),
      carry=task.init_carry(),
      key=jax.random.key_data(state_key),
      plateau=plateau_tx.init(optim.trainable(params)),
      hparams=task.init_hparams(),
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


def num_segments(batches) -> int:
  """S, the segments of one epoch's batches: the leading axis of its
  arrays, or the length of a bucketed epoch's schedule (rnnlm_jax.buckets)."""
  if buckets.SCHEDULE in batches:
    return batches[buckets.SCHEDULE].shape[0]
  return jax.tree.leaves(batches)[0].shape[0]


def select_segment(batches, step):
  """Segment ``step % S`` of one epoch's batches. Of a bucketed epoch: its
  bucket number ("bucket") and, of every bucket, the batch scheduled (only
  the scheduled bucket's is used: the task's loss switches on "bucket")."""
  index = step % num_segments(batches)
  if buckets.SCHEDULE not in batches:
    return _select(batches, index)
  bucket, within = batches[buckets.SCHEDULE][index]
  return {
      "bucket": bucket,
      "buckets": tuple(
          _select(b, jnp.minimum(within, jax.tree.leaves(b)[0].shape[0] - 1))
          for b in batches["buckets"]
      ),
  }


def switch_buckets(bucket_loss):
  """A task's ``loss(params, carry, batch, key, hparams)`` over a bucketed
  epoch's scheduled batch (select_segment) from ``bucket_loss(params, b,
  key, dropout_rate) -> (objective, sums)`` of one bucket's batch b:
  lax.switch computes only the scheduled bucket's. No carry between
  batches."""

  def loss(params, carry, batch, key, hparams):
    branches = [
        lambda p, bs, k, r, i=i: bucket_loss(p, bs[i], k, r)
        for i in range(len(batch["buckets"]))
    ]
    objective, sums = jax.lax.switch(
        batch["bucket"],
        branches,
        params,
        batch["buckets"],
        key,
        hparams["dropout"],
    )
    return objective, (carry, sums)

  return loss


def make_train_step(task, tx, loss_reduction: str = "mean"):
  """A jitted ``train_step(state, batches) -> (state, metrics)``.

  ``task`` supplies the loss (rnnlm_jax.tasks.Task; a ModelConfig stands for
  its language model, with ``loss_reduction``). ``batches`` holds one epoch
  on the device as arrays [S, B, ...]; the step takes segment
  ``state.step % S``, so no data crosses from the host during an epoch and
  the position in the data is a function of the step. The carry enters each
  segment through stop_gradient: truncated BPTT. The state is donated. The
  metrics are the task's sums for the segment and the gradient's norm.
  """
  task = _as_task(task, loss_reduction=loss_reduction)
  if hasattr(task, "sgd_update"):
    return _make_sparse_train_step(task, tx)
  loss = task.loss
  lr_scaled = bool(getattr(task, "bptt_lengths", ()))

  def train_step(state: TrainState, batches):
    batch = select_segment(batches, state.step)
    key = jax.random.fold_in(jax.random.wrap_key_data(state.key), state.step)
    carry = jax.lax.stop_gradient(state.carry)
    trained = optim.trainable(state.params)
    grads, (new_carry, sums) = jax.grad(
        lambda p: loss(
            optim.with_frozen(p, state.params), carry, batch, key, state.hparams
        ),
        has_aux=True,
    )(trained)
    # A segment's own learning-rate factor (variable-length BPTT), applied
    # after clipping as the rate itself (rnnlm_jax.optim).
    extra = {"lr_scale": task.lr_scale(batch)} if lr_scaled else {}
    updates, opt_state = tx.update(grads, state.opt_state, trained, **extra)
    scale = state.plateau.scale
    params = optim.with_frozen(
        jax.tree.map(lambda p, u: p + scale * u, trained, updates),
        state.params,
    )
    new_state = state.replace(
        step=state.step + 1, params=params, opt_state=opt_state, carry=new_carry
    )
    return new_state, {**sums, "grad_norm": optax.tree.norm(grads)}

  return jax.jit(train_step, donate_argnums=0)


def _make_sparse_train_step(task, tx):
  """make_train_step for a task whose step is plain SGD written sparsely
  (word2vec: ``task.sgd_update(params, batch, key, lr) -> (params,
  sums)`` changes only the rows a batch touches; a dense gradient would
  cost a pass over both tables per step). The learning rate is the run's
  own optax chain applied to a unit gradient: every update allowed here is
  SGD, linear in its gradient (config checks optim.name='sgd', no clipping,
  decay or accumulation), so it gives -lr at this step, and the optimizer
  state (the schedule's count, a trial's injected rate) advances as a dense
  step's would."""

  def train_step(state: TrainState, batches):
    batch = select_segment(batches, state.step)
    key = jax.random.fold_in(jax.random.wrap_key_data(state.key), state.step)
    unit, opt_state = tx.update(jnp.ones((), jnp.float32), state.opt_state)
    lr = -unit * state.plateau.scale
    params, sums = task.sgd_update(state.params, batch, key, lr)
    new_state = state.replace(
        step=state.step + 1, params=params, opt_state=opt_state
    )
    return new_state, sums

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


# The language model's evaluation over a whole split (rnnlm_jax.tasks.lm).
make_evaluate = lm.make_evaluate
