"""Data parallelism across devices with jax.sharding.

A 1-D mesh over the devices with one axis, "data". The batch (the B streams
of truncated BPTT) is split along it, the carry with it (stream b's state
lives where stream b's tokens are), and parameters, optimizer state, step,
key and plateau state are replicated. The compiled train step of
rnnlm_jax.steps then runs SPMD unchanged: jit follows the shardings of its
arguments, and the loss's mean over the batch becomes a cross-device sum
that XLA inserts. One device and N devices give the same losses up to the
order of floating-point summation (tested).

  mesh = parallel.make_mesh()                       # all devices
  batches = parallel.shard_batches(batches, mesh)   # [S, B, T], B split
  state = parallel.shard_state(state, mesh)
  train_step = steps.make_train_step(cfg, tx).lower(state, batches).compile()

B must be a multiple of the number of devices. Vectorised trials
(steps.vectorise, K states stacked on a leading axis) shard the same way,
with ``batch_axis=1`` for the state.

Multi-host (several processes, each with its local devices): every process
runs the same program on the same data (the data pipeline is deterministic
from the config's seed), after

  jax.distributed.initialize(
      coordinator_address="HOST:PORT",  # process 0's address, any free port
      num_processes=N,
      process_id=i,                      # 0 .. N-1, one per process
  )

(on clusters that jax knows, SLURM or Open MPI, the three arguments can be
left out; elsewhere they can come from the environment as
JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID, which
``initialize_distributed`` below reads). On CPU the cross-process
collectives need ``jax.config.update("jax_cpu_collectives_implementation",
"gloo")`` before the backend starts; ``initialize_distributed`` does it.
``make_mesh`` then spans the devices of all processes, and ``shard_batches``
and ``shard_state`` build global arrays of which each process holds only its
own devices' part. Metrics and parameters come back replicated; read them
with ``local_replica``.
"""

import os
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"

_ENV = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")


def initialize_distributed(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> None:
  """jax.distributed.initialize, with arguments from the environment
  (JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID) when not
  given, and gloo collectives on CPU. Call before any other jax call."""
  env = {k: os.environ.get(k) for k in _ENV}
  coordinator_address = coordinator_address or env[_ENV[0]]
  if num_processes is None and env[_ENV[1]]:
    num_processes = int(env[_ENV[1]])
  if process_id is None and env[_ENV[2]]:
    process_id = int(env[_ENV[2]])
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(
      coordinator_address=coordinator_address,
      num_processes=num_processes,
      process_id=process_id,
  )


def make_mesh(num_devices: int | None = None) -> Mesh:
  """A 1-D mesh with axis "data" over the first ``num_devices`` devices
  (None or -1: all of them, across processes)."""
  devices = jax.devices()
  if num_devices is None or num_devices == -1:
    num_devices = len(devices)
  if not 1 <= num_devices <= len(devices):
    raise ValueError(
        f"num_devices={num_devices} but there are {len(devices)} devices "
        f"(use -1 for all)"
    )
  return Mesh(np.array(devices[:num_devices]), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh, axis: int) -> NamedSharding:
  """Sharding that splits array axis ``axis`` along the mesh's data axis."""
  return NamedSharding(mesh, P(*([None] * axis), DATA_AXIS))


def check_batch(batch_size: int, mesh: Mesh) -> None:
  n = mesh.devices.size
  if batch_size % n:
    raise ValueError(
        f"batch size {batch_size} is not a multiple of the {n} devices of "
        f"the mesh: choose a batch size divisible by {n}"
    )


def _put(x, sharding: NamedSharding) -> jax.Array:
  """A global array with ``sharding`` from a value every process holds in
  full (a host array, or a jax array on this process's devices)."""
  if jax.process_count() == 1:
    return jax.device_put(x, sharding)
  x = np.asarray(x)
  return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])


def shard_batches(batches: dict, mesh: Mesh) -> dict:
  """Splits an epoch's batches (arrays [S, B, T], or [K, S, B, T] stacked
  per trial) along B over the mesh.

  Every process passes the same full arrays; each keeps its devices' part.
  """
  out = {}
  for k, v in batches.items():
    check_batch(v.shape[-2], mesh)
    out[k] = _put(v, batch_sharding(mesh, v.ndim - 2))
  return out


def shard_carry(carry: Any, mesh: Mesh, batch_axis: int = 0) -> Any:
  """Splits every carry leaf along its batch axis: the [B, H] states of the
  recurrent models and the [B, n-1] windows of the window models alike
  (batch_axis 1 for the [K, B, ...] carries of stacked trials)."""
  for leaf in jax.tree.leaves(carry):
    check_batch(leaf.shape[batch_axis], mesh)
  sharding = batch_sharding(mesh, batch_axis)
  return jax.tree.map(lambda x: _put(x, sharding), carry)


def replicate(tree: Any, mesh: Mesh) -> Any:
  return jax.tree.map(lambda x: _put(x, replicated(mesh)), tree)


def shard_state(state, mesh: Mesh, batch_axis: int = 0):
  """A steps.TrainState laid out for data parallelism: the carry split along
  the batch, everything else replicated. batch_axis: as in shard_carry (1
  for K trials stacked by steps.stack)."""
  carry = shard_carry(state.carry, mesh, batch_axis)
  rest = replicate(state.replace(carry=()), mesh)
  return rest.replace(carry=carry)


def local_replica(tree: Any) -> Any:
  """Each replicated leaf as an array on one local device (its first
  addressable copy): what single-device code (evaluation, checkpoints,
  printing) can use in every process."""

  def one(x):
    if not isinstance(x, jax.Array) or not x.is_fully_replicated:
      raise ValueError("local_replica takes replicated arrays only")
    return x.addressable_shards[0].data

  return jax.tree.map(one, tree)
