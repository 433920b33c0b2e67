"""What every experiment script shares: config resolution, run directories,
and turning library errors into one line and a non-zero exit."""

import contextlib
import hashlib
import json
import os
import pathlib
import shlex
import subprocess
import sys

from absl import flags
from absl import logging
from ml_collections import config_flags

from rnnlm_jax import config as config_lib
from rnnlm_jax.atomic import atomic_write
from rnnlm_jax.backends import hostmem
from rnnlm_jax.errors import DataError
from rnnlm_jax import rundir
from rnnlm_jax import sampling
from rnnlm_jax import train

CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")
DATA_ENV = "RNNLM_DATA"
# An interpreter that has torch, for the scripts that compare against it.
TORCH_ENV = "TORCH_PYTHON"

HOST_MEMORY = flags.DEFINE_enum(
    "host_memory",
    "reuse",
    list(hostmem.MODES),
    "reuse: malloc keeps freed blocks for the next step, so XLA's per-call "
    "buffers are not page-faulted again every step (glibc; see "
    "rnnlm_jax.hostmem); system: malloc's defaults.",
)

# Errors that are the user's input, reported as one line.
USER_ERRORS = (
    config_lib.ConfigError,
    DataError,
    rundir.IncompatibleRun,
    train.TrainingDiverged,
    sampling.SamplingError,
    OSError,
)


def _error_line(e: BaseException) -> str:
  """One line for a flag's error: a missing config key's name (with
  ml_collections' suggestion: its AttributeError wraps a KeyError), the last
  line of a traceback that config_flags embeds, or the message with its
  lines joined."""
  cause = e.__cause__ or e.__context__
  if (
      isinstance(e, AttributeError)
      and isinstance(cause, KeyError)
      and cause.args
      and isinstance(cause.args[0], str)
  ):
    return "no such config key " + "; ".join(cause.args[0].split("\n"))
  lines = [l.strip() for l in str(e).strip().splitlines() if l.strip()]
  if any(l.startswith("Traceback") for l in lines):
    return lines[-1]
  return " ".join(lines) or type(e).__name__


def parse_flags(argv: list[str]) -> list[str]:
  """app.run's flags_parser: absl's parsing, with a bad flag, config file or
  config override (``--config.model.hiden=3``) as one 'error: ...' line and
  exit status 1 instead of a traceback."""
  try:
    argv = flags.FLAGS(argv)
    for name in flags.FLAGS:
      try:
        path = config_flags.get_config_filename(flags.FLAGS[name])
      except TypeError:  # Not a config file's flag.
        continue
      path = path.partition(":")[0]  # Less a :variant.
      if path and not os.path.isfile(path):
        raise flags.Error(f"--{name}: no config file {path}")
  except Exception as e:  # pylint: disable=broad-except
    print(f"error: {_error_line(e)}", file=sys.stderr)
    sys.exit(1)
  return argv


def resolve_config(config_dict) -> config_lib.Config:
  """Typed config from a ConfigDict, with the corpus location resolved.

  A 'files' corpus with no data.dir is looked up as $RNNLM_DATA/<local_name>;
  without RNNLM_DATA it falls back to the hub dataset (hf_path) if the config
  names one.
  """
  cfg = config_lib.from_dict(config_dict.to_dict())
  d = cfg.data
  if d.source != "files" or d.dir:
    return cfg
  root = os.environ.get(DATA_ENV)
  if root and d.local_name:
    return config_lib.replace(
        cfg, data={"dir": os.path.abspath(os.path.join(root, d.local_name))}
    )
  if d.hf_path:
    return config_lib.replace(cfg, data={"source": "hub"})
  raise config_lib.ConfigError(
      f"config {cfg.name!r} reads local files: pass --config.data.dir=FOLDER "
      f"or set {DATA_ENV}"
  )


def default_workdir(cfg: config_lib.Config) -> str:
  """runs/<name>-<hash of the config>: the same command finds its own run
  again (and resumes it); a config that makes a different run (any key but
  those a run may change on resume) gets a fresh directory."""
  blob = json.dumps(rundir.identity(cfg), sort_keys=True)
  digest = hashlib.sha1(blob.encode()).hexdigest()[:8]
  return os.path.join("runs", f"{cfg.name}-{digest}")


def command_line(
    module: str, argv: list[str], workdir: str, workdir_given: bool
) -> str:
  """The command that reproduces this run, its run directory included."""
  args = list(argv) if workdir_given else [*argv, f"--workdir={workdir}"]
  return shlex.join(["python", "-m", module, *args])


@contextlib.contextmanager
def one_line_errors():
  """The edge every script's main runs in. Turns a user error into
  'error: ...' on stderr and exit status 1.

  Also quiets the INFO logs of libraries (orbax logs every file it writes)
  and, before any JAX computation, applies --host_memory.
  """
  logging.set_verbosity(logging.WARNING)
  if flags.FLAGS.is_parsed() and HOST_MEMORY.value == "reuse":
    hostmem.reuse_freed_memory()
  try:
    yield
  except USER_ERRORS as e:
    msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(1)


def save_figure(out: str, name: str, fig) -> str:
  """Writes the matplotlib figure <out>/<name>.png complete or not at all,
  closes it, and returns the path."""
  path = os.path.join(out, f"{name}.png")
  atomic_write(
      pathlib.Path(path), lambda f: fig.savefig(f, format="png", dpi=120)
  )
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  plt.close(fig)
  return path


def save_study(out: str, name: str, markdown: str, fig) -> None:
  """Writes <out>/<name>.md and the matplotlib figure <out>/<name>.png, each
  complete or not at all, and closes the figure."""
  os.makedirs(out, exist_ok=True)
  rundir.write_text_atomic(os.path.join(out, f"{name}.md"), markdown)
  save_figure(out, name, fig)


def run_labels(workdirs: list[str], labels: list[str] | None) -> list[str]:
  """One label per run directory: the given ones, or the folder names."""
  labels = labels or [os.path.basename(w.rstrip("/")) for w in workdirs]
  if len(labels) != len(workdirs):
    raise config_lib.ConfigError(
        f"--labels has {len(labels)} labels for {len(workdirs)} runs"
    )
  return labels


def torch_unavailable(python: str | None) -> str | None:
  """Why ``python`` cannot run torch, or None. torch is never imported in
  this process: the scripts run it in that interpreter."""
  if not python:
    return f"no interpreter with torch (--torch_python or ${TORCH_ENV})"
  try:
    proc = subprocess.run(
        [python, "-c", "import torch"],
        capture_output=True,
        text=True,
        timeout=120,
    )
  except OSError as e:
    return f"{python}: {e}"
  if proc.returncode:
    return f"{python} cannot import torch"
  return None
