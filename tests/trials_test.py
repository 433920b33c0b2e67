"""Vectorised trials: each equals its separate run; groups resume exactly."""

import json
import os
import shutil

import numpy as np
import pytest

from experiments.configs import smoke
from rnnlm_jax import checkpoint
from rnnlm_jax import config as config_lib
from rnnlm_jax import provenance
from rnnlm_jax import runs
from rnnlm_jax import train
from rnnlm_jax import trials

# Per trial: what a sweep over seeds and shape-preserving settings varies.
VARIED = [
    {
        "train": {"seed": 0},
        "optim": {"learning_rate": 0.01, "clip_norm": 0.0},
        "model": {"dropout": 0.0, "init_scale": 0.1},
    },
    {
        "train": {"seed": 1},
        "optim": {"learning_rate": 0.003, "clip_norm": 0.5},
        "model": {"dropout": 0.2, "init_scale": 0.05},
    },
    {
        "train": {"seed": 2},
        "optim": {"learning_rate": 0.02, "clip_norm": 5.0},
        "model": {"dropout": 0.1, "init_scale": 0.2},
    },
]


def base_config(**overrides):
  c = smoke.get_config()
  c.data.synthetic_sentences = (100, 20, 20)
  c.train.log_every = 5
  c.train.checkpoint_every = 10
  cfg = config_lib.from_dict(c.to_dict())
  return config_lib.replace(cfg, **overrides) if overrides else cfg


def trial_configs(**overrides):
  return [config_lib.replace(base_config(**overrides), **{**v}) for v in VARIED]


def records(workdir, key):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    rows = [json.loads(line) for line in f]
  return [(r["step"], r[key]) for r in rows if key in r]


def quiet(_):
  pass


@pytest.fixture(scope="module")
def group(tmp_path_factory):
  root = tmp_path_factory.mktemp("group")
  cfgs = trial_configs()
  dirs = [str(root / f"trial{i}") for i in range(len(cfgs))]
  results = train.train_trials(cfgs, dirs, log=quiet)
  return cfgs, dirs, results


def test_each_trial_equals_its_separate_run(group, tmp_path):
  cfgs, dirs, results = group
  for i, cfg in enumerate(cfgs):
    alone = str(tmp_path / f"alone{i}")
    expected = train.train_and_evaluate(cfg, alone, log=quiet)
    for key in ("train_loss", "grad_norm", "valid_loss"):
      got, want = records(dirs[i], key), records(alone, key)
      assert [s for s, _ in got] == [s for s, _ in want]
      np.testing.assert_allclose(
          [v for _, v in got], [v for _, v in want], rtol=2e-4, err_msg=key
      )
    for key in ("valid_ppl", "test_ppl"):
      np.testing.assert_allclose(results[i][key], expected[key], rtol=2e-4)
    assert results[i]["step"] == expected["step"]


def test_trials_differ_from_each_other(group):
  _, dirs, _ = group
  first = [records(d, "train_loss")[0][1] for d in dirs]
  assert len(set(first)) == len(first)


def test_each_trial_directory_is_a_complete_run(group):
  cfgs, dirs, _ = group
  for cfg, d in zip(cfgs, dirs):
    for name in ("config.json", "vocab.json", "results.json"):
      assert os.path.exists(os.path.join(d, name))
    with open(os.path.join(d, "config.json")) as f:
      saved = json.load(f)
    assert saved["train"]["seed"] == cfg.train.seed
    assert saved["optim"]["clip_norm"] == cfg.optim.clip_norm
    (prov,) = provenance.read(d)
    assert prov["seed"] == cfg.train.seed and prov["trials"] == len(cfgs)


@pytest.fixture(scope="module")
def stopped_group(group, tmp_path_factory):
  """The group stopped at step 20 (checkpoints at 10 and 20), trained once;
  each test resumes its own copy (see copies)."""
  cfgs, _, _ = group
  root = tmp_path_factory.mktemp("stopped")
  dirs = [str(root / f"t{i}") for i in range(len(cfgs))]
  stopped = [config_lib.replace(c, train={"max_steps": 20}) for c in cfgs]
  train.train_trials(stopped, dirs, log=quiet)
  return dirs


def copies(dirs, tmp_path):
  out = [str(tmp_path / f"t{i}") for i in range(len(dirs))]
  for src, dst in zip(dirs, out):
    shutil.copytree(src, dst)
  return out


def test_a_group_resumes_exactly_even_with_one_trial_behind(
    group, stopped_group, tmp_path
):
  cfgs, full_dirs, results = group
  dirs = copies(stopped_group, tmp_path)
  # A kill between two trials' checkpoints leaves trial 1 one behind.
  shutil.rmtree(os.path.join(dirs[1], "checkpoints", "latest", "20"))
  assert checkpoint.latest_step(dirs[1], "latest") == 10
  logs = []
  again = train.train_trials(cfgs, dirs, log=logs.append)
  assert any("resumed from step 10" in line for line in logs)
  for d, full in zip(dirs, full_dirs):
    assert records(d, "train_loss") == records(full, "train_loss")
    assert records(d, "valid_loss") == records(full, "valid_loss")
  assert [r["test_ppl"] for r in again] == [r["test_ppl"] for r in results]


def test_trials_that_differ_in_shape_are_refused(tmp_path):
  cfgs = [base_config(), base_config(model={"hidden": 8})]
  with pytest.raises(config_lib.ConfigError, match="differ in model.hidden"):
    train.train_trials(cfgs, [str(tmp_path / "a"), str(tmp_path / "b")])
  assert not os.path.exists(tmp_path / "a")


def test_template_builds_dropout_where_any_trial_uses_it():
  assert trials.template(trial_configs()).model.dropout == 0.2


def test_sentence_mode_trials_with_other_seeds_get_their_own_batches():
  cfgs = trial_configs(data={"mode": "sentence"})
  assert not trials.shared_batches(cfgs)
  assert trials.shared_batches(trial_configs())


def test_sentence_mode_trials_equal_their_separate_runs(tmp_path):
  cfgs = trial_configs(
      data={"mode": "sentence", "max_sentence_len": 12},
      train={"num_epochs": 1},
  )[:2]
  dirs = [str(tmp_path / f"t{i}") for i in range(2)]
  train.train_trials(cfgs, dirs, log=quiet)
  alone = str(tmp_path / "alone")
  train.train_and_evaluate(cfgs[1], alone, log=quiet)
  np.testing.assert_allclose(
      [v for _, v in records(dirs[1], "train_loss")],
      [v for _, v in records(alone, "train_loss")],
      rtol=2e-4,
  )


@pytest.mark.parametrize(
    "overrides",
    [
        {
            "optim": {
                "name": "sgd",
                "schedule": "epoch_decay",
                "decay_after_epochs": 1,
            }
        },
        # Accumulation (updates every second step) in the same groups: the
        # schedule then counts updates.
        {
            "optim": {
                "name": "adamw",
                "weight_decay": 0.01,
                "schedule": "warmup_cosine",
                "warmup_steps": 10,
                "grad_accum_steps": 2,
            }
        },
        # Validation every 3 steps: often enough to stall, so that the
        # rate is cut mid-run (checked below).
        {
            "optim": {"schedule": "plateau", "plateau_factor": 0.5},
            "train": {"eval_every": 3},
        },
    ],
    ids=["sgd_epoch_decay", "adamw_warmup_cosine_accumulation", "plateau"],
)
def test_schedules_and_accumulation_equal_separate_runs(overrides, tmp_path):
  cfgs = [config_lib.replace(c, **overrides) for c in trial_configs()[:2]]
  dirs = [str(tmp_path / f"t{i}") for i in range(2)]
  train.train_trials(cfgs, dirs, log=quiet)
  if cfgs[0].optim.schedule == "plateau":
    cut = [
        min(v for _, v in records(d, "lr")) < cfg.optim.learning_rate
        for d, cfg in zip(dirs, cfgs)
    ]
    assert any(cut), "no trial's plateau cut its learning rate"
  for i, cfg in enumerate(cfgs):
    alone = str(tmp_path / f"alone{i}")
    train.train_and_evaluate(cfg, alone, log=quiet)
    for key in ("train_loss", "lr", "valid_loss"):
      got, want = records(dirs[i], key), records(alone, key)
      assert [s for s, _ in got] == [s for s, _ in want]
      np.testing.assert_allclose(
          [v for _, v in got], [v for _, v in want], rtol=2e-4, err_msg=key
      )


def test_a_diverging_trial_stops_alone(tmp_path):
  base = base_config(
      model={"cell": "rnn_relu"},
      optim={"name": "sgd", "clip_norm": 0.0},
      train={"num_epochs": 1},
  )
  cfgs = [
      config_lib.replace(base, optim={"learning_rate": lr})
      for lr in (0.1, 1e30)
  ]
  dirs = [str(tmp_path / "healthy"), str(tmp_path / "diverged")]
  with pytest.raises(
      train.TrainingDiverged, match=r"1 of 2 trials diverged.*trial 1"
  ):
    train.train_trials(cfgs, dirs, log=quiet)
  assert os.path.exists(os.path.join(dirs[0], "results.json"))
  assert not os.path.exists(os.path.join(dirs[1], "results.json"))
  alone = str(tmp_path / "alone")
  train.train_and_evaluate(cfgs[0], alone, log=quiet)
  np.testing.assert_allclose(
      [v for _, v in records(dirs[0], "train_loss")],
      [v for _, v in records(alone, "train_loss")],
      rtol=2e-4,
  )


def test_a_trial_resumes_alone(group, stopped_group, tmp_path):
  cfgs, full_dirs, _ = group
  dirs = copies(stopped_group, tmp_path)
  logs = []
  train.train_and_evaluate(cfgs[1], dirs[1], log=logs.append)
  assert any("resumed from step 20" in line for line in logs)
  np.testing.assert_allclose(
      [v for _, v in records(dirs[1], "train_loss")],
      [v for _, v in records(full_dirs[1], "train_loss")],
      rtol=2e-4,
  )


def test_trials_too_far_apart_are_refused(group, stopped_group, tmp_path):
  cfgs, _, _ = group
  dirs = copies(stopped_group[:2], tmp_path)
  # Trial 0 keeps only its checkpoint at step 20, trial 1 only that at 10.
  shutil.rmtree(os.path.join(dirs[0], "checkpoints", "latest", "10"))
  shutil.rmtree(os.path.join(dirs[1], "checkpoints", "latest", "20"))
  assert checkpoint.latest_step(dirs[0], "latest") == 20
  assert checkpoint.latest_step(dirs[1], "latest") == 10
  with pytest.raises(train.IncompatibleRun, match="no checkpoint at step 10"):
    train.train_trials(cfgs[:2], dirs, log=quiet)


def test_a_checkpoint_of_another_structure_is_one_clear_error(tmp_path):
  import flax.struct
  import jax.numpy as jnp

  @flax.struct.dataclass
  class Old:
    step: object
    a: object

  @flax.struct.dataclass
  class New:
    step: object
    a: object
    b: object

  d = str(tmp_path)
  checkpoint.save(d, "latest", Old(jnp.int32(10), jnp.zeros(3)), {"step": 10})
  with pytest.raises(train.IncompatibleRun, match="does not fit this version"):
    runs._restore(d, New(jnp.int32(0), jnp.zeros(3), jnp.zeros(2)), 10)
