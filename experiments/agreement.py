"""Long-range memory: subject-verb number agreement and pronoun agreement
on the built-in synthetic language, against the distance to the subject.

  python -m experiments.agreement \
      --workdirs=runs/default-...,runs/synthetic_kn5-...,runs/synthetic_neural5-... \
      --labels=LSTM,KN5,neural5 --out=results/agreement

For each probe sentence (rnnlm_jax.agreement.sample_probes) a model is
right when it gives the verb form that agrees with the subject a higher
probability than the same verb in the other number, after the same prefix.
For each pronoun probe (rnnlm_jax.agreement.sample_pronoun_probes: "the
king near the queens sleeps because he ...") it is right when the pronoun
of the subject's class is more probable than each of the other three.
Writes agreement.md (accuracy per distance bucket, with probe counts: a
table for the verbs, one for the pronouns) and agreement.png into --out.
"""

import os

from absl import app
from absl import flags
import numpy as np

from experiments import common
from rnnlm_jax import scoring
from rnnlm_jax.agreement import sample_probes
from rnnlm_jax.agreement import sample_pronoun_probes
from rnnlm_jax.english import default_grammar

# Distance buckets: words strictly between the subject's noun and the verb.
BUCKETS = ((0, 0), (1, 2), (3, 4), (5, 7), (8, 11), (12, 1000))
# Words between the subject's noun and the pronoun: at least its verb and
# the conjunction.
PRONOUN_BUCKETS = ((2, 3), (4, 5), (6, 7), (8, 9), (10, 12), (13, 1000))


FLAGS = flags.FLAGS


def define_flags():
  """The flags, defined only when run as a script, so that tests can import
  the study without clashing with other scripts' flags."""
  flags.DEFINE_list("workdirs", None, "Run directories.", required=True)
  flags.DEFINE_list("labels", None, "A label per run (default: names).")
  flags.DEFINE_integer("num_probes", 3000, "Subject-verb probes.")
  flags.DEFINE_integer("num_pronoun_probes", 3000, "Pronoun probes.")
  flags.DEFINE_integer("seed", 1, "Seed of the probe sampler.")
  flags.DEFINE_string("out", "results/agreement", "Output folder.")


def bucket_name(lo: int, hi: int) -> str:
  return str(lo) if lo == hi else (f"{lo}+" if hi >= 1000 else f"{lo}-{hi}")


def form_correct(workdir: str, probes: list[dict]) -> np.ndarray:
  """Bool per probe: p(correct | prefix) > p(w | prefix) for the wrong form
  w, or for each of them where "wrong" is a list."""
  score, vocab, _ = scoring.load_scorer(workdir)
  seqs, owner = [], []
  for i, p in enumerate(probes):
    prefix = vocab.encode(p["prefix"]).tolist()
    wrong = [p["wrong"]] if isinstance(p["wrong"], str) else p["wrong"]
    for word in [p["correct"], *wrong]:
      seqs.append(prefix + [vocab.id(word)])
      owner.append(i)
  last = np.array([lp[-1] for lp in score(seqs)])
  owner = np.array(owner)
  first = np.searchsorted(owner, np.arange(len(probes)))
  # A probe's correct form comes first among its sequences.
  best_wrong = np.full(len(probes), -np.inf)
  rest = np.ones(len(seqs), bool)
  rest[first] = False
  np.maximum.at(best_wrong, owner[rest], last[rest])
  return last[first] > best_wrong


def verb_correct(workdir: str, probes: list[dict]) -> np.ndarray:
  """Bool per probe: p(correct verb | prefix) > p(wrong verb | prefix)."""
  return form_correct(workdir, probes)


def accuracy_table(
    distances: np.ndarray, correct: dict, buckets=BUCKETS
) -> list[list]:
  rows = []
  for lo, hi in buckets:
    sel = (distances >= lo) & (distances <= hi)
    if sel.any():
      rows.append(
          [bucket_name(lo, hi), int(sel.sum())]
          + [float(c[sel].mean()) for c in correct.values()]
      )
  return rows


def pronoun_table(probes: list[dict], correct: dict) -> list[list]:
  """Rows [pronoun, probes, accuracy per model]: which subjects' pronouns
  a model gets right."""
  used = np.array([p["correct"] for p in probes])
  return [
      [word, int((used == word).sum())]
      + [float(c[used == word].mean()) for c in correct.values()]
      for word in sorted(set(used.tolist()))
  ]


def _table(
    rows: list[list], labels: list[str], key: str = "distance (words)"
) -> list[str]:
  head = f"| {key} | probes | " + " | ".join(labels) + " |"
  lines = [head, "|" + "---|" * (len(labels) + 2)]
  for r in rows:
    lines.append(
        f"| {r[0]} | {r[1]} | " + " | ".join(f"{a:.3f}" for a in r[2:]) + " |"
    )
  return lines


def _plot(ax, rows, labels, chance, what, title):
  x = np.arange(len(rows))
  for i, label in enumerate(labels):
    ax.plot(x, [r[2 + i] for r in rows], marker="o", label=label)
  ax.axhline(chance, color="grey", linestyle=":", label="chance")
  ax.set_xticks(x, [r[0] for r in rows])
  ax.set_xlabel(f"words between subject noun and {what}")
  ax.set_ylabel("agreement accuracy (fraction of probes)")
  ax.set_ylim(min(0.4, chance - 0.05), 1.01)
  ax.set_title(title)
  ax.legend()


def write_outputs(
    out: str,
    rows: list[list],
    labels: list[str],
    pronoun_rows: list[list] | None = None,
    by_pronoun: list[list] | None = None,
) -> None:
  """agreement.md and agreement.png: the subject-verb table, and the
  pronoun tables beside it when ``pronoun_rows`` (by distance) and
  ``by_pronoun`` (by the correct pronoun) are given."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  lines = _table(rows, labels)
  panels = 1 if pronoun_rows is None else 2
  fig, axes = plt.subplots(1, panels, figsize=(6 * panels, 4), squeeze=False)
  _plot(axes[0, 0], rows, labels, 0.5, "verb", "Subject-verb agreement")
  if pronoun_rows is not None:
    lines = ["Subject-verb agreement:", ""] + lines
    lines += ["", "Pronoun agreement (right: beats all 3 other pronouns):", ""]
    lines += _table(pronoun_rows, labels)
    if by_pronoun is not None:
      lines += [""] + _table(by_pronoun, labels, key="correct pronoun")
    _plot(axes[0, 1], pronoun_rows, labels, 0.25, "pronoun", "Pronouns")
  fig.tight_layout()
  common.save_study(out, "agreement", "\n".join(lines) + "\n", fig)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  with common.one_line_errors():
    labels = common.run_labels(FLAGS.workdirs, FLAGS.labels)
    probes = sample_probes(
        default_grammar(),
        FLAGS.num_probes,
        FLAGS.seed,
        min_distance=0,
    )
    pronoun_probes = sample_pronoun_probes(
        default_grammar(), FLAGS.num_pronoun_probes, FLAGS.seed
    )
    tables, correct = [], {}
    for ps, buckets in ((probes, BUCKETS), (pronoun_probes, PRONOUN_BUCKETS)):
      correct = {
          label: form_correct(w, ps) for label, w in zip(labels, FLAGS.workdirs)
      }
      distances = np.array([p["distance"] for p in ps])
      tables.append(accuracy_table(distances, correct, buckets))
    write_outputs(
        FLAGS.out,
        tables[0],
        labels,
        pronoun_rows=tables[1],
        by_pronoun=pronoun_table(pronoun_probes, correct),
    )
  with open(os.path.join(FLAGS.out, "agreement.md")) as f:
    print(f.read(), end="")


if __name__ == "__main__":
  define_flags()
  app.run(main, flags_parser=common.parse_flags)
