"""The hand-set running-sum and compare networks are exact at any length;
learned ones train; the MLP-vs-RNN parity study runs."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np

from experiments import lecture_nets as study
from rnnlm_jax import lecture_nets


def test_hand_set_sum_is_exact_on_integer_strings_of_any_length():
  # Integers in float32 add exactly, so any mismatch is the network's.
  for length in (1, 7, 1000):
    x = jax.random.randint(jax.random.key(length), (16, length), -9, 10)
    x = x.astype(jnp.float32)
    y = lecture_nets.outputs(lecture_nets.hand_set_sum_network(), x)
    np.testing.assert_array_equal(
        np.asarray(y), np.cumsum(np.asarray(x), axis=1)
    )


def test_hand_set_sum_tracks_real_numbers():
  x = lecture_nets.random_numbers(jax.random.key(0), 16, 500)
  y = lecture_nets.outputs(lecture_nets.hand_set_sum_network(), x)
  np.testing.assert_allclose(
      np.asarray(y), np.cumsum(np.asarray(x, np.float64), axis=1), atol=1e-4
  )


def test_compare_targets_count_ones_against_zeros():
  bits = np.random.default_rng(0).integers(0, 2, (20, 15))
  want = [
      [int(2 * sum(row[: t + 1]) > t + 1) for t in range(15)] for row in bits
  ]
  np.testing.assert_array_equal(
      lecture_nets.compare_targets(jnp.asarray(bits)), want
  )


def test_hand_set_compare_is_exact_on_every_string_up_to_length_12():
  bits = jnp.array(list(itertools.product([0, 1], repeat=12)))
  logits = lecture_nets.outputs(lecture_nets.hand_set_compare_network(), bits)
  want = lecture_nets.compare_targets(bits)
  np.testing.assert_array_equal(np.asarray(logits) > 0, want == 1)
  assert float(jnp.abs(logits).min()) > 5.0  # confident, not lucky


def test_hand_set_compare_stays_exact_far_beyond():
  score = lecture_nets.score_by_length(
      lecture_nets.COMPARE,
      lecture_nets.hand_set_compare_network(),
      [1000, 5000],
      num=64,
  )
  assert score == {1000: 1.0, 5000: 1.0}


def test_learned_networks_train_on_a_tiny_budget():
  params, loss = lecture_nets.train_network(
      lecture_nets.RUNNING_SUM, "rnn_relu", 8, 6, 200, learning_rate=2e-2
  )
  rms = lecture_nets.score_by_length(
      lecture_nets.RUNNING_SUM, params, [6], num=256
  )[6]
  assert loss < 0.05 and rms < 0.2  # the total itself has rms about 1.1
  params, loss = lecture_nets.train_network(
      lecture_nets.COMPARE, "lstm", 8, 6, 200, learning_rate=2e-2
  )
  assert loss < 0.05
  assert lecture_nets.score_by_length(
      lecture_nets.COMPARE, params, [6], num=256
  ) == {6: 1.0}


def test_split_strings_are_distinct_and_held_out():
  for length, sizes in ((3, (4, 4)), (5, (16, 16)), (20, (50, 100))):
    train, test = lecture_nets.split_strings(length, 50, 100, seed=0)
    assert (train.shape[0], test.shape[0]) == sizes
    assert train.shape[1] == test.shape[1] == length
    rows = {tuple(r) for r in np.asarray(train)}
    assert len(rows) == sizes[0]
    assert not rows & {tuple(r) for r in np.asarray(test)}


def test_mlp_vs_rnn_study_runs_at_tiny_sizes(tmp_path):
  rows = lecture_nets.mlp_vs_rnn_parity(
      [3, 5], train_size=8, test_size=8, mlp_hidden=4, rnn_hidden=4, steps=5
  )
  assert [r["length"] for r in rows] == [3, 5]
  assert [(r["train_strings"], r["test_strings"]) for r in rows] == [
      (4, 4),
      (8, 8),
  ]
  for r in rows:
    assert set(r) == {
        "length",
        "train_strings",
        "test_strings",
        "mlp_train",
        "mlp_test",
        "rnn_train",
        "rnn_test",
    }
    for k in ("mlp_train", "mlp_test", "rnn_train", "rnn_test"):
      assert 0.0 <= r[k] <= 1.0
  study.write_mlp_outputs(str(tmp_path), rows, 4, "rnn_tanh (4 units)")
  header, _, *lines = (tmp_path / "mlp_vs_rnn.md").read_text().splitlines()
  assert "MLP held-out" in header and len(lines) == 2
  assert (tmp_path / "mlp_vs_rnn.png").read_bytes()[:4] == b"\x89PNG"


def test_task_study_writes_table_and_plot(tmp_path):
  rows = study.run_task_study(
      "compare",
      cells=("rnn_tanh",),
      hidden=4,
      train_length=4,
      steps=5,
      lengths=(2, 4),
  )
  assert rows[0][0].startswith("hand-set") and rows[0][2] == {2: 1.0, 4: 1.0}
  study.write_task_outputs(str(tmp_path), "compare", rows, (2, 4))
  _, _, header, _, *lines = (tmp_path / "compare.md").read_text().splitlines()
  assert header.endswith("| len 2 | len 4 |") and len(lines) == 2
  rows = study.run_task_study(
      "sum", cells=(), train_length=4, steps=5, lengths=(2, 4)
  )
  assert max(rows[0][2].values()) < 1e-5  # the hand-set sum
  assert rows[-1][0].startswith("predict 0")
