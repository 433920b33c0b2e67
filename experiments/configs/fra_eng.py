"""French-to-English translation with recurrent encoder-decoders, on the
Tatoeba pairs of manythings.org (fra.txt: "English<TAB>French" lines).

  python -m experiments.train --config=experiments/configs/fra_eng.py:attention \
      --config.data.dir=../shared/data/fra-eng

English to French: --config.data.src_lang=en --config.data.tgt_lang=fr.
The pairs are split 80/10/10 into train/valid/test by a hash of the English
side (data.split_seed 0), so all translations of one English sentence are in
one split and the test set is never trained on or selected with; text is
lowercased and Moses-tokenised (sacremoses), and pairs with a side over
data.max_sentence_len tokens are dropped from every split. Both vocabularies
keep the train tokens seen at least twice.

Variants (a bidirectional encoder of one layer, 256 units per direction
(concatenated); a decoder of one layer of 256 units; the GRU unless
--config.model.cell=lstm; Adam 1e-3, batch 64, dropout 0.2):
  no_attention   the decoder sees the source only through the bridge from
                 the encoder's final states (the context-vector bottleneck)
  bahdanau       additive attention over the previous decoder state
  luong          Luong's "general" attention over the current state, with
                 input feeding
  attention      the same as luong
  luong_dot      Luong's dot attention (the encoder's directions summed, so
                 its outputs are as wide as the decoder's state)
  smoke          a tiny model for tests
The run ends with valid and test BLEU and chrF (sacrebleu) of beam search
(model.beam_size 5) and of greedy decoding. Measured results: see RESULTS.
"""

from experiments.configs import base

RESULTS = {
    # The GRU, seed 0, sentences up to 15 tokens; two runs and the test
    # suite sharing a 2-core CPU (docs/translation.md).
    "no_attention": (
        "test BLEU 28.43 (greedy 25.33), chrF 43.66, valid BLEU 28.22, test "
        "ppl 4.98; 69 min, 805 tok/s. With --config.model.cell=lstm "
        "(2026-12-07): test BLEU 22.92 (greedy 19.88), chrF 38.67, valid "
        "BLEU 22.91, test ppl 5.86; 86 min on a loaded CPU, 694 tok/s"
    ),
    "attention": (
        "test BLEU 39.63 (greedy 37.72), chrF 55.88, valid BLEU 39.31, test "
        "ppl 4.06; 74 min, 721 tok/s. With --config.model.cell=lstm "
        "(2026-12-07): test BLEU 45.35 (greedy 43.60), chrF 61.40, valid "
        "BLEU 44.27, test ppl 3.15; two processes (resumed once) on a "
        "loaded CPU, 350 tok/s"
    ),
    "bahdanau": (
        "test BLEU 46.72 (greedy 44.69), chrF 62.09, valid BLEU "
        "46.06, test ppl 3.08; trained alone, 1,460 tok/s. With "
        "--config.model.cell=lstm: test BLEU 46.03 (greedy 44.35), chrF "
        "61.75, valid BLEU 45.14, test ppl 3.11 (three processes, resumed "
        "twice, on a loaded CPU)"
    ),
}

VARIANTS = {
    "no_attention": "none",
    "bahdanau": "bahdanau",
    "luong": "luong_general",
    "attention": "luong_general",
    "luong_dot": "luong_dot",
    "smoke": "luong_general",
}


def get_config(variant: str = "attention"):
  if variant not in VARIANTS:
    raise ValueError(
        f"unknown variant {variant!r}; choose from {sorted(VARIANTS)}"
    )
  c = base.get_base_config()
  c.name = f"fra_eng_{variant}"
  c.task = "translate"
  c.data.source = "files"
  c.data.local_name = "fra-eng"
  c.data.src_lang = "fr"
  c.data.tgt_lang = "en"
  c.data.lowercase = True
  c.data.max_sentence_len = 15
  c.data.split_fractions = (0.8, 0.1, 0.1)
  c.data.vocab_min_count = 2
  c.data.batch_size = 64
  c.data.eval_batch_size = 256
  c.data.num_buckets = 8
  c.model.cell = "gru"
  c.model.attention = VARIANTS[variant]
  c.model.bidirectional = True
  c.model.merge = "sum" if variant == "luong_dot" else "concat"
  c.model.num_layers = 1
  c.model.decoder_layers = 1
  c.model.embed_dim = 256
  c.model.hidden = 256
  c.model.dropout = 0.2
  c.model.init_scale = 0.1
  c.model.beam_size = 5
  c.model.length_alpha = 1.0
  c.optim.name = "adam"
  c.optim.learning_rate = 1e-3
  c.optim.clip_norm = 5.0
  c.train.num_epochs = 3
  c.train.log_every = 100
  c.train.checkpoint_every = 500
  c.train.eval_every = 0
  if variant == "smoke":
    base.sentence_smoke(c, embed_dim=16)
    c.model.beam_size = 3
    c.data.max_sentence_len = 10
  return c
