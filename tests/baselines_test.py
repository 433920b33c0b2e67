"""The baselines through the same entry points as the RNNs: training by
config, evaluation of the run directory, sampling, and the command lines."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from experiments.configs import ptb_baselines
from experiments.configs import synthetic_baselines
from rnnlm_jax import config as config_lib
from rnnlm_jax import corpus as corpus_lib
from rnnlm_jax import evaluation
from rnnlm_jax import ngram
from rnnlm_jax import rundir
from rnnlm_jax import sampling
from rnnlm_jax import scoring
from rnnlm_jax import train
from rnnlm_jax.agreement import sample_probes
from rnnlm_jax.english import default_grammar

ROOT = Path(__file__).resolve().parents[1]


def tiny(kind, **model):
  cfg = config_lib.from_dict(
      synthetic_baselines.get_config(
          {
              "count_ngram": "kn3",
              "maxent": "maxent5",
              "maxent_exact": "maxent5",
              "neural_ngram": "neural5",
          }[kind]
      ).to_dict()
  )
  if kind == "maxent_exact":  # The exact features (and their classes).
    model = {"maxent_features": "exact", "maxent_classes": 4, **model}
  return config_lib.replace(
      cfg,
      data={"synthetic_sentences": (300, 40, 40), "batch_size": 4, "bptt": 8},
      model={"hidden": 16, "embed_dim": 8, "hash_bits": 18, **model},
      train={"num_epochs": 2, "log_every": 10, "checkpoint_every": 20},
      optim={
          "learning_rate": {"maxent": 1e-2, "maxent_exact": 0.1}.get(kind, 3e-3)
      },
  )


@pytest.fixture(
    scope="module",
    params=["count_ngram", "maxent", "maxent_exact", "neural_ngram"],
)
def trained(request, tmp_path_factory):
  cfg = tiny(request.param)
  workdir = str(tmp_path_factory.mktemp(request.param))
  results = train.train_and_evaluate(cfg, workdir, log=lambda s: None)
  return cfg, workdir, results


def test_every_family_trains_below_uniform_and_evaluates_the_same(trained):
  cfg, workdir, results = trained
  vocab_size = len(corpus_lib.load_corpus(cfg.data).vocab)
  assert results["floor_ppl"] < results["test_ppl"] < vocab_size / 2
  again = evaluation.evaluate_run(workdir)
  assert again["test_tokens"] == results["test_tokens"]
  np.testing.assert_allclose(again["test_ppl"], results["test_ppl"], rtol=1e-5)


def test_exact_maxent_resumes_exactly(trained, tmp_path):
  """A run stopped at a checkpoint and continued logs the losses and gets
  the results of the uninterrupted one: the restored index included."""
  cfg, workdir, results = trained
  if cfg.model.maxent_features != "exact":
    pytest.skip("the exact maxent features' run only")
  stopped = config_lib.replace(cfg, train={"max_steps": 20})
  train.train_and_evaluate(stopped, str(tmp_path), log=lambda s: None)
  logs = []
  again = train.train_and_evaluate(cfg, str(tmp_path), log=logs.append)
  assert any("resumed from step 20" in line for line in logs)

  def losses(run):
    with open(os.path.join(run, rundir.METRICS_FILE)) as f:
      rows = [json.loads(line) for line in f]
    return [(r["step"], r["train_loss"]) for r in rows if "train_loss" in r]

  assert losses(str(tmp_path)) == losses(workdir)
  np.testing.assert_allclose(again["test_ppl"], results["test_ppl"], rtol=1e-6)


def test_counted_run_matches_the_library_model(trained):
  cfg, workdir, results = trained
  if cfg.model.kind != "count_ngram":
    pytest.skip("count-based model only")
  corpus = corpus_lib.load_corpus(cfg.data)
  model = ngram.fit(
      corpus.ids["train"],
      cfg.model.order,
      len(corpus.vocab),
      cfg.model.smoothing,
      start_id=corpus.start_id,
      reset_at_eos=True,
  )
  want = model.perplexity(corpus.ids["test"], corpus.start_id)
  np.testing.assert_allclose(results["test_ppl"], want, rtol=1e-9)
  assert os.path.exists(os.path.join(workdir, rundir.NGRAM_FILE))


def test_samples_are_sentences_of_the_vocabulary(trained):
  cfg, workdir, _ = trained
  words = set(corpus_lib.load_corpus(cfg.data).vocab.tokens)
  sample = lambda seed: sampling.sample_run(
      workdir, 4, 30, seed=seed, prompts=("the", "a dog")
  )[0]
  texts = sample(1)
  assert len(texts) == 8
  for i, text in enumerate(texts):
    assert text.startswith("the " if i < 4 else "a dog ")
    assert set(text.split()) <= words
  assert texts == sample(1)
  assert texts != sample(2)


def test_bad_sampling_request_is_refused(trained):
  _, workdir, _ = trained
  with pytest.raises(sampling.SamplingError, match="temperature"):
    sampling.sample_run(workdir, decoding=sampling.Decoding(temperature=-1.0))


def test_ptb_baseline_variants_are_valid_configs():
  for variant in ptb_baselines.VARIANTS:
    cfg = config_lib.from_dict(ptb_baselines.get_config(variant).to_dict())
    assert cfg.model.order >= 3
  with pytest.raises(ValueError, match="unknown variant"):
    ptb_baselines.get_config("kn9")


def test_mle_perplexity_is_reported_as_inf(tmp_path):
  cfg = config_lib.replace(tiny("count_ngram"), model={"smoothing": "mle"})
  results = train.train_and_evaluate(cfg, str(tmp_path), log=lambda s: None)
  assert math.isinf(results["test_ppl"])


def test_sample_command_line(trained, tmp_path):
  _, workdir, _ = trained
  proc = subprocess.run(
      [
          sys.executable,
          "-m",
          "experiments.sample",
          f"--workdir={workdir}",
          "--num_samples=2",
          "--max_len=12",
      ],
      cwd=ROOT,
      capture_output=True,
      text=True,
      timeout=300,
  )
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert len(proc.stdout.strip().splitlines()) == 2
  bad = subprocess.run(
      [sys.executable, "-m", "experiments.sample", f"--workdir={tmp_path}"],
      cwd=ROOT,
      capture_output=True,
      text=True,
      timeout=300,
  )
  assert bad.returncode != 0
  assert len(bad.stderr.strip().splitlines()) == 1, bad.stderr


def test_scoring_a_split_equals_its_evaluation(trained):
  """The scorer (a sentence from a fresh state) on a whole split as one
  sequence gives the evaluation loss at batch size 1."""
  cfg, workdir, _ = trained
  score, _, _ = scoring.load_scorer(workdir)
  ids = corpus_lib.load_corpus(cfg.data).ids["test"].tolist()
  (lp,) = score([ids])
  evaluated = evaluation.evaluate_run(workdir, splits=("test",), batch_size=1)
  np.testing.assert_allclose(
      -lp.sum(), evaluated["test_loss"] * evaluated["test_tokens"], rtol=1e-4
  )
  # Sentences scored in one padded batch equal each scored alone.
  sentences = [ids[:5], ids[5:17], ids[17:18]]
  together = score(sentences)
  for s, lp in zip(sentences, together):
    np.testing.assert_allclose(lp, score([s])[0], rtol=1e-5, atol=1e-6)


def test_agreement_study_writes_table_and_plot(trained, tmp_path):
  _, workdir, _ = trained
  from experiments import agreement

  probes = sample_probes(default_grammar(), 40, 0, 0)
  correct = agreement.verb_correct(workdir, probes)
  assert correct.shape == (40,) and correct.dtype == bool
  rows = agreement.accuracy_table(
      np.array([p["distance"] for p in probes]), {"m": correct}
  )
  assert sum(r[1] for r in rows) == 40
  agreement.write_outputs(str(tmp_path), rows, ["m"])
  assert (tmp_path / "agreement.png").stat().st_size > 0
  assert "| distance (words) |" in (tmp_path / "agreement.md").read_text()


def test_score_command_ranks_and_prints_json(trained, tmp_path):
  _, workdir, _ = trained
  good, bad = "the dog sleeps", "sleeps dog the"
  candidates = tmp_path / "c.txt"
  candidates.write_text(f"{bad}\n{good}\n")
  run = lambda *a: subprocess.run(
      [sys.executable, "-m", "experiments.score", f"--workdir={workdir}", *a],
      cwd=ROOT,
      capture_output=True,
      text=True,
      timeout=300,
  )
  ranked = run(f"--input={candidates}", "--rank")
  assert ranked.returncode == 0, ranked.stderr[-2000:]
  assert ranked.stdout.splitlines()[0].endswith(good)
  as_json = run(f"--input={candidates}", "--json")
  rows = [json.loads(l) for l in as_json.stdout.splitlines()]
  assert [r["sentence"] for r in rows] == [bad, good]
  for r in rows:
    assert r["tokens"] == 4 and len(r["surprisal_bits"]) == 4
    np.testing.assert_allclose(
        -sum(b for _, b in r["surprisal_bits"]) * math.log(2),
        r["logprob"],
        rtol=1e-9,
    )
