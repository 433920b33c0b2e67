"""Samples text from a run's model: python -m experiments.sample --workdir=RUN

  python -m experiments.sample --workdir=runs/ptb_kn5 --num_samples=5
  python -m experiments.sample --workdir=runs/shakespeare_char-... \
      --max_len=400 --temperature=0.8 --prompt="ROMEO:"

Works for every model family (recurrent, neural n-gram, maxent, count-based
n-gram). Each sample starts after the boundary token and the prompt; at word
level it ends at its first <eos>.
"""

from absl import app
from absl import flags

from experiments import common
from rnnlm_jax import sampling

_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory.", required=True)
_NUM = flags.DEFINE_integer("num_samples", 5, "How many samples.")
_MAX_LEN = flags.DEFINE_integer("max_len", 50, "Tokens per sample at most.")
_TEMPERATURE = flags.DEFINE_float(
    "temperature", 1.0, "Softmax temperature (< 1: more conservative)."
)
_PROMPT = flags.DEFINE_string("prompt", "", "Text the samples continue.")
_SEED = flags.DEFINE_integer("seed", 0, "Random seed.")
_SLOT = flags.DEFINE_enum(
    "checkpoint", "best", ["best", "latest"], "Which checkpoint to use."
)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  with common.one_line_errors():
    texts = sampling.sample_run(
        _WORKDIR.value,
        _NUM.value,
        _MAX_LEN.value,
        _SEED.value,
        _TEMPERATURE.value,
        _PROMPT.value,
        _SLOT.value,
    )
  for text in texts:
    print(text, flush=True)


if __name__ == "__main__":
  app.run(main)
