"""Chunking and part-of-speech tagging on CoNLL-2000 (WSJ sections 15-18
train, 20 test) with bidirectional recurrent taggers.

  python -m experiments.train --config=experiments/configs/conll2000.py:chunk \
      --config.data.dir=../shared/data/conll2000

The data has no dev split: 10% of train's sentences (seed 0) are held out to
pick the checkpoint, and the test split is scored once, at the end. Variants
(word embeddings 100 for the words seen twice or more, 1 bidirectional LSTM layer of 200 units per direction,
dropout 0.5, Adam 1e-3, batch 16, 20 epochs):
  chunk      BiLSTM-CRF chunker from words; reports chunk F1 (conlleval's,
             through seqeval) as test_f1
  chunk_pos  the same with the file's POS tags as input features (the shared
             task's setting: a 25-dim embedding per tag)
  chunk_softmax  a softmax per token instead of the CRF
  pos        BiLSTM POS tagger (softmax per token); reports test_acc
  smoke      a tiny BiLSTM-CRF chunker for tests
Published: Sha and Pereira's CRF 94.3 F1 (with POS features); Huang, Xu and
Yu's BiLSTM-CRF 94.46 (pretrained embeddings). Measured results: see RESULTS.
"""

from experiments.configs import base

RESULTS = {
    # One seed, --config.train.num_epochs=8, on the 2-core CPU
    # (docs/sentences.md). Run 2026-12-07 with the unknown-word classes
    # (data.unk_classes) beside another training run; the figures with one
    # <unk> are from 2026-12-05 and 06, with other runs sharing the CPU.
    "chunk": (
        "test F1 91.65 (valid 91.90), short of the 93.0 target from words "
        "alone; 4.5 min, 7,500 tok/s. One <unk>: 90.67 (valid 91.09), "
        "6.6 min; at 20 epochs with every train word in the vocabulary: 90.48"
    ),
    "chunk_pos": (
        "test F1 93.06 (valid 93.22); 12.1 min, 2,500 tok/s. With the "
        "unknown-word classes (not this variant's setting): 92.95 (valid "
        "93.17), 4.6 min"
    ),
    "chunk_softmax": (
        "test F1 90.65 (valid 91.17); 4.0 min, 7,700 tok/s. One <unk>: 89.47"
    ),
    "pos": (
        "test accuracy 97.40 (valid 97.50), past the 96.5 target; 4.3 min, "
        "7,100 tok/s. One <unk>: 94.72 (valid 95.75)"
    ),
}

PUBLISHED = {
    "chunk": "94.46 F1 (Huang, Xu and Yu 2015, pretrained embeddings)",
    "chunk_pos": "94.3 F1 (Sha and Pereira 2003, CRF with POS features)",
    "chunk_softmax": "94.46 F1 (Huang, Xu and Yu 2015, BiLSTM-CRF)",
}

# variant -> (target, head, POS feature dim)
VARIANTS = {
    "chunk": ("chunk", "crf", 0),
    "chunk_pos": ("chunk", "crf", 25),
    "chunk_softmax": ("chunk", "softmax", 0),
    "pos": ("pos", "softmax", 0),
    "smoke": ("chunk", "crf", 0),
}


def get_config(variant: str = "chunk"):
  if variant not in VARIANTS:
    raise ValueError(
        f"unknown variant {variant!r}; choose from {sorted(VARIANTS)}"
    )
  target, head, feature_dim = VARIANTS[variant]
  c = base.get_base_config()
  c.name = f"conll2000_{variant}"
  c.task = "tag"
  c.data.source = "files"
  c.data.local_name = "conll2000"
  c.data.hf_path = "conll2000"
  c.data.target = target
  c.data.batch_size = 16
  # Words seen once are left out of the vocabulary; from words alone they
  # teach the unknown-word classes (capitalised, digits, hyphen, suffix)
  # that a word outside it reads as (POS 94.72 -> 97.40, chunk F1 90.67 ->
  # 91.65). With the POS tags as input the tags say it already (chunk_pos
  # F1 93.06 without, 92.95 with): one <unk>.
  c.data.vocab_min_count = 2
  c.data.unk_classes = not feature_dim
  c.data.eval_batch_size = 128
  c.data.num_buckets = 8
  c.model.cell = "lstm"
  c.model.bidirectional = True
  c.model.head = head
  c.model.feature_dim = feature_dim
  c.model.embed_dim = 100
  c.model.hidden = 200
  c.model.num_layers = 1
  c.model.dropout = 0.5
  c.optim.name = "adam"
  c.optim.learning_rate = 1e-3
  c.optim.clip_norm = 5.0
  c.train.num_epochs = 20
  c.train.log_every = 100
  c.train.checkpoint_every = 500
  if variant == "smoke":
    base.sentence_smoke(c, embed_dim=8)
  return c
