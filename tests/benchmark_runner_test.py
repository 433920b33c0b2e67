"""Tests for rnnlm_jax.benchmark_runner (and the report it feeds), with the
measuring processes replaced by a fake: the rotation of implementations,
medians, ratios and fractions of peak, and that every planned measurement
is accounted for when some fail or the deadline passes."""

import itertools

import pytest

from rnnlm_jax import benchmark
from rnnlm_jax import benchmark_report
from rnnlm_jax import benchmark_runner as runner
from rnnlm_jax.config import ModelConfig

PEAK = 1e9
# Train tok/s per implementation and repetition; eval is half of it.
RATES = {"rnnlm_jax": [100.0, 300.0, 200.0], "flax": [50.0, 150.0, 100.0]}


def _impl(opts, cmd) -> str:
  if cmd[0] == opts.torch_python:
    return "torch"
  worker = next(a for a in cmd if a.startswith("--worker="))
  return worker.partition("=")[2]


@pytest.fixture
def fake(monkeypatch):
  """Replaces the measuring process; returns the list of calls made."""
  calls = []
  reps = {impl: itertools.count() for impl in (*RATES, "torch")}

  def run_result(opts, cmd, timeout=None):
    impl = _impl(opts, cmd)
    calls.append(impl)
    if impl == "gemm":
      return {"gemm_peak_flops": PEAK}
    if impl == "torch":
      raise RuntimeError("peer died\nno CUDA here")
    rate = RATES[impl][next(reps[impl])]
    return {"train_tok_s": rate, "eval_tok_s": rate / 2, "peak_rss_mb": 1.0}

  monkeypatch.setattr(runner, "_run_result", run_result)
  return calls


def _opts(**kw):
  kw = {"presets": ("tiny",), "impls": ("rnnlm_jax", "flax"), **kw}
  return runner.Options(repeats=3, **kw)


def test_rotation_medians_ratios_and_fraction_of_peak(fake):
  report = runner.run_benchmark(_opts(), lambda python: None)
  assert fake == [
      "gemm", "rnnlm_jax", "flax",
      "gemm", "flax", "rnnlm_jax",
      "gemm", "rnnlm_jax", "flax",
  ]  # fmt: skip
  (row,) = report["rows"]
  ours, theirs = row["median"]["rnnlm_jax"], row["median"]["flax"]
  assert ours["train_tok_s"] == 200.0 and theirs["train_tok_s"] == 100.0
  assert row["ratio"]["flax"] == {"train_tok_s": 2.0, "eval_tok_s": 2.0}
  flops = benchmark.flops_per_token(
      ModelConfig(cell="lstm", vocab_size=50, hidden=16, num_layers=1)
  )
  assert row["flops_per_token_forward"] == flops
  assert ours["train_frac_peak"] == pytest.approx(200.0 * 3 * flops / PEAK)
  assert ours["eval_frac_peak"] == pytest.approx(100.0 * flops / PEAK)
  assert report["failed"] == [] and report["not_run"] == []
  table = benchmark_report.markdown(report)
  assert "| tiny | lstm | 4 | 16 | flax | 100 | 50 | 2.00 | 2.00 |" in table


def test_a_failing_peer_is_recorded_and_the_others_stand(fake, tmp_path):
  peer = tmp_path / "peer.py"
  peer.write_text("")
  opts = _opts(
      impls=("rnnlm_jax", "torch"),
      peer_script=str(peer),
      torch_python="/usr/bin/python-with-torch",
  )
  report = runner.run_benchmark(opts, lambda python: None)
  assert [f["measurement"] for f in report["failed"]] == [
      f"rep {r} tiny lstm B=4 H=16 torch" for r in range(3)
  ]
  (row,) = report["rows"]
  assert list(row["median"]) == ["rnnlm_jax"] and row["vs_torch"] == {}
  assert benchmark_report.incomplete(report) == (
      "error: 3 measurement(s) failed, the first "
      "(rep 0 tiny lstm B=4 H=16 torch): no CUDA here"
  )


def test_an_unavailable_peer_is_skipped_with_its_reason(fake):
  opts = _opts(impls=("rnnlm_jax", "torch"), peer_script=None)
  report = runner.run_benchmark(opts, lambda python: None)
  assert report["skipped"] == {"torch": "no peer script (--peer_script=None)"}
  assert "torch" not in fake


def test_past_the_deadline_every_measurement_is_accounted_for(
    fake, monkeypatch
):
  clock = itertools.count(0.0, 10.0)  # each look at the clock: 10 s later

  class Time:
    monotonic = staticmethod(lambda: next(clock))

  monkeypatch.setattr(runner, "time", Time)
  report = runner.run_benchmark(_opts(deadline_s=45), lambda python: None)
  # Started at 0, the deadline at 45: the looks at 10..40 run.
  assert len(fake) == 4
  (row,) = report["rows"]
  done = sum(len(r) for r in row["runs"].values()) + len(report["gemm"]["runs"])
  assert done == 4 and report["failed"] == []
  assert len(report["not_run"]) == 3 * 3 - 4
  assert report["not_run"][-1] == "rep 2 tiny lstm B=4 H=16 flax"
  assert (
      benchmark_report.incomplete(report)
      == "error: 5 not run (past --deadline_s=45)"
  )


def test_variant_overrides_are_typed_by_their_field():
  assert runner._overrides("unroll=2+fold_embedding=false+gemm=bf16") == {
      "unroll": 2,
      "fold_embedding": False,
      "gemm": "bf16",
  }
