"""Tests for rnnlm_jax.benchmark_report: which peak a row is put against,
and medians that skip what a measurement did not record."""

import math

import pytest

from rnnlm_jax import benchmark_report as report

GEMM = [
    {"gemm_peak_flops": 2e9, "gemm_peak_flops_bf16": 8e9},
    {"gemm_peak_flops": 3e9, "gemm_peak_flops_bf16": 6e9},
]


def test_bf16_rows_use_the_bf16_peak_only_where_every_run_measured_it():
  assert report.peak(GEMM, bf16=False) == 3e9
  assert report.peak(GEMM, bf16=True) == 8e9
  cpu = GEMM + [{"gemm_peak_flops": 1e9}]  # a run without the bf16 peak
  assert report.peak(cpu, bf16=True) == 3e9
  assert report.peak([], bf16=False) is None


def test_summarise_medians_flops_and_missing_memory():
  runs = [
      {"train_tok_s": t, "eval_tok_s": 2 * t, "peak_rss_mb": 5.0}
      for t in (10.0, 30.0, 20.0)
  ]
  runs[0]["train_memory"] = {"argument_bytes": 2**20, "temp_bytes": 2**21}
  m = report.summarise(runs, flops_fwd=100.0, peak=1e4)
  assert (m["train_tok_s"], m["eval_tok_s"]) == (20.0, 40.0)
  assert m["compile_train_s"] is None  # no run recorded it
  assert m["train_xla_mb"] == 3.0  # only the run that has memory counts
  assert m["train_flops_s"] == 20.0 * 3 * 100.0
  assert m["train_frac_peak"] == pytest.approx(0.6)
  assert m["eval_frac_peak"] == pytest.approx(0.4)
  assert report.summarise(runs, 100.0, None)["eval_frac_peak"] is None
  assert not math.isnan(m["eval_flops_s"])
