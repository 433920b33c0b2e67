"""experiments.gemm end to end on tiny shapes (rates present and positive,
not asserted), with PyTorch where TORCH_PYTHON names an interpreter that
imports it, and its one-line errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(*flags, torch_python=None):
  env = dict(os.environ)
  env.pop("TORCH_PYTHON", None)
  if torch_python:
    env["TORCH_PYTHON"] = torch_python
  return subprocess.run(
      [sys.executable, "-m", "experiments.gemm", *flags],
      cwd=ROOT,
      capture_output=True,
      text=True,
      timeout=300,
      env=env,
  )


def test_xla_rates_without_torch(tmp_path):
  out = tmp_path / "gemm.json"
  proc = _run("--shapes=8x16x32,3x5x7", "--calls=2", f"--out={out}")
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert "torch skipped: no interpreter with torch" in proc.stdout
  assert "| 8x16x32 |" in proc.stdout and "| 3x5x7 |" in proc.stdout
  rep = json.loads(out.read_text())
  assert [r["shape"] for r in rep["rows"]] == ["8x16x32", "3x5x7"]
  assert all(r["xla_flops"] > 0 and "torch_flops" not in r for r in rep["rows"])
  assert rep["torch_skipped"]


def test_torch_rates_beside_xla(tmp_path, torch_python):
  python = torch_python
  out = tmp_path / "gemm.json"
  proc = _run("--shapes=8x16x32", "--calls=2", f"--out={out}", torch_python=python)
  assert proc.returncode == 0, proc.stderr[-2000:]
  (row,) = json.loads(out.read_text())["rows"]
  assert row["torch_flops"] > 0 and row["torch_over_xla"] > 0


@pytest.mark.parametrize(
    "flag, message",
    [
        ("--shapes=20x650", "--shapes: '20x650' is not M x K x N"),
        ("--shapes=0x2x3", "--shapes: '0x2x3' is not M x K x N"),
        ("--calls=0", "--calls must be >= 1"),
        ("--libraries=blis", "--libraries: 'blis' is not one of mkl, openblas"),
    ],
)
def test_bad_flags_are_one_error_line(flag, message, tmp_path):
  out = tmp_path / "gemm.json"
  proc = _run(flag, f"--out={out}")
  assert proc.returncode == 1
  lines = proc.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith(f"error: {message}"), lines
  assert not out.exists()


def test_blas_library_rates_beside_xla(tmp_path):
  from rnnlm_jax.backends import blas

  reason = blas.unavailable("openblas")
  if reason:
    pytest.skip(f"openblas: {reason}")
  out = tmp_path / "gemm.json"
  proc = _run("--shapes=40x30x50", "--calls=2", "--libraries=openblas",
              f"--out={out}")
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert "openblas GFLOP/s" in proc.stdout
  (row,) = json.loads(out.read_text())["rows"]
  assert row["openblas_flops"] > 0 and row["openblas_over_xla"] > 0

