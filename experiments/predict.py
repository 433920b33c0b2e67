"""Labels sentences with a trained classifier or tagger.

  echo "a gorgeous , witty film" | python -m experiments.predict \
      --workdir=runs/sst2_bilstm
  python -m experiments.predict --workdir=runs/conll2000_chunk \
      --input=sentences.txt --json

One sentence per line, tokenized (whitespace between tokens, as in the
training data). A classifier prints the label and its probability before
each sentence; a tagger prints each token as TOKEN/TAG. Where the model reads
POS tags as input (conll2000.py:chunk_pos), write each token as WORD/POS.
--json prints one object per line: {"text", "label", "prob", "probs"} or
{"tokens", "tags"}. Needs only the run directory, not the data.
"""

import json

from absl import app
from absl import flags

from experiments import common
from rnnlm_jax import rundir
from rnnlm_jax.errors import DataError
from rnnlm_jax.tasks import sentences

_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory.", required=True)
_SLOT = flags.DEFINE_enum(
    "checkpoint", "best", ["best", "latest"], "Which checkpoint to use."
)
_INPUT = flags.DEFINE_string(
    "input", "-", "File of sentences, one per line; - for stdin."
)
_JSON = flags.DEFINE_bool("json", False, "Print one JSON object per line.")


def _split_tags(lines: list[str]) -> tuple[list, list]:
  """Words and POS tags of WORD/POS tokens."""
  words, tags = [], []
  for n, line in enumerate(lines, 1):
    pairs = [t.rpartition("/") for t in line.split()]
    if any(not w or not sep for w, sep, _ in pairs):
      raise DataError(f"line {n}: every token must be WORD/POS for this model")
    words.append([w for w, _, _ in pairs])
    tags.append([t for _, _, t in pairs])
  return words, tags


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  with common.one_line_errors():
    trained = rundir.load_trained(_WORKDIR.value, _SLOT.value)
    cfg = trained.cfg
    use = {"lm": "experiments.sample", "translate": "experiments.translate"}
    if cfg.task in use:
      raise DataError(
          f"{_WORKDIR.value} holds a task={cfg.task!r} run: use "
          f"{use[cfg.task]}"
      )
    lines = [l for l in common.read_lines(_INPUT.value) if l.strip()]
    tokens, features = [l.split() for l in lines], None
    if cfg.model.feature_dim:
      tokens, features = _split_tags(lines)
    results = sentences.predict_sentences(
        cfg, trained.vocab, trained.params, tokens, features
    )
  for words, result in zip(tokens, results):
    text = " ".join(words)
    if _JSON.value:
      head = {"text": text} if "label" in result else {"tokens": words}
      print(json.dumps({**head, **result}))
    elif "label" in result:
      print(f"{result['label']}\t{result['prob']:.4f}\t{text}")
    else:
      print(" ".join(f"{w}/{t}" for w, t in zip(words, result["tags"])))


if __name__ == "__main__":
  app.run(main, flags_parser=common.parse_flags)
