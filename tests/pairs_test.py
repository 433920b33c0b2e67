"""Tests for rnnlm_jax.pairs: the fra.txt reader, Moses tokenisation, the
hashed split and load_pairs from files and the hub."""

import collections
import random
import re

import datasets
import pytest

import corpus_files

from rnnlm_jax import pairs
from rnnlm_jax.errors import DataError

FRACTIONS = (0.6, 0.2, 0.2)


def _raises_at(path, lineno, what, fn, *args, **kwargs):
  """fn(*args) raises a one-line DataError naming path:lineno and ``what``."""
  with pytest.raises(DataError) as info:
    fn(*args, **kwargs)
  message = str(info.value)
  assert "\n" not in message
  assert re.match(
      re.escape(f"{path}:{lineno}: ") + ".*" + what, message
  ), message


def _rows(n=60):
  """n English sentences, some with two translations."""
  out = []
  for i in range(n):
    out.append((f"I see {i} cats.", f"Je vois {i} chats."))
    if i % 3 == 0:
      out.append((f"I see {i} cats.", f"J'aperçois {i} chats !"))
  return out


def _fra(folder, rows, extra=""):
  text = "".join(f"{en}\t{fr}{extra}\n" for en, fr in rows)
  corpus_files.write(folder / "fra.txt", text)
  return folder


def test_read_pairs_values(tmp_path):
  path = corpus_files.write(
      tmp_path / "fra.txt",
      "Go.\tVa !\r\n Hi. \t Salut ! \tCC-BY 2.0 (France) #1\n"
      "Run!\tCours\u202f!\n\n \n",
  )
  assert pairs.read_pairs(path) == [
      ("Go.", "Va !", 1),
      ("Hi.", "Salut !", 2),
      ("Run!", "Cours\u202f!", 3),
  ]


@pytest.mark.parametrize(
    "content, lineno, what",
    [
        ("Go.\tVa !\nno tab here\n", 2, "no tab"),
        ("Go.\tVa !\n\nHi.\tSalut.\n", 2, "blank line"),
        ("Go.\tVa !\n  \tSalut.\n", 2, "empty English side"),
        ("Go.\tVa !\nHi.\t \t#3\n", 2, "empty French side"),
        (b"Go.\tVa !\r\nHi.\tSalut\xff\n", 2, "invalid UTF-8 byte 0xff"),
        (b"Go.\tVa !\nA\tB\nC\xe9\tD\n", 3, "invalid UTF-8"),
        ("\n\n", 1, "no pairs"),
    ],
)
def test_read_pairs_errors(tmp_path, content, lineno, what):
  path = corpus_files.write(tmp_path / "fra.txt", content)
  _raises_at(path, lineno, what, pairs.read_pairs, path)


def test_bad_bytes_replaced_on_request(tmp_path):
  path = corpus_files.write(tmp_path / "fra.txt", b"Hi.\tSalut\xff !\n")
  assert pairs.read_pairs(path, "replace") == [("Hi.", "Salut\ufffd !", 1)]
  with pytest.raises(DataError, match="encoding_errors"):
    pairs.read_pairs(path, "ignore")
  with pytest.raises(DataError, match="pairs file not found"):
    pairs.read_pairs(tmp_path / "none.txt")


@pytest.mark.parametrize(
    "lang, text, tokens",
    [
        (
            "fr",
            "Qu'est-ce que c'est ?",
            ["Qu'", "est-ce", "que", "c'", "est", "?"],
        ),
        ("fr", "J'ai vu l'homme.", ["J'", "ai", "vu", "l'", "homme", "."]),
        ("fr", "Va !", ["Va", "!"]),
        ("fr", "Il a dit « non ».", ["Il", "a", "dit", "«", "non", "»", "."]),
        ("fr", 'Il a dit "non".', ["Il", "a", "dit", '"', "non", '"', "."]),
        (
            "en",
            "I don't know, do you?",
            ["I", "don", "'t", "know", ",", "do", "you", "?"],
        ),
        ("en", 'He said "no!"', ["He", "said", '"', "no", "!", '"']),
        ("en", "It's Tom's car.", ["It", "'s", "Tom", "'s", "car", "."]),
    ],
)
def test_tokenize_detokenize_round_trip(lang, text, tokens):
  assert pairs.tokenize(text, lang) == tokens
  assert pairs.detokenize(tokens, lang) == text
  lower = pairs.tokenize(text, lang, lowercase=True)
  assert lower == [t.lower() for t in tokens]


def test_tokenize_normalises_apostrophes_and_spaces():
  got = pairs.tokenize("C\u2019est l\u2019été\u202f!", "fr")
  assert got == "C' est l' été !".split()
  got = pairs.tokenize("sur \u200b\u200bla cuisine", "fr")
  assert got == ["sur", "la", "cuisine"]
  with pytest.raises(DataError, match="language must be one of"):
    pairs.tokenize("Hallo", "de")


def test_split_of_is_a_salted_hash_of_the_english_side():
  # Pinned values: the same split on every machine and Python.
  got = [pairs.split_of(f"s{i}", (0.8, 0.1, 0.1), 0) for i in range(8)]
  assert got == ["train"] * 3 + ["test", "train", "valid", "train", "test"]
  got = [pairs.split_of("Go.", (0.8, 0.1, 0.1), seed) for seed in range(8)]
  assert got == ["train"] * 3 + ["valid", "train", "train", "valid", "valid"]
  assert pairs.split_of("  I SEE  you. ", FRACTIONS, 3) == pairs.split_of(
      "i see you.", FRACTIONS, 3
  )
  names = lambda seed: [
      pairs.split_of(f"Sentence {i}.", FRACTIONS, seed) for i in range(300)
  ]
  assert names(0) == names(0) and names(0) != names(1)
  counts = collections.Counter(names(0))
  assert set(counts) == set(pairs.SPLITS) and counts["train"] > 150
  assert {pairs.split_of(f"{i}", (1, 0, 0), 5) for i in range(50)} == {"train"}
  assert {pairs.split_of(f"{i}", (0, 0, 1), 5) for i in range(50)} == {"test"}


def _as_set(split):
  return set(zip(split.src_text, split.tgt_text))


def test_load_pairs_split_is_independent_of_order(tmp_path):
  rows = _rows()
  out = pairs.load_pairs(
      {"dir": _fra(tmp_path / "a", rows)}, fractions=FRACTIONS, seed=1
  )
  shuffled = rows[:]
  random.Random(0).shuffle(shuffled)
  again = pairs.load_pairs(
      {"dir": _fra(tmp_path / "b", shuffled, "\tCC-BY")},
      fractions=FRACTIONS,
      seed=1,
  )
  assert sum(map(len, out.values())) == len(rows)
  english_of = {}
  for name in pairs.SPLITS:
    assert len(out[name]) > 0 and out[name].dropped == 0
    assert _as_set(out[name]) == _as_set(again[name])
    for fr, en in _as_set(out[name]):  # fr -> en by default
      assert english_of.setdefault(en, name) == name  # translations together
    # Within a split, the file's order.
    assert list(out[name].lines) == sorted(out[name].lines)
    for src, line in zip(out[name].src_text, out[name].lines):
      assert rows[line - 1][1] == src
  assert (
      pairs.load_pairs({"dir": tmp_path / "a"}, fractions=FRACTIONS, seed=2)
      != out
  )


def test_load_pairs_direction_case_and_tokens(tmp_path):
  folder = _fra(tmp_path, _rows())
  fr_en = pairs.load_pairs({"dir": folder}, fractions=FRACTIONS)
  en_fr = pairs.load_pairs(
      {"dir": folder}, "en", "fr", lowercase=False, fractions=FRACTIONS
  )
  for name in pairs.SPLITS:
    a, b = fr_en[name], en_fr[name]
    assert (a.src_text, a.tgt_text, a.lines) == (
        b.tgt_text,
        b.src_text,
        b.lines,
    )
    for text, tokens in zip(b.src_text, b.src):
      assert tokens == tuple(pairs.tokenize(text, "en"))
    for text, tokens in zip(a.src_text, a.src):
      assert tokens == tuple(pairs.tokenize(text, "fr", lowercase=True))
    assert a.tgt == tuple(tuple(t.lower() for t in s) for s in b.src)
  (first,) = [p for p in fr_en.values() if p.lines[0] == 1]
  assert first.src[0] == ("je", "vois", "0", "chats", ".")
  assert first.tgt[0] == ("i", "see", "0", "cats", ".")
  assert (first.src_text[0], first.tgt_text[0]) == _rows()[0][::-1]


def test_load_pairs_drops_long_pairs(tmp_path):
  rows = _rows()
  long_en = [("I see a very long list of many cats.", "Je vois 3 chats.")]
  long_fr = [("I see 3 cats.", "Je vois une très longue file de chats noirs.")]
  folder = _fra(tmp_path, rows + long_en + long_fr)
  every = pairs.load_pairs({"dir": folder}, max_len=None, fractions=FRACTIONS)
  out = pairs.load_pairs({"dir": folder}, max_len=5, fractions=FRACTIONS)
  assert sum(len(p) for p in every.values()) == len(rows) + 2
  for name in pairs.SPLITS:
    assert all(
        max(len(s), len(t)) <= 5 for s, t in zip(out[name].src, out[name].tgt)
    )
    assert len(out[name]) + out[name].dropped == len(every[name])
  # Both sides of every other pair have 5 tokens: kept at the limit.
  assert sum(p.dropped for p in out.values()) == 2
  assert (
      pairs.load_pairs({"dir": folder}, max_len=10, fractions=FRACTIONS)
      == every
  )
  with pytest.raises(DataError, match="max_len must be at least 1"):
    pairs.load_pairs({"dir": folder}, max_len=0)
  with pytest.raises(DataError, match="the valid split has no pairs"):
    pairs.load_pairs({"dir": folder}, fractions=(1, 0, 0))


def test_load_pairs_bad_sources(tmp_path):
  with pytest.raises(DataError, match="data folder not found"):
    pairs.load_pairs({"dir": tmp_path / "none"})
  with pytest.raises(DataError, match=r"pairs file not found: .*fra\.txt"):
    pairs.load_pairs({"dir": tmp_path})
  with pytest.raises(DataError, match="unknown data source keys"):
    pairs.load_pairs({"dir": tmp_path, "level": "word"})
  with pytest.raises(DataError, match="neither 'dir' nor 'hf_path'"):
    pairs.load_pairs({})
  with pytest.raises(DataError, match="both 'en'"):
    pairs.load_pairs({"dir": tmp_path}, "en", "en")
  with pytest.raises(DataError, match="split_fractions must be three"):
    pairs.load_pairs({"dir": tmp_path}, fractions=(0.5, 0.5))
  corpus_files.write(tmp_path / "fra.txt", b"Hi.\tSalut\n\xffHo.\tHo\n")
  _raises_at(
      tmp_path / "fra.txt",
      2,
      "invalid UTF-8",
      pairs.load_pairs,
      {"dir": tmp_path},
  )
  source = {"dir": tmp_path, "encoding_errors": "replace"}
  with pytest.raises(DataError, match="split has no pairs"):
    pairs.load_pairs(source)  # Two pairs cannot fill three splits.


def _fake_hub(monkeypatch, dd):
  calls = []

  def load_dataset(path, name=None, **kwargs):
    calls.append((path, name))
    return dd

  monkeypatch.setattr(datasets, "load_dataset", load_dataset)
  return calls


def test_load_pairs_hub_pools_and_resplits(monkeypatch, tmp_path):
  rows = _rows()
  split = lambda part: datasets.Dataset.from_dict(
      {"translation": [{"en": en, "fr": fr} for en, fr in part]}
  )
  dd = datasets.DatasetDict(
      train=split(rows[:50]),
      validation=split(rows[50:60]),
      test=split(rows[60:]),
  )
  calls = _fake_hub(monkeypatch, dd)
  source = {"hf_path": "Helsinki-NLP/opus_books", "hf_name": "en-fr"}
  out = pairs.load_pairs(source, "en", "fr", fractions=FRACTIONS, seed=4)
  assert calls == [("Helsinki-NLP/opus_books", "en-fr")]
  local = pairs.load_pairs(
      {"dir": _fra(tmp_path, rows)}, "en", "fr", fractions=FRACTIONS, seed=4
  )
  assert out == local  # rows numbered from 1 across the splits, like lines

  bad = datasets.DatasetDict(train=split(rows[:3]), test=split([("Hi.", " ")]))
  _fake_hub(monkeypatch, bad)
  with pytest.raises(DataError, match=r"split 'test' row 0: no 'fr' text"):
    pairs.load_pairs(source)
  text_only = datasets.DatasetDict(
      train=datasets.Dataset.from_dict({"text": ["a"]})
  )
  _fake_hub(monkeypatch, text_only)
  with pytest.raises(DataError, match="has no column 'translation'"):
    pairs.load_pairs(source)


@pytest.fixture(scope="module")
def real_rows():
  path = corpus_files.need("fra-eng") / "fra.txt"
  if not path.is_file():
    pytest.skip(f"{path} not found (set RNNLM_DATA)")
  return pairs.read_pairs(path)


def test_real_file_split_proportions(real_rows):
  assert len(real_rows) == 142_787
  assert real_rows[0] == ("Go.", "Va !", 1)
  fractions = (0.8, 0.1, 0.1)
  names = [pairs.split_of(en, fractions, 0) for en, _, _ in real_rows]
  counts = collections.Counter(names)
  for name, f in zip(pairs.SPLITS, fractions):
    assert abs(counts[name] / len(real_rows) - f) < 0.01, counts
  english = collections.defaultdict(set)
  for (en, _, _), name in zip(real_rows, names):
    english[" ".join(en.split()).lower()].add(name)
  assert all(len(s) == 1 for s in english.values())
  # The split of a pair depends on its English side alone, not its place.
  flipped = [pairs.split_of(en, fractions, 0) for en, _, _ in real_rows[::-1]]
  assert flipped[::-1] == names
