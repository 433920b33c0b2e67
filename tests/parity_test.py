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
  assert (tmp_path / "parity.png").stat().st_size > 0
  assert "hand-set" in (tmp_path / "parity.md").read_text()
