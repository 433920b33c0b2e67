"""Tests for rnnlm_jax.vocab: tokenization, the vocabulary and its file,
encoding splits."""

import os

import numpy as np
import pytest

import corpus_files

from rnnlm_jax.errors import DataError
from rnnlm_jax.vocab import EOS, UNK, Vocab, build_vocab, encode_splits
from rnnlm_jax.vocab import unknown_word_class
from rnnlm_jax.vocab import tokenize_char, tokenize_word


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
  bad = corpus_files.write(tmp_path / "bad.txt", '"a"\nb\n')
  with pytest.raises(DataError, match="line 2"):
    Vocab.load(bad)
  dup = corpus_files.write(tmp_path / "dup.txt", '"a"\n"a"\n')
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
  assert tokenize_word(" the cat  sat ") == ["the", "cat", "sat", EOS]
  assert tokenize_word("") == [EOS]
  assert tokenize_word("   ") == [EOS]
  assert tokenize_char("ab \nc") == ["a", "b", " ", "\n", "c"]


def test_build_vocab_order_specials_and_ties():
  vocab = build_vocab([["b", "a", "c", "a"], ["c", "d", EOS]])
  # <eos> first, then by count (a:2, c:2 tie -> a first seen), then b, d by first appearance.
  assert vocab.tokens == (EOS, "a", "c", "b", "d")
  assert build_vocab([["x", "y", "y"]], specials=()).tokens == ("y", "x")


def test_build_vocab_limits_add_unk():
  lists = [["a"] * 5 + ["b"] * 4 + ["c"] * 3 + ["d"] * 2 + ["e"]]
  by_size = build_vocab(lists, max_size=4)
  assert by_size.tokens == (EOS, UNK, "a", "b") and len(by_size) == 4
  by_count = build_vocab(lists, min_count=3)
  assert by_count.tokens == (EOS, UNK, "a", "b", "c")
  no_drop = build_vocab(lists, max_size=6)
  assert UNK not in no_drop and len(no_drop) == 6
  with pytest.raises(DataError, match="max_size"):
    build_vocab(lists, max_size=1)
  with pytest.raises(DataError, match="empty"):
    build_vocab([[]], specials=())


def test_build_vocab_corpus_unk_is_a_normal_word():
  vocab = build_vocab([["x", UNK, UNK, "y"]])
  assert vocab.tokens == (
      EOS,
      UNK,
      "x",
      "y",
  )  # ranked by its count, not added as a special
  vocab = build_vocab([["x", "x", "y", UNK]])
  assert vocab.tokens == (EOS, "x", "y", UNK)


def test_unknown_word_classes_by_shape():
  assert [
      unknown_word_class(w)
      for w in ("Walking", "1990s", "well-known", "quickly", "IBM", "x", "is")
  ] == [
      "<unk-Cap-ing>",
      "<unk-num-s>",
      "<unk-dash>",
      "<unk-ly>",
      "<unk-Cap>",
      "<unk-plain>",
      "<unk-plain>",  # A suffix counts only before two more letters.
  ]


def test_unknown_words_read_as_the_classes_the_rare_train_words_teach(
    tmp_path,
):
  train = [["the", "cat", "the", "cat", "Walking", "quickly", "dogs"]]
  vocab = build_vocab(train, min_count=2, specials=(UNK,), unk_classes=True)
  assert vocab.tokens == (
      UNK, "<unk-Cap-ing>", "<unk-ly>", "<unk-s>", "the", "cat"
  )  # fmt: skip
  words = ["the", "Running", "slowly", "cats", "Paris", "dog"]
  want = ["the", "<unk-Cap-ing>", "<unk-ly>", "<unk-s>", UNK, UNK]
  assert vocab.decode(vocab.encode(words)) == want
  # The classes travel with the saved vocabulary.
  vocab.save(tmp_path / "vocab.json")
  again = Vocab.load(tmp_path / "vocab.json")
  assert again.decode(again.encode(words)) == want
  # Without classes, every unknown word is <unk>.
  plain = build_vocab(train, min_count=2, specials=(UNK,))
  assert plain.decode(plain.encode(words)) == ["the"] + [UNK] * 5


def test_encode_splits_word_and_char():
  splits = {"train": ["a b", "", "b"], "valid": ["b a"], "test": ["a"]}
  vocab, ids = encode_splits(splits, "word", None)
  assert vocab.tokens == (EOS, "b", "a")
  assert vocab.decode(ids["train"]) == ["a", "b", EOS, EOS, "b", EOS]
  assert ids["valid"].dtype == np.int32 and vocab.decode(ids["valid"]) == [
      "b",
      "a",
      EOS,
  ]
  splits["valid"] = ["b c"]
  with pytest.raises(DataError, match="valid split.*'c'"):
    encode_splits(
        splits, "word", None
    )  # c is not in train and there is no <unk>
  limited, ids = encode_splits(splits, "word", None, min_count=2)
  assert limited.tokens == (EOS, UNK, "b") and limited.decode(ids["valid"]) == [
      "b",
      UNK,
      EOS,
  ]
  chars, ids = encode_splits(
      {"train": ["ab\na"], "valid": ["b"], "test": ["\n"]}, "char", None
  )
  assert chars.tokens == ("a", "b", "\n") and ids["train"].tolist() == [
      0,
      1,
      2,
      0,
  ]


def test_missing_test_word_error_names_the_fix():
  splits = {"train": ["a b a"], "valid": ["a"], "test": ["a zz"]}
  with pytest.raises(
      DataError, match=r"test split: .*'zz'.*data\.vocab_min_count=2.*<unk>"
  ):
    encode_splits(splits, "word", None)
