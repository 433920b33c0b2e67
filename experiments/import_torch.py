"""Makes a run directory from PyTorch word_language_model weights.

  python -m experiments.import_torch --state_dict=model.safetensors \
      --words=words.txt --cell=lstm --workdir=runs/imported \
      --config=experiments/configs/ptb_lstm.py:small --config.data.dir=path/to/ptb
  python -m experiments.evaluate --workdir=runs/imported --eval_batch_size=1

The model's sizes come from the arrays; the config supplies the corpus and
evaluation settings. The word list (one word per line, line i is id i, as
``corpus.dictionary.idx2word``) becomes the run's vocabulary, and must
cover every token of the config's corpus (checked here, by encoding it).

The imported model computes PyTorch's function (its perplexity), but
PyTorch's two recurrent biases become one parameter here, so fine-tuning
it (experiments.train on this run directory) does not follow the path
PyTorch's own fine-tuning would (see rnnlm_jax.interop).

Bad input (a file that is not a .npz/.safetensors state_dict, a --cell that
does not fit the weights, a word list that does not fit the weights or the
corpus) is one 'error: ...' line and exit status 1.
"""

import dataclasses
import sys

from absl import app
from absl import flags

from experiments import common
from rnnlm_jax import config as config_lib
from rnnlm_jax import corpus as corpus_lib
from rnnlm_jax import interop
from rnnlm_jax import train
from rnnlm_jax.errors import DataError

_CONFIG = common.define_config(
    None, "Config giving the corpus and evaluation settings (required)."
)
# Not required=True: absl would then refuse --config_help without them.
_STATE_DICT = flags.DEFINE_string(
    "state_dict", None, ".npz or .safetensors (required)."
)
_WORDS = flags.DEFINE_string("words", None, "Word list file (required).")
_CELL = flags.DEFINE_enum(
    "cell",
    "lstm",
    ["lstm", "gru", "rnn_tanh", "rnn_relu"],
    "The PyTorch model's cell (nn.RNN: tanh or relu).",
)
_WORKDIR = flags.DEFINE_string("workdir", None, "New run directory (required).")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  with common.one_line_errors():
    if _CONFIG.value is None:
      raise config_lib.ConfigError("--config is required (it names the corpus)")
    for flag in (_STATE_DICT, _WORDS, _WORKDIR):
      if not flag.value:
        raise config_lib.ConfigError(f"--{flag.name} is required")
    cfg = common.resolve_config(_CONFIG.value)
    params, model = interop.load_torch_lm(_STATE_DICT.value, _CELL.value)
    vocab = interop.vocab_from_word_list(interop.read_word_list(_WORDS.value))
    if len(vocab) != model.vocab_size:
      raise config_lib.ConfigError(
          f"the word list has {len(vocab)} words but the weights "
          f"{model.vocab_size}"
      )
    try:
      corpus_lib.load_corpus(cfg.data, vocab)
    except DataError as e:
      raise config_lib.ConfigError(
          f"the word list {_WORDS.value} does not fit the corpus of config "
          f"{cfg.name!r}: {e}"
      ) from None
    cfg = config_lib.validate(dataclasses.replace(cfg, model=model))
    train.init_run_from_params(
        cfg,
        _WORKDIR.value,
        params,
        vocab,
        common.command_line(
            "experiments.import_torch", sys.argv[1:], _WORKDIR.value, True
        ),
    )
  print(f"run directory: {_WORKDIR.value}")


if __name__ == "__main__":
  app.run(main, flags_parser=common.parse_flags)
