"""Word embeddings judged and looked at: SimLex-999's Spearman rho, the
Google analogy questions' accuracy (3CosAdd and 3CosMul, per section),
nearest neighbours, analogies, export to word2vec files and a 2-D plot.

  python -m experiments.embeddings --workdir=runs/ptb_lstm_small
  python -m experiments.embeddings --vectors=vectors.bin --json
  python -m experiments.embeddings --workdir=RUN --skip_eval \
      --neighbours=king,france --analogy=man:king::woman:? \
      --export=RUN/embed.txt --plot=words.png --plot_words=a,b,c

The embeddings come from a run directory (--which: the input embedding or
the output layer's word vectors) or from a word2vec text or binary file.
The benchmark files default to $RNNLM_DATA/simlex-999/SimLex-999.txt and
$RNNLM_DATA/word-analogy/questions-words.txt. Words are matched
case-insensitively, the most frequent form first (rnnlm_jax.embeddings).
"""

import json
import math
import os

from absl import app
from absl import flags

from experiments import common
from rnnlm_jax import embeddings
from rnnlm_jax.embeddings import EmbeddingError

SIMLEX = os.path.join("simlex-999", "SimLex-999.txt")
ANALOGIES = os.path.join("word-analogy", "questions-words.txt")

_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory.")
_WHICH = flags.DEFINE_enum(
    "which",
    "input",
    ["input", "output"],
    "A run's input embedding, or its output layer's vectors per word.",
)
_SLOT = flags.DEFINE_enum(
    "checkpoint", "best", ["best", "latest"], "A run's checkpoint."
)
_VECTORS = flags.DEFINE_string(
    "vectors", None, "A word2vec text or binary (.bin) file, not a run."
)
_SIMLEX = flags.DEFINE_string(
    "simlex", None, f"SimLex-999 file; default $RNNLM_DATA/{SIMLEX}."
)
_ANALOGIES = flags.DEFINE_string(
    "analogies", None, f"Analogy questions; default $RNNLM_DATA/{ANALOGIES}."
)
_SKIP_EVAL = flags.DEFINE_bool(
    "skip_eval", False, "No benchmarks: only neighbours, analogies, export."
)
_NEIGHBOURS = flags.DEFINE_list(
    "neighbours", [], "Words whose nearest neighbours to print."
)
_K = flags.DEFINE_integer("k", 10, "Neighbours per word.", lower_bound=1)
_ANALOGY = flags.DEFINE_multi_string(
    "analogy",
    [],
    "a:b::c:? questions to answer (3CosAdd and 3CosMul); repeatable, or "
    "comma-separated.",
)
_EXPORT = flags.DEFINE_string(
    "export",
    None,
    "Write the vectors here: word2vec binary if .bin, else text.",
)
_PLOT = flags.DEFINE_string("plot", None, "A PNG of --plot_words in 2-D.")
_PLOT_WORDS = flags.DEFINE_list("plot_words", [], "The words to plot.")
_PROJECTION = flags.DEFINE_enum(
    "projection", "pca", ["pca", "tsne"], "The plot's projection."
)
_JSON = flags.DEFINE_bool("json", False, "Print one JSON object instead.")


def _benchmark_path(given: str | None, default: str, flag: str) -> str:
  if given:
    return given
  root = os.environ.get(common.DATA_ENV)
  if not root:
    raise EmbeddingError(
        f"--{flag}: pass a file or set {common.DATA_ENV} (or --skip_eval)"
    )
  return os.path.join(root, default)


def _questions(specs: list[str]) -> list[tuple[str, str, str]]:
  """(a, b, c) of each 'a:b::c:?' (the ':?' may be left off)."""
  out = []
  for spec in (s.strip() for line in specs for s in line.split(",")):
    left, sep, right = spec.partition("::")
    a, b = (left.split(":") + [""])[:2] if left.count(":") == 1 else ("", "")
    c = right.removesuffix(":?")
    if not (sep and a and b and c) or ":" in c:
      raise EmbeddingError(f"--analogy: expected a:b::c:?, got {spec!r}")
    out.append((a, b, c))
  return out


def _load():
  if bool(_WORKDIR.value) == bool(_VECTORS.value):
    raise EmbeddingError("pass one of --workdir=RUN and --vectors=FILE")
  if _VECTORS.value:
    return embeddings.load_word2vec(_VECTORS.value)
  return embeddings.run_vectors(_WORKDIR.value, _WHICH.value, _SLOT.value)


def _finite(obj):
  """nan as null: strict JSON."""
  if isinstance(obj, float) and not math.isfinite(obj):
    return None
  if isinstance(obj, dict):
    return {k: _finite(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [_finite(v) for v in obj]
  return obj


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  with common.one_line_errors():
    questions = _questions(_ANALOGY.value)
    if _PLOT.value and not _PLOT_WORDS.value:
      raise EmbeddingError("--plot needs --plot_words=a,b,c")
    simlex = analogies = None
    if not _SKIP_EVAL.value:
      simlex = _benchmark_path(_SIMLEX.value, SIMLEX, "simlex")
      analogies = _benchmark_path(_ANALOGIES.value, ANALOGIES, "analogies")
    words, vectors_VD = _load()
    results = embeddings.evaluate(words, vectors_VD, simlex, analogies)
    extra = {}
    if _NEIGHBOURS.value:
      extra["neighbours"] = {
          q: embeddings.neighbours(words, vectors_VD, q, _K.value)
          for q in _NEIGHBOURS.value
      }
    if questions:
      extra["analogies"] = {
          f"{a}:{b}::{c}:?": {
              m: embeddings.solve_analogy(words, vectors_VD, a, b, c, 5, m)
              for m in embeddings.METHODS
          }
          for a, b, c in questions
      }
    if _EXPORT.value:
      binary = _EXPORT.value.endswith(".bin")
      embeddings.save_word2vec(_EXPORT.value, words, vectors_VD, binary)
      extra["export"] = _EXPORT.value
    if _PLOT.value:
      skipped = embeddings.projection_figure(
          words, vectors_VD, _PLOT_WORDS.value, _PLOT.value, _PROJECTION.value
      )
      extra["plot"], extra["plot_skipped"] = _PLOT.value, skipped
  if _JSON.value:
    print(json.dumps(_finite({**results, **extra}), sort_keys=True))
    return
  if results:
    print(embeddings.results_table(results))
  for query, found in extra.get("neighbours", {}).items():
    print(f"{query}: " + " ".join(f"{w} ({s:.3f})" for w, s in found))
  for question, answers in extra.get("analogies", {}).items():
    for method, found in answers.items():
      name = {"add": "3CosAdd", "mul": "3CosMul"}[method]
      print(
          f"{question} {name}: " + " ".join(f"{w} ({s:.3f})" for w, s in found)
      )
  if "export" in extra:
    print(f"wrote {extra['export']}")
  if "plot" in extra:
    print(f"wrote {extra['plot']}")
    if extra["plot_skipped"]:
      print(f"not in the vocabulary: {' '.join(extra['plot_skipped'])}")
  summary = {k: v for k, v in results.items() if not isinstance(v, dict)}
  if summary:
    print(
        " ".join(
            f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
            for k, v in summary.items()
        )
    )


if __name__ == "__main__":
  app.run(main, flags_parser=common.parse_flags)
