"""Metrics as JSON lines, one record per line, safe to resume."""

import json
import math
import os


def perplexity(nll_per_token: float) -> float:
  """exp(nll); inf where that overflows (a model that gives some token
  probability 0 has infinite perplexity)."""
  return math.exp(nll_per_token) if nll_per_token < 700.0 else math.inf


def bits(nll_per_token: float) -> float:
  return nll_per_token / math.log(2.0)


class JsonlWriter:
  """Appends records to ``path``; ``truncate_after(step)`` drops the records
  a killed run wrote after its last checkpoint, so a resumed run's log reads
  as if it had never stopped."""

  def __init__(self, path: str):
    self.path = path

  def write(self, record: dict) -> None:
    with open(self.path, "a", encoding="utf-8") as f:
      f.write(json.dumps(record, sort_keys=True) + "\n")

  def read(self) -> list[dict]:
    if not os.path.exists(self.path):
      return []
    with open(self.path, encoding="utf-8") as f:
      return [json.loads(line) for line in f if line.strip()]

  def truncate_after(self, step: int) -> None:
    kept = [r for r in self.read() if r.get("step", 0) <= step]
    tmp = self.path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
      f.writelines(json.dumps(r, sort_keys=True) + "\n" for r in kept)
    os.replace(tmp, self.path)
