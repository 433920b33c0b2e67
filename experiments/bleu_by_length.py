"""BLEU against source length for several translation runs, from their
results.json: the bottleneck of the encoder-decoder without attention.

  python -m experiments.bleu_by_length \
      --workdirs=runs/fra_eng_no_attention,runs/fra_eng_attention \
      --labels="no attention,attention" --out=docs --name=fra_eng_bleu_by_length

Writes <out>/<name>.md (a table: BLEU per source-length bin, a column per
run) and <out>/<name>.png.
"""

import json
import os

from absl import app
from absl import flags

from experiments import common
from rnnlm_jax import rundir
from rnnlm_jax import translation_figures
from rnnlm_jax.errors import DataError

_WORKDIRS = flags.DEFINE_list("workdirs", None, "Run directories.",
                              required=True)
_LABELS = flags.DEFINE_list("labels", None, "A label per run; default: names.")
_SPLIT = flags.DEFINE_string("split", "test", "The split scored.")
_OUT = flags.DEFINE_string("out", "docs", "Output folder.")
_NAME = flags.DEFINE_string("name", "bleu_by_length", "Output file name.")


def _by_length(workdir: str) -> dict:
  path = os.path.join(workdir, rundir.RESULTS_FILE)
  try:
    with open(path, encoding="utf-8") as f:
      results = json.load(f)
  except FileNotFoundError:
    raise DataError(f"{path} not found: has the run finished?") from None
  key = f"{_SPLIT.value}_bleu_by_length"
  if key not in results:
    raise DataError(f"{path} has no {key}: not a translation run's results")
  return results[key]


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  with common.one_line_errors():
    labels = common.run_labels(_WORKDIRS.value, _LABELS.value)
    runs = {l: _by_length(w) for l, w in zip(labels, _WORKDIRS.value)}
    table = translation_figures.length_table(runs)
    fig = translation_figures.bleu_by_length_figure(
        runs, f"{_SPLIT.value} BLEU by source length"
    )
    common.save_study(_OUT.value, _NAME.value, table + "\n", fig)
  print(table)


if __name__ == "__main__":
  app.run(main, flags_parser=common.parse_flags)
