"""Vanishing and exploding gradients, by cell, before and after training.

  python -m experiments.gradient_study --out=results/gradients
  python -m experiments.gradient_study --out=results/gradients \
      --workdirs=runs/default-...,runs/default_gru_bptt35 --labels=LSTM,GRU

Runs rnnlm_jax.gradient_study from experiments/configs/default.py: trains
each cell afresh under --out/runs, measures the gradient norm by distance
and the clipping study, writes gradients.{md,png} and clipping.{md,png}
into --out and prints the tables. Runtime: docs/performance.md.
"""

from absl import app
from absl import flags

from experiments import common
from experiments.configs import default
from rnnlm_jax import config as config_lib
from rnnlm_jax import gradient_study

FLAGS = flags.FLAGS


def define_flags():
  """The flags, defined only when run as a script, so that tests can import
  the study without clashing with other scripts' flags."""
  flags.DEFINE_string("out", "results/gradients", "Output folder.")
  flags.DEFINE_list("workdirs", [], "Extra trained runs to measure.")
  flags.DEFINE_list("labels", None, "A label per --workdirs run.")
  flags.DEFINE_integer("steps", 0, "Training steps per cell; 0: one epoch.")
  flags.DEFINE_bool("quick", False, "Tiny settings (tests).")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  with common.one_line_errors():
    labels = common.run_labels(FLAGS.workdirs, FLAGS.labels)
    s = gradient_study.QUICK if FLAGS.quick else gradient_study.DEFAULT
    if FLAGS.steps:
      s = s._replace(steps=FLAGS.steps)
    base = config_lib.from_dict(default.get_config().to_dict())
    tables = gradient_study.run_study(
        FLAGS.out, s, base, FLAGS.workdirs, labels
    )
    print(tables, end="")


if __name__ == "__main__":
  define_flags()
  app.run(main, flags_parser=common.parse_flags)
