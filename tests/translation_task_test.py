"""The translator end to end on a tiny made-up language pair: it learns,
resumes exactly, is evaluated and translates from its run directory, draws
its attention, and bad data is one error line."""

import json
import os

import jax
import numpy as np
import pytest

from experiments.configs import fra_eng
from rnnlm_jax import config as config_lib
from rnnlm_jax import rundir
from rnnlm_jax import runs as runs_lib
from rnnlm_jax import train
from rnnlm_jax.tasks import translation
from tests import corpus_files
from tests.cli_test import run

DET = {"the": "le", "a": "un"}
NOUN = {"cat": "chat", "dog": "chien", "man": "homme", "car": "voiture",
        "house": "maison"}
ADJ = {"red": "rouge", "big": "grand", "old": "vieux"}
VERB = {"sees": "voit", "likes": "aime", "has": "a"}


def _phrase(rng):
  """(English, French) of a noun phrase: the adjective moves after the
  noun in French."""
  d, n = rng.choice(list(DET)), rng.choice(list(NOUN))
  if rng.random() < 0.5:
    return [d, n], [DET[d], NOUN[n]]
  a = rng.choice(list(ADJ))
  return [d, a, n], [DET[d], NOUN[n], ADJ[a]]


def pairs_file(folder, n=500, seed=0):
  rng = np.random.default_rng(seed)
  lines = set()
  while len(lines) < n:
    (e1, f1), (e2, f2) = _phrase(rng), _phrase(rng)
    v = rng.choice(list(VERB))
    en = " ".join(e1 + [v] + e2).capitalize() + "."
    fr = " ".join(f1 + [VERB[v]] + f2).capitalize() + " ."
    lines.add(f"{en}\t{fr}")
  corpus_files.write(folder / "fra.txt", "\n".join(sorted(lines)) + "\n")
  return folder


def tiny(folder, **train_overrides):
  c = fra_eng.get_config("smoke")
  c.data.dir = str(folder)
  c.model.hidden = 32
  c.data.batch_size = 16
  c.train.update(train_overrides)
  return config_lib.from_dict(c.to_dict())


def records(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(l) for l in f]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
  root = tmp_path_factory.mktemp("translate")
  cfg = tiny(pairs_file(root / "data"), num_epochs=8)
  workdir = str(root / "run")
  results = train.train_and_evaluate(cfg, workdir, log=lambda s: None)
  return cfg, workdir, results


def test_the_translator_learns_and_reports_bleu(finished):
  cfg, workdir, results = finished
  losses = [r["train_loss"] for r in records(workdir) if "train_loss" in r]
  assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 1.0
  for split in ("valid", "test"):
    for suffix in ("", "_greedy"):
      assert 0 <= results[f"{split}_bleu{suffix}"] <= 100
      assert 0 <= results[f"{split}_chrf{suffix}"] <= 100
  assert results["test_bleu"] > 30, results["test_bleu"]
  assert "case:lc" in results["bleu_signature"]
  by_length = results["test_bleu_by_length"]
  assert sum(b["sentences"] for b in by_length.values()) == results[
      "test_sentences"
  ]


def test_resume_continues_exactly(finished, tmp_path):
  cfg, _, _ = finished
  # Two epochs, greedy decoding in the report: the resumed run against an
  # uninterrupted one.
  cfg = config_lib.replace(
      cfg, train={"num_epochs": 2}, model={"beam_size": 1}
  )
  full, resumed = str(tmp_path / "full"), str(tmp_path / "resumed")
  train.train_and_evaluate(cfg, full, log=lambda s: None)
  stopped = config_lib.replace(cfg, train={"max_steps": 30})
  train.train_and_evaluate(stopped, resumed, log=lambda s: None)
  logs = []
  train.train_and_evaluate(cfg, resumed, log=logs.append)
  assert any("resumed from step 30" in l for l in logs)
  untimed = runs_lib.without_timings
  assert untimed(records(resumed)) == untimed(records(full))
  params = lambda w: rundir.load_trained(w, "latest").params
  for a, b in zip(jax.tree.leaves(params(resumed)), jax.tree.leaves(params(full))):
    np.testing.assert_array_equal(a, b)


def test_evaluate_reports_bleu_again_with_a_length_table(finished, tmp_path):
  cfg, workdir, results = finished
  proc = run("experiments.evaluate", f"--workdir={workdir}",
             f"--figure_dir={tmp_path}")
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert "test BLEU by source length:" in proc.stdout
  assert (tmp_path / "test_bleu_by_length.png").stat().st_size > 0
  again = dict(
      kv.split("=", 1) for kv in proc.stdout.strip().splitlines()[-1].split()
  )
  for key in ("valid_loss", "test_loss", "test_bleu", "test_chrf",
              "valid_bleu_greedy"):
    assert float(again[key]) == pytest.approx(results[key], abs=1e-4), key


def test_translate_reads_stdin_and_draws_attention(finished, tmp_path):
  cfg, workdir, _ = finished
  sources = ["Le chat rouge voit un chien .", "Un homme a le vieux voiture ."]
  path = corpus_files.write(tmp_path / "in.txt", "\n".join(sources) + "\n")
  proc = run(
      "experiments.translate", f"--workdir={workdir}", f"--input={path}",
      "--json", "--beam=1", "--show_attention",
      f"--attention_dir={tmp_path / 'attn'}",
  )
  assert proc.returncode == 0, proc.stderr[-2000:]
  out = [json.loads(l) for l in proc.stdout.splitlines()]
  assert [o["source"] for o in out] == sources
  trained = rundir.load_trained(workdir, "best")
  src_vocab, tgt_vocab = translation.split_vocab(trained.vocab)
  greedy = translation.translate_sentences(
      cfg, src_vocab, tgt_vocab, trained.params, sources, beam=1
  )
  assert [o["text"] for o in out] == [g["text"] for g in greedy]
  assert sorted(os.listdir(tmp_path / "attn")) == [
      "attention_1.png", "attention_2.png"
  ]


def test_attention_rows_are_distributions_over_the_source(finished):
  cfg, workdir, _ = finished
  trained = rundir.load_trained(workdir, "best")
  src_vocab, tgt_vocab = translation.split_vocab(trained.vocab)
  w = translation.attention_matrix(
      cfg, trained.params, src_vocab.encode(["le", "chat", "voit", "un",
                                             "chien", "."]),
      translation.encode_target(tgt_vocab, ["the", "cat", "sees", "a"]),
  )
  assert w.shape == (5, 6)
  np.testing.assert_allclose(w.sum(axis=1), 1.0, rtol=1e-5)


def test_the_saved_vocabularies_round_trip(finished):
  _, workdir, _ = finished
  vocab = rundir.load_trained(workdir, "best").vocab
  src, tgt = translation.split_vocab(vocab)
  assert translation.joint_vocab(src, tgt) == vocab
  assert tgt.tokens[:3] == translation.TARGET_SPECIALS
  assert "chat" in src and "cat" in tgt and "cat" not in src


@pytest.mark.parametrize(
    "content, message",
    [
        ("Go.\tVa !\nRun!\n", "fra.txt:2:"),
        ("Go.\tVa !\n\tCours !\n", "fra.txt:2:"),
        (b"Go.\tVa !\nRun!\tCours\xff !\n", "fra.txt:2:"),
    ],
)
def test_a_bad_line_is_one_error_line_naming_file_and_line(
    content, message, tmp_path
):
  folder = tmp_path / "d"
  corpus_files.write(folder / "fra.txt", content)
  proc = run(
      "experiments.train",
      "--config=experiments/configs/fra_eng.py:smoke",
      f"--config.data.dir={folder}",
      f"--workdir={tmp_path}/w",
  )
  assert proc.returncode == 1
  lines = proc.stderr.strip().splitlines()
  assert len(lines) == 1 and message in lines[0], proc.stderr
