"""Tests for rnnlm_jax.labelled: SST-2 and CoNLL-2000 files and hub datasets."""

import collections
import re

import datasets
import pytest

import corpus_files

from rnnlm_jax import labelled
from rnnlm_jax.errors import DataError
from rnnlm_jax.labelled import Examples


def _raises_at(path, lineno, what, fn, *args, **kwargs):
  """fn(*args) raises a one-line DataError naming path:lineno and ``what``."""
  with pytest.raises(DataError) as info:
    fn(*args, **kwargs)
  message = str(info.value)
  assert "\n" not in message
  assert re.match(
      re.escape(f"{path}:{lineno}: ") + ".*" + what, message
  ), message


def test_read_classification_tsv_values(tmp_path):
  path = corpus_files.write(
      tmp_path / "train.tsv",
      "sentence\tlabel\nit 's  great \t1\r\nbad .\t0\nok\t1\n",
  )
  ex = labelled.read_classification_tsv(path)
  assert ex.tokens == (("it", "'s", "great"), ("bad", "."), ("ok",))
  assert ex.labels == ("1", "0", "1")
  assert ex.features is None and len(ex) == 3
  # Columns in another order, with another column beside them.
  path = corpus_files.write(
      tmp_path / "other.tsv", "label\tidx\tsentence\npos\t7\ta b\nneg\t8\tc\n"
  )
  ex = labelled.read_classification_tsv(path, labels=("neg", "pos"))
  assert ex.tokens == (("a", "b"), ("c",)) and ex.labels == ("pos", "neg")
  assert labelled.read_classification_tsv(path, labels=None).labels == (
      "pos",
      "neg",
  )


@pytest.mark.parametrize(
    "content, lineno, what",
    [
        (b"sentence\tlabel\na\t1\nb \xff c\t0\n", 3, "invalid UTF-8 byte 0xff"),
        (b"sentence\tlabel\r\na\t1\r\rb\xe9\t0\n", 4, "invalid UTF-8"),
        ("sentence\tlabel\na\t1\nb\t0\textra\n", 3, "3 columns, not 2"),
        ("sentence\tlabel\na\t1\nno tab here\n", 3, "1 columns, not 2"),
        ("sentence\tlabel\na\t1\n\n", 3, "1 columns, not 2"),
        ("text\tlabel\na\t1\n", 1, "no 'sentence' column"),
        ("sentence\tscore\na\t1\n", 1, "no 'label' column"),
        ("", 1, "no 'sentence' column"),
        ("sentence\tlabel\na\t1\nb\t2\n", 3, "bad label '2'"),
        ("sentence\tlabel\na\t1\nb\t\n", 3, "bad label ''"),
        ("sentence\tlabel\na\t1\n  \t0\n", 3, "empty sentence"),
        ("sentence\tlabel\n", 1, "no examples"),
    ],
)
def test_read_classification_tsv_errors(tmp_path, content, lineno, what):
  path = corpus_files.write(tmp_path / "bad.tsv", content)
  _raises_at(path, lineno, what, labelled.read_classification_tsv, path)


def test_any_label_but_an_empty_one_without_a_label_set(tmp_path):
  path = corpus_files.write(tmp_path / "t.tsv", "sentence\tlabel\na\tx\nb\t\n")
  _raises_at(
      path, 3, "bad label ''", labelled.read_classification_tsv, path, None
  )


def test_bad_bytes_replaced_on_request(tmp_path):
  path = corpus_files.write(
      tmp_path / "t.tsv", b"sentence\tlabel\nb\xffc d\t0\n"
  )
  ex = labelled.read_classification_tsv(path, encoding_errors="replace")
  assert ex.tokens == (("b\ufffdc", "d"),)
  path = corpus_files.write(tmp_path / "c.txt", b"w\xfe NN B-NP\n")
  assert labelled.read_conll(path, encoding_errors="replace").tokens == (
      ("w\ufffd",),
  )
  with pytest.raises(DataError, match="encoding_errors"):
    labelled.read_conll(path, encoding_errors="ignore")
  with pytest.raises(DataError, match="not found"):
    labelled.read_conll(tmp_path / "nope.txt")


_CONLL = (
    "Confidence NN B-NP\nin IN B-PP\nthe DT B-NP\npound NN I-NP\n. . O\n"
    "\n\n"
    "Chancellor NNP O\nof IN B-PP\n  \n"
    "He PRP B-NP\r\nsaid VBD B-VP"
)


def test_read_conll_values(tmp_path):
  path = corpus_files.write(tmp_path / "train.txt", _CONLL)
  ex = labelled.read_conll(path)
  assert ex.tokens == (
      ("Confidence", "in", "the", "pound", "."),
      ("Chancellor", "of"),
      ("He", "said"),
  )
  assert ex.labels == (
      ("B-NP", "B-PP", "B-NP", "I-NP", "O"),
      ("O", "B-PP"),
      ("B-NP", "B-VP"),
  )
  assert ex.features == (
      ("NN", "IN", "DT", "NN", "."),
      ("NNP", "IN"),
      ("PRP", "VBD"),
  )
  pos = labelled.read_conll(path, target="pos")
  assert pos.tokens == ex.tokens and pos.labels == ex.features
  assert pos.features is None and len(pos) == 3
  with pytest.raises(DataError, match="target must be one of"):
    labelled.read_conll(path, target="ner")


@pytest.mark.parametrize(
    "content, lineno, what",
    [
        ("a DT B-NP\nb NN\n", 2, "2 columns, not 3"),
        ("a DT B-NP\n\nb NN I-NP x\n", 3, "4 columns, not 3"),
        ("a DT B-NP\nb NN I-NP\n\nc NN X-NP\n", 4, "chunk tag 'X-NP'"),
        ("a DT B-NP\nb NN B-\n", 2, "chunk tag 'B-'"),
        ("a DT B-NP\nb NN np\n", 2, "chunk tag 'np'"),
        (b"a DT B-NP\r\n\r\nb NN I-NP\nc\xff NN O\n", 4, "invalid UTF-8"),
        ("", 1, "no sentences"),
        (" \n\n\t\n", 1, "no sentences"),
    ],
)
def test_read_conll_errors(tmp_path, content, lineno, what):
  path = corpus_files.write(tmp_path / "bad.txt", content)
  _raises_at(path, lineno, what, labelled.read_conll, path)
  _raises_at(path, lineno, what, labelled.read_conll, path, target="pos")


def _numbered(n):
  return Examples(
      tuple((f"w{i}",) for i in range(n)),
      tuple((f"t{i}",) for i in range(n)),
      tuple((f"p{i}",) for i in range(n)),
  )


def test_split_holdout(tmp_path):
  ex = _numbered(100)
  rest, held = labelled.split_holdout(ex, 0.3, seed=5)
  assert (len(rest), len(held)) == (70, 30)
  ids = lambda part: [int(t[0][1:]) for t in part.tokens]
  assert not set(ids(rest)) & set(ids(held))
  assert sorted(ids(rest) + ids(held)) == list(range(100))
  assert ids(rest) == sorted(ids(rest)) and ids(held) == sorted(ids(held))
  for part in (rest, held):  # every field follows its sentence
    assert [t[0][1:] for t in part.labels] == [str(i) for i in ids(part)]
    assert [t[0][1:] for t in part.features] == [str(i) for i in ids(part)]
  assert labelled.split_holdout(ex, 0.3, seed=5) == (rest, held)
  assert labelled.split_holdout(ex, 0.3, seed=6)[1] != held
  assert ids(held) != list(range(70, 100))  # shuffled, not a tail
  # Both parts are never empty.
  assert [len(p) for p in labelled.split_holdout(_numbered(10), 0.01)] == [9, 1]
  assert [len(p) for p in labelled.split_holdout(_numbered(2), 0.99)] == [1, 1]
  for fraction in (0, 1, -0.5, 1.5):
    with pytest.raises(DataError, match="fraction"):
      labelled.split_holdout(ex, fraction)
  with pytest.raises(DataError, match="1 example"):
    labelled.split_holdout(_numbered(1), 0.5)


def _tsv(rows):
  return "sentence\tlabel\n" + "".join(f"{s}\t{l}\n" for s, l in rows)


def test_load_classification_folder(tmp_path):
  train_rows = [(f"s{i} x", str(i % 2)) for i in range(10)]
  folder = tmp_path / "sst"
  corpus_files.write(folder / "train.tsv", _tsv(train_rows))
  corpus_files.write(folder / "dev.tsv", _tsv([("d a", "1"), ("d b", "0")]))
  corpus_files.write(folder / "test.tsv", "index\tsentence\n0\tno label\n")
  out = labelled.load_classification({"dir": str(folder)}, 0.2, seed=1)
  assert sorted(out) == ["test", "train", "valid"]
  assert out["test"].tokens == (("d", "a"), ("d", "b"))
  assert out["test"].labels == ("1", "0")
  assert (len(out["train"]), len(out["valid"])) == (8, 2)
  pairs = lambda ex: set(zip(ex.tokens, ex.labels))
  expected = {(tuple(s.split()), l) for s, l in train_rows}
  assert pairs(out["train"]) | pairs(out["valid"]) == expected
  assert out == labelled.load_classification({"dir": folder}, 0.2, seed=1)

  with pytest.raises(DataError, match="data folder not found"):
    labelled.load_classification({"dir": tmp_path / "none"}, 0.2)
  with pytest.raises(DataError, match="unknown data source keys"):
    labelled.load_classification({"dir": folder, "level": "word"}, 0.2)
  with pytest.raises(DataError, match="neither 'dir' nor 'hf_path'"):
    labelled.load_classification({}, 0.2)
  corpus_files.write(folder / "dev.tsv", b"sentence\tlabel\nd\xff\t1\n")
  with pytest.raises(DataError, match=r"dev\.tsv:2: invalid UTF-8"):
    labelled.load_classification({"dir": folder}, 0.2)
  source = {"dir": folder, "encoding_errors": "replace"}
  assert labelled.load_classification(source, 0.2)["test"].tokens == (
      ("d\ufffd",),
  )
  (folder / "dev.tsv").unlink()
  with pytest.raises(DataError, match=r"not found: .*dev\.tsv"):
    labelled.load_classification({"dir": folder}, 0.2)


def test_load_tagging_folder(tmp_path):
  folder = tmp_path / "conll"
  corpus_files.write(folder / "train.txt", _CONLL)
  corpus_files.write(folder / "test.txt", "Yes UH O\n\n")
  out = labelled.load_tagging({"dir": folder}, "chunk", 1 / 3, seed=0)
  assert (len(out["train"]), len(out["valid"]), len(out["test"])) == (2, 1, 1)
  assert out["test"] == Examples((("Yes",),), (("O",),), (("UH",),))
  full = labelled.read_conll(folder / "train.txt")
  got = set()
  for part in (out["train"], out["valid"]):
    got |= set(zip(part.tokens, part.labels, part.features))
  assert got == set(zip(full.tokens, full.labels, full.features))
  pos = labelled.load_tagging({"dir": folder}, "pos", 1 / 3)
  assert pos["test"] == Examples((("Yes",),), (("UH",),))
  with pytest.raises(DataError, match="target must be one of"):
    labelled.load_tagging({"dir": folder}, "ner", 0.5)
  (folder / "test.txt").unlink()
  with pytest.raises(DataError, match=r"not found: .*test\.txt"):
    labelled.load_tagging({"dir": folder}, "chunk", 0.5)


def _fake_hub(monkeypatch, dd):
  calls = []

  def load_dataset(path, name=None, **kwargs):
    calls.append((path, name))
    if isinstance(dd, Exception):
      raise dd
    return dd

  monkeypatch.setattr(datasets, "load_dataset", load_dataset)
  return calls


def test_load_classification_hub(monkeypatch):
  features = datasets.Features(
      {
          "sentence": datasets.Value("string"),
          "label": datasets.ClassLabel(names=["negative", "positive"]),
          "idx": datasets.Value("int32"),
      }
  )
  split = lambda sents, labels: datasets.Dataset.from_dict(
      {"sentence": sents, "label": labels, "idx": list(range(len(sents)))},
      features=features,
  )
  dd = datasets.DatasetDict(
      train=split(["a b ", "c", "d e f", "g"], [1, 0, 0, 1]),
      validation=split(["v w", "x"], [0, 1]),
      test=split(["unlabelled"], [-1]),
  )
  calls = _fake_hub(monkeypatch, dd)
  source = {"hf_path": "glue", "hf_name": "sst2"}
  out = labelled.load_classification(source, 0.25)
  assert calls == [("glue", "sst2")]
  assert out["test"] == Examples((("v", "w"), ("x",)), ("0", "1"))
  assert (len(out["train"]), len(out["valid"])) == (3, 1)
  local = labelled.split_holdout(
      Examples(
          (("a", "b"), ("c",), ("d", "e", "f"), ("g",)), ("1", "0", "0", "1")
      ),
      0.25,
  )
  assert (out["train"], out["valid"]) == local

  _fake_hub(monkeypatch, datasets.DatasetDict(train=dd["train"]))
  with pytest.raises(DataError, match="glue/sst2 has no 'validation' split"):
    labelled.load_classification(source, 0.25)
  bad = datasets.DatasetDict(train=dd["train"], validation=split(["  "], [0]))
  _fake_hub(monkeypatch, bad)
  with pytest.raises(
      DataError, match="split 'validation' row 0: empty sentence"
  ):
    labelled.load_classification(source, 0.25)


def test_load_tagging_hub(monkeypatch):
  tags = lambda names: datasets.Sequence(datasets.ClassLabel(names=names))
  features = datasets.Features(
      {
          "id": datasets.Value("string"),
          "tokens": datasets.Sequence(datasets.Value("string")),
          "pos_tags": tags(["NN", "DT", "VBD"]),
          "chunk_tags": tags(["O", "B-NP", "I-NP", "B-VP"]),
      }
  )
  split = lambda rows: datasets.Dataset.from_dict(
      {
          "id": [str(i) for i in range(len(rows))],
          "tokens": [r[0] for r in rows],
          "pos_tags": [r[1] for r in rows],
          "chunk_tags": [r[2] for r in rows],
      },
      features=features,
  )
  train = [(["the", "dog"], [1, 0], [1, 2]), (["ran"], [2], [3])]
  dd = datasets.DatasetDict(
      train=split(train), test=split([(["dog", "ran"], [0, 2], [1, 3])])
  )
  calls = _fake_hub(monkeypatch, dd)
  out = labelled.load_tagging({"hf_path": "conll2000"}, "chunk", 0.5)
  assert calls == [("conll2000", None)]
  assert out["test"] == Examples(
      (("dog", "ran"),), (("B-NP", "B-VP"),), (("NN", "VBD"),)
  )
  assert set(out["train"].tokens + out["valid"].tokens) == {
      ("the", "dog"),
      ("ran",),
  }
  both = Examples(
      (("the", "dog"), ("ran",)),
      (("B-NP", "I-NP"), ("B-VP",)),
      (("DT", "NN"), ("VBD",)),
  )
  assert (out["train"], out["valid"]) == labelled.split_holdout(both, 0.5)
  pos = labelled.load_tagging({"hf_path": "conll2000"}, "pos", 0.5)
  assert pos["test"] == Examples((("dog", "ran"),), (("NN", "VBD"),))

  features["chunk_tags"] = tags(["O", "NP"])
  bad = split([(["dog", "ran"], [0, 2], [0, 1])])
  _fake_hub(monkeypatch, datasets.DatasetDict(train=dd["train"], test=bad))
  with pytest.raises(DataError, match="split 'test' row 0: chunk tag 'NP'"):
    labelled.load_tagging({"hf_path": "conll2000"}, "chunk", 0.5)


def test_hub_failure_is_one_line(monkeypatch):
  _fake_hub(monkeypatch, ConnectionError("no network\nsecond line\nthird"))
  for load in (
      lambda: labelled.load_classification(
          {"hf_path": "glue", "hf_name": "sst2"}, 0.1
      ),
      lambda: labelled.load_tagging({"hf_path": "conll2000"}, "chunk", 0.1),
  ):
    with pytest.raises(DataError) as info:
      load()
    message = str(info.value)
    assert "\n" not in message
    assert "could not load hub dataset" in message
    assert "ConnectionError: no network" in message


def test_staged_sst2_counts():
  folder = corpus_files.need("sst-2")
  train = labelled.read_classification_tsv(folder / "train.tsv")
  assert len(train) == 67_349
  assert collections.Counter(train.labels) == {"1": 37_569, "0": 29_780}
  out = labelled.load_classification({"dir": folder}, 0.1)
  assert len(out["test"]) == 872
  assert collections.Counter(out["test"].labels) == {"1": 444, "0": 428}
  assert len(out["train"]) + len(out["valid"]) == 67_349
  assert len(out["valid"]) == 6_735


def test_staged_conll2000_counts():
  folder = corpus_files.need("conll2000")
  for name, sentences, tokens in (
      ("train.txt", 8_936, 211_727),
      ("test.txt", 2_012, 47_377),
  ):
    ex = labelled.read_conll(folder / name)
    assert len(ex) == sentences
    assert sum(map(len, ex.tokens)) == tokens
    assert sum(map(len, ex.labels)) == sum(map(len, ex.features)) == tokens
  assert ex.tokens[0][:3] == ("Rockwell", "International", "Corp.")
