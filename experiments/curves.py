"""Validation loss of several runs against optimizer updates, training
tokens read and training seconds, in one figure (three panels) and a table.

  python -m experiments.curves \
      --workdirs=runs/gd_online,runs/gd_minibatch,runs/gd_batch \
      --labels=online,minibatch,full-batch --out=docs --name=gd_modes

Writes <out>/<name>.md and <out>/<name>.png. Training seconds are the sum of
the runs' logged training windows (evaluation, sampling and checkpoints
left out), so runs on one machine compare; they are only as quiet as the
machine was.
"""

from absl import app
from absl import flags

from experiments import common
from rnnlm_jax import curves

_WORKDIRS = flags.DEFINE_list(
    "workdirs", None, "Run directories.", required=True
)
_LABELS = flags.DEFINE_list("labels", None, "A label per run; default: names.")
_TITLE = flags.DEFINE_string("title", "", "The figure's title.")
_OUT = flags.DEFINE_string("out", "docs", "Output folder.")
_NAME = flags.DEFINE_string("name", "curves", "Output file name.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  with common.one_line_errors():
    labels = common.run_labels(_WORKDIRS.value, _LABELS.value)
    runs = [curves.read_curve(w, l) for w, l in zip(_WORKDIRS.value, labels)]
    table = curves.table(runs)
    fig = curves.figure(runs, _TITLE.value or _NAME.value)
    common.save_study(_OUT.value, _NAME.value, table + "\n", fig)
  print(table)


if __name__ == "__main__":
  app.run(main, flags_parser=common.parse_flags)
