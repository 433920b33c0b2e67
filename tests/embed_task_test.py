"""The embedding task end to end on a tiny two-topic corpus: skip-gram and
CBOW learn and report SimLex and analogies (again from the run directory),
resume exactly, keep one step shape across epochs, take a sparse step equal
to dense SGD; PPMI-SVD computes its vectors once; experiments.embeddings
reads the run; bad configs and a missing SimLex file are one error."""

import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import word2vec as word2vec_configs
from rnnlm_jax import config as config_lib
from rnnlm_jax import embeddings
from rnnlm_jax import evaluation
from rnnlm_jax import optim
from rnnlm_jax import rundir
from rnnlm_jax import runs as runs_lib
from rnnlm_jax import steps
from rnnlm_jax import tasks as tasks_lib
from rnnlm_jax import train
from rnnlm_jax.errors import DataError
from rnnlm_jax.vocab import Vocab
from tests import corpus_files
from tests.cli_test import run

# Two topics that never share a line, and words of both.
ANIMALS = "cat dog horse cow sheep goat pig duck hen fox wolf bear".split()
VEHICLES = "car bus train truck bike boat plane van tram ship taxi jet".split()
COMMON = "the a and of with near".split()
SIMLEX_PAIRS = [
    ("cat", "dog", 8.5),
    ("horse", "cow", 8.0),
    ("sheep", "goat", 9.0),
    ("fox", "wolf", 8.8),
    ("car", "bus", 7.5),
    ("train", "tram", 8.2),
    ("boat", "ship", 9.1),
    ("plane", "jet", 9.3),
    ("cat", "car", 0.5),
    ("dog", "bus", 0.3),
    ("cow", "boat", 0.4),
    ("pig", "plane", 0.2),
    ("hen", "taxi", 0.6),
    ("bear", "van", 0.1),
]
ANALOGY_QUESTIONS = [
    ("cat", "dog", "car", "bus"),
    ("horse", "cow", "boat", "ship"),
    ("sheep", "goat", "plane", "jet"),
    ("car", "bus", "cat", "dog"),
    ("fox", "wolf", "train", "tram"),
]


def _lines(rng, n):
  out = []
  for _ in range(n):
    topic = ANIMALS if rng.random() < 0.5 else VEHICLES
    words = [
        rng.choice(topic) if rng.random() < 0.8 else rng.choice(COMMON)
        for _ in range(rng.integers(6, 11))
    ]
    out.append(" ".join(words))
  return "\n".join(out) + "\n"


def write_data(root):
  """The corpus folder root/corpus, with SimLex and the analogies beside
  it where the task looks for them."""
  rng = np.random.default_rng(0)
  folder = corpus_files.corpus_dir(
      root,
      train=_lines(rng, 300),
      valid=_lines(rng, 40),
      test=_lines(rng, 40),
  )
  simlex = ["word1\tword2\tPOS\tSimLex999\tconc(w1)"]
  simlex += [f"{a}\t{b}\tN\t{s}\t4.5" for a, b, s in SIMLEX_PAIRS]
  corpus_files.write(
      root / "simlex-999" / "SimLex-999.txt", "\n".join(simlex) + "\n"
  )
  questions = [": topics"] + [" ".join(q) for q in ANALOGY_QUESTIONS]
  corpus_files.write(
      root / "word-analogy" / "questions-words.txt",
      "\n".join(questions) + "\n",
  )
  return folder


def smoke(folder, **groups):
  """word2vec.py:smoke on the tiny corpus, with groups of changes:
  smoke(folder, model={"kind": "cbow"}). No subsampling (at 1e-3 of 2,400
  words it keeps a fifth, too few steps to learn in two epochs) and fewer
  checkpoints (saving every 4 steps is most of a run's time here)."""
  c = word2vec_configs.get_config("smoke").to_dict()
  c["data"]["dir"] = str(folder)
  c["data"]["subsample"] = 0.0
  c["train"].update(log_every=10, checkpoint_every=50)
  for group, changes in groups.items():
    c[group].update(changes)
  return config_lib.from_dict(c)


def records(workdir):
  with open(os.path.join(workdir, rundir.METRICS_FILE)) as f:
    return [json.loads(l) for l in f]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
  return write_data(tmp_path_factory.mktemp("embed"))


@pytest.fixture(scope="module")
def skipgram_run(data, tmp_path_factory):
  cfg = smoke(data)
  workdir = str(tmp_path_factory.mktemp("skipgram"))
  logs = []
  results = train.train_and_evaluate(cfg, workdir, log=logs.append)
  return cfg, workdir, results, logs


RESULT_KEYS = (
    "simlex_rho",
    "simlex_pairs",
    "analogy_acc",
    "analogy_covered",
    "valid_loss",
    "test_loss",
)


def _check_results(cfg, workdir, results):
  with open(os.path.join(workdir, rundir.RESULTS_FILE)) as f:
    saved = json.load(f)
  for key in RESULT_KEYS:
    assert key in saved, key
  assert saved["simlex_pairs"] == len(SIMLEX_PAIRS)
  assert saved["analogy_covered"] == len(ANALOGY_QUESTIONS)
  assert -1.0 <= saved["simlex_rho"] <= 1.0
  assert 0.0 <= saved["analogy_acc"] <= 1.0
  line = train.summary_line(results)
  assert "simlex_rho=" in line and "analogy_acc=" in line, line
  # All scores start at 0: (K + 1) log 2 per positive pair.
  untrained = (cfg.model.negatives + 1) * math.log(2)
  assert saved["valid_loss"] < 0.8 * untrained, (saved, untrained)
  assert saved["test_loss"] < 0.8 * untrained, (saved, untrained)
  # The two topics never share a line: their similar pairs come out ahead.
  assert saved["simlex_rho"] > 0.3, saved


def test_skipgram_learns_and_reports_simlex_and_analogies(skipgram_run):
  cfg, workdir, results, logs = skipgram_run
  _check_results(cfg, workdir, results)
  # Two epochs, one compiled step (a changed shape would raise).
  assert cfg.train.num_epochs >= 2
  assert sum(l.startswith("compiled the train step") for l in logs) == 1


def test_evaluate_reports_the_same_scores_again(skipgram_run):
  _, workdir, results, _ = skipgram_run
  again = evaluation.evaluate_run(workdir)
  for key in ("valid_loss", "test_loss", "simlex_rho", "analogy_acc"):
    assert again[key] == pytest.approx(results[key], abs=1e-6), key
  assert again["step"] == results["step"]


def test_cbow_learns_and_reports_simlex_and_analogies(data, tmp_path):
  cfg = smoke(data, model={"kind": "cbow"})
  workdir = str(tmp_path / "cbow")
  results = train.train_and_evaluate(cfg, workdir, log=lambda s: None)
  _check_results(cfg, workdir, results)


def test_every_epoch_has_the_same_shapes(data):
  (task,) = tasks_lib.make_tasks([smoke(data)])
  first, second = task.train_batches(0), task.train_batches(1)
  shape = lambda b: jax.tree.map(lambda a: (a.shape, a.dtype), b)
  assert shape(first) == shape(second)
  # Resubsampled and reshuffled: the same shapes, other words.
  assert any(
      not np.array_equal(a, b)
      for a, b in zip(jax.tree.leaves(first), jax.tree.leaves(second))
  )


def test_resume_continues_exactly(skipgram_run, tmp_path):
  cfg, full, full_results, _ = skipgram_run
  (task,) = tasks_lib.make_tasks([cfg])
  per_epoch = steps.num_segments(task.train_batches(0))
  # Stopped within the second epoch (whose batches the resumed run draws
  # again), on a log step (so both log the same windows) but off the
  # checkpoint grid.
  log_every, checkpoint_every = cfg.train.log_every, cfg.train.checkpoint_every
  stop = next(
      s
      for s in range(per_epoch + 1, 2 * per_epoch)
      if s % log_every == 0 and s % checkpoint_every
  )
  resumed = str(tmp_path / "resumed")
  stopped = config_lib.replace(cfg, train={"max_steps": stop})
  train.train_and_evaluate(stopped, resumed, log=lambda s: None)
  logs = []
  results = train.train_and_evaluate(cfg, resumed, log=logs.append)
  assert any(f"resumed from step {stop}" in l for l in logs), logs
  untimed = runs_lib.without_timings
  assert untimed([results]) == untimed([full_results])
  assert untimed(records(resumed)) == untimed(records(full))
  params = lambda w: rundir.load_trained(w, "latest").params
  for a, b in zip(
      jax.tree.leaves(params(resumed)), jax.tree.leaves(params(full))
  ):
    np.testing.assert_array_equal(a, b)


def test_the_sparse_step_is_dense_sgd(data):
  cfg = smoke(data)
  (task,) = tasks_lib.make_tasks([cfg])
  batches = jax.tree.map(jnp.asarray, task.train_batches(0))
  per_epoch = steps.num_segments(batches)
  tx, schedule = optim.make_optimizer(
      cfg.optim, per_epoch, cfg.train.num_epochs
  )
  state = steps.init_train_state(jax.random.key(0), task, tx)
  # Output vectors start at zero, where the input rows get no gradient:
  # start from both tables random.
  k1, k2 = jax.random.split(jax.random.key(1))
  params = {
      "input": jax.random.normal(k1, state.params["input"].shape) * 0.3,
      "output": jax.random.normal(k2, state.params["output"].shape) * 0.3,
  }
  state = state.replace(params=params, opt_state=tx.init(params))
  batch = steps.select_segment(batches, state.step)
  key = jax.random.fold_in(jax.random.wrap_key_data(state.key), state.step)
  grads = jax.jit(
      jax.grad(lambda p: task.loss(p, (), batch, key, state.hparams)[0])
  )(params)
  lr = float(schedule(0))
  dense = jax.tree.map(lambda p, g: p - lr * g, params, grads)
  for name in ("input", "output"):  # The step moves both tables.
    assert float(jnp.abs(dense[name] - params[name]).max()) > 1e-3
  new_state, _ = steps.make_train_step(task, tx)(state, batches)
  for name in ("input", "output"):
    np.testing.assert_allclose(
        new_state.params[name], dense[name], rtol=1e-6, atol=1e-6
    )
  assert int(new_state.step) == 1


def test_ppmi_svd_computes_its_vectors_once(data, tmp_path):
  cfg = smoke(data, model={"kind": "ppmi_svd", "embed_dim": 4})
  workdir = str(tmp_path / "ppmi")
  results = train.train_and_evaluate(cfg, workdir, log=lambda s: None)
  assert os.path.isfile(os.path.join(workdir, rundir.VECTORS_FILE))
  with open(os.path.join(workdir, rundir.RESULTS_FILE)) as f:
    saved = json.load(f)
  assert saved["simlex_pairs"] == len(SIMLEX_PAIRS)
  assert saved["analogy_covered"] == len(ANALOGY_QUESTIONS)
  assert saved["simlex_rho"] > 0.3 and "analogy_acc" in saved
  path = os.path.join(workdir, rundir.VECTORS_FILE)
  words, vectors = embeddings.load_word2vec(path)
  vocab = Vocab.load(os.path.join(workdir, rundir.VOCAB_FILE))
  assert words == list(vocab.tokens)
  assert vectors.shape == (len(words), 4)
  written = os.stat(path).st_mtime_ns
  logs = []
  again = train.train_and_evaluate(cfg, workdir, log=logs.append)
  assert any("loaded the vectors" in l for l in logs), logs
  assert not any("positive PMI entries" in l for l in logs), logs
  assert os.stat(path).st_mtime_ns == written
  assert again["simlex_rho"] == pytest.approx(results["simlex_rho"])
  assert again["analogy_acc"] == results["analogy_acc"]


def test_embeddings_cli_reads_and_exports_the_run(skipgram_run, data, tmp_path):
  cfg, workdir, results, _ = skipgram_run
  root = data.parent
  export = tmp_path / "vectors.txt"
  proc = run(
      "experiments.embeddings",
      f"--workdir={workdir}",
      f"--simlex={root / 'simlex-999' / 'SimLex-999.txt'}",
      f"--analogies={root / 'word-analogy' / 'questions-words.txt'}",
      f"--export={export}",
  )
  assert proc.returncode == 0, proc.stderr[-2000:]
  last = proc.stdout.strip().splitlines()[-1]
  assert "simlex_rho=" in last, proc.stdout
  fields = dict(kv.split("=", 1) for kv in last.split())
  assert float(fields["simlex_rho"]) == pytest.approx(
      results["simlex_rho"], abs=1e-4
  )
  words, vectors = embeddings.load_word2vec(str(export))
  trained = rundir.load_trained(workdir, "best")
  assert words == list(trained.vocab.tokens)
  np.testing.assert_allclose(
      vectors, trained.params["input"], rtol=1e-5, atol=1e-6
  )
  for which in ("input", "output"):
    got_words, got = embeddings.run_vectors(workdir, which)
    assert got_words == list(trained.vocab.tokens)
    np.testing.assert_array_equal(got, trained.params[which])


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"model": {"kind": "rnn"}}, "task='embed' goes with model.kind"),
        ({"optim": {"name": "adam"}}, "plain sparse SGD"),
        ({"optim": {"clip_norm": 5.0}}, "plain sparse SGD"),
    ],
    ids=["rnn", "adam", "clip_norm"],
)
def test_a_bad_config_is_one_error_line(changes, message, tmp_path):
  c = word2vec_configs.get_config("smoke").to_dict()
  c["data"]["dir"] = str(tmp_path)
  for group, values in changes.items():
    c[group].update(values)
  with pytest.raises(config_lib.ConfigError, match=message) as error:
    config_lib.from_dict(c)
  assert "\n" not in str(error.value)


@pytest.mark.parametrize("given", [False, True], ids=["beside_data", "named"])
def test_a_missing_simlex_file_is_a_data_error_naming_its_key(given, tmp_path):
  folder = corpus_files.corpus_dir(tmp_path / "bare")  # nothing beside it
  data = {"simlex_file": str(tmp_path / "nosuch.txt")} if given else {}
  with pytest.raises(DataError, match="data.simlex_file") as error:
    train.train_and_evaluate(
        smoke(folder, data=data), str(tmp_path / "w"), log=lambda s: None
    )
  assert "\n" not in str(error.value)
