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
    # One seed, --config.train.num_epochs=8, other runs sharing a 2-core CPU
    # (docs/sentences.md).
    "chunk": (
        "test F1 90.67 (valid 91.09), short of the 93.0 target from words "
        "alone; 6.6 min, 7,000 tok/s. At the default 20 epochs with every "
        "train word in the vocabulary: 90.48, 19.9 min"
    ),
    "chunk_pos": "test F1 93.06 (valid 93.22); 12.1 min, 2,500 tok/s",
    "chunk_softmax": "test F1 89.47 (valid 90.14); 8.9 min, 2,700 tok/s",
    "pos": (
        "test accuracy 94.72 (valid 95.75), short of the 96.5 target; "
        "10.7 min, 2,700 tok/s"
    ),
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
  c.data.vocab_min_count = 2  # Singletons train the <unk> row.
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
