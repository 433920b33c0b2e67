"""What every experiment script shares: config resolution, run directories,
and turning library errors into one line and a non-zero exit."""

import ast
import contextlib
import dataclasses
import hashlib
import inspect
import io
import os
import re
import shlex
import subprocess
import sys
import textwrap
import tokenize
import typing

from absl import flags
from absl import logging
from ml_collections import config_flags

from rnnlm_jax import config as config_lib
from rnnlm_jax import figures
from rnnlm_jax import interop
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
    interop.InteropError,
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


def define_config(default: str | None = "default.py", help_string: str = ""):
  """The --config flag (an experiment config file, locked) and --config_help.

  ml_collections applies the command line's --config.KEY=V overrides to the
  default file as the flag is defined, so a bad one raises here, before
  parse_flags: it too is one 'error: ...' line and exit status 1.
  """
  caller = sys._getframe(1).f_globals.get("__name__", "")  # pylint: disable=protected-access
  if caller == "__main__":
    caller = sys.argv[0]  # How absl names the main module's key flags.
  flags.DEFINE_bool(
      "config_help",
      False,
      "Print every config key (--config.KEY=VALUE) with its value in the "
      "chosen config file, the library's default and what it means; exit.",
      module_name=caller,
  )
  try:
    holder = config_flags.DEFINE_config_file(
        "config",
        default and os.path.join(CONFIG_DIR, default),
        help_string
        or "Experiment config file, optionally with :variant; see "
        "--config_help for its keys.",
        lock_config=True,
    )
  except Exception as e:  # pylint: disable=broad-except
    print(f"error: {_error_line(e)}", file=sys.stderr)
    sys.exit(1)
  flags.FLAGS.register_key_flag_for_module(caller, flags.FLAGS["config"])
  return holder


def _config_flag_names() -> list[str]:
  return [
      name
      for name in flags.FLAGS
      if config_flags.config_flags.is_config_flag(flags.FLAGS[name])
  ]


def _unset(name: str) -> bool:
  """A config flag with no default that the command line did not give."""
  return not flags.FLAGS[name].present and flags.FLAGS[name].default is None


def parse_flags(argv: list[str]) -> list[str]:
  """app.run's flags_parser: absl's parsing, with a bad flag, config file or
  config override (``--config.model.hiden=3``) as one 'error: ...' line and
  exit status 1 instead of a traceback. --config_help prints the config's
  keys and exits."""
  try:
    argv = flags.FLAGS(argv)
    for name in _config_flag_names():
      if _unset(name):
        continue
      path = config_flags.get_config_filename(flags.FLAGS[name])
      path = path.partition(":")[0]  # Less a :variant.
      if path and not os.path.isfile(path):
        raise flags.Error(f"--{name}: no config file {path}")
  except Exception as e:  # pylint: disable=broad-except
    line = _error_line(e)
    override = re.match(r"Unknown command line flag '(\w+)\.", line)
    if override and override.group(1) in _config_flag_names():
      line += f" (a config key: --{override.group(1)}=FILE comes with it)"
    print(f"error: {line}", file=sys.stderr)
    sys.exit(1)
  if "config_help" in flags.FLAGS and flags.FLAGS.config_help:
    for name in _config_flag_names():
      if _unset(name):
        print(f"error: --config_help needs --{name}=FILE", file=sys.stderr)
        sys.exit(1)
      print(config_help(flags.FLAGS[name].value, name), end="")
    sys.exit(0)
  return argv


def field_comments(cls) -> dict[str, str]:
  """{field: its comment} for a dataclass whose fields are commented in
  its source: the comment lines just above a field and those on its own
  lines, joined."""
  try:
    source = textwrap.dedent(inspect.getsource(cls))
  except (OSError, TypeError):  # No source to read (a frozen install).
    return {}
  comments = {}
  for tok in tokenize.generate_tokens(io.StringIO(source).readline):
    if tok.type == tokenize.COMMENT:
      comments[tok.start[0]] = tok.string.lstrip("#").strip()
  lines = source.splitlines()
  out = {}
  (node,) = ast.parse(source).body
  for stmt in node.body:
    if not isinstance(stmt, ast.AnnAssign):
      continue
    if not isinstance(stmt.target, ast.Name):
      continue
    above, n = [], stmt.lineno - 1
    while n in comments and lines[n - 1].lstrip().startswith("#"):
      above.insert(0, comments[n])
      n -= 1
    own = [comments[i] for i in range(stmt.lineno, stmt.end_lineno + 1)
           if i in comments]  # fmt: skip
    text = " ".join(above + own).strip()
    if text:
      out[stmt.target.id] = text
  return out


def _library_docs() -> dict[str, tuple]:
  """{'model.hidden': (library default, comment), ...} from the typed
  config's dataclasses."""
  docs = {}

  def walk(cls, prefix):
    hints = typing.get_type_hints(cls)
    comments = field_comments(cls)
    for f in dataclasses.fields(cls):
      kind = hints[f.name]
      if dataclasses.is_dataclass(kind):
        walk(kind, f"{prefix}{f.name}.")
      else:
        default = getattr(cls(), f.name)
        docs[prefix + f.name] = (default, comments.get(f.name, ""))

  walk(config_lib.Config, "")
  return docs


def _flat_items(d: dict, prefix: str = ""):
  for k, v in d.items():
    if isinstance(v, dict):
      yield from _flat_items(v, f"{prefix}{k}.")
    else:
      yield prefix + k, v


def config_help(config_dict, flag: str = "config") -> str:
  """Every key of a config file's ConfigDict: its value there, the
  library's default where that differs, and the key's comment in
  rnnlm_jax/config.py."""
  docs = _library_docs()
  filename = config_flags.get_config_filename(flags.FLAGS[flag])
  out = [
      f"--{flag}={filename} (name {config_dict.name!r}); set any key with "
      f"--{flag}.KEY=VALUE:"
  ]
  values = dict(_flat_items(config_dict.to_dict()))
  # The library's order (groups, then fields as config.py lists them).
  order = [k for k in docs if k in values] + [
      k for k in values if k not in docs
  ]
  for key in order:
    value = values[key]
    default, comment = docs.get(key, (value, ""))
    if isinstance(default, tuple):
      default = list(default)
    if isinstance(value, tuple):
      value = list(value)
    line = f"  {key} = {value!r}"
    if default != value:
      line += f"  (default {default!r})"
    out.append(line)
    if comment:
      out += textwrap.wrap(
          comment, 80, initial_indent=" " * 6, subsequent_indent=" " * 6
      )
  return "\n".join(out) + "\n"


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


def config_overrides(flag: str = "config") -> dict:
  """{key: value} of the command line's --config.KEY=VALUE overrides that
  differ from the config file's own values."""
  holder = flags.FLAGS[flag]
  overrides = config_flags.get_override_values(holder)
  if not overrides:
    return {}
  parser = config_flags.config_flags.ConfigFileFlagParser(name=flag)
  plain = dict(
      _flat_items(
          parser.parse(config_flags.get_config_filename(holder)).to_dict()
      )
  )
  return {k: v for k, v in overrides.items() if k not in plain or plain[k] != v}


# The longest run directory name default_workdir makes; past it, the
# overrides are cut and a hash of them keeps the names apart.
_MAX_NAME = 120


def _safe(text: str) -> str:
  """Letters, digits and ._=+- kept, any run of others one underscore (no
  slashes, no spaces, no commas: --workdir lists are comma-separated)."""
  return re.sub(r"[^A-Za-z0-9._=+-]+", "_", text).strip("_") or "_"


def default_workdir(cfg: config_lib.Config, overrides: dict) -> str:
  """runs/<config name>[+KEY=VALUE...]: the config's name and the overrides
  that differ from its file, sorted, less the locations (rundir.LOCATIONS),
  so the same command finds its run again (and resumes it) and another
  command gets another directory."""
  parts = [
      f"{k}={_safe(str(list(v) if isinstance(v, tuple) else v))}"
      for k, v in sorted(overrides.items())
      if k not in rundir.LOCATIONS
  ]
  name = "+".join([_safe(cfg.name), *parts])
  if len(name) > _MAX_NAME:
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    name = f"{name[:_MAX_NAME - 9]}-{digest}"
  return os.path.join("runs", name)


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


def read_lines(path: str) -> list[str]:
  """The lines of a UTF-8 file, or of stdin for "-"; a missing or
  undecodable file is a DataError."""
  if path == "-":
    return sys.stdin.read().splitlines()
  try:
    with open(path, encoding="utf-8") as f:
      return f.read().splitlines()
  except FileNotFoundError:
    raise DataError(f"input file not found: {path}") from None
  except UnicodeDecodeError as e:
    raise DataError(f"{path} is not UTF-8 ({e.reason})") from None


def save_study(out: str, name: str, markdown: str, fig) -> None:
  """Writes <out>/<name>.md and the matplotlib figure <out>/<name>.png, each
  complete or not at all, and closes the figure."""
  os.makedirs(out, exist_ok=True)
  rundir.write_text_atomic(os.path.join(out, f"{name}.md"), markdown)
  figures.save_figure(out, name, fig)


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
