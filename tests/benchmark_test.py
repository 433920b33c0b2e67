"""The benchmark runs end to end in its tiny mode (numbers not asserted)."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_tiny_benchmark_writes_a_report(tmp_path):
  out = tmp_path / "report.json"
  proc = subprocess.run(
      [
          sys.executable,
          "-m",
          "experiments.benchmark",
          "--preset=tiny",
          "--steps=3",
          "--warmup=1",
          "--repeats=1",
          f"--out={out}",
      ],
      cwd=ROOT,
      capture_output=True,
      text=True,
      timeout=300,
  )
  assert proc.returncode == 0, proc.stderr[-2000:]
  report = json.loads(out.read_text())
  (run,) = report["runs"]["rnnlm_jax"]
  for key in ("train_tok_s", "eval_tok_s", "compile_train_s", "peak_rss_mb"):
    assert run[key] > 0
  assert "ratio" not in report  # No peer was named.
