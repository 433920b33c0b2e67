"""The benchmark runs end to end in its tiny mode: rates present and
positive, the records consistent with the model measured, failures and the
deadline reported. The orchestration's arithmetic is benchmark_runner_test's."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest

from rnnlm_jax import backends
from rnnlm_jax import benchmark
from rnnlm_jax import models
from rnnlm_jax.config import ModelConfig

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--preset=tiny", "--steps=3", "--warmup=1", "--repeats=1"]
# The model of the tiny preset, as the benchmark's worker builds it.
TINY_MODEL = ModelConfig(cell="lstm", vocab_size=50, hidden=16, num_layers=1)


def _run(tmp_path, *flags, torch_python=None, env_extra=None, rc=0) -> dict:
  out = tmp_path / "report.json"
  env = dict(os.environ)
  env.pop("TORCH_PYTHON", None)
  if torch_python:
    env["TORCH_PYTHON"] = torch_python
  env.update(env_extra or {})
  proc = subprocess.run(
      [
          sys.executable,
          "-m",
          "experiments.benchmark",
          *TINY,
          *flags,
          f"--out={out}",
      ],
      cwd=ROOT,
      capture_output=True,
      text=True,
      timeout=600,
      env=env,
  )
  assert proc.returncode == rc, proc.stderr[-2000:]
  assert "| tiny | lstm |" in proc.stdout  # The markdown table.
  report = json.loads(out.read_text())
  return (report, proc.stderr) if rc else report


def _check_row_median(m: dict) -> None:
  for key in (
      "train_tok_s",
      "eval_tok_s",
      "peak_rss_mb",
      "train_frac_peak",
      "eval_frac_peak",
  ):
    assert m[key] > 0, key


def test_tiny_benchmark_rnnlm_jax_and_flax_beside_a_failing_peer(tmp_path):
  # A "torch" that imports and a peer script that dies: its measurements
  # fail, the others' stand, and the run ends with one error line. (A peer
  # with no script is skipped with its reason: benchmark_runner_test.)
  (tmp_path / "torch.py").write_text("")
  peer = tmp_path / "peer.py"
  peer.write_text("raise SystemExit('no CUDA here')\n")
  report, stderr = _run(
      tmp_path,
      "--impls=rnnlm_jax,flax,torch",
      f"--peer_script={peer}",
      f"--torch_python={sys.executable}",
      "--variants=bf16:gemm=bf16+unroll=2",
      env_extra={"PYTHONPATH": str(tmp_path)},
      rc=1,
  )
  assert report["gemm"]["peak_flops"] > 0
  assert "torch" not in report["skipped"]
  (failure,) = report["failed"]
  assert failure["measurement"].endswith("torch")
  assert "no CUDA here" in failure["error"]
  (line,) = stderr.strip().splitlines()
  assert line.startswith("error: 1 measurement(s) failed")
  assert report["variants"] == {"rnnlm_jax[bf16]": "gemm=bf16+unroll=2"}
  (row,) = report["rows"]
  assert row["runs"]["torch"] == []
  assert set(row["median"]) == {"rnnlm_jax", "flax", "rnnlm_jax[bf16]"}
  assert row["runs"]["rnnlm_jax[bf16]"][0]["gemm"] == "bf16"
  # Whether the recurrent layers ran as the fused custom call is recorded:
  # the dispatcher's decision for the run's model and resolved GEMM.
  assert row["runs"]["rnnlm_jax[bf16]"][0]["fused_layers"] is False
  ours = row["runs"]["rnnlm_jax"][0]
  path = backends.resolve(TINY_MODEL)
  assert ours["fused_layers"] is (path.layer(8, jnp.float32) is not None)
  assert ours["path"] == path.describe()
  # The train step's arguments hold at least the parameters.
  params = models.init_lm(jax.random.key(0), TINY_MODEL)
  param_bytes = sum(p.nbytes for p in jax.tree.leaves(params))
  assert ours["train_memory"]["argument_bytes"] >= param_bytes
  assert row["ratio"]["rnnlm_jax[bf16]"]["eval_tok_s"] > 0
  assert row["vs_torch"] == {}
  for impl in ("rnnlm_jax", "flax", "rnnlm_jax[bf16]"):
    (run,) = row["runs"][impl]
    for key in ("train_tok_s", "eval_tok_s", "compile_train_s", "peak_rss_mb"):
      assert run[key] > 0, (impl, key)
    _check_row_median(row["median"][impl])
    memory = run["train_memory"]
    assert row["median"][impl]["train_xla_mb"] == (
        (memory["argument_bytes"] + memory["temp_bytes"]) / 2**20
    )
  assert row["ratio"]["flax"]["train_tok_s"] > 0
  assert "torch" not in row["ratio"]


def test_scaling_mode(tmp_path):
  report = _run(
      tmp_path,
      "--sweep_batch=2,4",
      "--sweep_hidden=8",
      "--backend=reference",
      "--nofold_embedding",
      "--time_chunks=2",
  )
  assert report["mode"] == "scaling"
  assert report["time_chunks"] == 2
  assert report["backend"] == "reference"
  assert report["fold_embedding"] is False
  assert [(r["batch"], r["hidden"]) for r in report["rows"]] == [(2, 8), (4, 8)]
  for row in report["rows"]:
    assert list(row["runs"]) == ["rnnlm_jax"]
    _check_row_median(row["median"]["rnnlm_jax"])


def test_tiny_benchmark_torch_peer(tmp_path, torch_python):
  python = torch_python
  if not (ROOT.parent / "shared" / "peers" / "torch_lstm_lm.py").exists():
    pytest.skip("no ../shared/peers/torch_lstm_lm.py beside the repository")
  report = _run(tmp_path, "--impls=rnnlm_jax,torch", torch_python=python)
  assert "torch" not in report["skipped"]
  (row,) = report["rows"]
  _check_row_median(row["median"]["torch"])
  assert row["ratio"]["torch"]["train_tok_s"] > 0
  assert row["vs_torch"]["rnnlm_jax"]["train_tok_s"] == pytest.approx(
      row["ratio"]["torch"]["train_tok_s"]
  )


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
def test_flops_per_token_counts_the_matmuls(cell):
  # Per token, every weight matrix (not the embedding, a lookup) takes part
  # in one multiply-add per entry.
  cfg = ModelConfig(cell=cell, vocab_size=7, hidden=3, embed_dim=5)
  params = models.init_lm(jax.random.key(0), cfg)
  params.pop("embed")
  weights = [p.size for p in jax.tree.leaves(params) if p.ndim == 2]
  assert benchmark.flops_per_token(cfg) == 2 * sum(weights)


def _one_error_line(flag: str) -> str:
  proc = subprocess.run(
      [sys.executable, "-m", "experiments.benchmark", flag],
      cwd=ROOT,
      capture_output=True,
      text=True,
      timeout=120,
  )
  assert proc.returncode == 1
  (line,) = proc.stderr.strip().splitlines()
  return line


def test_bad_preset_is_one_error_line():
  line = _one_error_line("--preset=huge")
  assert line.startswith("error: --preset=huge: choose from zaremba_small")


def test_negative_time_chunks_is_one_error_line():
  line = _one_error_line("--time_chunks=-1")
  assert line.startswith("error: --time_chunks must be >= 0")


def test_negative_deadline_is_one_error_line():
  line = _one_error_line("--deadline_s=-5")
  assert line.startswith("error: --deadline_s must be >= 0")


def test_bad_backend_is_one_error_line():
  line = _one_error_line("--backend=tall")
  assert line.startswith("error: --backend=tall: choose from auto")


@pytest.mark.parametrize(
    "flag,start",
    [
        ("--variants=x:foo=1", "error: --variants: 'foo=1' is not field=value"),
        ("--variants=x:unroll=a", "error: --variants: 'unroll=a': 'a' is no"),
        ("--variants=nocolon", "error: --variants: 'nocolon' is not NAME:"),
        ("--variants=c:gemm=fast", "error: model.gemm"),
    ],
)
def test_bad_variant_is_one_error_line(flag, start):
  assert _one_error_line(flag).startswith(start)


def test_the_deadline_kills_a_hung_measurement_and_writes_the_report(
    tmp_path,
):
  # A peer that would hang for ten minutes, first in the rotation: it is
  # killed at the deadline, what follows is listed as not run, the report
  # is written and the run exits 1 with one line, long before the peer's
  # sleep would end.
  (tmp_path / "torch.py").write_text("")
  peer = tmp_path / "peer.py"
  peer.write_text("import time\ntime.sleep(600)\n")
  out = tmp_path / "report.json"
  started = time.monotonic()
  proc = subprocess.run(
      [
          sys.executable,
          "-m",
          "experiments.benchmark",
          *TINY,
          "--repeats=2",
          "--impls=torch,rnnlm_jax",
          f"--peer_script={peer}",
          f"--torch_python={sys.executable}",
          "--deadline_s=20",
          f"--out={out}",
      ],
      cwd=ROOT,
      capture_output=True,
      text=True,
      timeout=300,
      env=dict(os.environ, PYTHONPATH=str(tmp_path)),
  )
  assert time.monotonic() - started < 200
  assert proc.returncode == 1, proc.stderr[-2000:]
  (line,) = proc.stderr.strip().splitlines()
  assert line.startswith("error: ") and "not run (past --deadline_s=20)" in line
  report = json.loads(out.read_text())
  killed = [
      f for f in report["failed"] if "killed at the deadline" in f["error"]
  ]
  assert [f["measurement"] for f in killed] == [
      "rep 0 tiny lstm B=4 H=16 torch"
  ]
  # Every planned measurement is accounted for exactly once.
  (row,) = report["rows"]
  done = sum(len(r) for r in row["runs"].values()) + len(report["gemm"]["runs"])
  assert done + len(report["failed"]) + len(report["not_run"]) == 2 * 3
  assert report["not_run"][-1] == "rep 1 tiny lstm B=4 H=16 torch"
  assert row["runs"]["torch"] == []
