"""Validation curves against updates, tokens and seconds (rnnlm_jax.curves)."""

import numpy as np
import pytest

from rnnlm_jax import curves
from rnnlm_jax.errors import DataError


def records(steps_per_epoch, train_steps, valid_steps):
  """Train records every few steps (100 tokens/s, 2 s each) and
  validation records at valid_steps, interleaved as a run writes them."""
  out = []
  for s in sorted(set(train_steps) | set(valid_steps)):
    e = s / steps_per_epoch
    if s in train_steps:
      out.append(
          {
              "step": s,
              "epoch": e,
              "train_loss": 1.0,
              "tokens_per_s": 100.0,
              "window_s": 2.0,
              "eta_s": 0.0,
          }
      )
    if s in valid_steps:
      out.append({"step": s, "epoch": e, "valid_loss": 10.0 / s})
  return out


def test_each_validation_point_counts_the_train_windows_before_it():
  rs = records(10, [5, 10, 15, 20], [10, 20])
  c = curves.curve_of(rs, accum=1, label="a")
  np.testing.assert_array_equal(c.updates, [10, 20])
  np.testing.assert_allclose(c.tokens, [400.0, 800.0])
  np.testing.assert_allclose(c.seconds, [4.0, 8.0])
  np.testing.assert_allclose(c.valid_loss, [1.0, 0.5])


def test_updates_count_accumulated_steps_once_and_an_epoch_for_minus_one():
  rs = records(4, [4, 8, 12], [4, 8, 12])
  assert list(curves.curve_of(rs, accum=2, label="a").updates) == [2, 4, 6]
  assert list(curves.curve_of(rs, accum=-1, label="a").updates) == [1, 2, 3]


def test_a_run_without_validation_or_timed_records_is_one_clear_error():
  with pytest.raises(DataError, match="no validation"):
    curves.curve_of(records(4, [4], []), 1, "a")
  untimed = [
      {k: v for k, v in r.items() if k != "window_s"}
      for r in records(4, [4], [4])
  ]
  with pytest.raises(DataError, match="window_s"):
    curves.curve_of(untimed, 1, "a")


def test_table_reports_the_best_point_and_the_end():
  c = curves.curve_of(records(10, [5, 10, 15, 20], [10, 20]), 1, "run a")
  row = curves.table([c]).splitlines()[-1]
  assert row.startswith("| run a | 0.5000 | 20 | 800 | 8.0 | 20 | 800 |")
