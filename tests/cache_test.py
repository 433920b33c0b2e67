"""Tests for rnnlm_jax.cache: the encoded-corpus cache, plus counts on the
real corpora when present."""


import math

import numpy as np
import pytest

import corpus_files

from rnnlm_jax import batching
from rnnlm_jax import cache
from rnnlm_jax import sources
from rnnlm_jax.errors import DataError
from rnnlm_jax.tasks import lm
from rnnlm_jax.vocab import EOS, UNK, Vocab


def test_load_corpus_cache_hit_and_corruption(tmp_path, monkeypatch):
  folder = corpus_files.corpus_dir(tmp_path)
  src = {"dir": str(folder), "hf_cache_dir": str(tmp_path / "hf")}
  cache_dir = tmp_path / "cache"
  vocab, ids = cache.load_corpus(src, "word", cache_dir=cache_dir)
  (path,) = cache_dir.glob("*.npz")

  def fail(*a, **k):
    raise AssertionError("the text was read despite a cache hit")

  with monkeypatch.context() as m:
    m.setattr(sources, "load_text_splits", fail)
    vocab2, ids2 = cache.load_corpus(src, "word", cache_dir=cache_dir)
  assert vocab2 == vocab
  for s in sources.SPLITS:
    assert ids2[s].dtype == np.int32 and np.array_equal(ids2[s], ids[s])

  for damage in (b"not a zip file", path.read_bytes()[:100]):
    path.write_bytes(damage)
    vocab3, ids3 = cache.load_corpus(src, "word", cache_dir=cache_dir)
    assert vocab3 == vocab and all(
        np.array_equal(ids3[s], ids[s]) for s in sources.SPLITS
    )
    assert (
        cache._read_cache(path, cache.corpus_cache_key(src, "word")) is not None
    )  # rewritten
  assert [p.name for p in cache_dir.iterdir()] == [
      path.name
  ]  # no temp files left behind


def test_load_corpus_cache_key_tracks_inputs(tmp_path):
  folder = corpus_files.corpus_dir(tmp_path)
  src = {"dir": str(folder)}
  key = cache.corpus_cache_key(src, "word")
  assert key == cache.corpus_cache_key(src, "word")
  assert key != cache.corpus_cache_key(src, "char")
  assert key != cache.corpus_cache_key(src, "word", max_size=3)
  assert key != cache.corpus_cache_key(src, "word", vocab=Vocab((EOS, UNK)))
  corpus_files.write(folder / "test.txt", "b c\n")
  assert key != cache.corpus_cache_key(src, "word")


def test_load_corpus_with_given_vocab(tmp_path):
  folder = corpus_files.corpus_dir(tmp_path, valid="a zz\n")
  vocab = Vocab((EOS, UNK, "a", "b", "c"))
  got, ids = cache.load_corpus(
      {"dir": str(folder), "hf_cache_dir": str(tmp_path / "hf")},
      "word",
      vocab=vocab,
      cache_dir=tmp_path / "c",
  )
  assert got == vocab and vocab.decode(ids["valid"]) == ["a", UNK, EOS]
  with pytest.raises(DataError, match="conflicts"):
    cache.load_corpus({"dir": str(folder), "level": "char"}, "word")


def test_ptb_word_counts_and_cache(tmp_path, monkeypatch):
  folder = corpus_files.need("ptb")
  src = {"dir": str(folder), "hf_cache_dir": str(tmp_path / "hf")}
  vocab, ids = cache.load_corpus(src, "word", cache_dir=tmp_path / "cache")
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

  monkeypatch.setattr(sources, "load_text_splits", no_text)
  vocab2, ids2 = cache.load_corpus(src, "word", cache_dir=tmp_path / "cache")
  assert vocab2 == vocab and all(
      np.array_equal(ids2[s], ids[s]) for s in sources.SPLITS
  )
  x, y, mask = batching.eval_stream(ids["test"], 10, 35, vocab.eos_id)
  assert mask.sum() == 82_430


def test_ptb_char_reads_as_the_usual_character_counts(tmp_path):
  folder = corpus_files.need("ptb_char")
  vocab, ids = cache.load_corpus(
      {"dir": str(folder), "hf_cache_dir": str(tmp_path / "hf")}, "word"
  )
  # The 49 characters (word boundaries as "_") and <eos>: the counts cited
  # for PTB char, and bits per character reported at word level.
  assert {s: len(a) for s, a in ids.items()} == {
      "train": 5_017_483,
      "valid": 393_043,
      "test": 442_424,
  }
  assert len(vocab) == 50 and vocab.unk_id is None
  assert lm.split_metrics(math.log(2.0), "test", True)["test_bpc"] == 1.0
  assert "test_bpc" not in lm.split_metrics(1.0, "test", False)


def test_wikitext2_word_counts(tmp_path):
  folder = corpus_files.need("wikitext-2")
  vocab, ids = cache.load_corpus(
      {"dir": str(folder), "hf_cache_dir": str(tmp_path / "hf")}, "word"
  )
  assert {s: len(a) for s, a in ids.items()} == {
      "train": 2_088_628,
      "valid": 217_646,
      "test": 245_569,
  }
  assert len(vocab) == 33_278
