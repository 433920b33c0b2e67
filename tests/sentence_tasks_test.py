"""The classifier and the tagger end to end on tiny data: they learn, resume
exactly, are evaluated and predict from their run directories, and bad data
is one error line."""

import json
import os

import jax
import numpy as np
import pytest

from experiments.configs import conll2000
from experiments.configs import sst2
from rnnlm_jax import checkpoint
from rnnlm_jax import config as config_lib
from rnnlm_jax import evaluation
from rnnlm_jax import rundir
from rnnlm_jax import runs as runs_lib
from rnnlm_jax import train
from rnnlm_jax.tasks import sentences
from tests import corpus_files
from tests.cli_test import run

POSITIVE, NEGATIVE = ["good", "great", "fine"], ["bad", "dull", "poor"]
FILLER = ["the", "film", "was", "very", "a", "plot"]


def sst_folder(root, seed=0):
  rng = np.random.default_rng(seed)

  def rows(n):
    out = ["sentence\tlabel"]
    for _ in range(n):
      label = int(rng.integers(2))
      words = list(rng.choice(FILLER, int(rng.integers(1, 9))))
      words.insert(
          int(rng.integers(len(words) + 1)),
          str(rng.choice(POSITIVE if label else NEGATIVE)),
      )
      out.append(f"{' '.join(words)} \t{label}")
    return "\n".join(out) + "\n"

  corpus_files.write(root / "train.tsv", rows(240))
  corpus_files.write(root / "dev.tsv", rows(40))
  return root


def conll_folder(root, seed=0):
  """Sentences of a determiner-noun-verb language: NP chunks of DT NN, VP
  chunks of one verb."""
  rng = np.random.default_rng(seed)

  def text(n):
    blocks = []
    for _ in range(n):
      lines = []
      for _ in range(int(rng.integers(1, 4))):
        lines += [f"{rng.choice(['the', 'a'])} DT B-NP"]
        lines += [f"{rng.choice(['cat', 'dog', 'man'])} NN I-NP"]
        lines += [f"{rng.choice(['saw', 'ran'])} VBD B-VP"]
      blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"

  corpus_files.write(root / "train.txt", text(120))
  corpus_files.write(root / "test.txt", text(20))
  return root


def tiny(module, variant, folder, **train_overrides):
  c = module.get_config(variant)
  c.data.dir = str(folder)
  c.train.update(train_overrides)
  return config_lib.from_dict(c.to_dict())


def records(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(l) for l in f]


def final_params(workdir):
  return rundir.load_trained(workdir, "latest").params


@pytest.fixture(scope="module", params=["classify", "tag"])
def finished(request, tmp_path_factory):
  root = tmp_path_factory.mktemp(request.param)
  if request.param == "classify":
    cfg = tiny(sst2, "smoke", sst_folder(root / "data"), num_epochs=3)
  else:
    cfg = tiny(
        conll2000, "smoke", conll_folder(root / "data"), num_epochs=3
    )
  workdir = str(root / "run")
  results = train.train_and_evaluate(cfg, workdir, log=lambda s: None)
  return cfg, workdir, results


def test_the_task_learns_and_reports_its_metrics(finished):
  cfg, workdir, results = finished
  losses = [r["train_loss"] for r in records(workdir) if "train_loss" in r]
  assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.2
  final = sentences.final_split(cfg)
  if cfg.task == "classify":
    assert results["dev_acc"] > 80
    assert np.sum(results["dev_confusion"]) == results["dev_examples"] == 40
  else:
    assert results["test_f1"] > 80
    assert 0 <= results["test_precision"] <= 100
  assert results[f"{final}_error"] == 100 - results[
      f"{final}_acc" if cfg.task == "classify" else f"{final}_f1"
  ]


def test_resume_continues_exactly(finished, tmp_path):
  cfg, full, _ = finished
  workdir = str(tmp_path / "resumed")
  stopped = config_lib.replace(cfg, train={"max_steps": 36})
  train.train_and_evaluate(stopped, workdir, log=lambda s: None)
  logs = []
  train.train_and_evaluate(cfg, workdir, log=logs.append)
  assert any("resumed from step 36" in l for l in logs)
  untimed = runs_lib.without_timings
  assert untimed(records(workdir)) == untimed(records(full))
  for a, b in zip(
      jax.tree.leaves(final_params(workdir)), jax.tree.leaves(final_params(full))
  ):
    np.testing.assert_array_equal(a, b)


def test_evaluate_reports_the_final_metrics_again(finished):
  cfg, workdir, results = finished
  again = evaluation.evaluate_run(workdir)
  final = sentences.final_split(cfg)
  for key in (f"valid_loss", f"{final}_loss", f"{final}_acc"):
    assert again[key] == pytest.approx(results[key], rel=1e-6)


def test_predict_labels_sentences_from_stdin_as_json(finished, tmp_path):
  cfg, workdir, _ = finished
  text = (
      "the film was great\nbad plot\n"
      if cfg.task == "classify"
      else "the cat saw a dog\nthe man ran\n"
  )
  path = corpus_files.write(tmp_path / "in.txt", text)
  proc = run("experiments.predict", f"--workdir={workdir}", f"--input={path}",
             "--json")
  assert proc.returncode == 0, proc.stderr[-2000:]
  out = [json.loads(l) for l in proc.stdout.splitlines()]
  if cfg.task == "classify":
    assert [o["label"] for o in out] == ["1", "0"]
    assert all(0.5 < o["prob"] <= 1 for o in out)
  else:
    assert out[1] == {
        "tokens": ["the", "man", "ran"],
        "tags": ["B-NP", "I-NP", "B-VP"],
    }


@pytest.mark.parametrize(
    "config, file, content, message",
    [
        ("sst2.py:smoke", "train.tsv", "sentence\tlabel\ngood film\t2\n",
         "train.tsv:2:"),
        ("sst2.py:smoke", "train.tsv", "sentence\tlabel\ngood\t1\textra\n",
         "train.tsv:2:"),
        ("conll2000.py:smoke", "train.txt", "the DT B-NP\ncat NN\n",
         "train.txt:2:"),
        ("conll2000.py:smoke", "train.txt", b"the DT B-NP\n\xff NN I-NP\n",
         "train.txt:2:"),
    ],
)
def test_a_bad_line_is_one_error_line_naming_file_and_line(
    config, file, content, message, tmp_path
):
  folder = sst_folder(tmp_path / "d") if "sst2" in config else conll_folder(
      tmp_path / "d"
  )
  corpus_files.write(folder / file, content)
  proc = run(
      "experiments.train",
      f"--config=experiments/configs/{config}",
      f"--config.data.dir={folder}",
      f"--workdir={tmp_path}/w",
  )
  assert proc.returncode == 1
  lines = proc.stderr.strip().splitlines()
  assert len(lines) == 1 and message in lines[0], proc.stderr


def test_tables_summarise_accuracy_over_seeds_and_mark_the_highest(
    finished, tmp_path
):
  from rnnlm_jax import tables

  cfg, workdir, results = finished
  if cfg.task != "classify":
    pytest.skip("one task's runs suffice")
  accs = {("lstm", 0): 80.0, ("lstm", 1): 84.0, ("gru", 0): 70.0}
  for (cell, seed), acc in accs.items():
    run_dir = tmp_path / "runs" / f"{cell}-{seed}"
    run_dir.mkdir(parents=True)
    values = config_lib.to_dict(cfg)
    values["model"]["cell"], values["train"]["seed"] = cell, seed
    (run_dir / "config.json").write_text(json.dumps(values))
    (run_dir / "results.json").write_text(
        json.dumps({**results, "dev_acc": acc})
    )
  summary, _ = tables.build_tables([str(tmp_path / "runs")], str(tmp_path / "t"))
  assert "dev_acc" in summary.metrics and "valid_acc" in summary.metrics
  means = {r.values[0]: r.stats["dev_acc"][0] for r in summary.rows}
  assert means == {"gru": 70.0, "lstm": 82.0}
  assert tables.best_mean(summary, "dev_acc") == 82.0


def test_vectorised_seeds_train_as_separate_runs_do(finished, tmp_path):
  cfg, _, _ = finished
  if cfg.task != "classify":
    pytest.skip("one task's trials suffice")
  short = lambda seed: config_lib.replace(
      cfg, train={"max_steps": 12, "seed": seed, "log_every": 4,
                  "checkpoint_every": 4}
  )
  dirs = [str(tmp_path / f"trial{s}") for s in (0, 1)]
  train.train_trials([short(0), short(1)], dirs, log=lambda s: None)
  alone = str(tmp_path / "alone")
  train.train_and_evaluate(short(1), alone, log=lambda s: None)
  losses = lambda w: [r["train_loss"] for r in records(w) if "train_loss" in r]
  # Each trial shuffles by its own seed, as its separate run does.
  np.testing.assert_allclose(losses(dirs[1]), losses(alone), rtol=1e-5)
  assert losses(dirs[0]) != losses(dirs[1])
