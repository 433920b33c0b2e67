"""Samples while training (train.sample_every): when they are drawn, where
they are written, that they leave training as it is, and that a resumed
run writes the samples of an uninterrupted one."""

import json
import os

import pytest

from rnnlm_jax import config as config_lib
from rnnlm_jax import errors
from rnnlm_jax import rundir
from rnnlm_jax import sampling
from rnnlm_jax import train
from rnnlm_jax.vocab import Vocab
from tests.train_test import tiny_config, train_records

SAMPLING = {
    "sample_every": 10,
    "sample_prompt": "the cat",
    "sample_temperature": 0.8,
    "sample_length": 12,
    "sample_count": 2,
}


def sampled_config(**train_keys):
  return tiny_config(train={**SAMPLING, **train_keys})


def sample_records(workdir):
  with open(os.path.join(workdir, rundir.SAMPLE_RECORDS_FILE)) as f:
    return [json.loads(line) for line in f]


def samples_text(workdir):
  with open(os.path.join(workdir, rundir.SAMPLES_FILE), encoding="utf-8") as f:
    return f.read()


@pytest.fixture(scope="module")
def sampled(tmp_path_factory):
  cfg = sampled_config()
  workdir = str(tmp_path_factory.mktemp("sampled"))
  logs = []
  train.train_and_evaluate(cfg, workdir, log=logs.append)
  return cfg, workdir, logs


def _total_steps(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return max(json.loads(line)["step"] for line in f)


def test_samples_are_logged_and_written_at_their_steps(sampled):
  cfg, workdir, logs = sampled
  total = _total_steps(workdir)
  assert total % 10  # So that the last step is sampled for being the last.
  expected = [*range(10, total + 1, 10), total]
  logged = [line for line in logs if line.startswith("sample at step ")]
  assert [int(line.split()[3].rstrip(":")) for line in logged] == [
      s for s in expected for _ in range(2)
  ]
  records = sample_records(workdir)
  assert [r["step"] for r in records] == expected
  text = samples_text(workdir)
  headers = [line for line in text.splitlines() if line.startswith("== ")]
  assert headers[0] == (
      f"== step 10, epoch {records[0]['epoch']:.2f}, temperature 0.8 =="
  )
  assert len(headers) == len(expected)
  for r in records:
    assert len(r["samples"]) == 2
    for sample in r["samples"]:
      assert f"sample at step {r['step']}: {sample}" in logs
      assert sample in text


def test_sampling_leaves_the_training_losses_as_they_are(sampled, tmp_path):
  cfg, workdir, _ = sampled
  plain = config_lib.replace(cfg, train={"sample_every": 0})
  train.train_and_evaluate(plain, str(tmp_path), log=lambda s: None)
  assert train_records(str(tmp_path)) == train_records(workdir)
  assert not os.path.exists(tmp_path / rundir.SAMPLES_FILE)


def test_word_samples_decode_with_the_vocabulary(sampled):
  _, workdir, _ = sampled
  vocab = Vocab.load(os.path.join(workdir, "vocab.json"))
  for r in sample_records(workdir):
    for sample in r["samples"]:
      words = sample.split()
      assert words[:2] == ["the", "cat"]
      assert len(words) <= 2 + 12  # Cut after the first <eos>.
      assert all(w in vocab for w in words)


def test_char_samples_are_characters_joined(tmp_path):
  folder = tmp_path / "text"
  folder.mkdir()
  text = "".join(
      f"the cat {w} the mat.\nand a dog {w}.\n"
      for w in ("sat", "ran", "hid") * 60
  )
  (folder / "input.txt").write_text(text)
  cfg = tiny_config(
      data={
          "source": "files",
          "dir": str(folder),
          "level": "char",
          "split_fractions": [0.8, 0.1, 0.1],
          "cache_dir": "",
      },
      train={
          **SAMPLING,
          "sample_prompt": "the c",
          "max_steps": 10,
          "sample_count": 1,
      },
  )
  workdir = str(tmp_path / "run")
  logs = []
  train.train_and_evaluate(cfg, workdir, log=logs.append)
  vocab = Vocab.load(os.path.join(workdir, "vocab.json"))
  (record,) = sample_records(workdir)
  (sample,) = record["samples"]
  assert sample.startswith("the c") and len(sample) == 5 + 12
  assert all(ch in vocab for ch in sample)
  escaped = sample.replace("\n", "\\n")
  assert f"sample at step 10: {escaped}" in logs


def test_a_resumed_run_writes_the_samples_of_an_uninterrupted_one(
    sampled, tmp_path
):
  cfg, full_dir, _ = sampled
  workdir = str(tmp_path)
  stopped = config_lib.replace(cfg, train={"max_steps": 30})
  train.train_and_evaluate(stopped, workdir, log=lambda s: None)
  assert [r["step"] for r in sample_records(workdir)] == [10, 20, 30]
  # A kill after samples past the checkpoint, in the middle of a line.
  records = os.path.join(workdir, rundir.SAMPLE_RECORDS_FILE)
  with open(records, "a", encoding="utf-8") as f:
    f.write(json.dumps({**sample_records(workdir)[-1], "step": 40}) + "\n")
    f.write('{"step": 50, "sampl')
  with open(os.path.join(workdir, rundir.SAMPLES_FILE), "a") as f:
    f.write("== step 40, epoch")
  logs = []
  train.train_and_evaluate(cfg, workdir, log=logs.append)
  assert any("resumed from step 30" in line for line in logs)
  assert samples_text(workdir) == samples_text(full_dir)
  assert sample_records(workdir) == sample_records(full_dir)
  assert train_records(workdir) == train_records(full_dir)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"task": "classify"}, "train.sample_every samples a language model"),
        (
            {"model": {"kind": "count_ngram"}},
            "train.sample_every samples a language model",
        ),
        ({"train": {"sample_every": -1}}, "train.sample_every must be >= 0"),
        (
            {"train": {"sample_temperature": 0.0}},
            "train.sample_temperature must be positive",
        ),
        ({"train": {"sample_length": 0}}, "train.sample_length must be"),
        ({"train": {"sample_count": 0}}, "train.sample_count must be"),
    ],
)
def test_bad_sampling_configs_are_one_line_errors(overrides, message):
  values = config_lib.to_dict(sampled_config())
  for group, changes in overrides.items():
    if isinstance(changes, dict):
      values[group].update(changes)
    else:
      values[group] = changes
  with pytest.raises(config_lib.ConfigError, match=message) as e:
    config_lib.from_dict(values)
  assert "\n" not in str(e.value)


def test_a_prompt_outside_the_vocabulary_stops_the_run_before_it_starts(
    tmp_path,
):
  cfg = sampled_config(sample_prompt="the zebra")
  with pytest.raises(errors.DataError, match="'zebra'") as e:
    train.train_and_evaluate(cfg, str(tmp_path), log=lambda s: None)
  assert "\n" not in str(e.value)
  assert not os.path.exists(tmp_path / "config.json")


def test_vectorised_trials_each_write_their_samples(tmp_path, monkeypatch):
  """Each trial its own samples, from one sampler compiled once."""
  lowered = []
  compiled = sampling.sample_ids

  class Counted:

    def lower(self, *args):
      lowered.append(args[3].shape)
      return compiled.lower(*args)

  monkeypatch.setattr(sampling, "sample_ids", Counted())
  cfgs = [
      sampled_config(seed=seed, max_steps=20, sample_count=1) for seed in (0, 1)
  ]
  workdirs = [str(tmp_path / f"t{i}") for i in range(2)]
  logs = []
  train.train_trials(cfgs, workdirs, log=logs.append)
  for i, w in enumerate(workdirs):
    assert [r["step"] for r in sample_records(w)] == [10, 20]
    assert sum(line.startswith(f"[{i}] sample at step") for line in logs) == 2
  assert len(lowered) == 1
