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

A recurrent language model may also be evaluated with the neural cache
(Grave et al. 2017) or dynamic evaluation (Krause et al. 2018):

  python -m experiments.evaluate --workdir=RUN --eval_batch_size=1 \
      --cache=pointer --cache_size=2000 --cache_theta=0.3 --cache_lambda=0.1
  python -m experiments.evaluate --workdir=RUN --eval_batch_size=1 \
      --dynamic=rmsprop --dynamic_lr=2e-5,5e-5 --dynamic_decay=0.01,0.02 \
      --dynamic_bptt=5

Lists of values are searched on valid: every combination is scored there,
the best is scored on test. The last line gives the static model's and the
mode's valid and test perplexities and the values chosen.
"""

import json

from absl import app
from absl import flags

from experiments import common
from rnnlm_jax import backends
from rnnlm_jax import config as config_lib
from rnnlm_jax import dynamic_eval
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
_CACHE = flags.DEFINE_enum(
    "cache",
    None,
    ["pointer"],
    "pointer: the neural cache of a recurrent language model (Grave et al. "
    "2017) over its top layer's states.",
)
_CACHE_SIZE = flags.DEFINE_integer(
    "cache_size", 2000, "Cache slots per stream.", lower_bound=1
)
_CACHE_THETA = flags.DEFINE_list(
    "cache_theta", ["0.3"], "The cache's inverse temperature(s)."
)
_CACHE_LAMBDA = flags.DEFINE_list(
    "cache_lambda", ["0.1"], "The cache's interpolation weight(s), in [0, 1]."
)
_DYNAMIC = flags.DEFINE_enum(
    "dynamic",
    None,
    ["sgd", "rmsprop"],
    "Dynamic evaluation of a recurrent language model (Krause et al. 2018): "
    "each segment scored, then learned from.",
)
_DYNAMIC_LR = flags.DEFINE_list(
    "dynamic_lr", ["0.0001"], "Dynamic evaluation's learning rate(s)."
)
_DYNAMIC_DECAY = flags.DEFINE_list(
    "dynamic_decay",
    ["0.0"],
    "Dynamic evaluation's decay(s) towards the trained parameters.",
)
_DYNAMIC_BPTT = flags.DEFINE_integer(
    "dynamic_bptt",
    0,
    "Tokens per update; 0 takes the run's data.bptt (Krause et al.: 5).",
    lower_bound=0,
)
_DYNAMIC_MS_TOKENS = flags.DEFINE_integer(
    "dynamic_ms_tokens",
    0,
    "rmsprop: training tokens its mean squared gradients come from; 0: all.",
    lower_bound=0,
)
_DYNAMIC_EPSILON = flags.DEFINE_float(
    "dynamic_epsilon",
    dynamic_eval.EPSILON,
    "rmsprop: added to the root mean square in the update's denominator.",
)


def floats(flag) -> list[float]:
  """A comma list flag's values as floats; a ConfigError names the flag."""
  try:
    return [float(v) for v in flag.value]
  except ValueError:
    raise config_lib.ConfigError(
        f"--{flag.name} takes numbers, got {','.join(flag.value)!r}"
    ) from None


def evaluate(batch_size: int | None) -> dict:
  """The run's metrics: static, or with the cache or dynamic evaluation."""
  if _CACHE.value and _DYNAMIC.value:
    raise config_lib.ConfigError("choose one of --cache and --dynamic")
  common_args = dict(
      slot=_SLOT.value,
      batch_size=batch_size,
      data_dir=_DATA_DIR.value,
      backend=_BACKEND.value,
  )
  if _CACHE.value:
    return evaluation.evaluate_cache(
        _WORKDIR.value,
        _CACHE_SIZE.value,
        floats(_CACHE_THETA),
        floats(_CACHE_LAMBDA),
        **common_args,
    )
  if _DYNAMIC.value:
    return evaluation.evaluate_dynamic(
        _WORKDIR.value,
        _DYNAMIC.value,
        floats(_DYNAMIC_LR),
        floats(_DYNAMIC_DECAY),
        _DYNAMIC_BPTT.value or None,
        _DYNAMIC_MS_TOKENS.value,
        eps=_DYNAMIC_EPSILON.value,
        **common_args,
    )
  return evaluation.evaluate_run(
      _WORKDIR.value,
      _SLOT.value,
      _SPLITS.value,
      batch_size,
      _DATA_DIR.value,
      _BACKEND.value,
  )


# Chosen hyperparameters: printed in full (a learning rate of 2e-05 is not
# 0.0000).
HYPERPARAMETERS = ("cache_theta", "cache_lambda", "dynamic_lr", "dynamic_decay")


def format_value(key: str, value) -> str:
  if not isinstance(value, float):
    return str(value)
  return f"{value:g}" if key in HYPERPARAMETERS else f"{value:.4f}"


def grid_lines(grid: list[dict]) -> list[str]:
  """One line per searched combination: its values and valid perplexity."""
  return [" ".join(f"{k}={v:.6g}" for k, v in row.items()) for row in grid]


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  with common.one_line_errors():
    results = evaluate(_BATCH.value or None)
  if _JSON.value:
    print(json.dumps(results, sort_keys=True))
  else:
    if "path" in results:
      print(backends.summary(results.pop("path")))
    grid = results.pop("grid", [])
    if len(grid) > 1:
      print("\n".join(grid_lines(grid)))
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
    print(" ".join(f"{k}={format_value(k, v)}" for k, v in results.items()))


if __name__ == "__main__":
  app.run(main, flags_parser=common.parse_flags)
