"""Run directories: what may continue a run, and what may not."""

import pytest

from experiments.configs import smoke
from rnnlm_jax import checkpoint
from rnnlm_jax import config as config_lib
from rnnlm_jax import rundir
from rnnlm_jax import train


def tiny_config(**overrides):
  c = smoke.get_config()
  c.data.synthetic_sentences = (25, 10, 10)  # Epochs of a few steps.
  c.train.log_every = 5
  c.train.checkpoint_every = 10
  cfg = config_lib.from_dict(c.to_dict())
  return config_lib.replace(cfg, **overrides) if overrides else cfg


@pytest.fixture(scope="module")
def twenty_steps(tmp_path_factory):
  cfg = tiny_config(train={"max_steps": 20, "num_epochs": 9})
  workdir = str(tmp_path_factory.mktemp("run"))
  train.train_and_evaluate(cfg, workdir, log=lambda s: None)
  assert checkpoint.latest_step(workdir, "latest") == 20
  return cfg, workdir


def test_a_run_past_the_new_stopping_point_is_refused(twenty_steps):
  cfg, workdir = twenty_steps
  fewer = config_lib.replace(cfg, train={"max_steps": 10})
  with pytest.raises(rundir.IncompatibleRun, match="already at step 20, past"):
    train.train_and_evaluate(fewer, workdir, log=lambda s: None)
  # The same stopping point, or a later one, continues it.
  rundir.existing_vocab(workdir, cfg)
  rundir.existing_vocab(workdir, tiny_config(train={"num_epochs": 9}))


def test_fewer_epochs_than_a_run_has_trained_are_refused(twenty_steps):
  cfg, workdir = twenty_steps
  per_epoch = rundir.last_step(workdir, tiny_config())
  assert 0 < per_epoch < 20  # The tiny corpus's epoch is shorter.
  one_epoch = tiny_config()  # num_epochs 1, no max_steps.
  with pytest.raises(rundir.IncompatibleRun, match=f"last step {per_epoch} "):
    rundir.existing_vocab(workdir, one_epoch)


def test_locations_are_not_a_runs_identity():
  cfg = tiny_config()
  moved = config_lib.replace(
      cfg, data={"cache_dir": "/elsewhere/cache", "dir": "/moved/corpus"}
  )
  rundir.check_compatible(cfg, moved)
  with pytest.raises(rundir.IncompatibleRun, match="data.bptt"):
    rundir.check_compatible(cfg, config_lib.replace(cfg, data={"bptt": 7}))
