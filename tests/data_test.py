"""Tests for rnnlm_jax.data: invariants on small inputs, plus counts on the real corpora when present."""

import math
import os
from pathlib import Path

import numpy as np
import pytest

from rnnlm_jax import data
from rnnlm_jax.data import EOS, UNK, DataError, Vocab

# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def _write(path: Path, content: str | bytes) -> Path:
  path.parent.mkdir(parents=True, exist_ok=True)
  if isinstance(content, str):
    content = content.encode("utf-8")
  path.write_bytes(content)
  return path


def _corpus_dir(
    tmp_path: Path, train="a b c\nb c\n", valid="a c\n", test="b\n", names=None
) -> Path:
  names = names or {
      "train": "train.txt",
      "valid": "valid.txt",
      "test": "test.txt",
  }
  folder = tmp_path / "corpus"
  for split, text in (("train", train), ("valid", valid), ("test", test)):
    _write(folder / names[split], text)
  return folder


def _data_root() -> Path:
  env = os.environ.get("RNNLM_DATA")
  return (
      Path(env)
      if env
      else Path(__file__).resolve().parents[2] / "shared" / "data"
  )


def _need(sub: str) -> Path:
  folder = _data_root() / sub
  if not folder.is_dir():
    pytest.skip(
        f"corpus folder {sub} not found under {_data_root()} (set RNNLM_DATA)"
    )
  return folder


# ---------------------------------------------------------------------------------------------
# vocabulary
# ---------------------------------------------------------------------------------------------


def test_vocab_save_load_round_trip_with_space_and_newline(tmp_path):
  tokens = (
      EOS,
      " ",
      "\n",
      "\t",
      "\r",
      "a b",
      '"q"',
      "back\\slash",
      "é",
      "\u2028",
      "",
      UNK,
  )
  vocab = Vocab(tokens)
  path = tmp_path / "sub" / "vocab.txt"
  vocab.save(path)
  lines = path.read_text(encoding="utf-8").split("\n")
  assert lines[-1] == "" and len(lines) == len(tokens) + 1  # one token per line
  loaded = Vocab.load(path)
  assert loaded == vocab and loaded.tokens == tokens
  assert sorted(os.listdir(path.parent)) == [
      "vocab.txt"
  ]  # the temp file was renamed away


def test_vocab_load_errors(tmp_path):
  with pytest.raises(DataError, match="not found"):
    Vocab.load(tmp_path / "missing.txt")
  bad = _write(tmp_path / "bad.txt", '"a"\nb\n')
  with pytest.raises(DataError, match="line 2"):
    Vocab.load(bad)
  dup = _write(tmp_path / "dup.txt", '"a"\n"a"\n')
  with pytest.raises(DataError, match="twice"):
    Vocab.load(dup)


def test_vocab_ids_encode_decode():
  vocab = Vocab((EOS, UNK, "a", "b"))
  assert (
      len(vocab) == 4
      and vocab.eos_id == 0
      and vocab.unk_id == 1
      and vocab.id("b") == 3
  )
  assert vocab.boundary_id == 0
  ids = vocab.encode(["a", "zzz", "b", EOS])
  assert ids.dtype == np.int32 and ids.tolist() == [2, 1, 3, 0]
  assert vocab.decode(ids) == ["a", UNK, "b", EOS]
  with pytest.raises(DataError, match="zzz"):
    vocab.id("zzz")
  with pytest.raises(DataError, match="outside"):
    vocab.decode([4])


def test_vocab_without_unk_rejects_unknown_token():
  vocab = Vocab((EOS, "a"))
  assert vocab.unk_id is None
  with pytest.raises(DataError, match="'mystery'"):
    vocab.encode(["a", "mystery"])
  chars = Vocab(("a", "\n"))
  assert chars.eos_id is None and chars.boundary_id == 1


def test_vocab_rejects_duplicates():
  with pytest.raises(DataError, match="twice"):
    Vocab(("a", "b", "a"))


def test_tokenizers():
  assert data.tokenize_word(" the cat  sat ") == ["the", "cat", "sat", EOS]
  assert data.tokenize_word("") == [EOS]
  assert data.tokenize_word("   ") == [EOS]
  assert data.tokenize_char("ab \nc") == ["a", "b", " ", "\n", "c"]


def test_build_vocab_order_specials_and_ties():
  vocab = data.build_vocab([["b", "a", "c", "a"], ["c", "d", EOS]])
  # <eos> first, then by count (a:2, c:2 tie -> a first seen), then b, d by first appearance.
  assert vocab.tokens == (EOS, "a", "c", "b", "d")
  assert data.build_vocab([["x", "y", "y"]], specials=()).tokens == ("y", "x")


def test_build_vocab_limits_add_unk():
  lists = [["a"] * 5 + ["b"] * 4 + ["c"] * 3 + ["d"] * 2 + ["e"]]
  by_size = data.build_vocab(lists, max_size=4)
  assert by_size.tokens == (EOS, UNK, "a", "b") and len(by_size) == 4
  by_count = data.build_vocab(lists, min_count=3)
  assert by_count.tokens == (EOS, UNK, "a", "b", "c")
  no_drop = data.build_vocab(lists, max_size=6)
  assert UNK not in no_drop and len(no_drop) == 6
  with pytest.raises(DataError, match="max_size"):
    data.build_vocab(lists, max_size=1)
  with pytest.raises(DataError, match="empty"):
    data.build_vocab([[]], specials=())


def test_build_vocab_corpus_unk_is_a_normal_word():
  vocab = data.build_vocab([["x", UNK, UNK, "y"]])
  assert vocab.tokens == (
      EOS,
      UNK,
      "x",
      "y",
  )  # ranked by its count, not added as a special
  vocab = data.build_vocab([["x", "x", "y", UNK]])
  assert vocab.tokens == (EOS, "x", "y", UNK)


# ---------------------------------------------------------------------------------------------
# reading files
# ---------------------------------------------------------------------------------------------


def test_read_lines_keeps_empty_lines_and_normalizes_newlines(tmp_path):
  path = _write(tmp_path / "t.txt", "a b\n\n c \r\nlast")
  assert data.read_lines(path) == ["a b", "", " c ", "last"]
  path = _write(tmp_path / "u.txt", " x \n \n")
  assert data.read_lines(path) == [" x ", " "]


def test_read_lines_errors(tmp_path):
  with pytest.raises(DataError, match=r"not found: .*nope\.txt"):
    data.read_lines(tmp_path / "nope.txt")
  empty = _write(tmp_path / "empty.txt", "")
  with pytest.raises(DataError, match="empty.txt is empty"):
    data.read_lines(empty)
  blank = _write(tmp_path / "blank.txt", " \n\n  \n")
  with pytest.raises(DataError, match="is empty"):
    data.read_lines(blank)
  bad = _write(tmp_path / "bad.txt", b"ok line\nab\xffcd\n")
  with pytest.raises(DataError, match=r"bad\.txt.*0xff at byte offset 10"):
    data.read_lines(bad)
  assert data.read_lines(bad, encoding_errors="replace") == [
      "ok line",
      "ab\ufffdcd",
  ]
  with pytest.raises(DataError):
    data.read_lines(bad, encoding_errors="ignore")


def test_load_text_splits_word_and_char(tmp_path):
  folder = _corpus_dir(tmp_path, train="a b\n\nc \n", valid="a\n", test="b c")
  hf = str(tmp_path / "hf")
  word = data.load_text_splits(
      {"dir": str(folder), "level": "word", "hf_cache_dir": hf}
  )
  assert word == {"train": ["a b", "", "c "], "valid": ["a"], "test": ["b c"]}
  char = data.load_text_splits(
      {"dir": str(folder), "level": "char", "hf_cache_dir": hf}
  )
  assert char == {"train": ["a b\n\nc \n"], "valid": ["a\n"], "test": ["b c"]}


def test_load_text_splits_file_name_patterns(tmp_path):
  names = {
      "train": "wiki.train.tokens",
      "valid": "validation.txt",
      "test": "ptb.test.txt",
  }
  folder = _corpus_dir(tmp_path, names=names)
  splits = data.load_text_splits(
      {"dir": str(folder), "hf_cache_dir": str(tmp_path / "hf")}
  )
  assert splits["valid"] == ["a c"] and splits["test"] == ["b"]


def test_load_text_splits_missing_inputs(tmp_path):
  with pytest.raises(DataError, match="data folder not found"):
    data.load_text_splits({"dir": str(tmp_path / "nowhere")})
  folder = _corpus_dir(tmp_path)
  (folder / "test.txt").unlink()
  with pytest.raises(DataError, match="no test split file"):
    data.load_text_splits({"dir": str(folder)})
  with pytest.raises(DataError, match="unknown data source keys"):
    data.load_text_splits({"dir": str(folder), "split_fraction": (1, 0, 0)})
  with pytest.raises(DataError, match="neither"):
    data.load_text_splits({"level": "word"})


def test_load_text_splits_bad_bytes_named(tmp_path):
  folder = _corpus_dir(tmp_path)
  _write(
      folder / "valid.txt", b"a\n\xc3(\n"
  )  # 0xc3 starts a 2-byte sequence that "(" does not continue
  with pytest.raises(DataError, match=r"valid\.txt.*byte offset 2"):
    data.load_text_splits(
        {"dir": str(folder), "hf_cache_dir": str(tmp_path / "hf")}
    )
  splits = data.load_text_splits(
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
  _write(folder / "input.txt", text)
  src = {
      "dir": str(folder),
      "split_fractions": (0.5, 0.25, 0.25),
      "hf_cache_dir": str(tmp_path / "hf"),
  }
  char = data.load_text_splits({**src, "level": "char"})
  n = len(text)
  assert [len(char[s][0]) for s in data.SPLITS] == [
      n // 2,
      n * 3 // 4 - n // 2,
      n - n * 3 // 4,
  ]
  assert "".join(char[s][0] for s in data.SPLITS) == text
  word = data.load_text_splits({**src, "level": "word"})
  assert (
      word["train"] == text[: n // 2].split("\n")
      and word["train"][-1] == "line "
  )  # a cut line
  with pytest.raises(DataError, match="test split .* has no tokens"):
    data.load_text_splits({**src, "split_fractions": (0.5, 0.5, 0.0)})
  with pytest.raises(DataError, match="split_fractions"):
    data.load_text_splits({**src, "split_fractions": (0.5, 0.6, 0.1)})
  _write(folder / "other.txt", "x\n")
  with pytest.raises(DataError, match="exactly one"):
    data.load_text_splits(src)


# ---------------------------------------------------------------------------------------------
# encoding and caching
# ---------------------------------------------------------------------------------------------


def test_encode_splits_word_and_char():
  splits = {"train": ["a b", "", "b"], "valid": ["b a"], "test": ["a"]}
  vocab, ids = data.encode_splits(splits, "word", None)
  assert vocab.tokens == (EOS, "b", "a")
  assert vocab.decode(ids["train"]) == ["a", "b", EOS, EOS, "b", EOS]
  assert ids["valid"].dtype == np.int32 and vocab.decode(ids["valid"]) == [
      "b",
      "a",
      EOS,
  ]
  splits["valid"] = ["b c"]
  with pytest.raises(DataError, match="valid split.*'c'"):
    data.encode_splits(
        splits, "word", None
    )  # c is not in train and there is no <unk>
  limited, ids = data.encode_splits(splits, "word", None, min_count=2)
  assert limited.tokens == (EOS, UNK, "b") and limited.decode(ids["valid"]) == [
      "b",
      UNK,
      EOS,
  ]
  chars, ids = data.encode_splits(
      {"train": ["ab\na"], "valid": ["b"], "test": ["\n"]}, "char", None
  )
  assert chars.tokens == ("a", "b", "\n") and ids["train"].tolist() == [
      0,
      1,
      2,
      0,
  ]


def test_load_corpus_cache_hit_and_corruption(tmp_path, monkeypatch):
  folder = _corpus_dir(tmp_path)
  src = {"dir": str(folder), "hf_cache_dir": str(tmp_path / "hf")}
  cache = tmp_path / "cache"
  vocab, ids = data.load_corpus(src, "word", cache_dir=cache)
  (path,) = cache.glob("*.npz")

  def fail(*a, **k):
    raise AssertionError("the text was read despite a cache hit")

  with monkeypatch.context() as m:
    m.setattr(data, "load_text_splits", fail)
    vocab2, ids2 = data.load_corpus(src, "word", cache_dir=cache)
  assert vocab2 == vocab
  for s in data.SPLITS:
    assert ids2[s].dtype == np.int32 and np.array_equal(ids2[s], ids[s])

  for damage in (b"not a zip file", path.read_bytes()[:100]):
    path.write_bytes(damage)
    vocab3, ids3 = data.load_corpus(src, "word", cache_dir=cache)
    assert vocab3 == vocab and all(
        np.array_equal(ids3[s], ids[s]) for s in data.SPLITS
    )
    assert (
        data._read_cache(path, data.corpus_cache_key(src, "word")) is not None
    )  # rewritten
  assert [p.name for p in cache.iterdir()] == [
      path.name
  ]  # no temp files left behind


def test_load_corpus_cache_key_tracks_inputs(tmp_path):
  folder = _corpus_dir(tmp_path)
  src = {"dir": str(folder)}
  key = data.corpus_cache_key(src, "word")
  assert key == data.corpus_cache_key(src, "word")
  assert key != data.corpus_cache_key(src, "char")
  assert key != data.corpus_cache_key(src, "word", max_size=3)
  assert key != data.corpus_cache_key(src, "word", vocab=Vocab((EOS, UNK)))
  _write(folder / "test.txt", "b c\n")
  assert key != data.corpus_cache_key(src, "word")


def test_load_corpus_with_given_vocab(tmp_path):
  folder = _corpus_dir(tmp_path, valid="a zz\n")
  vocab = Vocab((EOS, UNK, "a", "b", "c"))
  got, ids = data.load_corpus(
      {"dir": str(folder), "hf_cache_dir": str(tmp_path / "hf")},
      "word",
      vocab=vocab,
      cache_dir=tmp_path / "c",
  )
  assert got == vocab and vocab.decode(ids["valid"]) == ["a", UNK, EOS]
  with pytest.raises(DataError, match="conflicts"):
    data.load_corpus({"dir": str(folder), "level": "char"}, "word")


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
  word = data.load_text_splits(src)
  assert word == {"train": [" a b ", "", "b"], "valid": ["a"], "test": ["b"]}
  assert calls == [("wikitext", "wikitext-2-v1", str(tmp_path / "hf"))]
  char = data.load_text_splits({**src, "level": "char"})
  assert char == {"train": [" a b \n\nb\n"], "valid": ["a\n"], "test": ["b\n"]}
  vocab, ids = data.load_corpus(src, "word")
  assert vocab.tokens == (EOS, "b", "a") and vocab.decode(ids["train"]) == [
      "a",
      "b",
      EOS,
      EOS,
      "b",
      EOS,
  ]
  with pytest.raises(DataError, match="no column 'sentence'"):
    data.load_text_splits({**src, "text_column": "sentence"})


def test_hub_source_errors(monkeypatch):
  import datasets

  def only_train(path, name=None, **kwargs):
    return datasets.DatasetDict(
        {"train": datasets.Dataset.from_dict({"sentence": ["x y"]})}
    )

  monkeypatch.setattr(datasets, "load_dataset", only_train)
  with pytest.raises(DataError, match="ptb_text_only has no valid split"):
    data.load_text_splits(
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
    data.load_text_splits(
        {"hf_path": "ptb_text_only", "text_column": "sentence"}
    )


# ---------------------------------------------------------------------------------------------
# batching
# ---------------------------------------------------------------------------------------------


def test_batchify_and_train_stream():
  ids = np.arange(1, 12, dtype=np.int32)  # 11 tokens
  ids_BN = data.batchify(ids, 3)
  assert ids_BN.shape == (3, 3) and ids_BN[1].tolist() == [4, 5, 6]
  train = data.train_stream(ids, 3, eos_id=0)
  assert train.shape == (3, 4) and train[0].tolist() == [0, 1, 2, 3]
  with pytest.raises(DataError):
    data.batchify(ids, 12)
  with pytest.raises(DataError):
    data.batchify(ids, 0)


def test_segments_tile_the_stream():
  ids_BN = np.arange(2 * 23, dtype=np.int32).reshape(2, 23)
  bptt = 5
  n = data.num_segments(ids_BN, bptt)
  assert n == (23 - 1) // bptt == 4
  xs, ys = zip(*(data.segment(ids_BN, i, bptt) for i in range(n)))
  assert all(
      x.shape == (2, bptt) and y.shape == (2, bptt) for x, y in zip(xs, ys)
  )
  x_all, y_all = np.concatenate(xs, axis=1), np.concatenate(ys, axis=1)
  assert np.array_equal(x_all, ids_BN[:, : n * bptt])
  assert np.array_equal(y_all, ids_BN[:, 1 : n * bptt + 1])
  with pytest.raises(IndexError):
    data.segment(ids_BN, n, bptt)


@pytest.mark.parametrize(
    "n,batch_size,bptt",
    [
        (1, 1, 1),
        (10, 1, 3),
        (10, 1, 10),
        (12, 3, 4),
        (13, 3, 4),
        (5, 4, 2),
        (3, 8, 5),
        (100, 7, 9),
        (35, 5, 7),
    ],
)
def test_eval_stream_scores_every_token_once(n, batch_size, bptt):
  rng = np.random.default_rng(n * 100 + batch_size)
  ids = rng.integers(1, 50, size=n).astype(np.int32)
  eos = 0
  x, y, mask = data.eval_stream(ids, batch_size, bptt, eos)
  s = math.ceil(math.ceil(n / batch_size) / bptt)
  assert x.shape == y.shape == mask.shape == (s, batch_size, bptt)
  assert x.dtype == y.dtype == np.int32 and mask.dtype == np.float32
  assert mask.sum() == n
  # Streams in order, each in time order.
  y_BL, x_BL, m_BL = (
      a.transpose(1, 0, 2).reshape(batch_size, -1) for a in (y, x, mask)
  )
  assert np.array_equal(y_BL[m_BL > 0], ids)
  # Every scored input is the token right before its target in [eos] + ids.
  full = np.concatenate([[eos], ids])
  assert np.array_equal(x_BL[m_BL > 0], full[:n])
  assert x_BL[0, 0] == eos
  # Padding comes only after a stream's real tokens.
  for row in m_BL:
    k = int(row.sum())
    assert row[:k].all() and not row[k:].any()
  if batch_size == 1:
    assert np.array_equal(y_BL[0, :n], ids)


def test_sentence_batches_invariants():
  eos = 0
  ids = np.array(
      [5, 6, 0, 7, 0, 8, 9, 10, 11, 0, 0, 12, 13], dtype=np.int32
  )  # last sentence has no eos
  sentences = [[5, 6, 0], [7, 0], [8, 9, 10, 11, 0], [0], [12, 13]]
  batches = data.sentence_batches(ids, eos, batch_size=2, max_len=5)
  assert len(batches) == 3
  for x, y, m in batches:
    assert (
        x.shape == y.shape == m.shape == (2, 5)
        and x.dtype == np.int32
        and m.dtype == np.float32
    )
  x = np.concatenate([b[0] for b in batches])
  y = np.concatenate([b[1] for b in batches])
  m = np.concatenate([b[2] for b in batches])
  assert m[-1].sum() == 0  # filler row
  for row, sent in enumerate(sentences):
    k = len(sent)
    assert x[row, 0] == eos
    assert y[row, :k].tolist() == sent and m[row].sum() == k
    assert x[row, 1:k].tolist() == sent[:-1]
  assert m.sum() == ids.size


def test_sentence_batches_split_long_sentences_and_shuffle():
  eos = 0
  ids = np.array([1, 2, 3, 4, 5, 6, 7, 0, 8, 0], dtype=np.int32)
  batches = data.sentence_batches(ids, eos, batch_size=4, max_len=3)
  x, y, m = (np.concatenate(a) for a in zip(*batches))
  # [1..7, eos] has 8 targets -> chunks of 3, 3, 2; then [8, eos].
  assert y[m > 0].tolist() == ids.tolist()
  assert (
      x[0].tolist() == [eos, 1, 2]
      and x[1].tolist() == [3, 4, 5]
      and x[2, :2].tolist() == [6, 7]
  )
  assert x[3, :2].tolist() == [eos, 8]
  shuffled = data.sentence_batches(
      ids, eos, batch_size=4, max_len=3, rng_seed=0
  )
  again = data.sentence_batches(ids, eos, batch_size=4, max_len=3, rng_seed=0)
  xs, ys, ms = (np.concatenate(a) for a in zip(*shuffled))
  assert all(
      np.array_equal(a, b)
      for pa, pb in zip(shuffled, again)
      for a, b in zip(pa, pb)
  )
  order = np.random.default_rng(0).permutation(4)
  assert np.array_equal(xs[:4], x[:4][order]) and np.array_equal(
      ys[:4], y[:4][order]
  )
  assert ms.sum() == ids.size


# ---------------------------------------------------------------------------------------------
# real corpora (skipped when the data folder is absent)
# ---------------------------------------------------------------------------------------------


def test_ptb_word_counts_and_cache(tmp_path, monkeypatch):
  folder = _need("ptb")
  src = {"dir": str(folder), "hf_cache_dir": str(tmp_path / "hf")}
  vocab, ids = data.load_corpus(src, "word", cache_dir=tmp_path / "cache")
  assert {s: len(a) for s, a in ids.items()} == {
      "train": 929_589,
      "valid": 73_760,
      "test": 82_430,
  }
  assert len(vocab) == 10_000 and vocab.tokens[0] == EOS
  assert (
      vocab.unk_id is not None and vocab.unk_id != 1
  )  # the corpus's own <unk>, ranked as a word
  def no_text(source):
    raise AssertionError("a cache hit must not read the text")

  monkeypatch.setattr(data, "load_text_splits", no_text)
  vocab2, ids2 = data.load_corpus(src, "word", cache_dir=tmp_path / "cache")
  assert vocab2 == vocab and all(
      np.array_equal(ids2[s], ids[s]) for s in data.SPLITS
  )
  x, y, mask = data.eval_stream(ids["test"], 10, 35, vocab.eos_id)
  assert mask.sum() == 82_430


def test_wikitext2_word_counts(tmp_path):
  folder = _need("wikitext-2")
  vocab, ids = data.load_corpus(
      {"dir": str(folder), "hf_cache_dir": str(tmp_path / "hf")}, "word"
  )
  assert {s: len(a) for s, a in ids.items()} == {
      "train": 2_088_628,
      "valid": 217_646,
      "test": 245_569,
  }
  assert len(vocab) == 33_278


def test_tinyshakespeare_char_split(tmp_path):
  folder = _need("tinyshakespeare")
  src = {
      "dir": str(folder),
      "split_fractions": (0.9, 0.05, 0.05),
      "hf_cache_dir": str(tmp_path / "hf"),
  }
  splits = data.load_text_splits({**src, "level": "char"})
  text = "".join(splits[s][0] for s in data.SPLITS)
  assert len(text) == 1_115_394 and len(set(text)) == 65
  vocab, ids = data.encode_splits(splits, "char", None)
  assert sum(len(a) for a in ids.values()) == 1_115_394
  assert (
      len(vocab) == 65
      and vocab.eos_id is None
      and vocab.tokens[vocab.boundary_id] == "\n"
  )
