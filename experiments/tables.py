"""Ablation tables and figures from run directories alone.

  python -m experiments.tables --runs=runs/sweeps/arch_x_tbptt
  python -m experiments.tables --runs=runs/a --runs=runs/b --out=results/ab \
      --metric=test_ppl --group_by=model.cell

Writes into --out (default <first --runs>/tables) the tables and figures of
rnnlm_jax.tables.build_tables: table.md, table.csv, table.tex,
valid_curves.png, and, where they apply, ppl_vs_bptt.png and pivot.md.
Prints the markdown table.
"""

import sys

from absl import app
from absl import flags

from experiments import common
from rnnlm_jax import ablation
from rnnlm_jax import tables

FLAGS = flags.FLAGS


def define_flags():
  """The flags, defined only when run as a script, so that tests can import
  the module without clashing with other scripts' flags."""
  flags.DEFINE_multi_string(
      "runs", None, "Folder searched for run directories.", required=True
  )
  flags.DEFINE_string("out", None, "Output folder (default <runs>/tables).")
  flags.DEFINE_multi_string(
      "metric",
      None,
      "Metric of results.json (repeatable; default: those of "
      f"{', '.join(ablation.DEFAULT_METRICS)} that every run has).",
  )
  flags.DEFINE_list(
      "group_by",
      None,
      "Config keys (full or short names) that define the rows; default: the "
      "keys that vary.",
  )


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  with common.one_line_errors():
    summary, written = tables.build_tables(
        FLAGS.runs, FLAGS.out, FLAGS.metric, FLAGS.group_by
    )
  print(tables.to_markdown(summary), end="")
  print(f"wrote {', '.join(written)}", file=sys.stderr)


if __name__ == "__main__":
  define_flags()
  app.run(main, flags_parser=common.parse_flags)
