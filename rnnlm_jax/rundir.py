"""Run directories: what a run writes besides checkpoints, and whether a
config may continue a directory.

  config.json    the resolved config
  cmd.sh         the command that made the run
  vocab.json     the vocabulary
  metrics.jsonl  metrics (see metrics.JsonlWriter)
  samples.txt    samples drawn while training (train.sample_every), one
                 block per sampling; rendered whole from samples.jsonl, its
                 records, which a resumed run cuts as metrics.jsonl
  results.json   final metrics
  ngram.npz      the counts of a count-based n-gram model (its "checkpoint")
"""

import dataclasses
import json
import os
import pathlib
from typing import Any

from rnnlm_jax import checkpoint
from rnnlm_jax import config as config_lib
from rnnlm_jax import metrics
from rnnlm_jax.atomic import atomic_write
from rnnlm_jax.vocab import Vocab
from rnnlm_jax import ngram
from rnnlm_jax.config import Config

CONFIG_FILE = "config.json"
COMMAND_FILE = "cmd.sh"
VOCAB_FILE = "vocab.json"
METRICS_FILE = "metrics.jsonl"
SAMPLES_FILE = "samples.txt"
SAMPLE_RECORDS_FILE = "samples.jsonl"
RESULTS_FILE = "results.json"
NGRAM_FILE = "ngram.npz"
# A PPMI-SVD run's vectors (word2vec binary format): its checkpoint.
VECTORS_FILE = "vectors.bin"

# Keys that may differ between a run directory's config and a resumed run.
RESUMABLE_CHANGES = (
    "train.num_epochs",
    "train.max_steps",
    "train.log_every",
    "train.checkpoint_every",
    "train.num_devices",  # Data parallelism gives the losses of one device.
    "train.tensorboard",  # Where metrics are written too.
    # What is sampled while training, which the training does not read.
    "train.sample_every",
    "train.sample_prompt",
    "train.sample_temperature",
    "train.sample_length",
    "train.sample_count",
    # How the same function is computed (rnnlm_jax.backends): a run may be
    # continued on another path, the reference among them; the losses then
    # differ from an uninterrupted run's by float rounding. (model.gemm is
    # not among them: "bf16" is a close function, not the same.)
    "model.backend",
    "model.scan_impl",
    "model.unroll",
    "model.remat_chunk",
    "model.time_chunks",
    "model.fold_embedding",
)
# Where things are, not what the run is: a moved corpus or token cache
# leaves a run resumable (the run's saved vocabulary is what encodes it).
LOCATIONS = ("data.cache_dir", "data.dir")
# Keys a run takes from its data when the config leaves them empty: a
# resumed run's command leaves them so.
FROM_DATA = (
    "model.vocab_size",
    "model.num_classes",
    "model.num_features",
    "model.target_vocab_size",
    "data.labels",
    "data.features",
)


class IncompatibleRun(ValueError):
  """The run directory was made by a config this run cannot continue."""


def write_text_atomic(path: str, text: str) -> None:
  """Writes a temp file beside ``path``, synced, then renames it over."""
  atomic_write(pathlib.Path(path), lambda f: f.write(text.encode("utf-8")))


def write_json_atomic(path: str, obj) -> None:
  write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def flatten(cfg: Config) -> dict:
  """{'model.hidden': 200, ...}."""

  def walk(d, prefix):
    for k, v in d.items():
      if isinstance(v, dict):
        yield from walk(v, f"{prefix}{k}.")
      else:
        yield prefix + k, list(v) if isinstance(v, tuple) else v

  return dict(walk(config_lib.to_dict(cfg), ""))


# Schedules whose learning rate at a step depends on the run's length.
_LENGTH_SCHEDULES = ("warmup_cosine",)


def identity(cfg: Config) -> dict:
  """The keys that make a run what it is: all but RESUMABLE_CHANGES (and
  train.num_epochs among them where the schedule is laid over the epochs)
  and LOCATIONS."""
  keep = ()
  if cfg.optim.schedule in _LENGTH_SCHEDULES:
    keep = ("train.num_epochs",)
  return {
      k: v
      for k, v in flatten(cfg).items()
      if (k not in RESUMABLE_CHANGES or k in keep) and k not in LOCATIONS
  }


def load_run_config(workdir: str) -> Config:
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    raise FileNotFoundError(
        f"{workdir} is not a run directory (no {CONFIG_FILE})"
    )
  try:
    with open(path, encoding="utf-8") as f:
      values = json.load(f)
  except json.JSONDecodeError as e:
    raise IncompatibleRun(f"{path} is not valid JSON: {e}") from None
  return config_lib.from_dict(values)


def check_compatible(old: Config, new: Config) -> None:
  """Raises IncompatibleRun naming the first differing key."""
  a, b = identity(old), identity(new)
  for key in sorted(set(a) | set(b)):
    if key in FROM_DATA and b.get(key) in (0, []):
      continue  # Taken from the data (the saved vocabulary).
    if a.get(key) != b.get(key):
      raise IncompatibleRun(
          f"the run directory was made by a different config: {key} is "
          f"{a.get(key)!r} there and {b.get(key)!r} now; use a new --workdir"
      )


def _steps_per_epoch(workdir: str) -> int | None:
  """A run's steps per epoch, from any metrics record's step and epoch (the
  data's batching, fixed by the run's identity); None before its first."""
  try:
    records = metrics.read_jsonl(os.path.join(workdir, METRICS_FILE))
  except (OSError, ValueError):
    return None
  for r in records:
    step, epoch = r.get("step"), r.get("epoch")
    if isinstance(step, int) and isinstance(epoch, (int, float)) and epoch > 0:
      return max(1, round(step / epoch))
  return None


def last_step(workdir: str, cfg: Config) -> int | None:
  """Where cfg stops the run in workdir: train.max_steps, or the end of its
  train.num_epochs epochs when the run has logged its steps per epoch;
  None where neither is known."""
  stops = [cfg.train.max_steps] if cfg.train.max_steps else []
  per_epoch = _steps_per_epoch(workdir)
  if per_epoch:
    stops.append(per_epoch * cfg.train.num_epochs)
  return min(stops, default=None)


def check_not_past(workdir: str, cfg: Config) -> None:
  """Raises IncompatibleRun where the run in workdir has trained past the
  step at which cfg stops (a shorter train.max_steps or train.num_epochs):
  resuming would report the longer run's model as this one's."""
  step = checkpoint.latest_step(workdir, "latest")
  stop = last_step(workdir, cfg) if step else None
  if stop is not None and step > stop:
    raise IncompatibleRun(
        f"{workdir} holds a run already at step {step}, past this config's "
        f"last step {stop} (train.max_steps={cfg.train.max_steps}, "
        f"train.num_epochs={cfg.train.num_epochs}); use a new --workdir, or "
        "experiments.evaluate for the longer run"
    )


def existing_vocab(workdir: str, cfg: Config) -> Vocab | None:
  """Checks that cfg may continue workdir (if it holds a run: the same
  identity, not trained past cfg's stopping point) and returns the run's
  vocabulary, or None for a new run. Writes nothing."""
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise IncompatibleRun(f"--workdir {workdir} is a file, not a directory")
  if os.path.exists(os.path.join(workdir, CONFIG_FILE)):
    check_compatible(load_run_config(workdir), cfg)
    check_not_past(workdir, cfg)
  path = os.path.join(workdir, VOCAB_FILE)
  return Vocab.load(path) if os.path.exists(path) else None


def write_run_files(
    workdir: str, cfg: Config, vocab: Vocab, command: str | None
) -> None:
  """Creates the directory and writes config, vocabulary and command."""
  os.makedirs(workdir, exist_ok=True)
  if not os.path.exists(os.path.join(workdir, VOCAB_FILE)):
    vocab.save(os.path.join(workdir, VOCAB_FILE))
  write_json_atomic(os.path.join(workdir, CONFIG_FILE), config_lib.to_dict(cfg))
  if command:
    write_text_atomic(
        os.path.join(workdir, COMMAND_FILE), f"#!/bin/sh\n{command}\n"
    )


@dataclasses.dataclass(frozen=True)
class Trained:
  """A run directory's model, ready to use."""

  cfg: Config
  vocab: Vocab
  params: Any  # neural models; None for a counted model (n-gram, PPMI-SVD)
  counts: ngram.NGramLM | None  # the count-based model; None otherwise
  record: dict  # the checkpoint's record (step, epoch, ...)


def load_trained(workdir: str, slot: str = "best") -> Trained:
  """Config, vocabulary and the model of a run directory's checkpoint.

  "best" is the latest checkpoint where the run has no best yet (it
  stopped on train.max_steps before its first validation): the model its
  results.json reports either way.
  """
  cfg = load_run_config(workdir)
  vocab = Vocab.load(os.path.join(workdir, VOCAB_FILE))
  if cfg.model.kind == "count_ngram":
    counts = ngram.load(os.path.join(workdir, NGRAM_FILE))
    return Trained(cfg, vocab, None, counts, {"step": 0})
  if cfg.model.kind == "ppmi_svd":  # its vectors are its checkpoint
    return Trained(cfg, vocab, None, None, {"step": 0})
  if slot == "best" and checkpoint.latest_step(workdir, "best") is None:
    slot = "latest"
  params, record = checkpoint.restore_params(workdir, slot)
  return Trained(cfg, vocab, params, None, record)


def make_writers(workdir: str, start_step: int, tensorboard: bool) -> list:
  """A run directory's metric writers (metrics.jsonl and, with
  ``tensorboard``, event files), continuing from ``start_step``."""
  jsonl = metrics.JsonlWriter(os.path.join(workdir, METRICS_FILE))
  jsonl.truncate_after(start_step)
  if not tensorboard:
    return [jsonl]
  return [
      jsonl,
      metrics.TensorBoardWriter(
          workdir, start_step + 1 if start_step else None
      ),
  ]


def format_samples(record: dict) -> str:
  """samples.txt's block of one sampling: a header line with its step,
  epoch and temperature, then each text (as it is, newlines and all),
  samples separated by '--' lines, and a blank line."""
  header = (
      f"== step {record['step']}, epoch {record['epoch']:.2f}, temperature "
      f"{record['temperature']:g} =="
  )
  return header + "\n" + "\n--\n".join(record["samples"]) + "\n\n"


class SampleWriter:
  """A run directory's samples, continuing from ``start_step``: each
  sampling is a record of samples.jsonl (a metrics.JsonlWriter, so a
  resumed run drops the records a killed one wrote after its checkpoint,
  and a half-written last line), and samples.txt is rewritten from those
  records, atomically, after each: it never holds a half-written block,
  nor one past the step the run resumed from."""

  def __init__(self, workdir: str, start_step: int):
    self.records = metrics.JsonlWriter(
        os.path.join(workdir, SAMPLE_RECORDS_FILE)
    )
    self.records.truncate_after(start_step)
    self.path = os.path.join(workdir, SAMPLES_FILE)
    self._render()

  def write(self, record: dict) -> None:
    self.records.write(record)
    self._render()

  def _render(self) -> None:
    text = "".join(format_samples(r) for r in self.records.read())
    write_text_atomic(self.path, text)


def make_sample_writer(
    workdir: str, start_step: int, sampling: bool
) -> SampleWriter | None:
  """The run's SampleWriter where it samples, or sampled before (its
  records are then cut to ``start_step``); else None."""
  records = os.path.join(workdir, SAMPLE_RECORDS_FILE)
  if not sampling and not os.path.exists(records):
    return None
  return SampleWriter(workdir, start_step)
