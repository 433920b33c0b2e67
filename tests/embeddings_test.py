"""Word-embedding evaluation: SimLex's rho and the analogy accuracies on
embeddings built to get them right, against gensim and a brute-force
search; the word2vec files both ways with gensim; one FILE:LINE error per
malformed file; a run directory's embeddings; the command line."""

import json
import math
import os
import subprocess
import sys
import types
from pathlib import Path

import jax
import numpy as np
import pytest

from experiments.configs import smoke
from rnnlm_jax import config as config_lib
from rnnlm_jax import embeddings
from rnnlm_jax import models
from rnnlm_jax import rundir
from rnnlm_jax import train
from rnnlm_jax.embeddings import EmbeddingError
from rnnlm_jax.vocab import Vocab
from tests import corpus_files

ROOT = Path(__file__).resolve().parents[1]


def _angles(thetas):
  return np.stack([np.cos(thetas), np.sin(thetas)], 1).astype(np.float32)


def test_simlex_rho_is_one_when_cosines_order_the_pairs_as_the_scores():
  words = ["base", "a", "b", "c", "d", "BASE", "A"]
  # Cosines with "base" fall as the angle grows; the later case variants
  # point elsewhere, and would spoil the order if they were used.
  vectors = _angles([0.0, 0.1, 0.5, 1.0, 2.0, 3.0, 2.5])
  pairs = [
      ("Base", "A", 9.0),
      ("base", "b", 7.0),
      ("c", "BASE", 4.0),
      ("base", "d", 1.0),
      ("base", "unknown", 5.0),
  ]
  got = embeddings.evaluate_simlex(words, vectors, pairs)
  assert got == {"rho": pytest.approx(1.0), "covered": 4, "total": 5}
  reversed_pairs = [(a, b, -s) for a, b, s in pairs]
  got = embeddings.evaluate_simlex(words, vectors, reversed_pairs)
  assert got["rho"] == pytest.approx(-1.0)
  one = embeddings.evaluate_simlex(words, vectors, pairs[:1] + pairs[4:])
  assert math.isnan(one["rho"]) and one["covered"] == 1


def _royal():
  """king - man + woman is queen exactly (one-hot directions), and <unk>
  is the 3CosAdd target itself: only the exclusion keeps it out."""
  e = np.eye(8, dtype=np.float32)
  vectors = {
      "man": e[0],
      "woman": e[1],
      "king": e[0] + e[2],
      "queen": e[1] + e[2],
      "apple": e[3],
      "pear": e[3] + 0.1 * e[4],
      "Queen": e[5],  # A later case variant: never a candidate.
  }
  unit = lambda v: v / np.linalg.norm(v)
  vectors["<unk>"] = unit(vectors["king"]) - vectors["man"] + vectors["woman"]
  words = ["<unk>", *vectors.keys() - {"<unk>"}]
  words.sort(key=lambda w: (w != "<unk>", w == "Queen", w))
  return words, np.stack([vectors[w] for w in words])


def test_analogies_find_d_by_3cosadd_and_3cosmul_and_count_coverage():
  words, vectors = _royal()
  sections = {
      "family": [
          ("man", "king", "woman", "queen"),
          ("MAN", "King", "Woman", "QUEEN"),
          ("man", "king", "woman", "princess"),  # Not covered.
      ],
      "other": [("apple", "pear", "plum", "fig")],
  }
  got = embeddings.evaluate_analogies(words, vectors, sections)
  assert (got["acc_add"], got["acc_mul"]) == (1.0, 1.0)
  assert (got["covered"], got["total"]) == (2, 4)
  assert got["sections"]["family"] == {
      "acc_add": 1.0,
      "acc_mul": 1.0,
      "covered": 2,
      "total": 3,
  }
  other = got["sections"]["other"]
  assert (other["covered"], other["total"]) == (0, 1)
  assert math.isnan(other["acc_add"]) and math.isnan(other["acc_mul"])
  # Without the exclusion, <unk> is the 3CosAdd answer.
  unexcluded = embeddings.evaluate_analogies(words, vectors, sections, ())
  assert unexcluded["acc_add"] == 0.0
  for method in embeddings.METHODS:
    best = embeddings.solve_analogy(
        words, vectors, "man", "king", "woman", 3, method
    )
    assert best[0][0] == "queen"
    assert [s for _, s in best] == sorted((s for _, s in best), reverse=True)
    assert not {w for w, _ in best} & {"man", "king", "woman", "<unk>", "Queen"}


def test_question_words_are_never_the_answer():
  # b - a + c is c itself when a == b; the best other word must come back.
  words, vectors = _royal()
  sections = {"s": [("king", "king", "apple", "pear")]}
  got = embeddings.evaluate_analogies(words, vectors, sections)
  assert (got["acc_add"], got["acc_mul"]) == (1.0, 1.0)


def _brute_force(words, vectors, a, b, c, method, exclude):
  unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
  cos = lambda i, j: float(unit[i] @ unit[j])
  ia, ib, ic = (words.index(w) for w in (a, b, c))
  best, answer = -np.inf, None
  for x, word in enumerate(words):
    if x in (ia, ib, ic) or word in exclude:
      continue
    if method == "add":
      score = cos(x, ib) - cos(x, ia) + cos(x, ic)
    else:
      s = lambda i: (cos(x, i) + 1) / 2
      score = s(ib) * s(ic) / (s(ia) + 1e-3)
    if score > best:
      best, answer = score, word
  return answer


@pytest.fixture(scope="module")
def random_questions(tmp_path_factory):
  """Random vectors and questions, half of whose answers are the 3CosAdd or
  3CosMul argmax (by brute force), written as an analogy file."""
  rng = np.random.default_rng(0)
  words = [f"w{i}" for i in range(40)]
  vectors = rng.normal(size=(40, 5)).astype(np.float32)
  sections = {}
  for n in range(30):
    a, b, c = (words[i] for i in rng.choice(40, 3, replace=False))
    method = ("add", "mul", None)[n % 3]
    d = words[rng.integers(40)]
    if method:
      d = _brute_force(words, vectors, a, b, c, method, ())
    sections.setdefault(f"part{n % 4}", []).append((a, b, c, d))
  path = tmp_path_factory.mktemp("questions") / "questions.txt"
  with open(path, "w") as f:
    for name, questions in sections.items():
      f.write(f": {name}\n" + "".join(" ".join(q) + "\n" for q in questions))
  return words, vectors, sections, path


def test_analogies_agree_with_a_brute_force_search(random_questions):
  words, vectors, sections, _ = random_questions
  got = embeddings.evaluate_analogies(words, vectors, sections)
  for name, questions in sections.items():
    for method in embeddings.METHODS:
      hits = [
          _brute_force(words, vectors, a, b, c, method, ()) == d
          for a, b, c, d in questions
      ]
      assert got["sections"][name][f"acc_{method}"] == pytest.approx(
          np.mean(hits)
      )
  assert 0.3 < got["acc_add"] < 1 and 0.3 < got["acc_mul"] < 1


@pytest.mark.filterwarnings("ignore:Call to deprecated:DeprecationWarning")
def test_analogies_and_simlex_agree_with_gensim(
    random_questions, tmp_path, monkeypatch
):
  gensim_models = pytest.importorskip("gensim.models")
  words, vectors, sections, path = random_questions
  # gensim's most_similar_cosmul adds 1e-6, not Levy & Goldberg's 1e-3.
  monkeypatch.setattr(embeddings, "COSMUL_EPS", 1e-6)
  kv = gensim_models.KeyedVectors(vectors.shape[1])
  kv.add_vectors(words, vectors)
  got = embeddings.evaluate_analogies(words, vectors, sections)
  score, theirs = kv.evaluate_word_analogies(str(path))  # 3CosAdd only.
  assert got["acc_add"] == pytest.approx(score)
  for section in theirs[:-1]:
    n = len(section["correct"]) + len(section["incorrect"])
    ours = got["sections"][section["section"]]
    assert ours["covered"] == n
    assert ours["acc_add"] == pytest.approx(len(section["correct"]) / n)
    questions = sections[section["section"]]
    hits = [
        kv.most_similar_cosmul(positive=[b, c], negative=[a], topn=1)[0][0] == d
        for a, b, c, d in questions
    ]
    assert ours["acc_mul"] == pytest.approx(np.mean(hits))
  rng = np.random.default_rng(1)
  pairs = [
      (words[i], words[j], float(rng.uniform(0, 10)))
      for i, j in rng.integers(40, size=(25, 2))
  ] + [("W3", "unknown", 1.0)]
  simlex = tmp_path / "pairs.txt"
  simlex.write_text("".join(f"{a}\t{b}\t{s}\n" for a, b, s in pairs))
  _, spearman, oov = kv.evaluate_word_pairs(str(simlex))
  got = embeddings.evaluate_simlex(
      words, vectors, embeddings.load_simlex(simlex)
  )
  assert got["rho"] == pytest.approx(spearman.statistic, abs=1e-6)
  assert got["covered"] == 25 and oov == pytest.approx(100 / 26)


def test_neighbours_come_in_cosine_order():
  words = ["x", "near", "mid", "far", "X"]
  vectors = _angles([0.0, 0.2, 1.0, 3.0, 0.01])
  got = embeddings.neighbours(words, vectors, "x", k=3)
  assert [w for w, _ in got] == ["X", "near", "mid"]
  assert got[1][1] == pytest.approx(math.cos(0.2), abs=1e-6)
  assert [w for w, _ in embeddings.neighbours(words, vectors, "NEAR", 1)] == [
      "X"
  ]
  with pytest.raises(EmbeddingError, match="'nowhere' is not in the vocab"):
    embeddings.neighbours(words, vectors, "nowhere")


@pytest.mark.parametrize("binary", [False, True])
def test_word2vec_files_round_trip(tmp_path, binary):
  words = ["the", "Ünïcode", "<unk>", "a"]
  vectors = np.random.default_rng(0).normal(size=(4, 7)).astype(np.float32)
  for name in ("v.bin", "v.txt", "v.dat"):
    path = tmp_path / name
    embeddings.save_word2vec(path, words, vectors, binary)
    # binary=None: by the name, else by what the file holds.
    for flag in (binary, None) if name != "v.bin" or binary else (binary,):
      got_words, got = embeddings.load_word2vec(path, flag)
      assert got_words == words
      np.testing.assert_array_equal(got, vectors)
  with pytest.raises(EmbeddingError, match="cannot be written"):
    embeddings.save_word2vec(tmp_path / "s", ["a b"], vectors[:1], binary)


@pytest.mark.parametrize("binary", [False, True])
def test_word2vec_files_are_gensims(tmp_path, binary):
  gensim_models = pytest.importorskip("gensim.models")
  words = ["the", "Ünïcode", "<unk>", "a"]
  vectors = np.random.default_rng(0).normal(size=(4, 7)).astype(np.float32)
  ours = tmp_path / "ours.vec"
  embeddings.save_word2vec(ours, words, vectors, binary)
  kv = gensim_models.KeyedVectors.load_word2vec_format(str(ours), binary=binary)
  assert kv.index_to_key == words
  np.testing.assert_array_equal(kv.vectors, vectors)
  theirs = tmp_path / "theirs.vec"
  kv.save_word2vec_format(str(theirs), binary=binary)
  got_words, got = embeddings.load_word2vec(theirs)  # Told by the content.
  assert got_words == words
  np.testing.assert_array_equal(got, vectors)


@pytest.mark.parametrize(
    "name, content, where",
    [
        (
            "simlex.txt",
            "word1\tword2\tPOS\tSimLex999\na\tb\tN\t1\r\nc\td\tN\tx\n",
            "simlex.txt:3:",
        ),
        ("simlex.txt", "a\tb\t1\nc d 2\n", "simlex.txt:2:"),
        ("questions.txt", ": s\na b c d\n\na b c\n", "questions.txt:4:"),
        ("questions.txt", "a b c d\n", "questions.txt:1:"),
        ("v.txt", "2 3\na 1 2 3\nb 1 2\n", "v.txt:3:"),
        ("v.txt", "2 3\na 1 2 3\nb 1 2 x\n", "v.txt:3:"),
        ("v.txt", "3 3\na 1 2 3\nb 1 2 3\n", "v.txt:4:"),
        ("v.txt", "two 3\na 1 2 3\n", "v.txt:1:"),
        (
            "v.bin",
            b"2 3\na " + bytes(12) + b"\nb " + bytes(5),
            "v.bin: byte 21:",
        ),
    ],
)
def test_a_malformed_file_is_one_error_naming_its_line(
    tmp_path, name, content, where
):
  path = corpus_files.write(tmp_path / name, content)
  load = {
      "simlex.txt": embeddings.load_simlex,
      "questions.txt": embeddings.load_analogies,
  }.get(name, embeddings.load_word2vec)
  with pytest.raises(EmbeddingError) as e:
    load(path)
  message = str(e.value)
  assert message.startswith(f"{path}") and where in message, message
  assert "\n" not in message


def test_the_real_benchmark_files_load():
  root = corpus_files.data_root()
  simlex = root / "simlex-999" / "SimLex-999.txt"
  analogies = root / "word-analogy" / "questions-words.txt"
  if not simlex.exists() or not analogies.exists():
    pytest.skip(f"SimLex-999 or questions-words.txt not under {root}")
  pairs = embeddings.load_simlex(simlex)
  assert len(pairs) == 999 and pairs[0] == ("old", "new", 1.58)
  sections = embeddings.load_analogies(analogies)
  assert len(sections) == 14
  assert sum(map(len, sections.values())) == 19544
  assert sections["capital-common-countries"][0] == (
      "Athens",
      "Greece",
      "Baghdad",
      "Iraq",
  )


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
  cfg = config_lib.from_dict(smoke.get_config().to_dict())
  vocab = Vocab(("<eos>", "the", "film", "good", "<unk>"))
  cfg = train.with_vocab_size(cfg, len(vocab))
  params = models.init_lm(jax.random.key(0), cfg.model)
  workdir = str(tmp_path_factory.mktemp("lm"))
  train.init_run_from_params(cfg, workdir, params, vocab)
  return workdir, params, vocab


def test_a_language_models_embeddings_come_in_vocabulary_order(lm_run):
  workdir, params, vocab = lm_run
  words, vectors = embeddings.run_vectors(workdir, "input")
  assert words == list(vocab.tokens)
  np.testing.assert_array_equal(vectors, params["embed"])
  words, vectors = embeddings.run_vectors(workdir, "output", "latest")
  assert words == list(vocab.tokens)
  np.testing.assert_array_equal(vectors, np.asarray(params["out"]["w"]).T)


def _fake_run(monkeypatch, task, kind, vocab=None, params=None):
  cfg = types.SimpleNamespace(task=task, model=types.SimpleNamespace(kind=kind))
  monkeypatch.setattr(rundir, "load_run_config", lambda workdir: cfg)
  trained = types.SimpleNamespace(cfg=cfg, vocab=vocab, params=params)
  monkeypatch.setattr(rundir, "load_trained", lambda workdir, slot: trained)


def test_other_tasks_embeddings(monkeypatch, tmp_path):
  vocab = Vocab(("src:le", "src:chat", "tgt:the", "tgt:cat", "tgt:<eos>"))
  params = {
      "encoder": {"embed": np.ones((2, 3))},
      "tgt_embed": np.zeros((3, 4)),
  }
  _fake_run(monkeypatch, "translate", "rnn", vocab, params)
  words, vectors = embeddings.run_vectors("RUN", "input")
  assert words == ["le", "chat"] and vectors.shape == (2, 3)
  words, vectors = embeddings.run_vectors("RUN", "output")
  assert words == ["the", "cat", "<eos>"] and vectors.shape == (3, 4)

  vocab = Vocab(("a", "b"))
  params = {"input": np.ones((2, 3)), "output": np.zeros((2, 3))}
  _fake_run(monkeypatch, "embed", "skipgram", vocab, params)
  np.testing.assert_array_equal(embeddings.run_vectors("RUN", "output")[1], 0)

  _fake_run(monkeypatch, "tag", "rnn", vocab, {"embed": np.ones((2, 3))})
  assert embeddings.run_vectors("RUN")[0] == ["a", "b"]
  with pytest.raises(EmbeddingError, match="RUN: task=tag has no output"):
    embeddings.run_vectors("RUN", "output")

  _fake_run(monkeypatch, "embed", "ppmi_svd")
  saved = np.arange(6, dtype=np.float32).reshape(2, 3)
  embeddings.save_word2vec(tmp_path / "vectors.bin", ["a", "b"], saved, True)
  words, vectors = embeddings.run_vectors(str(tmp_path))
  assert words == ["a", "b"]
  np.testing.assert_array_equal(vectors, saved)

  _fake_run(monkeypatch, "lm", "maxent")
  with pytest.raises(
      EmbeddingError, match="RUN: model.kind=maxent has no word"
  ):
    embeddings.run_vectors("RUN")


# ------------------------------------------------------------ command line


@pytest.fixture(scope="module")
def cli(tmp_path_factory):
  """experiments.embeddings run four ways at once (each process takes
  seconds to import its libraries): on the royal vectors as a word2vec
  file with a tiny SimLex and analogy set, as JSON with every option and as
  text; with a malformed SimLex file; on a run without embeddings.
  Returns the folder and {name: CompletedProcess}."""
  d = tmp_path_factory.mktemp("cli")
  words, vectors = _royal()
  embeddings.save_word2vec(d / "v.txt", words, vectors, False)
  corpus_files.write(
      d / "simlex.txt",
      "word1\tword2\tPOS\tSimLex999\r\nking\tqueen\tN\t8\r\n"
      "apple\tpear\tN\t9\r\nman\tapple\tN\t0.5\r\nman\tzebra\tN\t1\r\n",
  )
  corpus_files.write(
      d / "questions.txt",
      ": family\nman king woman queen\nman king woman prince\n"
      ": fruit\napple pear plum fig\n",
  )
  corpus_files.write(d / "bad.txt", "a\tb\t1\nc\td\n")
  cfg = config_lib.from_dict(smoke.get_config().to_dict())
  cfg = config_lib.replace(cfg, model={"kind": "count_ngram", "order": 2})
  rundir.write_run_files(str(d / "ngram"), cfg, Vocab(("a", "<eos>")), None)
  files = [f"--vectors={d / 'v.txt'}", f"--analogies={d / 'questions.txt'}"]
  commands = {
      "json": [
          *files,
          f"--simlex={d / 'simlex.txt'}",
          "--neighbours=pear",
          "--analogy=man:king::woman:?",
          f"--export={d / 'v.bin'}",
          f"--plot={d / 'words.png'}",
          "--plot_words=king,queen,man,woman,zebra",
          "--json",
      ],
      "text": [*files, f"--simlex={d / 'simlex.txt'}"],
      "bad_file": [*files, f"--simlex={d / 'bad.txt'}"],
      "no_embeddings": [f"--workdir={d / 'ngram'}", "--skip_eval"],
  }
  env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=str(ROOT))
  procs = {
      name: subprocess.Popen(
          [sys.executable, "-m", "experiments.embeddings", *args],
          cwd=ROOT,
          env=env,
          stdout=subprocess.PIPE,
          stderr=subprocess.PIPE,
          text=True,
      )
      for name, args in commands.items()
  }
  done = {}
  for name, proc in procs.items():
    out, err = proc.communicate(timeout=300)
    done[name] = subprocess.CompletedProcess(
        proc.args, proc.returncode, out, err
    )
  return d, done


def test_the_command_line_prints_json_and_exports_and_plots(cli):
  d, done = cli
  proc = done["json"]
  assert proc.returncode == 0, proc.stderr[-2000:]
  got = json.loads(proc.stdout)
  assert got["simlex_pairs"] == 3 and got["simlex_total"] == 4
  assert got["analogy_acc"] == 1.0 and got["analogy_covered"] == 1
  assert got["analogy_total"] == 3
  assert got["analogy_sections"]["fruit"]["acc_add"] is None  # nan
  assert got["neighbours"]["pear"][0][0] == "apple"
  assert got["analogies"]["man:king::woman:?"]["mul"][0][0] == "queen"
  assert got["plot_skipped"] == ["zebra"]
  assert (d / "words.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  words, vectors = embeddings.load_word2vec(d / "v.bin")
  assert words == _royal()[0]
  np.testing.assert_array_equal(vectors, _royal()[1])


def test_the_command_line_prints_a_table_and_a_summary(cli):
  proc = cli[1]["text"]
  assert proc.returncode == 0, proc.stderr[-2000:]
  lines = proc.stdout.splitlines()
  assert lines[0].startswith("SimLex-999: rho=") and "3 of 4 pairs" in lines[0]
  assert lines[1].split() == ["analogies", "3CosAdd", "3CosMul", "covered"]
  assert lines[2].split() == ["family", "1.0000", "1.0000", "1/2"]
  assert lines[3].split() == ["fruit", "nan", "nan", "0/1"]
  assert lines[4].split() == ["all", "1.0000", "1.0000", "1/3"]
  assert lines[-1].startswith("simlex_rho=")
  assert "analogy_acc=1.0000" in lines[-1].split()


def test_the_command_line_reports_bad_input_in_one_line(cli):
  d, done = cli
  assert done["bad_file"].returncode == 1
  assert done["bad_file"].stderr.strip() == (
      f"error: {d / 'bad.txt'}:2: expected word1, word2 and a score "
      "separated by tabs, got 2 field(s)"
  )
  assert done["no_embeddings"].returncode == 1
  assert done["no_embeddings"].stderr.strip() == (
      f"error: {d / 'ngram'}: model.kind=count_ngram has no word embeddings"
  )
