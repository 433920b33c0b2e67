"""Samples text from a run's model: python -m experiments.sample --workdir=RUN

  python -m experiments.sample --workdir=runs/ptb_kn5 --num_samples=5
  python -m experiments.sample --workdir=runs/shakespeare_char-... \
      --max_len=400 --temperature=0.8 --top_p=0.9 --prompt="ROMEO:" --prompt="JULIET:"
  python -m experiments.sample --workdir=RUN --greedy --num_samples=1 --prompt="the"
  python -m experiments.sample --workdir=RUN --beam=8 --num_samples=3 --length_alpha=0.7

--num_samples per prompt. Works for every model family (recurrent, neural n-gram, maxent, count-based
n-gram). Each sample starts after the boundary token and the prompt; at word
level it ends at its first <eos>.
"""

import sys

from absl import app
from absl import flags

from experiments import common
from rnnlm_jax import sampling

_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory.", required=True)
_NUM = flags.DEFINE_integer("num_samples", 5, "How many samples.")
_MAX_LEN = flags.DEFINE_integer("max_len", 50, "Tokens per sample at most.")
_TEMPERATURE = flags.DEFINE_float(
    "temperature",
    1.0,
    "Softmax temperature (< 1: more conservative; 0: greedy).",
)
_PROMPT = flags.DEFINE_multi_string(
    "prompt", [""], "Text the samples continue; repeat for a batch of prompts."
)
_TOP_K = flags.DEFINE_integer("top_k", 0, "Keep the k most probable; 0: all.")
_TOP_P = flags.DEFINE_float(
    "top_p", 1.0, "Nucleus: the smallest set with this much mass; 1: all."
)
_GREEDY = flags.DEFINE_bool(
    "greedy", False, "Always the most probable token (temperature 0)."
)
_SEED = flags.DEFINE_integer("seed", 0, "Random seed.")
_BEAM = flags.DEFINE_integer(
    "beam", 0, "Beam width: > 0 prints the --num_samples best continuations."
)
_ALPHA = flags.DEFINE_float(
    "length_alpha", 0.0, "Beam ranking: log p / length ** alpha."
)
_SLOT = flags.DEFINE_enum(
    "checkpoint", "best", ["best", "latest"], "Which checkpoint to use."
)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if _BEAM.value:
    with common.one_line_errors():
      best = sampling.beam_run(
          _WORKDIR.value,
          _BEAM.value,
          _MAX_LEN.value,
          _ALPHA.value,
          tuple(_PROMPT.value),
          _NUM.value,
          _SLOT.value,
      )
    for text, logp, score in best:
      print(f"logprob={logp:.4f} score={score:.4f}\t{text}", flush=True)
    return
  with common.one_line_errors():
    decoding = sampling.Decoding(
        0.0 if _GREEDY.value else _TEMPERATURE.value, _TOP_K.value, _TOP_P.value
    )
    texts, stats = sampling.sample_run(
        _WORKDIR.value,
        _NUM.value,
        _MAX_LEN.value,
        _SEED.value,
        decoding,
        tuple(_PROMPT.value),
        _SLOT.value,
    )
  for text in texts:
    print(text, flush=True)
  print(
      f"{stats['tokens']:,} tokens in {stats['seconds']:.2f}s "
      f"({stats['tokens_per_s']:,.0f} tok/s, compilation included)",
      file=sys.stderr,
  )


if __name__ == "__main__":
  app.run(main, flags_parser=common.parse_flags)
