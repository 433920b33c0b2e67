"""Small corpora on disk for the data tests, and the staged real corpora
($RNNLM_DATA, else ../shared/data beside the checkout) where present."""

import os
from pathlib import Path

import pytest


def write(path: Path, content: str | bytes) -> Path:
  path.parent.mkdir(parents=True, exist_ok=True)
  if isinstance(content, str):
    content = content.encode("utf-8")
  path.write_bytes(content)
  return path


def corpus_dir(
    tmp_path: Path, train="a b c\nb c\n", valid="a c\n", test="b\n", names=None
) -> Path:
  names = names or {
      "train": "train.txt",
      "valid": "valid.txt",
      "test": "test.txt",
  }
  folder = tmp_path / "corpus"
  for split, text in (("train", train), ("valid", valid), ("test", test)):
    write(folder / names[split], text)
  return folder


def data_root() -> Path:
  env = os.environ.get("RNNLM_DATA")
  return (
      Path(env)
      if env
      else Path(__file__).resolve().parents[2] / "shared" / "data"
  )


def need(sub: str) -> Path:
  folder = data_root() / sub
  if not folder.is_dir():
    pytest.skip(
        f"corpus folder {sub} not found under {data_root()} (set RNNLM_DATA)"
    )
  return folder
