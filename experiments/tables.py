"""Ablation tables and figures from run directories alone.

  python -m experiments.tables --runs=runs/sweeps/arch_x_tbptt
  python -m experiments.tables --runs=runs/a --runs=runs/b --out=results/ab \
      --metric=test_ppl --group_by=model.cell

Writes into --out (default <first --runs>/tables) the tables and figures of
rnnlm_jax.tables.build_tables: table.md, table.csv, table.tex,
valid_curves.png, and, where they apply, ppl_vs_bptt.png and pivot.md.
Prints the markdown table.

  python -m experiments.tables --results --runs=runs

writes instead the results table of every finished run under --runs
(<out>/results.md; rnnlm_jax.results_table): config, corpus, test figure,
the published figure of the config file's PUBLISHED, training time and
command.
"""

import importlib
import os
import sys

from absl import app
from absl import flags

from experiments import common
from rnnlm_jax import ablation
from rnnlm_jax import config as config_lib
from rnnlm_jax import results_table
from rnnlm_jax import rundir
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
  flags.DEFINE_string(
      "tune",
      None,
      "A grouping key (the learning rate, say) chosen per row: of the rows "
      "that differ only in it, keep the one with the best mean --tune_metric.",
  )
  flags.DEFINE_string(
      "tune_metric", "valid_ppl", "The metric --tune selects on."
  )
  flags.DEFINE_bool(
      "results",
      False,
      "Write the results table of the finished runs (results.md) instead.",
  )
  flags.DEFINE_list(
      "exclude",
      [],
      "With --results: folders under --runs left out (sweeps, say).",
  )


def published(entry: results_table.Entry) -> str:
  """The PUBLISHED figure of the entry's config file, for its variant (a
  dict) or for all of them (a string); "" where the file claims none."""
  try:
    module = importlib.import_module(f"experiments.configs.{entry.config_file}")
  except ImportError:
    return ""
  claimed = getattr(module, "PUBLISHED", "")
  if isinstance(claimed, dict):
    return claimed.get(entry.variant, "")
  return claimed


def write_results(roots: list[str], out: str | None, exclude=()) -> str:
  """The results table of the finished runs under roots, but those inside
  a folder named in ``exclude`` (relative to its root)."""

  def kept(root, e):
    parts = os.path.relpath(e.path, root).split(os.sep)
    return not any(parts[: len(x.split("/"))] == x.split("/") for x in exclude)

  found = [
      e for root in roots for e in results_table.entries(root) if kept(root, e)
  ]
  if not found:
    raise config_lib.ConfigError(
        f"no finished run under {', '.join(roots)} has a test figure"
    )
  table = results_table.to_markdown(found, published)
  out = out or os.path.join(roots[0], "tables")
  os.makedirs(out, exist_ok=True)
  rundir.write_text_atomic(os.path.join(out, "results.md"), table)
  return table


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  with common.one_line_errors():
    if FLAGS.results:
      print(write_results(FLAGS.runs, FLAGS.out, FLAGS.exclude), end="")
      return
    tune = (FLAGS.tune, FLAGS.tune_metric) if FLAGS.tune else None
    summary, written = tables.build_tables(
        FLAGS.runs, FLAGS.out, FLAGS.metric, FLAGS.group_by, tune
    )
  print(tables.to_markdown(summary), end="")
  print(f"wrote {', '.join(written)}", file=sys.stderr)


if __name__ == "__main__":
  define_flags()
  app.run(main, flags_parser=common.parse_flags)
