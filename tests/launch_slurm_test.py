"""The SLURM executor against a real (one-node) cluster: a job array whose
tasks fail once and succeed when retried, states from squeue and exit files.

Skipped without sbatch or without a cluster that answers; start one with

  eval "$(launch/slurm_local_up.sh)"
"""

import json
import os
import shutil
import stat
import subprocess
import sys
import time

import pytest

from launch import sweeps
from tests.launch_test import CYCLE_SWEEP, FAKE_TRAIN, TINY_SWEEP, launch


def _conf_env() -> dict:
  env = dict(os.environ)
  if "SLURM_CONF" not in env and not os.path.exists("/etc/slurm/slurm.conf"):
    # Where launch/slurm_local_up.sh puts it by default.
    guess = os.path.join(
        os.environ.get("TMPDIR", "/tmp"), "rnnlm-slurm", "slurm.conf"
    )
    if os.path.exists(guess):
      env["SLURM_CONF"] = guess
  return env


@pytest.fixture(scope="module")
def slurm_env():
  if shutil.which("sbatch") is None:
    pytest.skip("sbatch not on PATH (apt-get install -y slurm-wlm munge)")
  env = _conf_env()
  try:
    out = subprocess.run(
        ["sinfo", "--noheader", "--format=%T"],
        capture_output=True,
        text=True,
        timeout=20,
        env=env,
    )
  except subprocess.TimeoutExpired:
    pytest.skip("sinfo did not answer: no SLURM cluster up")
  states = out.stdout.split()
  if out.returncode != 0 or not any(
      s.startswith(("idle", "mixed", "alloc")) for s in states
  ):
    pytest.skip(
        'no SLURM cluster up (eval "$(launch/slurm_local_up.sh)"): '
        + (out.stderr.strip() or " ".join(states))
    )
  return env


def _launch(env, *args):
  return launch(*args, env=env)


def _wait(env, args, timeout_s=120):
  deadline = time.time() + timeout_s
  while time.time() < deadline:
    out = _launch(env, *args, "--status")
    if " 0 running" in out.stdout:
      return out.stdout
    time.sleep(1)
  raise AssertionError(f"runs still running after {timeout_s} s:\n{out}")


def test_job_array_fails_once_then_retries(slurm_env, tmp_path):
  fake = tmp_path / "fake_python"
  fake.write_text(FAKE_TRAIN.format(python=sys.executable))
  fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
  sweep = tmp_path / "cycle.py"
  sweep.write_text(CYCLE_SWEEP)
  root = tmp_path / "root"
  args = [
      f"--sweep={sweep}",
      f"--root={root}",
      f"--python={fake}",
      "--executor=slurm",
  ]
  first = _launch(slurm_env, *args, "--slurm_cpus=1", "--slurm_time=5")
  assert first.returncode == 0, first.stdout + first.stderr
  assert "submitted job array" in first.stdout
  assert (root / "slurm").is_dir()
  status = _wait(slurm_env, args)
  assert "3 runs: 1 done, 0 running, 2 failed, 0 pending" in status
  assert "exit 3" in status and "boom" in status

  retry = _launch(slurm_env, *args, "--retry_failed")
  assert retry.returncode == 0, retry.stdout + retry.stderr
  status = _wait(slurm_env, args)
  assert "3 runs: 3 done, 0 running, 0 failed, 0 pending" in status
  assert {
      d.name: (d / "attempts").read_text()
      for d in root.iterdir()
      if (d / "attempts").exists()
  } == {"cell=lstm": "1", "cell=gru": "2", "cell=rnn_tanh": "2"}


def test_real_tiny_sweep_through_slurm(slurm_env, tmp_path):
  sweep = tmp_path / "tiny.py"
  sweep.write_text(TINY_SWEEP)
  args = [f"--sweep={sweep}", f"--root={tmp_path / 'root'}"]
  out = _launch(slurm_env, *args, "--executor=slurm", "--slurm_cpus=1")
  assert out.returncode == 0, out.stdout + out.stderr
  assert "2 runs: 2 done" in _wait(slurm_env, args)
  for name in ["seed=0", "seed=1"]:
    run = tmp_path / "root" / name
    assert json.loads((run / "results.json").read_text())["test_ppl"] > 1
    # results.json comes before the process exits and its task writes this.
    exit_file = run / sweeps.EXIT_FILE
    for _ in range(60):
      if exit_file.exists():
        break
      time.sleep(0.5)
    assert exit_file.read_text() == "0\n"
