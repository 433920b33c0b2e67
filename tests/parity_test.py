"""The hand-set parity network is exact; a learned one can be trained."""

import itertools

import jax.numpy as jnp
import numpy as np

from experiments import parity as parity_study
from rnnlm_jax import parity


def test_hand_set_network_is_exact_on_every_string_up_to_length_12():
  # Every prefix of every 12-bit string is every string of length <= 12.
  bits = jnp.array(list(itertools.product([0, 1], repeat=12)))
  logits = parity.parity_logits(parity.hand_set_network(), bits)
  want = np.cumsum(np.asarray(bits), axis=1) % 2
  np.testing.assert_array_equal(np.asarray(logits) > 0, want == 1)
  assert float(jnp.abs(logits).min()) > 5.0  # confident, not lucky


def test_hand_set_network_stays_exact_far_beyond():
  acc = parity.accuracy_by_length(parity.hand_set_network(), [1000], num=64)
  assert acc == {1000: 1.0}


def test_running_targets_are_learned_by_a_small_lstm():
  params, loss = parity.train_classifier("lstm", 8, 8, 300, learning_rate=2e-2)
  assert loss < 0.05
  assert parity.accuracy_by_length(params, [8], num=256)[8] == 1.0


def test_study_writes_table_and_plot(tmp_path):
  rows = parity_study.run_study(
      cells=("rnn_tanh",),
      hidden=4,
      train_length=4,
      steps=20,
      lengths=(2, 4),
      last_only_options=(False,),
  )
  parity_study.write_outputs(str(tmp_path), rows, (2, 4))
  assert (tmp_path / "parity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  # The table holds the hand-set network and one learned model, each with
  # the accuracies the study measured, the hand-set one exact.
  header, rule, *lines = (tmp_path / "parity.md").read_text().splitlines()
  assert header.endswith("| len 2 | len 4 |") and len(lines) == len(rows) == 2
  for line, (label, loss, acc) in zip(lines, rows):
    cells = [c.strip() for c in line.strip("|").split("|")]
    shown = "-" if loss is None else f"{loss:.4f}"
    assert cells == [label, shown, f"{acc[2]:.3f}", f"{acc[4]:.3f}"]
  assert rows[0][0].startswith("hand-set") and rows[0][2] == {2: 1.0, 4: 1.0}
  assert rows[1][1] > 0 and rows[1][0].startswith("rnn_tanh (4 units)")
