"""Data parallelism gives the losses of one device.

jax fixes its device count when the backend starts, so each check runs this
file as a script in a fresh process (``python tests/parallel_test.py ROLE``)
with 8 CPU devices, or as two cooperating processes (gloo collectives over
localhost), and compares the losses and parameters they write with those
of one device (computed by the 8-device process).
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
STEPS = 5
BATCH = 8
OUT_ENV = "PARALLEL_TEST_OUT"
MODELS = {
    # Dropout on: the masks must not depend on how the batch is split.
    "lstm": dict(
        vocab_size=50, hidden=16, num_layers=2, dropout=0.3, cell="lstm"
    ),
    "neural_ngram": dict(
        kind="neural_ngram", vocab_size=50, hidden=16, embed_dim=8, order=3
    ),
}


def _run_steps(model_kwargs: dict, mesh, trials: int = 1) -> dict:
  """Losses and final params of STEPS train steps; mesh None: one device.
  trials > 1: that many seeds as vectorised trials (steps.vectorise)."""
  import jax

  from rnnlm_jax import optim, parallel, steps
  from rnnlm_jax.config import ModelConfig, OptimConfig

  cfg = ModelConfig(**model_kwargs)
  tx, _ = optim.make_optimizer(
      OptimConfig(name="adam", learning_rate=1e-2, clip_norm=1.0), 3, 1
  )
  rng = np.random.default_rng(0)
  x = rng.integers(0, cfg.vocab_size, (3, BATCH, 6), dtype=np.int32)
  batches = {
      "x": x,
      "y": np.roll(x, -1, axis=2),
      "mask": (rng.random(x.shape) < 0.9).astype(np.float32),
      "reset": rng.random(x.shape) < 0.1,
  }
  init = lambda seed: steps.init_train_state(
      jax.random.key(seed), cfg, tx, BATCH
  )
  step_fn = steps.make_train_step(cfg, tx)
  if trials == 1:
    state = init(0)
  else:
    state = steps.stack([init(seed) for seed in range(trials)])
    step_fn = steps.vectorise(step_fn)
  if mesh is None:
    batches = jax.device_put(batches)
  else:
    batches = parallel.shard_batches(batches, mesh)
    state = parallel.shard_state(state, mesh, batch_axis=int(trials > 1))
  step = step_fn.lower(state, batches).compile()
  if jax.process_count() > 1:
    _wait_for_other_processes("compiled")
  out = []
  for _ in range(STEPS):
    state, m = step(state, batches)
    m = parallel.local_replica(m) if mesh is not None else m
    out.extend(np.ravel(np.asarray(m["nll"]) / np.asarray(m["count"])))
  params = state.params
  if mesh is not None:
    params = parallel.local_replica(params)
    carry_sharding = parallel.batch_sharding(mesh, int(trials > 1))
    assert all(
        leaf.sharding.is_equivalent_to(carry_sharding, leaf.ndim)
        for leaf in jax.tree.leaves(state.carry)
    ), "the carry left the batch sharding"
  flat = [np.asarray(p).ravel() for p in jax.tree.leaves(params)]
  return {
      "losses": [float(v) for v in out],
      "params": np.concatenate(flat).tolist(),
  }


def _wait_for_other_processes(name: str) -> None:
  """A barrier of the coordination service (no collective). gloo connects
  the processes at their first collective and gives up after 30 s: on a
  loaded machine one process may still be compiling that long."""
  from jax._src import distributed

  distributed.global_state.client.wait_at_barrier(name, 600_000)


def _worker_devices(num_devices: int) -> None:
  import jax

  jax.config.update("jax_num_cpu_devices", num_devices)
  from rnnlm_jax import parallel

  assert len(jax.devices()) == num_devices, jax.devices()
  mesh = parallel.make_mesh(-1)
  result = {}
  for name, kwargs in MODELS.items():
    result[name] = {
        "one": _run_steps(kwargs, None),
        "mesh": _run_steps(kwargs, mesh),
    }
  result["trials"] = {
      "one": _run_steps(MODELS["lstm"], None, trials=2),
      "mesh": _run_steps(MODELS["lstm"], mesh, trials=2),
  }
  try:
    parallel.shard_batches({"x": np.zeros((1, 12, 2))}, mesh)
  except ValueError as e:
    result["error"] = str(e)
  _emit(result)


def _worker_process(process_id: int, num_processes: int, port: int) -> None:
  import jax

  jax.config.update("jax_num_cpu_devices", 2)
  from rnnlm_jax import parallel

  parallel.initialize_distributed(
      f"127.0.0.1:{port}", num_processes, process_id
  )
  mesh = parallel.make_mesh()
  result = {
      "devices": len(mesh.devices.ravel()),
      "lstm": _run_steps(MODELS["lstm"], mesh),
  }
  _emit(result)


def _emit(result: dict) -> None:
  # A file, not stdout: gloo writes to stdout from C++ and may split lines.
  Path(os.environ[OUT_ENV]).write_text(json.dumps(result))


def _result(proc, out: Path) -> dict:
  if proc.returncode != 0 or not out.exists():
    raise AssertionError(f"worker failed; stderr: {proc.stderr[-3000:]}")
  return json.loads(out.read_text())


def _env(out: Path):
  env = dict(
      os.environ,
      JAX_PLATFORMS="cpu",
      PYTHONPATH=str(ROOT),
      **{OUT_ENV: str(out)},
  )
  env.pop("XLA_FLAGS", None)
  return env


def _same(a: dict, b: dict) -> None:
  np.testing.assert_allclose(a["losses"], b["losses"], rtol=1e-6, atol=1e-6)
  # Adam divides by sqrt(v): where a gradient is near zero, summation-order
  # rounding becomes a visible part of a step (5 steps of lr 1e-2 here).
  np.testing.assert_allclose(a["params"], b["params"], rtol=1e-5, atol=1e-5)


def _worker(out: Path, *args) -> subprocess.Popen:
  return subprocess.Popen(
      [sys.executable, __file__, *map(str, args)],
      stdout=subprocess.DEVNULL,
      stderr=subprocess.PIPE,
      text=True,
      env=_env(out),
  )


def _wait(procs_outs) -> list[dict]:
  try:
    done = [(p, p.communicate(timeout=600)[1]) for p, _ in procs_outs]
  finally:
    for p, _ in procs_outs:
      if p.poll() is None:
        p.kill()
  results = []
  for (p, out), (_, stderr) in zip(procs_outs, done):
    if p.returncode != 0 or not out.exists():
      raise AssertionError(f"{p.args[2:]} failed: {stderr[-3000:]}")
    results.append(json.loads(out.read_text()))
  return results


@pytest.fixture(scope="module")
def eight_devices(tmp_path_factory):
  """The 8-device worker's results; its one-device runs are also the
  reference of the two processes."""
  out = tmp_path_factory.mktemp("devices") / "devices.json"
  (result,) = _wait([(_worker(out, "devices", 8), out)])
  return result


def test_eight_devices_give_the_losses_of_one(eight_devices):
  result = eight_devices
  for name in [*MODELS, "trials"]:
    _same(result[name]["mesh"], result[name]["one"])
  assert len(result["trials"]["one"]["losses"]) == 2 * STEPS
  assert "not a multiple of the 8 devices" in result["error"]


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def test_two_processes_give_the_losses_of_one(eight_devices, tmp_path):
  port = _free_port()
  outs = [tmp_path / f"process{i}.json" for i in range(2)]
  procs = [_worker(outs[i], "process", i, 2, port) for i in range(2)]
  processes = _wait(list(zip(procs, outs)))
  # The same steps on one device (of the 8-device worker's process).
  reference = eight_devices["lstm"]["one"]
  for result in processes:
    assert result["devices"] == 4  # 2 processes x 2 local devices.
    _same(result["lstm"], reference)


if __name__ == "__main__":
  role, *args = sys.argv[1:]
  if role == "devices":
    _worker_devices(int(args[0]))
  elif role == "process":
    _worker_process(*map(int, args))
  else:
    raise SystemExit(f"unknown role {role!r}")
