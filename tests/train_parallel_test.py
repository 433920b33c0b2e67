"""The training loop with train.num_devices: the same losses as one device.

jax fixes its device count when the backend starts, so the check runs this
file as a script in a fresh process with 4 CPU devices.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _train(
    workdir: str, num_devices: int, trials: int, max_steps: int = 0
) -> dict:
  from experiments.configs import smoke
  from rnnlm_jax import config as config_lib
  from rnnlm_jax import train

  c = smoke.get_config()
  c.data.synthetic_sentences = (150, 30, 30)
  c.train.log_every = 5
  c.train.checkpoint_every = 10
  c.train.num_devices = num_devices
  c.train.max_steps = max_steps
  base = config_lib.from_dict(c.to_dict())
  cfgs = [config_lib.replace(base, train={"seed": s}) for s in range(trials)]
  dirs = [os.path.join(workdir, f"t{s}") for s in range(trials)]
  results = train.train_trials(cfgs, dirs, log=lambda s: None)
  losses = []
  for d in dirs:
    with open(os.path.join(d, "metrics.jsonl")) as f:
      losses.append(
          [r.get("train_loss", r.get("valid_loss")) for r in map(json.loads, f)]
      )
  return {"losses": losses, "test_ppl": [r["test_ppl"] for r in results]}


def _same(a, b):
  import numpy as np

  np.testing.assert_allclose(a["losses"], b["losses"], rtol=1e-5)
  np.testing.assert_allclose(a["test_ppl"], b["test_ppl"], rtol=1e-5)


def test_four_devices_train_like_one(tmp_path):
  out = tmp_path / "out.json"
  env = dict(
      os.environ,
      XLA_FLAGS="--xla_force_host_platform_device_count=4",
      JAX_PLATFORMS="cpu",
      PYTHONPATH=str(ROOT),
  )
  proc = subprocess.run(
      [sys.executable, __file__, str(tmp_path), str(out)],
      cwd=ROOT,
      env=env,
      capture_output=True,
      text=True,
      timeout=600,
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  result = json.loads(out.read_text())
  assert result["devices"] == 4
  for name in ("single", "trials"):
    _same(result[name]["mesh"], result[name]["one"])
  # Stopped on 4 devices at step 10 and resumed on one.
  _same(result["resumed"], result["single"]["one"])
  assert "not a multiple of the 4 devices" in result["error"]


if __name__ == "__main__":
  import jax

  workdir, out = sys.argv[1], sys.argv[2]
  result = {"devices": jax.device_count()}
  for name, trials in (("single", 1), ("trials", 2)):
    result[name] = {
        "one": _train(os.path.join(workdir, name, "one"), 1, trials),
        "mesh": _train(os.path.join(workdir, name, "mesh"), -1, trials),
    }
  resumed = os.path.join(workdir, "resumed")
  _train(resumed, -1, 1, max_steps=10)
  result["resumed"] = _train(resumed, 1, 1)

  from experiments.configs import smoke
  from rnnlm_jax import config as config_lib
  from rnnlm_jax import train

  c = smoke.get_config()
  c.data.batch_size = 6
  c.train.num_devices = -1
  try:
    train.train_and_evaluate(
        config_lib.from_dict(c.to_dict()), os.path.join(workdir, "bad")
    )
    result["error"] = ""
  except config_lib.ConfigError as e:
    result["error"] = str(e)
  with open(out, "w") as f:
    json.dump(result, f)
