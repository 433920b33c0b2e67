"""The metrics of a run's checkpoint: perplexity (and bits per character)
of a language model; accuracy, chunk F1 and the confusion matrix of the
sentence tasks; BLEU and chrF of a translator, with a table and a figure of
BLEU by source length (bleu_by_length.png in --figure_dir, the run's
directory by default).

  python -m experiments.evaluate --workdir=runs/ptb_lstm_small
  python -m experiments.evaluate --workdir=... --eval_batch_size=1   # the literature's protocol

Reads the run directory's config, vocabulary and checkpoint. A language
model's state is carried across each whole split and every token (each
<eos> included) is predicted exactly once.
"""

import json

from absl import app
from absl import flags

from experiments import common
from rnnlm_jax import backends
from rnnlm_jax import embeddings
from rnnlm_jax import evaluation
from rnnlm_jax import figures
from rnnlm_jax import rundir
from rnnlm_jax import seqmetrics
from rnnlm_jax import translation_figures


def trained_labels(workdir: str) -> list[str]:
  return list(rundir.load_run_config(workdir).data.labels)


_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory.", required=True)
_SLOT = flags.DEFINE_enum(
    "checkpoint", "best", ["best", "latest"], "Which checkpoint to evaluate."
)
_SPLITS = flags.DEFINE_list(
    "splits",
    None,
    "Splits to evaluate; default valid and test (SST-2's: valid and dev).",
)
_BATCH = flags.DEFINE_integer(
    "eval_batch_size",
    0,
    "Parallel streams; 0 takes the run's config.",
    lower_bound=0,
)
_DATA_DIR = flags.DEFINE_string(
    "data_dir", None, "Corpus folder, if it moved since training."
)
_JSON = flags.DEFINE_bool("json", False, "Print one JSON object instead.")
_FIGURE_DIR = flags.DEFINE_string(
    "figure_dir", None, "A translator's BLEU-by-length figure; default: RUN."
)
_BACKEND = flags.DEFINE_enum(
    "backend",
    None,
    ["auto", "reference"],
    "model.backend to evaluate with (default: the run's); reference turns "
    "every fast path off.",
)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  with common.one_line_errors():
    results = evaluation.evaluate_run(
        _WORKDIR.value,
        _SLOT.value,
        _SPLITS.value,
        _BATCH.value or None,
        _DATA_DIR.value,
        _BACKEND.value,
    )
  if _JSON.value:
    print(json.dumps(results, sort_keys=True))
  else:
    if "path" in results:
      print(backends.summary(results.pop("path")))
    for key in [k for k in results if k.endswith("_bleu_by_length")]:
      split = key.removesuffix("_bleu_by_length")
      by_length = {split: results.pop(key)}
      print(f"{split} BLEU by source length:")
      print(translation_figures.length_table(by_length))
      fig = translation_figures.bleu_by_length_figure(by_length, _WORKDIR.value)
      path = figures.save_figure(
          _FIGURE_DIR.value or _WORKDIR.value, f"{split}_bleu_by_length", fig
      )
      print(f"wrote {path}")
    if "analogy_sections" in results:
      print(embeddings.results_table(results))
      results.pop("analogy_sections")
    for key in [k for k in results if k.endswith("_confusion")]:
      labels = trained_labels(_WORKDIR.value)
      print(f"{key.removesuffix('_confusion')} confusion matrix:")
      print(seqmetrics.format_confusion(results.pop(key), labels))
    print(
        " ".join(
            f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
            for k, v in results.items()
        )
    )


if __name__ == "__main__":
  app.run(main, flags_parser=common.parse_flags)
