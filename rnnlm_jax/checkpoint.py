"""Checkpoints: the only module that touches orbax.

A run directory keeps two checkpoint slots, each holding one checkpoint:
``checkpoints/latest`` (written every few hundred steps and at epoch ends, to
resume from) and ``checkpoints/best`` (the lowest validation loss so far).
Orbax writes each checkpoint into a temporary folder and renames it when
complete, so a run killed mid-write leaves the previous checkpoint intact.
Each checkpoint holds the whole TrainState (params, optimizer state, carry,
step, key) and a JSON record (data position, vocabulary, metrics).
"""

import os
from typing import Any

import jax
import orbax.checkpoint as ocp

SLOTS = ("latest", "best")


class CheckpointError(OSError):
  """A checkpoint that cannot be read back into the given structure: from
  another version's train state, or damaged on disk."""


def _reason(e: BaseException) -> str:
  """The first line of the innermost error (orbax and tensorstore wrap the
  useful one), at most 300 characters."""
  while (e.__cause__ or e.__context__) is not None:
    e = e.__cause__ or e.__context__
  text = str(e).strip()
  return (text.splitlines()[0] if text else type(e).__name__)[:300]


def _has_steps(workdir: str, slot: str) -> bool:
  """Whether a slot holds a step's folder. Reading asks this before making
  orbax's manager, which on a missing or empty slot starts a thread that
  can outlive an exiting interpreter (and creates the folder)."""
  path = os.path.join(workdir, "checkpoints", slot)
  return os.path.isdir(path) and any(n.isdigit() for n in os.listdir(path))


def _check_slot(workdir: str, slot: str) -> None:
  if not _has_steps(workdir, slot):
    raise FileNotFoundError(f"no {slot!r} checkpoint in {workdir}")


def _restore(mngr, step: int, args) -> Any:
  try:
    return mngr.restore(step, args=args)
  except Exception as e:  # pylint: disable=broad-except
    raise CheckpointError(
        f"{mngr.directory}/{step}: {_reason(e)}"
    ) from e


def _manager(workdir: str, slot: str, keep: int = 1) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(
      max_to_keep=keep,
      create=True,
      enable_async_checkpointing=False,
      cleanup_tmp_directories=True,
  )
  path = os.path.join(os.path.abspath(workdir), "checkpoints", slot)
  return ocp.CheckpointManager(path, options=options)


def save(
    workdir: str, slot: str, state: Any, record: dict, keep: int = 1
) -> None:
  """Writes ``state`` and the JSON-able ``record`` to a slot, atomically,
  keeping the ``keep`` newest checkpoints of the slot.

  A checkpoint already there at the same step is kept: a run resumed from
  an earlier 'latest' recomputes, exactly, what it had saved before it was
  killed (a 'best' written just before the kill, say), and keeping it
  leaves the slot whole at every moment.
  """
  step = int(jax.device_get(state.step))
  with _manager(workdir, slot, keep) as mngr:
    if step in mngr.all_steps():
      return
    mngr.save(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardSave(state), record=ocp.args.JsonSave(record)
        ),
        force=True,
    )
    mngr.wait_until_finished()


def latest_step(workdir: str, slot: str) -> int | None:
  if not _has_steps(workdir, slot):
    return None
  with _manager(workdir, slot) as mngr:
    return mngr.latest_step()


def all_steps(workdir: str, slot: str) -> list[int]:
  if not _has_steps(workdir, slot):
    return []
  with _manager(workdir, slot) as mngr:
    return sorted(mngr.all_steps())


def restore(
    workdir: str, slot: str, target: Any, step: int | None = None
) -> tuple[Any, dict]:
  """Restores (state, record) from a slot, at ``step`` or the newest;
  ``target`` gives the structure."""
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
  _check_slot(workdir, slot)
  with _manager(workdir, slot) as mngr:
    step = mngr.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"no {slot!r} checkpoint in {workdir}")
    restored = _restore(
        mngr,
        step,
        ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract),
            record=ocp.args.JsonRestore(),
        ),
    )
  return restored["state"], restored["record"]


def restore_params(workdir: str, slot: str) -> tuple[Any, dict]:
  """(params, record) of a slot, whatever optimizer the run used: the
  parameters come back as the nested dicts and lists they were saved as."""
  _check_slot(workdir, slot)
  with _manager(workdir, slot) as mngr:
    step = mngr.latest_step()
    if step is None:
      raise FileNotFoundError(f"no {slot!r} checkpoint in {workdir}")
    restored = _restore(
        mngr,
        step,
        ocp.args.Composite(
            state=ocp.args.StandardRestore(), record=ocp.args.JsonRestore()
        ),
    )
  return restored["state"]["params"], restored["record"]
