"""A 2x650 LSTM with dropout 0.5 on WikiText-2 (the medium Zaremba recipe).

  python -m experiments.train --config=experiments/configs/wikitext2_lstm.py \
      --config.data.dir=../shared/data/wikitext-2

Without --config.data.dir: $RNNLM_DATA/wikitext-2, or the hub dataset
wikitext / wikitext-2-v1. Vocabulary 33,278 (the corpus's own, <unk> kept).
Compare with the LSTM baselines tabulated by Merity et al. (2016), "Pointer
Sentinel Mixture Models", for this split.
Measured result: see RESULTS.
"""

from experiments.configs import ptb_lstm

RESULTS = "not yet run"


def get_config():
  c = ptb_lstm.ptb_config("medium", "lstm")
  c.name = "wikitext2_lstm"
  c.data.local_name = "wikitext-2"
  c.data.hf_path = "wikitext"
  c.data.hf_name = "wikitext-2-v1"
  c.data.text_column = "text"
  return c
