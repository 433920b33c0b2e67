"""The lectures' small networks beside the parity network
(experiments.parity): the running sum and the running compare, hand-set and
learned, against the string length; and parity read whole by an MLP
against an RNN, against the string length.

  python -m experiments.lecture_nets --out=results/lecture_nets

--studies picks any of sum, compare, mlp (all three by default). The
learned sum and compare networks see strings of --train_length (fresh ones
every step, the target after every step) and are tested on strings up to
16 times longer. For parity, each length gets its own MLP and RNN, trained
on the same fixed strings with the same budget and scored on held-out
strings (rnnlm_jax.lecture_nets.mlp_vs_rnn_parity). Writes sum.md,
compare.md, mlp_vs_rnn.md and a PNG beside each into --out.
"""

import os

from absl import app
from absl import flags

from experiments import common
from rnnlm_jax import figures
from rnnlm_jax import lecture_nets

CELLS = ("rnn_relu", "rnn_tanh", "lstm")
STUDIES = ("sum", "compare", "mlp")

FLAGS = flags.FLAGS


def define_flags():
  """The flags, defined only when run as a script, so that tests can import
  the study without clashing with other scripts' flags."""
  flags.DEFINE_string("out", "results/lecture_nets", "Output folder.")
  flags.DEFINE_list("studies", list(STUDIES), "Any of sum, compare, mlp.")
  flags.DEFINE_integer("hidden", 16, "Hidden units of learned RNNs.")
  flags.DEFINE_integer("train_length", 10, "Sum/compare training length.")
  flags.DEFINE_integer("steps", 1000, "Adam steps of every model.")
  flags.DEFINE_list(
      "parity_lengths",
      ["4", "6", "8", "10", "12", "14", "16", "20"],
      "String lengths of the MLP-vs-RNN parity study.",
  )
  flags.DEFINE_integer("train_size", 256, "Training strings per length.")
  flags.DEFINE_integer("mlp_hidden", 64, "Hidden units of the MLP.")
  flags.DEFINE_integer("seed", 0, "Seed of init and training data.")


def run_task_study(
    task: str,
    cells=CELLS,
    hidden=16,
    train_length=10,
    steps=1000,
    lengths=(5, 10, 20, 40, 80, 160),
    seed=0,
):
  """Rows (label, final train loss or None, {length: score}) for the
  running "sum" or "compare"."""
  t = {"sum": lecture_nets.RUNNING_SUM, "compare": lecture_nets.COMPARE}[task]
  hand_set = {
      "sum": lecture_nets.hand_set_sum_network,
      "compare": lecture_nets.hand_set_compare_network,
  }[task]()
  rows = [
      (
          "hand-set ReLU RNN (2 units)",
          None,
          lecture_nets.score_by_length(t, hand_set, lengths),
      )
  ]
  for cell in cells:
    params, loss = lecture_nets.train_network(
        t, cell, hidden, train_length, steps, seed=seed
    )
    rows.append(
        (
            f"{cell} ({hidden} units)",
            loss,
            lecture_nets.score_by_length(t, params, lengths),
        )
    )
  if task == "sum":
    rows.append(
        ("predict 0 (rms of the total)", None, lecture_nets.target_rms(lengths))
    )
  return rows


def write_task_outputs(out: str, task: str, rows, lengths) -> None:
  t = {"sum": lecture_nets.RUNNING_SUM, "compare": lecture_nets.COMPARE}[task]
  lines = [
      f"{t.score_name}, against the string length:",
      "",
      "| model | final train loss | "
      + " | ".join(f"len {n}" for n in lengths)
      + " |",
      "|" + "---|" * (len(lengths) + 2),
  ]
  digits = ".3g" if task == "sum" else ".3f"
  for label, loss, score in rows:
    shown = "-" if loss is None else f"{loss:.4f}"
    lines.append(
        f"| {label} | {shown} | "
        + " | ".join(f"{score[n]:{digits}}" for n in lengths)
        + " |"
    )
  plt = figures.pyplot()
  fig, ax = plt.subplots(figsize=(7, 4))
  for label, _, score in rows:
    # The hand-set sum's error is 0: drawn at 1e-7 on the log axis.
    ys = [max(score[n], 1e-7) if task == "sum" else score[n] for n in lengths]
    ax.plot(lengths, ys, marker="o", label=label)
  ax.set_xscale("log", base=2)
  if task == "sum":
    ax.set_yscale("log")
  else:
    ax.axhline(0.5, color="grey", linestyle=":", label="chance")
  ax.set_xlabel("string length")
  ax.set_ylabel(t.score_name)
  ax.set_title(f"Running {task}: hand-set vs learned")
  ax.legend(fontsize=8)
  fig.tight_layout()
  common.save_study(out, task, "\n".join(lines) + "\n", fig)


def write_mlp_outputs(out: str, rows: list[dict], mlp_hidden, rnn) -> None:
  lines = [
      f"| length | train strings | held-out strings | MLP ({mlp_hidden}"
      f" units) train | MLP held-out | {rnn} train | {rnn} held-out |",
      "|---|---|---|---|---|---|---|",
  ]
  for r in rows:
    lines.append(
        f"| {r['length']} | {r['train_strings']} | {r['test_strings']} | "
        f"{r['mlp_train']:.3f} | {r['mlp_test']:.3f} | "
        f"{r['rnn_train']:.3f} | {r['rnn_test']:.3f} |"
    )
  plt = figures.pyplot()
  fig, ax = plt.subplots(figsize=(7, 4))
  n = [r["length"] for r in rows]
  ax.plot(n, [r["mlp_test"] for r in rows], marker="o", label="MLP held-out")
  ax.plot(n, [r["mlp_train"] for r in rows], ls="--", label="MLP train")
  ax.plot(n, [r["rnn_test"] for r in rows], marker="s", label=f"{rnn} held-out")
  ax.axhline(0.5, color="grey", linestyle=":", label="chance")
  ax.set_xlabel("string length (bits)")
  ax.set_ylabel("accuracy of the whole string's parity")
  ax.set_ylim(0.0, 1.05)  # below chance happens: see docs/studies.md
  ax.set_title("Parity: a feed-forward network against an RNN")
  ax.legend(fontsize=8)
  fig.tight_layout()
  common.save_study(out, "mlp_vs_rnn", "\n".join(lines) + "\n", fig)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  unknown = set(FLAGS.studies) - set(STUDIES)
  if unknown:
    raise app.UsageError(f"unknown studies {sorted(unknown)}; use {STUDIES}")
  with common.one_line_errors():
    lengths = tuple(FLAGS.train_length * f for f in (1, 2, 4, 8, 16))
    lengths = tuple(sorted({max(1, FLAGS.train_length // 2), *lengths}))
    written = []
    for task in ("sum", "compare"):
      if task in FLAGS.studies:
        rows = run_task_study(
            task,
            hidden=FLAGS.hidden,
            train_length=FLAGS.train_length,
            steps=FLAGS.steps,
            lengths=lengths,
            seed=FLAGS.seed,
        )
        write_task_outputs(FLAGS.out, task, rows, lengths)
        written.append(task)
    if "mlp" in FLAGS.studies:
      rows = lecture_nets.mlp_vs_rnn_parity(
          [int(n) for n in FLAGS.parity_lengths],
          train_size=FLAGS.train_size,
          mlp_hidden=FLAGS.mlp_hidden,
          rnn_hidden=FLAGS.hidden,
          steps=FLAGS.steps,
          seed=FLAGS.seed,
      )
      write_mlp_outputs(
          FLAGS.out, rows, FLAGS.mlp_hidden, f"rnn_tanh ({FLAGS.hidden} units)"
      )
      written.append("mlp_vs_rnn")
  for name in written:
    with open(os.path.join(FLAGS.out, f"{name}.md")) as f:
      print(f"## {name}\n\n{f.read()}")


if __name__ == "__main__":
  define_flags()
  app.run(main, flags_parser=common.parse_flags)
