"""Tests for rnnlm_jax.sources: reading local folders and hub datasets into
split text."""


import pytest

import corpus_files

from rnnlm_jax import cache
from rnnlm_jax import sources
from rnnlm_jax.errors import DataError
from rnnlm_jax.vocab import EOS, encode_splits


def test_read_lines_keeps_empty_lines_and_normalizes_newlines(tmp_path):
  path = corpus_files.write(tmp_path / "t.txt", "a b\n\n c \r\nlast")
  assert sources.read_lines(path) == ["a b", "", " c ", "last"]
  path = corpus_files.write(tmp_path / "u.txt", " x \n \n")
  assert sources.read_lines(path) == [" x ", " "]


def test_read_lines_errors(tmp_path):
  with pytest.raises(DataError, match=r"not found: .*nope\.txt"):
    sources.read_lines(tmp_path / "nope.txt")
  empty = corpus_files.write(tmp_path / "empty.txt", "")
  with pytest.raises(DataError, match="empty.txt is empty"):
    sources.read_lines(empty)
  blank = corpus_files.write(tmp_path / "blank.txt", " \n\n  \n")
  with pytest.raises(DataError, match="is empty"):
    sources.read_lines(blank)
  bad = corpus_files.write(tmp_path / "bad.txt", b"ok line\nab\xffcd\n")
  with pytest.raises(DataError, match=r"bad\.txt.*0xff at byte offset 10"):
    sources.read_lines(bad)
  assert sources.read_lines(bad, encoding_errors="replace") == [
      "ok line",
      "ab\ufffdcd",
  ]
  with pytest.raises(DataError):
    sources.read_lines(bad, encoding_errors="ignore")


def test_load_text_splits_word_and_char(tmp_path):
  folder = corpus_files.corpus_dir(
      tmp_path, train="a b\n\nc \n", valid="a\n", test="b c"
  )
  hf = str(tmp_path / "hf")
  word = sources.load_text_splits(
      {"dir": str(folder), "level": "word", "hf_cache_dir": hf}
  )
  assert word == {"train": ["a b", "", "c "], "valid": ["a"], "test": ["b c"]}
  char = sources.load_text_splits(
      {"dir": str(folder), "level": "char", "hf_cache_dir": hf}
  )
  assert char == {"train": ["a b\n\nc \n"], "valid": ["a\n"], "test": ["b c"]}


def test_load_text_splits_file_name_patterns(tmp_path):
  names = {
      "train": "wiki.train.tokens",
      "valid": "validation.txt",
      "test": "ptb.test.txt",
  }
  folder = corpus_files.corpus_dir(tmp_path, names=names)
  splits = sources.load_text_splits(
      {"dir": str(folder), "hf_cache_dir": str(tmp_path / "hf")}
  )
  assert splits["valid"] == ["a c"] and splits["test"] == ["b"]


def test_load_text_splits_missing_inputs(tmp_path):
  with pytest.raises(DataError, match="data folder not found"):
    sources.load_text_splits({"dir": str(tmp_path / "nowhere")})
  folder = corpus_files.corpus_dir(tmp_path)
  (folder / "test.txt").unlink()
  with pytest.raises(DataError, match="no test split file"):
    sources.load_text_splits({"dir": str(folder)})
  with pytest.raises(DataError, match="unknown data source keys"):
    sources.load_text_splits({"dir": str(folder), "split_fraction": (1, 0, 0)})
  with pytest.raises(DataError, match="neither"):
    sources.load_text_splits({"level": "word"})


def test_load_text_splits_bad_bytes_named(tmp_path):
  folder = corpus_files.corpus_dir(tmp_path)
  corpus_files.write(
      folder / "valid.txt", b"a\n\xc3(\n"
  )  # 0xc3 starts a 2-byte sequence that "(" does not continue
  with pytest.raises(DataError, match=r"valid\.txt.*byte offset 2"):
    sources.load_text_splits(
        {"dir": str(folder), "hf_cache_dir": str(tmp_path / "hf")}
    )
  splits = sources.load_text_splits(
      {
          "dir": str(folder),
          "encoding_errors": "replace",
          "hf_cache_dir": str(tmp_path / "hf"),
      }
  )
  assert splits["valid"] == ["a", "\ufffd("]


def test_load_text_splits_single_file_fractions(tmp_path):
  text = "".join(f"line {i}\n" for i in range(20))  # 140 characters
  folder = tmp_path / "single"
  corpus_files.write(folder / "input.txt", text)
  src = {
      "dir": str(folder),
      "split_fractions": (0.5, 0.25, 0.25),
      "hf_cache_dir": str(tmp_path / "hf"),
  }
  char = sources.load_text_splits({**src, "level": "char"})
  n = len(text)
  assert [len(char[s][0]) for s in sources.SPLITS] == [
      n // 2,
      n * 3 // 4 - n // 2,
      n - n * 3 // 4,
  ]
  assert "".join(char[s][0] for s in sources.SPLITS) == text
  word = sources.load_text_splits({**src, "level": "word"})
  assert (
      word["train"] == text[: n // 2].split("\n")
      and word["train"][-1] == "line "
  )  # a cut line
  with pytest.raises(DataError, match="test split .* has no tokens"):
    sources.load_text_splits({**src, "split_fractions": (0.5, 0.5, 0.0)})
  with pytest.raises(DataError, match="split_fractions"):
    sources.load_text_splits({**src, "split_fractions": (0.5, 0.6, 0.1)})
  corpus_files.write(folder / "other.txt", "x\n")
  with pytest.raises(DataError, match="exactly one"):
    sources.load_text_splits(src)


def test_hub_source_maps_split_names(tmp_path, monkeypatch):
  import datasets

  calls = []

  def fake_load_dataset(path, name=None, **kwargs):
    calls.append((path, name, kwargs.get("cache_dir")))
    return datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict(
                {"text": [" a b \n", "", "b\n"], "id": [0, 1, 2]}
            ),
            "validation": datasets.Dataset.from_dict(
                {"text": ["a\n"], "id": [0]}
            ),
            "test": datasets.Dataset.from_dict({"text": ["b"], "id": [0]}),
        }
    )

  monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
  src = {
      "hf_path": "wikitext",
      "hf_name": "wikitext-2-v1",
      "hf_cache_dir": str(tmp_path / "hf"),
  }
  word = sources.load_text_splits(src)
  assert word == {"train": [" a b ", "", "b"], "valid": ["a"], "test": ["b"]}
  assert calls == [("wikitext", "wikitext-2-v1", str(tmp_path / "hf"))]
  char = sources.load_text_splits({**src, "level": "char"})
  assert char == {"train": [" a b \n\nb\n"], "valid": ["a\n"], "test": ["b\n"]}
  vocab, ids = cache.load_corpus(src, "word")
  assert vocab.tokens == (EOS, "b", "a") and vocab.decode(ids["train"]) == [
      "a",
      "b",
      EOS,
      EOS,
      "b",
      EOS,
  ]
  with pytest.raises(DataError, match="no column 'sentence'"):
    sources.load_text_splits({**src, "text_column": "sentence"})


def test_hub_source_errors(monkeypatch):
  import datasets

  def only_train(path, name=None, **kwargs):
    return datasets.DatasetDict(
        {"train": datasets.Dataset.from_dict({"sentence": ["x y"]})}
    )

  monkeypatch.setattr(datasets, "load_dataset", only_train)
  with pytest.raises(DataError, match="ptb_text_only has no valid split"):
    sources.load_text_splits(
        {"hf_path": "ptb_text_only", "text_column": "sentence"}
    )

  def empty_test(path, name=None, **kwargs):
    ds = datasets.Dataset.from_dict({"sentence": ["x y"]})
    return datasets.DatasetDict(
        {
            "train": ds,
            "validation": ds,
            "test": datasets.Dataset.from_dict({"sentence": ["", " "]}),
        }
    )

  monkeypatch.setattr(datasets, "load_dataset", empty_test)
  with pytest.raises(
      DataError, match="test split of hub dataset ptb_text_only has no tokens"
  ):
    sources.load_text_splits(
        {"hf_path": "ptb_text_only", "text_column": "sentence"}
    )


def test_tinyshakespeare_char_split(tmp_path):
  folder = corpus_files.need("tinyshakespeare")
  src = {
      "dir": str(folder),
      "split_fractions": (0.9, 0.05, 0.05),
      "hf_cache_dir": str(tmp_path / "hf"),
  }
  splits = sources.load_text_splits({**src, "level": "char"})
  text = "".join(splits[s][0] for s in sources.SPLITS)
  assert len(text) == 1_115_394 and len(set(text)) == 65
  vocab, ids = encode_splits(splits, "char", None)
  assert sum(len(a) for a in ids.values()) == 1_115_394
  assert (
      len(vocab) == 65
      and vocab.eos_id is None
      and vocab.tokens[vocab.boundary_id] == "\n"
  )
