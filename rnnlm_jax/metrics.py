"""Metrics as JSON lines, one record per line, safe to resume, and as
TensorBoard event files beside them."""

import json
import math
import os
import pathlib
import struct

from rnnlm_jax.atomic import atomic_write


# The metrics a run's last line reports, where it has them: perplexities
# (floor_ppl: the synthetic corpus's true one), bits per character, and the
# sentence tasks' accuracy and chunk F1.
HEADLINE = (
    "valid_ppl",
    "test_ppl",
    "floor_ppl",
    "valid_bpc",
    "test_bpc",
    "valid_acc",
    "dev_acc",
    "test_acc",
    "valid_f1",
    "test_f1",
    "valid_bleu",
    "test_bleu",
    "test_chrf",
    "simlex_rho",
    "analogy_acc",
)


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
    atomic_write(pathlib.Path(self.path), lambda f: f.write(text.encode()))


class TensorBoardWriter:
  """Each record's numbers as TensorBoard scalars at its step, in event files
  in ``logdir`` (a run directory: ``tensorboard --logdir runs`` shows every
  run). ``purge_step``: a resumed run's first step after its checkpoint;
  TensorBoard drops what an earlier process logged from there on, as
  JsonlWriter.truncate_after does."""

  def __init__(self, logdir: str, purge_step: int | None = None):
    # Imported here: only runs that write events need it.
    import tensorboardX  # pylint: disable=g-import-not-at-top

    self._writer = tensorboardX.SummaryWriter(
        logdir, purge_step=purge_step, flush_secs=3600
    )

  def write(self, record: dict) -> None:
    for key, value in record.items():
      if key != "step" and isinstance(value, (int, float)):
        self._writer.add_scalar(key, value, record["step"])
    # A flush per record (every log_every steps), so a kill loses nothing.
    self._writer.flush()

  def close(self) -> None:
    self._writer.close()


def read_tensorboard(logdir: str) -> dict[str, list[tuple[int, float]]]:
  """{tag: [(step, value), ...]} of the scalars in a folder's event files,
  in the order written (earlier files first); events a later file purged
  are left in."""
  # pylint: disable-next=g-import-not-at-top
  from tensorboardX.proto import event_pb2

  scalars = {}
  names = sorted(n for n in os.listdir(logdir) if ".tfevents." in n)
  for name in names:
    with open(os.path.join(logdir, name), "rb") as f:
      blob = f.read()
    pos = 0
    while pos + 12 <= len(blob):
      # TFRecord: length (u64), its CRC (u32), the bytes, their CRC (u32).
      (length,) = struct.unpack("<Q", blob[pos : pos + 8])
      event = event_pb2.Event.FromString(blob[pos + 12 : pos + 12 + length])
      pos += 12 + length + 4
      for v in event.summary.value:
        scalars.setdefault(v.tag, []).append((event.step, v.simple_value))
  return scalars
