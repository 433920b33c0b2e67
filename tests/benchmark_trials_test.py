"""The trials benchmark runs end to end in a tiny mode (numbers not
asserted) and refuses bad input with one line."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(*args):
  return subprocess.run(
      [sys.executable, "-m", "experiments.benchmark_trials", *args],
      cwd=ROOT,
      capture_output=True,
      text=True,
      timeout=300,
  )


def test_tiny_trials_benchmark_writes_a_report(tmp_path):
  out = tmp_path / "report.json"
  proc = run(
      "--config=experiments/configs/smoke.py",
      "--trials=2",
      "--steps=2",
      "--repeats=1",
      f"--out={out}",
  )
  assert proc.returncode == 0, proc.stderr[-2000:]
  (row,) = json.loads(out.read_text())["rows"]
  assert row["trials"] == 2
  assert row["sequential_tok_s"] > 0 and row["vectorised_tok_s"] > 0


def test_bad_trials_are_one_error_line():
  proc = run("--config=experiments/configs/smoke.py", "--trials=0")
  assert proc.returncode != 0
  assert proc.stderr.strip().splitlines() == ["error: --trials must be >= 1"]
