"""Long-range memory: subject-verb number agreement on the built-in
synthetic language, against the distance between subject and verb.

  python -m experiments.agreement \
      --workdirs=runs/default-...,runs/synthetic_kn5-...,runs/synthetic_neural5-... \
      --labels=LSTM,KN5,neural5 --out=results/agreement

For each probe sentence (rnnlm_jax.agreement.sample_probes) a model is
right when it gives the verb form that agrees with the subject a higher
probability than the same verb in the other number, after the same prefix.
Writes agreement.md (accuracy per distance bucket, with probe counts) and
agreement.png into --out.
"""

import os

from absl import app
from absl import flags
import numpy as np

from experiments import common
from rnnlm_jax import scoring
from rnnlm_jax.agreement import sample_probes
from rnnlm_jax.english import default_grammar

# Distance buckets: words strictly between the subject's noun and the verb.
BUCKETS = ((0, 0), (1, 2), (3, 4), (5, 7), (8, 11), (12, 1000))


FLAGS = flags.FLAGS


def define_flags():
  """The flags, defined only when run as a script, so that tests can import
  the study without clashing with other scripts' flags."""
  flags.DEFINE_list("workdirs", None, "Run directories.", required=True)
  flags.DEFINE_list("labels", None, "A label per run (default: names).")
  flags.DEFINE_integer("num_probes", 3000, "Probe sentences.")
  flags.DEFINE_integer("seed", 1, "Seed of the probe sampler.")
  flags.DEFINE_string("out", "results/agreement", "Output folder.")


def bucket_name(lo: int, hi: int) -> str:
  return str(lo) if lo == hi else (f"{lo}+" if hi >= 1000 else f"{lo}-{hi}")


def verb_correct(workdir: str, probes: list[dict]) -> np.ndarray:
  """Bool per probe: p(correct verb | prefix) > p(wrong verb | prefix)."""
  score, vocab, _ = scoring.load_scorer(workdir)
  seqs = []
  for p in probes:
    prefix = vocab.encode(p["prefix"]).tolist()
    seqs.append(prefix + [vocab.id(p["correct"])])
    seqs.append(prefix + [vocab.id(p["wrong"])])
  last = np.array([lp[-1] for lp in score(seqs)])
  return last[0::2] > last[1::2]


def accuracy_table(distances: np.ndarray, correct: dict) -> list[list]:
  rows = []
  for lo, hi in BUCKETS:
    sel = (distances >= lo) & (distances <= hi)
    if sel.any():
      rows.append(
          [bucket_name(lo, hi), int(sel.sum())]
          + [float(c[sel].mean()) for c in correct.values()]
      )
  return rows


def write_outputs(out: str, rows: list[list], labels: list[str]) -> None:
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  head = "| distance (words) | probes | " + " | ".join(labels) + " |"
  lines = [head, "|" + "---|" * (len(labels) + 2)]
  for r in rows:
    lines.append(
        f"| {r[0]} | {r[1]} | " + " | ".join(f"{a:.3f}" for a in r[2:]) + " |"
    )
  fig, ax = plt.subplots(figsize=(6, 4))
  x = np.arange(len(rows))
  for i, label in enumerate(labels):
    ax.plot(x, [r[2 + i] for r in rows], marker="o", label=label)
  ax.axhline(0.5, color="grey", linestyle=":", label="chance")
  ax.set_xticks(x, [r[0] for r in rows])
  ax.set_xlabel("words between subject noun and verb")
  ax.set_ylabel("agreement accuracy (fraction of probes)")
  ax.set_ylim(0.4, 1.01)
  ax.set_title("Subject-verb agreement on the synthetic language")
  ax.legend()
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
    distances = np.array([p["distance"] for p in probes])
    correct = {
        label: verb_correct(w, probes)
        for label, w in zip(labels, FLAGS.workdirs)
    }
    rows = accuracy_table(distances, correct)
    write_outputs(FLAGS.out, rows, labels)
  with open(os.path.join(FLAGS.out, "agreement.md")) as f:
    print(f.read(), end="")


if __name__ == "__main__":
  define_flags()
  app.run(main, flags_parser=common.parse_flags)
