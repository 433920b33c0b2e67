"""What made a run: code version, packages, device and seed.

Every process that starts or resumes a run appends one JSON line to the run
directory's ``provenance.jsonl``, so a table built from run directories can
say which commit (and whether its tree had uncommitted changes), which
package versions and which device produced each number.
"""

import importlib.metadata
import os
import platform
import socket
import subprocess
import sys
import time

import jax

from rnnlm_jax import metrics

PROVENANCE_FILE = "provenance.jsonl"
PACKAGES = (
    "jax",
    "jaxlib",
    "flax",
    "optax",
    "orbax-checkpoint",
    "numpy",
    "ml_collections",
    "datasets",
)
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _git(*args: str) -> str | None:
  try:
    proc = subprocess.run(
        ["git", "-C", _ROOT, *args],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
  except (OSError, subprocess.SubprocessError):
    return None
  return proc.stdout


def code_version() -> dict:
  """{"git_commit": sha or None, "git_dirty": bool or None}."""
  commit = _git("rev-parse", "HEAD")
  if commit is None:
    return {"git_commit": None, "git_dirty": None}
  # Untracked files count: a config or sweep file that is not committed
  # makes a run that the commit alone cannot reproduce.
  status = _git("status", "--porcelain")
  return {
      "git_commit": commit.strip(),
      "git_dirty": None if status is None else bool(status.strip()),
  }


def package_versions() -> dict:
  versions = {}
  for name in PACKAGES:
    try:
      versions[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      versions[name] = None
  return versions


def describe(seed: int, **extra) -> dict:
  """The provenance of this process for a run with the given seed."""
  device = jax.devices()[0]
  return {
      "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
      "seed": seed,
      **code_version(),
      "packages": package_versions(),
      "python": platform.python_version(),
      "platform": platform.platform(),
      "host": socket.gethostname(),
      "backend": jax.default_backend(),
      "device_kind": device.device_kind,
      "device_count": jax.device_count(),
      "argv": sys.argv,
      **extra,
  }


def append(workdir: str, record: dict) -> None:
  """Appends one line (a torn line before it cut off)."""
  metrics.append_jsonl(os.path.join(workdir, PROVENANCE_FILE), record)


def read(workdir: str) -> list[dict]:
  return metrics.read_jsonl(os.path.join(workdir, PROVENANCE_FILE))
