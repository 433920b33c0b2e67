"""Metrics as JSON lines, one record per line, safe to resume."""

import json
import math
import os
import pathlib

from rnnlm_jax import data
from rnnlm_jax import rundir


def perplexity(nll_per_token: float) -> float:
  """exp(nll); inf where that overflows (a model that gives some token
  probability 0 has infinite perplexity); NaN stays NaN."""
  if math.isnan(nll_per_token):
    return math.nan
  return math.exp(nll_per_token) if nll_per_token < 700.0 else math.inf


def bits(nll_per_token: float) -> float:
  return nll_per_token / math.log(2.0)


def read_jsonl(path: str) -> list[dict]:
  """The records of a JSON-lines file that appends built; a last line
  without its newline (an append cut short by a kill) is left out."""
  if not os.path.exists(path):
    return []
  with open(path, encoding="utf-8") as f:
    lines = f.readlines()
  if lines and not lines[-1].endswith("\n"):
    lines.pop()
  return [json.loads(line) for line in lines if line.strip()]


def append_jsonl(path: str, record: dict) -> None:
  """Appends one line, first cutting a line that an earlier append left
  without its newline."""
  with open(path, "ab+") as f:
    end = f.seek(0, os.SEEK_END)
    if end and (f.seek(end - 1), f.read(1))[1] != b"\n":
      f.seek(0)
      f.truncate(f.read().rfind(b"\n") + 1)
    f.write((json.dumps(record, sort_keys=True) + "\n").encode("utf-8"))


class JsonlWriter:
  """Appends records to ``path``; ``truncate_after(step)`` drops the records
  a killed run wrote after its last checkpoint, so a resumed run's log reads
  as if it had never stopped."""

  def __init__(self, path: str):
    self.path = path

  def write(self, record: dict) -> None:
    append_jsonl(self.path, record)

  def close(self) -> None:
    pass

  def read(self) -> list[dict]:
    return read_jsonl(self.path)

  def truncate_after(self, step: int) -> None:
    kept = [r for r in self.read() if r.get("step", 0) <= step]
    text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in kept)
    data.atomic_write(pathlib.Path(self.path), lambda f: f.write(text.encode()))


def make_writers(workdir: str, start_step: int) -> list:
  """A run directory's metric writers (metrics.jsonl), continuing from
  ``start_step``."""
  jsonl = JsonlWriter(os.path.join(workdir, rundir.METRICS_FILE))
  jsonl.truncate_after(start_step)
  return [jsonl]
