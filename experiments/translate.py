"""Translates sentences with a trained encoder-decoder.

  echo "je suis fatigué ." | python -m experiments.translate \
      --workdir=runs/fra_eng_attention
  python -m experiments.translate --workdir=RUN --input=sentences.txt \
      --beam=5 --json
  python -m experiments.translate --workdir=RUN --beam=1 --show_attention

One untokenised sentence per line, in the run's source language (Moses
tokenisation and lowercasing as in training). --beam 1 is greedy; the
default is the run's model.beam_size; hypotheses are ranked by
log p / length ** --length_alpha. --json prints one object per line:
{"source", "text", "tokens", "logp", "score"}. --show_attention writes each
sentence's attention weights as a heat-map PNG (attention_<n>.png) into
--attention_dir (default: RUN/attention). Needs only the run directory.
"""

import json
import os
import sys

from absl import app
from absl import flags

from experiments import common
from rnnlm_jax import config as config_lib
from rnnlm_jax import figures
from rnnlm_jax import pairs as pairs_lib
from rnnlm_jax import rundir
from rnnlm_jax import translation_figures
from rnnlm_jax.errors import DataError
from rnnlm_jax.tasks import translation

_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory.", required=True)
_SLOT = flags.DEFINE_enum(
    "checkpoint", "best", ["best", "latest"], "Which checkpoint to use."
)
_INPUT = flags.DEFINE_string(
    "input", "-", "File of sentences, one per line; - for stdin."
)
_BEAM = flags.DEFINE_integer(
    "beam", 0, "Beam size; 1: greedy; 0: the run's model.beam_size.",
    lower_bound=0,
)
_ALPHA = flags.DEFINE_float(
    "length_alpha", None, "Length normalisation; default: the run's."
)
_JSON = flags.DEFINE_bool("json", False, "Print one JSON object per line.")
_SHOW = flags.DEFINE_bool(
    "show_attention", False, "Write each sentence's attention heat-map."
)
_ATTN_DIR = flags.DEFINE_string(
    "attention_dir", None, "Folder of the heat-maps; default RUN/attention."
)


def _heatmaps(cfg, params, src_vocab, tgt_vocab, results, out: str):
  if cfg.model.attention == "none":
    raise DataError(
        "--show_attention: this run's model has no attention "
        "(model.attention='none')"
    )
  d = cfg.data
  paths = []
  for n, r in enumerate(results, 1):
    src = pairs_lib.tokenize(r["source"], d.src_lang, d.lowercase)
    weights = translation.attention_matrix(
        cfg,
        params,
        src_vocab.encode(src),
        translation.encode_target(tgt_vocab, r["tokens"]),
    )
    fig = translation_figures.attention_heatmap(
        weights, src, r["tokens"] + ["<eos>"], r["text"]
    )
    paths.append(figures.save_figure(out, f"attention_{n}", fig))
  return paths


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  with common.one_line_errors():
    trained = rundir.load_trained(_WORKDIR.value, _SLOT.value)
    cfg = trained.cfg
    if cfg.task != "translate":
      raise DataError(
          f"{_WORKDIR.value} holds a task={cfg.task!r} run, not a translator"
      )
    if _ALPHA.value is not None:
      cfg = config_lib.replace(
          cfg, model={"length_alpha": _ALPHA.value}
      )
    src_vocab, tgt_vocab = translation.split_vocab(trained.vocab)
    lines = [l.strip() for l in common.read_lines(_INPUT.value) if l.strip()]
    results = translation.translate_sentences(
        cfg, src_vocab, tgt_vocab, trained.params, lines, _BEAM.value or None
    )
    paths = []
    if _SHOW.value:
      out = _ATTN_DIR.value or os.path.join(_WORKDIR.value, "attention")
      os.makedirs(out, exist_ok=True)
      paths = _heatmaps(cfg, trained.params, src_vocab, tgt_vocab, results,
                        out)
  for r in results:
    if _JSON.value:
      print(json.dumps(r, ensure_ascii=False))
    else:
      print(r["text"])
  for path in paths:
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
  app.run(main, flags_parser=common.parse_flags)
