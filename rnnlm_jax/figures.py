"""Matplotlib for the report writers: a headless pyplot, and figures written
complete or not at all."""

import os
import pathlib

from rnnlm_jax.atomic import atomic_write


def pyplot():
  """matplotlib.pyplot on the Agg backend (no display needed)."""
  import matplotlib  # pylint: disable=g-import-not-at-top

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  return plt


def save_figure(out: str, name: str, fig) -> str:
  """Writes the figure as <out>/<name>.png atomically, closes it, and
  returns the path."""
  path = os.path.join(out, f"{name}.png")
  atomic_write(
      pathlib.Path(path), lambda f: fig.savefig(f, format="png", dpi=120)
  )
  pyplot().close(fig)
  return path
