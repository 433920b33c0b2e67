"""Reproducibility: runs record what made them, and the same config and
seed on the same CPU give identical metrics."""

import json
import os
import subprocess

import jax
import pytest

from experiments.configs import smoke
from rnnlm_jax import config as config_lib
from rnnlm_jax import provenance
from rnnlm_jax import runs as runs_lib
from rnnlm_jax import train


def tiny_config(seed):
  c = smoke.get_config()
  c.data.synthetic_sentences = (150, 30, 30)
  c.train.num_epochs = 1
  c.train.seed = seed
  return config_lib.from_dict(c.to_dict())


def metrics(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return runs_lib.without_timings(json.loads(line) for line in f)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  out = {}
  for name, seed in (("a", 3), ("b", 3), ("other_seed", 4)):
    workdir = str(tmp_path_factory.mktemp(name))
    results = train.train_and_evaluate(tiny_config(seed), workdir, log=print)
    out[name] = (workdir, results)
  return out


def test_same_config_and_seed_give_identical_metrics(runs):
  (a, ra), (b, rb) = runs["a"], runs["b"]
  assert metrics(a) == metrics(b)
  assert runs_lib.without_timings([ra]) == runs_lib.without_timings([rb])


def test_another_seed_gives_other_metrics(runs):
  assert metrics(runs["a"][0]) != metrics(runs["other_seed"][0])


def test_each_run_records_commit_packages_device_and_seed(runs):
  workdir, _ = runs["a"]
  (record,) = provenance.read(workdir)
  assert record["seed"] == 3 and record["step"] == 0
  assert record["packages"]["jax"] == jax.__version__
  assert record["device_kind"] == jax.devices()[0].device_kind
  assert record["backend"] == jax.default_backend()
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  git = lambda *a: subprocess.run(["git", *a], cwd=root, capture_output=True)
  try:
    in_git = git("rev-parse", "HEAD").returncode == 0
  except OSError:
    in_git = False
  if not in_git:
    assert record["git_commit"] is None
    return
  # The commit the run came from (HEAD or, if a commit landed since, an
  # ancestor of it).
  assert (
      git(
          "merge-base", "--is-ancestor", record["git_commit"], "HEAD"
      ).returncode
      == 0
  )
  assert isinstance(record["git_dirty"], bool)


def test_a_resumed_run_appends_its_own_record(runs):
  workdir, _ = runs["b"]
  train.train_and_evaluate(tiny_config(3), workdir, log=lambda s: None)
  first, again = provenance.read(workdir)
  assert first["step"] == 0 and again["step"] > 0
