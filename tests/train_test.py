"""The training loop: one compile, learning, exact resume, NaN stops."""

import json
import os
import shutil

import jax
import numpy as np
import optax
import pytest

from experiments.configs import smoke
from rnnlm_jax import backends
from rnnlm_jax import checkpoint
from rnnlm_jax import models
from rnnlm_jax import config as config_lib
from rnnlm_jax import curves
from rnnlm_jax import corpus as corpus_lib
from rnnlm_jax import optim
from rnnlm_jax import provenance
from rnnlm_jax import runs as runs_lib
from rnnlm_jax import steps
from rnnlm_jax import train


def tiny_config(**overrides):
  c = smoke.get_config()
  c.data.synthetic_sentences = (150, 30, 30)
  c.train.log_every = 5
  c.train.checkpoint_every = 10
  cfg = config_lib.from_dict(c.to_dict())
  return config_lib.replace(cfg, **overrides) if overrides else cfg


def train_records(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    rows = [json.loads(line) for line in f]
  return [
      (r["step"], r["train_loss"], r["grad_norm"])
      for r in rows
      if "train_loss" in r
  ]


def final_params(workdir, cfg):
  corpus = corpus_lib.load_corpus(cfg.data)
  cfg = train.with_vocab_size(cfg, len(corpus.vocab))
  tx, _ = optim.make_optimizer(cfg.optim, 10, cfg.train.num_epochs)
  target = steps.init_train_state(
      jax.random.key(0), cfg.model, tx, cfg.data.batch_size
  )
  state, _ = checkpoint.restore(workdir, "latest", target)
  return state


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
  cfg = tiny_config()
  workdir = str(tmp_path_factory.mktemp("full"))
  results = train.train_and_evaluate(cfg, workdir, log=lambda s: None)
  return cfg, workdir, results


def test_training_lowers_the_loss_and_writes_the_run_directory(uninterrupted):
  cfg, workdir, results = uninterrupted
  records = train_records(workdir)
  assert records[-1][1] < records[0][1] - 0.5
  for name in ("config.json", "vocab.json", "metrics.jsonl", "results.json"):
    assert os.path.exists(os.path.join(workdir, name))
  with open(os.path.join(workdir, "vocab.json")) as f:
    vocab_size = sum(1 for _ in f)
  assert results["valid_ppl"] < vocab_size / 2  # Far better than uniform.
  assert results["floor_ppl"] < results["test_ppl"]
  assert results["test_tokens"] == sum(
      len(s.split()) + 1 for s in _synthetic_split(cfg, "test")
  )


def test_validation_curves_count_updates_tokens_and_training_seconds(
    uninterrupted,
):
  cfg, workdir, results = uninterrupted
  c = curves.read_curve(workdir, "run")
  epochs = np.arange(1, cfg.train.num_epochs + 1)
  # One validation per epoch; every epoch makes the same updates and reads
  # the same tokens.
  np.testing.assert_array_equal(c.updates, c.updates[0] * epochs)
  np.testing.assert_allclose(c.tokens, c.tokens[0] * epochs, rtol=1e-6)
  assert c.tokens[0] >= c.updates[0] * cfg.data.batch_size
  assert (np.diff(c.seconds) > 0).all()
  assert c.seconds[-1] <= results["train_seconds_this_process"]


def _synthetic_split(cfg, split):
  from rnnlm_jax import synthetic

  n = cfg.data.synthetic_sentences
  return synthetic.make_corpus(*n, cfg.data.synthetic_seed)[split]


def test_resume_continues_exactly(uninterrupted, tmp_path):
  cfg, full_dir, _ = uninterrupted
  workdir = str(tmp_path)
  stopped = config_lib.replace(cfg, train={"max_steps": 30})
  train.train_and_evaluate(stopped, workdir, log=lambda s: None)
  assert checkpoint.latest_step(workdir, "latest") == 30
  # A kill in the middle of appending a line (and of the provenance's).
  for name in ("metrics.jsonl", "provenance.jsonl"):
    with open(os.path.join(workdir, name), "a", encoding="utf-8") as f:
      f.write('{"step": 35, "train_lo')
  logs = []
  train.train_and_evaluate(cfg, workdir, log=logs.append)
  assert any("resumed from step 30" in line for line in logs)
  assert train_records(workdir) == train_records(full_dir)
  assert [r["step"] for r in provenance.read(workdir)] == [0, 30]
  a, b = final_params(workdir, cfg), final_params(full_dir, cfg)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(x, y)


def test_incompatible_run_directory_is_refused(uninterrupted):
  cfg, workdir, _ = uninterrupted
  other = config_lib.replace(cfg, model={"hidden": 32})
  with pytest.raises(train.IncompatibleRun, match="model.hidden is 16 there"):
    train.train_and_evaluate(other, workdir, log=lambda s: None)


# Orbax leaves its failed read's event loop to be closed by the collector.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_damaged_checkpoint_is_refused_with_its_reason(uninterrupted, tmp_path):
  cfg, workdir, _ = uninterrupted
  copy = tmp_path / "run"
  shutil.copytree(workdir, copy)
  data_files = [
      p for p in (copy / "checkpoints" / "latest").rglob("*")
      if p.is_file() and p.parent.name == "d"
  ]
  biggest = max(data_files, key=lambda p: p.stat().st_size)
  with open(biggest, "r+b") as f:
    f.truncate(10)
  with pytest.raises(train.IncompatibleRun, match="or is damaged: .*latest"):
    train.train_and_evaluate(cfg, str(copy), log=lambda s: None)


def test_a_run_stopped_before_validation_is_used_from_its_latest(tmp_path):
  """With no best checkpoint yet, a run directory's model is its latest,
  the one results.json reports."""
  from rnnlm_jax import evaluation

  cfg = tiny_config(train={"max_steps": 5})
  results = train.train_and_evaluate(cfg, str(tmp_path), log=lambda s: None)
  assert checkpoint.latest_step(str(tmp_path), "best") is None
  again = evaluation.evaluate_run(str(tmp_path))
  assert again["step"] == results["step"] == 5
  np.testing.assert_allclose(again["test_ppl"], results["test_ppl"], rtol=1e-6)


def test_more_epochs_continue_a_run_unless_the_schedule_spans_them():
  """num_epochs may grow on resume under a constant-shaped schedule; under
  warmup_cosine, whose decay is laid over the epochs, it is the run's."""
  from rnnlm_jax import rundir

  base = tiny_config(optim={"schedule": "epoch_decay"})
  rundir.check_compatible(
      base, config_lib.replace(base, train={"num_epochs": 9})
  )
  cosine = tiny_config(optim={"schedule": "warmup_cosine"})
  with pytest.raises(train.IncompatibleRun, match="train.num_epochs"):
    rundir.check_compatible(
        cosine, config_lib.replace(cosine, train={"num_epochs": 9})
    )


def test_nan_stops_training_with_the_step(tmp_path):
  cfg = tiny_config(
      model={"cell": "rnn_relu"},
      optim={"name": "sgd", "learning_rate": 1e30, "clip_norm": 0.0},
  )
  with pytest.raises(
      train.TrainingDiverged, match=r"non-finite training loss at step \d+"
  ):
    train.train_and_evaluate(cfg, str(tmp_path), log=lambda s: None)
  assert checkpoint.latest_step(str(tmp_path), "latest") is None


def test_non_finite_parameters_after_the_last_step_are_not_saved(
    tmp_path, monkeypatch
):
  """An update that overflows on the last step (its loss and gradient were
  finite, so no later loss shows it) stops the run before any save."""
  make = optim.make_optimizer

  def overflowing(*args, **kwargs):
    tx, schedule = make(*args, **kwargs)
    return optax.chain(tx, optax.scale(float("inf"))), schedule

  monkeypatch.setattr(optim, "make_optimizer", overflowing)
  cfg = tiny_config(train={"max_steps": 1})
  with pytest.raises(
      train.TrainingDiverged, match="non-finite parameters after step 1"
  ):
    train.train_and_evaluate(cfg, str(tmp_path), log=lambda s: None)
  assert checkpoint.latest_step(str(tmp_path), "latest") is None


def test_train_step_compiles_once():
  cfg = tiny_config()
  corpus = corpus_lib.load_corpus(cfg.data)
  cfg = train.with_vocab_size(cfg, len(corpus.vocab))
  batches = jax.device_put(corpus_lib.train_batches(corpus, cfg.data, 0, 0))
  tx, _ = optim.make_optimizer(cfg.optim, batches["x"].shape[0], 1)
  state = steps.init_train_state(
      jax.random.key(0), cfg.model, tx, cfg.data.batch_size
  )
  step = steps.make_train_step(cfg.model, tx)
  for _ in range(3):
    state, _ = step(state, batches)
  state = state.replace(carry=models.init_carry(cfg.model, cfg.data.batch_size))
  state, _ = step(state, batches)
  assert step._cache_size() == 1


@pytest.mark.parametrize(
    "data_overrides",
    [
        {"mode": "sentence", "max_sentence_len": 12},
        {"reset_at_eos": True},
    ],
)
def test_other_data_modes_train_and_count_every_token(data_overrides, tmp_path):
  cfg = tiny_config(data=data_overrides, train={"num_epochs": 1})
  results = train.train_and_evaluate(cfg, str(tmp_path), log=lambda s: None)
  assert results["test_tokens"] == sum(
      len(s.split()) + 1 for s in _synthetic_split(cfg, "test")
  )
  assert results["test_ppl"] < 186


def test_reset_at_eos_makes_sentences_independent():
  """With resets, a sentence's losses do not depend on what preceded it."""
  cfg = tiny_config(data={"reset_at_eos": True})
  corpus = corpus_lib.load_corpus(cfg.data)
  cfg = train.with_vocab_size(cfg, len(corpus.vocab))
  params = models.init_lm(jax.random.key(0), cfg.model)
  eos = corpus.start_id
  sentence = np.array([eos, 5, 9, 7, eos])
  for prefix in ([eos, 3, 4], [eos, 8, 8, 8, 2]):
    x = np.concatenate([prefix, sentence])[None]
    logits, _ = models.apply_lm(
        params, cfg.model, models.init_carry(cfg.model, 1), x, x == eos
    )
    tail = np.asarray(logits[0, -len(sentence) :])
    if prefix[1] == 3:
      first = tail
  np.testing.assert_allclose(first, tail, rtol=1e-6, atol=1e-6)


def test_reset_and_sentence_batches_score_each_sentence_alone():
  """A split's batches with reset_at_eos, and in sentence mode, give the
  sum of its sentences' losses, each scored alone from a zero state (with
  weights large enough for the carry to matter)."""
  cfg = tiny_config(data={"reset_at_eos": True}, model={"init_scale": 1.0})
  corpus = corpus_lib.load_corpus(cfg.data)
  cfg = train.with_vocab_size(cfg, len(corpus.vocab))
  params = models.init_lm(jax.random.key(0), cfg.model)
  eos, ids = corpus.start_id, corpus.ids["test"]
  sentences = np.split(ids, np.flatnonzero(ids == eos)[:-1] + 1)
  longest = max(len(s) for s in sentences)
  x = np.full((len(sentences), longest), eos)
  y = np.full((len(sentences), longest), eos)
  mask = np.zeros((len(sentences), longest))
  for i, s in enumerate(sentences):
    assert s[-1] == eos
    x[i, 1 : len(s)], y[i, : len(s)], mask[i, : len(s)] = s[:-1], s, 1
  nll, _ = models.token_nll(
      params, cfg.model, models.init_carry(cfg.model, len(x)), x, y
  )
  want = float((np.asarray(nll) * mask).sum())
  evaluate = steps.make_evaluate(cfg.model)
  data_cfgs = {
      "reset": cfg.data,
      "sentence": config_lib.replace(
          cfg, data={"mode": "sentence", "max_sentence_len": longest}
      ).data,
      "stream": config_lib.replace(cfg, data={"reset_at_eos": False}).data,
  }
  totals = {}
  for name, data_cfg in data_cfgs.items():
    # One stream: B > 1 would start streams mid-sentence from a zero state.
    batches = corpus_lib.eval_batches(corpus, data_cfg, "test", batch_size=1)
    total, count, _ = evaluate(
        params, models.init_carry(cfg.model, 1), batches
    )
    assert int(count) == ids.size
    totals[name] = float(total)
  np.testing.assert_allclose(totals["reset"], want, rtol=1e-5)
  np.testing.assert_allclose(totals["sentence"], want, rtol=1e-5)
  assert abs(totals["stream"] - want) > 1e-3 * want  # The carry matters.
  train_batches = corpus_lib.train_batches(corpus, cfg.data, 0, 0)
  np.testing.assert_array_equal(
      train_batches["reset"], train_batches["x"] == eos
  )


def test_full_batch_run_evaluates_and_counts_tokens_at_any_batch_size(tmp_path):
  from rnnlm_jax import evaluation

  cfg = tiny_config(optim={"grad_accum_steps": -1}, train={"num_epochs": 2})
  workdir = str(tmp_path)
  results = train.train_and_evaluate(cfg, workdir, log=lambda s: None)
  for batch in (1, 3, 7):
    again = evaluation.evaluate_run(workdir, batch_size=batch)
    assert again["test_tokens"] == results["test_tokens"]
    np.testing.assert_allclose(
        again["test_ppl"], results["test_ppl"], rtol=0.05
    )
  again = evaluation.evaluate_run(workdir, batch_size=cfg.data.eval_batch_size)
  np.testing.assert_allclose(again["test_ppl"], results["test_ppl"], rtol=1e-6)


def test_character_level_run_reports_bits_per_character(tmp_path):
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
      train={"num_epochs": 1},
  )
  results = train.train_and_evaluate(
      cfg, str(tmp_path / "run"), log=lambda s: None
  )
  n = len(text)
  assert results["valid_tokens"] + results["test_tokens"] == n - int(n * 0.8)
  np.testing.assert_allclose(
      results["test_bpc"], results["test_loss"] / np.log(2), rtol=1e-9
  )
  assert results["test_bpc"] < np.log2(len(set(text)))


def all_records(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return runs_lib.without_timings(json.loads(line) for line in f)


def test_eval_every_validates_between_epoch_ends_and_resumes_exactly(tmp_path):
  cfg = tiny_config(train={"eval_every": 20})
  full = str(tmp_path / "full")
  train.train_and_evaluate(cfg, full, log=lambda s: None)
  valid_steps = [r["step"] for r in all_records(full) if "valid_loss" in r]
  assert valid_steps == [20, 40, 60, 80]  # Epochs end at 46 and 92.
  best = checkpoint.latest_step(full, "best")
  assert best in valid_steps
  resumed = str(tmp_path / "resumed")
  stopped = config_lib.replace(cfg, train={"max_steps": 30})
  train.train_and_evaluate(stopped, resumed, log=lambda s: None)
  train.train_and_evaluate(cfg, resumed, log=lambda s: None)
  assert all_records(resumed) == all_records(full)
  assert checkpoint.latest_step(resumed, "best") == best


def test_metrics_are_written_as_tensorboard_events(uninterrupted):
  from rnnlm_jax import metrics

  _, workdir, _ = uninterrupted
  events = metrics.read_tensorboard(workdir)
  for tag in ("train_loss", "valid_ppl", "lr"):
    want = [(r["step"], r[tag]) for r in all_records(workdir) if tag in r]
    assert [s for s, _ in events[tag]] == [s for s, _ in want]
    np.testing.assert_allclose(
        [v for _, v in events[tag]], [v for _, v in want], rtol=1e-6
    )


def test_sigterm_saves_at_the_next_step_and_the_run_resumes_exactly(
    uninterrupted, tmp_path
):
  """A SIGTERM before the first checkpoint (here while the step compiles)
  saves after the step it interrupts, with the metrics not yet logged; the
  resumed run's log and parameters equal the uninterrupted run's."""
  import signal

  cfg, full_dir, _ = uninterrupted
  workdir = str(tmp_path)
  logs = []

  def log(line):
    logs.append(line)
    if line.startswith("compiled the train step") and len(logs) < 5:
      os.kill(os.getpid(), signal.SIGTERM)

  with pytest.raises(train.Preempted) as preempted:
    train.train_and_evaluate(cfg, workdir, log=log)
  assert preempted.value.code == 143
  assert any("preempted (SIGTERM) after step 1" in line for line in logs)
  assert checkpoint.latest_step(workdir, "latest") == 1
  assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
  resumed = []
  train.train_and_evaluate(cfg, workdir, log=resumed.append)
  assert any("resumed from step 1" in line for line in resumed)
  assert all_records(workdir) == all_records(full_dir)
  a, b = final_params(workdir, cfg), final_params(full_dir, cfg)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("name", ["adam", "sgd"])
def test_a_finite_but_exploded_loss_stops_training(name, tmp_path):
  """At lr 1e6 without clipping the loss explodes to a finite value far
  above a uniform guess's: the run stops like a NaN and saves nothing."""
  cfg = tiny_config(
      optim={"name": name, "learning_rate": 1e6, "clip_norm": 0.0}
  )
  with pytest.raises(train.TrainingDiverged, match="training loss .* above"):
    train.train_and_evaluate(cfg, str(tmp_path), log=lambda s: None)
  for slot in ("latest", "best"):
    assert checkpoint.latest_step(str(tmp_path), slot) is None


def test_an_infinite_validation_perplexity_stops_before_a_best(
    tmp_path, monkeypatch
):
  from rnnlm_jax.tasks import lm

  def infinite(self, params, split, k=1):
    return [{f"{split}_loss": 1.5e7, f"{split}_ppl": float("inf")}] * k

  monkeypatch.setattr(lm.LanguageModel, "evaluate", infinite)
  cfg = tiny_config(train={"eval_every": 10})
  with pytest.raises(
      train.TrainingDiverged, match="non-finite validation ppl after step 10"
  ):
    train.train_and_evaluate(cfg, str(tmp_path), log=lambda s: None)
  assert checkpoint.latest_step(str(tmp_path), "best") is None


def test_the_run_path_is_logged_and_recorded(tmp_path):
  logs = []
  cfg = tiny_config(train={"max_steps": 5})
  results = train.train_and_evaluate(cfg, str(tmp_path), log=logs.append)
  want = backends.resolve(cfg.model).describe()
  assert backends.summary(want) in logs
  assert results["path"] == want
  with open(tmp_path / "results.json") as f:
    assert json.load(f)["path"] == want
  assert provenance.read(str(tmp_path))[-1]["path"] == want


def test_the_reference_backend_is_what_the_run_says(tmp_path):
  logs = []
  cfg = tiny_config(train={"max_steps": 3}, model={"backend": "reference"})
  results = train.train_and_evaluate(cfg, str(tmp_path), log=logs.append)
  assert results["path"]["scan"] == "autodiff"
  assert results["path"]["kernel"] == "none"
  assert any(l.startswith("path: backend=reference") for l in logs)
