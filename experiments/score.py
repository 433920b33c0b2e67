"""Scores sentences under a run's model: log-probability, per-token
surprisal and perplexity; --rank orders candidates by probability.

  echo "the company said it would buy" | python -m experiments.score --workdir=RUN
  python -m experiments.score --workdir=RUN --input=candidates.txt --rank
  python -m experiments.score --workdir=RUN --input=s.txt --json   # one object per line

One sentence per input line. Each is scored after the boundary token, its
closing <eos> included (the newline at character level), every token once,
as the training loss scores it. Works for every model family.
"""

import json
import math
import sys

from absl import app
from absl import flags

from experiments import common
from rnnlm_jax.errors import DataError
from rnnlm_jax import scoring

_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory.", required=True)
_INPUT = flags.DEFINE_string("input", "-", "File of sentences; - for stdin.")
_RANK = flags.DEFINE_bool(
    "rank", False, "Print the sentences from most to least probable."
)
_JSON = flags.DEFINE_bool("json", False, "One JSON object per sentence.")
_SLOT = flags.DEFINE_enum(
    "checkpoint", "best", ["best", "latest"], "Which checkpoint to use."
)


def _read_lines(path: str) -> list[str]:
  try:
    if path == "-":
      return [line.rstrip("\n") for line in sys.stdin]
    with open(path, encoding="utf-8") as f:
      return [line.rstrip("\n") for line in f]
  except UnicodeDecodeError as e:
    raise DataError(f"{path} is not UTF-8 text: {e}") from None


def score_lines(workdir: str, lines: list[str], slot: str) -> list[dict]:
  score, vocab, cfg = scoring.load_scorer(workdir, slot)
  level = cfg.data.level
  ids = [scoring.encode_sentence(vocab, level, line) for line in lines]
  rows = []
  for line, seq, lp in zip(lines, ids, score(ids)):
    total = float(lp.sum())
    rows.append(
        {
            "sentence": line,
            "logprob": total,
            "log10prob": total / math.log(10),
            "tokens": len(seq),
            "ppl": math.exp(-total / len(seq))
            if total > -math.inf
            else math.inf,
            "surprisal_bits": [
                [tok, -float(x) / math.log(2)]
                for tok, x in zip(vocab.decode(seq), lp)
            ],
        }
    )
  return rows


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  with common.one_line_errors():
    lines = [line for line in _read_lines(_INPUT.value) if line.strip()]
    if not lines:
      raise DataError("no sentences to score")
    rows = score_lines(_WORKDIR.value, lines, _SLOT.value)
  if _RANK.value:
    rows = sorted(rows, key=lambda r: -r["logprob"])
  for rank, r in enumerate(rows, 1):
    if _JSON.value:
      print(json.dumps(r, ensure_ascii=False))
      continue
    head = f"{rank}. " if _RANK.value else ""
    print(
        f"{head}logprob={r['logprob']:.4f} ppl={r['ppl']:.2f} "
        f"tokens={r['tokens']}\t{r['sentence']}"
    )
    if not _RANK.value:
      print("  " + " ".join(f"{t}:{b:.2f}" for t, b in r["surprisal_bits"]))


if __name__ == "__main__":
  app.run(main, flags_parser=common.parse_flags)
