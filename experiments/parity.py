"""The parity network: a hand-set RNN that computes running parity exactly,
and the same task learned by a tanh RNN and an LSTM, with accuracy against
the length of the bit string.

  python -m experiments.parity --out=results/parity

Training strings have --train_length bits; test strings are up to 16 times
longer. Two supervision regimes: the parity after every bit (the error
signal is local), and after the last bit only (it must travel back through
the whole string). Writes parity.md and parity.png into --out.
"""

import os

from absl import app
from absl import flags

from experiments import common
from rnnlm_jax import parity

CELLS = ("rnn_tanh", "lstm")


FLAGS = flags.FLAGS


def define_flags():
  """The flags, defined only when run as a script, so that tests can import
  the study without clashing with other scripts' flags."""
  flags.DEFINE_string("out", "results/parity", "Output folder.")
  flags.DEFINE_integer("hidden", 16, "Hidden units of learned cells.")
  flags.DEFINE_integer("train_length", 10, "Bits per string.")
  flags.DEFINE_integer("steps", 1500, "Adam steps (batch 64).")
  flags.DEFINE_integer("seed", 0, "Seed of init and training data.")


def run_study(
    cells=CELLS,
    hidden=16,
    train_length=10,
    steps=1500,
    lengths=(5, 10, 20, 40, 80, 160),
    last_only_options=(False, True),
    seed=0,
):
  """Rows (label, final train loss or None, {length: accuracy})."""
  rows = [
      (
          "hand-set sigmoid RNN (2 units)",
          None,
          parity.accuracy_by_length(parity.hand_set_network(), lengths),
      )
  ]
  for last_only in last_only_options:
    for cell in cells:
      params, loss = parity.train_classifier(
          cell, hidden, train_length, steps, seed=seed, last_only=last_only
      )
      where = "last bit" if last_only else "every bit"
      rows.append(
          (
              f"{cell} ({hidden} units), target at {where}",
              loss,
              parity.accuracy_by_length(params, lengths),
          )
      )
  return rows


def write_outputs(out: str, rows, lengths) -> None:
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  lines = [
      "| model | final train loss | "
      + " | ".join(f"len {n}" for n in lengths)
      + " |",
      "|" + "---|" * (len(lengths) + 2),
  ]
  for label, loss, acc in rows:
    shown = "-" if loss is None else f"{loss:.4f}"
    lines.append(
        f"| {label} | {shown} | "
        + " | ".join(f"{acc[n]:.3f}" for n in lengths)
        + " |"
    )
  fig, ax = plt.subplots(figsize=(7, 4))
  for label, _, acc in rows:
    ax.plot(lengths, [acc[n] for n in lengths], marker="o", label=label)
  ax.axhline(0.5, color="grey", linestyle=":", label="chance")
  ax.set_xscale("log", base=2)
  ax.set_xlabel("string length (bits)")
  ax.set_ylabel("accuracy of the final parity")
  ax.set_ylim(0.3, 1.05)
  ax.set_title("Running parity: hand-set vs learned")
  ax.legend(fontsize=8)
  fig.tight_layout()
  common.save_study(out, "parity", "\n".join(lines) + "\n", fig)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  with common.one_line_errors():
    lengths = tuple(
        FLAGS.train_length * f
        for f in (0.5, 1, 2, 4, 8, 16)
        if f * FLAGS.train_length >= 1
    )
    lengths = tuple(sorted({int(n) for n in lengths}))
    rows = run_study(
        hidden=FLAGS.hidden,
        train_length=FLAGS.train_length,
        steps=FLAGS.steps,
        lengths=lengths,
        seed=FLAGS.seed,
    )
    write_outputs(FLAGS.out, rows, lengths)
  with open(os.path.join(FLAGS.out, "parity.md")) as f:
    print(f.read(), end="")


if __name__ == "__main__":
  define_flags()
  app.run(main, flags_parser=common.parse_flags)
