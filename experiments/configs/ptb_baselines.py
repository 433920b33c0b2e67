"""The classic baselines on Penn Treebank (Mikolov split), one variant each.

  python -m experiments.train --config=experiments/configs/ptb_baselines.py:kn5 \
      --config.data.dir=../shared/data/ptb

Variants (n-gram models see the same token stream as the RNNs: every token
of a split, each <eos> included, predicted once after a leading <eos>):
  kn5          interpolated modified Kneser-Ney 5-gram (Chen & Goodman)
  kn3          the same, 3-gram
  ikn5         interpolated Kneser-Ney 5-gram, one discount per order
  katz3        Katz backoff trigram (Good-Turing discounts)
  add1_3       add-1 (Laplace) trigram
  mle3         unsmoothed maximum-likelihood trigram (infinite perplexity:
               some test trigrams and words never occur in train)
  maxent5      log-linear model with hashed 1..5-gram features (2**24
               buckets) and Mikolov's class-factorised output (100
               frequency classes), Adagrad 0.1 from a zero accumulator,
               2 epochs
  maxent5_flat the same features under one softmax over the vocabulary,
               Adam 1e-2, 3 epochs (the first recipe; see MAXENT_TRIALS)
  maxent5_exact  the exact features instead of hashed ones: one weight per
               (context, word) and (context, class) pair seen in training
               (rnnlm_jax.maxent_features), 100 classes, Adagrad 0.3 from
               a zero accumulator with L2 1e-7, 8 epochs
  neural5      Bengio et al. (2003): 4 x 128-d embeddings -> 500 tanh ->
               softmax, dropout 0.3, Adam 1e-3 halved on a plateau
Counted models sentence-reset their histories at <eos> (as SRILM and KenLM
do); the trained ones read the stream across sentence boundaries.

Published test perplexities (Mikolov 2012): KN5 141.2, maxent 5-gram 142.1,
feed-forward neural 5-gram 140.2.

Measured results: see RESULTS.
"""

from experiments.configs import base

RESULTS = {
    # Measured on a shared 2-core CPU; test ppl, eval batch 10 for the
    # trained models.
    "kn5": "test 141.19, valid 148.01; 2,317,233 n-grams, 61.3 MiB, 4 s",
    "kn3": "test 148.28, valid 157.77; 861,548 n-grams, 16.0 MiB, 2 s",
    "ikn5": "test 143.51, valid 151.42; 61.3 MiB, 5 s",
    "katz3": "test 166.99, valid 179.50; 16.0 MiB, 2 s",
    "add1_3": "test 3,307.9, valid 3,283.2; 7 s",
    "mle3": "test inf, valid inf (unseen test trigrams)",
    "maxent5": (
        "test 209.11, valid 217.54 (epoch 2 of 2, still improving: 249.27"
        " after epoch 1); 6 min of training on the CPU shared with one other run."
        " The published 142.1 is not reached; see MAXENT_TRIALS. Run"
        " 2026-12-07."
    ),
    "maxent5_flat": (
        "test 381.55, valid 391.55 (best checkpoint: epoch 1 of 3; valid"
        " 652 and 864 after epochs 2 and 3 as the hashed features overfit);"
        " 10 min. Trials of one epoch: Adagrad 0.1 with sum_time loss 798.6"
        " test; Adam 1e-3 and Adagrad 0.1 (mean loss) far slower. The"
        " published 142.1 is not reached."
    ),
    "maxent5_exact": (
        "test 157.87, valid 163.47 (epoch 8 of 8, still improving by under"
        " a point an epoch); 4,831,746 weights; 6.0 min of training on the"
        " CPU shared with another run. The published 142.1 is not reached;"
        " see MAXENT_EXACT_TRIALS. Run 2026-12-07."
    ),
    "neural5": (
        "test 140.06, valid 151.78 (best checkpoint epoch 12 of 12; at eval"
        " batch 1: test 140.05, valid 151.76); 6.5M"
        " parameters, 68 min at 2,200-3,000 tok/s"
    ),
}

# Test perplexities of Mikolov's thesis (2012) and Mikolov et
# al. (2011).
PUBLISHED = {
    "kn5": "141.2 (Mikolov 2012)",
    "kn3": "148.3 (Mikolov et al. 2011)",
    "katz3": "165.2 (Good-Turing trigram, Mikolov et al. 2011)",
    "maxent5": "142.1 (Mikolov 2012)",
    "maxent5_flat": "142.1 (Mikolov 2012)",
    "maxent5_exact": "142.1 (Mikolov 2012)",
    "neural5": "140.2 (Mikolov 2012)",
}

# variant -> (order, smoothing) of the count-based models.
COUNTED = {
    "kn5": (5, "modified_kneser_ney"),
    "kn3": (3, "modified_kneser_ney"),
    "ikn5": (5, "kneser_ney"),
    "katz3": (3, "backoff"),
    "add1_3": (3, "add_delta"),
    "mle3": (3, "mle"),
}
# PTB, 2**24 buckets, batch 64 x 32, one seed each (2026-12-07): validation
# perplexity after epochs 1 and 2, the training perplexity late in epoch 2,
# and the test perplexity of the best epoch. Hashing puts about 1,000
# (context, word) pairs in each bucket under one softmax (1.68M contexts of
# 1-4 words x 10k words); the classes cut the words a token's gradient
# reaches from 10,000 to the ~100 of its class, and were the lever that
# mattered. Every optimiser then memorises the training text (training
# perplexity 9-108 in epoch 2), so the hashed model stays near 210.
MAXENT_TRIALS = {
    "no classes, Adam 1e-2": "391.6, 652; train < 40; test 381.6",
    "100 classes, Adam 1e-2": "220.7, 229.2; train 8.9; test 212.7",
    "100 classes, AdamW 1e-2, decay 0.3": "274.4, 263.5; train 91; test 257.0",
    "100 classes, Adagrad 0.1, accumulator from 0": (
        "249.3, 217.5; train 108; test 209.1"
    ),
    "100 classes, Adagrad 0.1, L2 1e-6": "254.9, 225.1; test 216.5",
    "100 classes, Adagrad 0.1, L2 1e-5": "290.6, 269.0; test 258.8",
    "100 classes, Adagrad 0.1, 2**26 buckets": (
        "killed by the kernel at step ~180 (22.8 GB resident)"
    ),
    "no classes, Adagrad 0.1, accumulator from 0.1": (
        "one epoch: test 798.6 (a rare feature's step is ~3 lr g: too small)"
    ),
}

# The exact features (maxent5_exact's model), 100 classes, Adagrad from a zero
# accumulator, one seed each (2026-12-07): valid perplexity after each epoch
# (the last is the run's), and test. 2.53M word and 2.29M class features
# (the seen pairs of 1-4-word contexts). Exact features were the lever
# (209.1 -> 158); L2, count cut-offs and sentence resets were not. The
# training perplexity reaches 6 by epoch 8: the 4-gram features, most seen
# once, memorise the text.
MAXENT_EXACT_TRIALS = {
    "Adagrad 0.1, 3 epochs": "298.6, 259.5, 239.4; test 230.0",
    "Adagrad 0.3, 8 epochs": (
        "214.5, 188.8, 177.6, 171.7, 168.2, 166.1, 164.9, 164.2; test 158.67"
    ),
    "Adagrad 0.3, L2 1e-7 (maxent5_exact)": (
        "214.5, 189.0, 178.0, 171.9, 168.3, 166.0, 164.5, 163.5; test 157.87"
    ),
    "Adagrad 0.3, L2 1e-6": "216.6, 193.6, ..., 170.0, 168.6; test 162.17",
    "Adagrad 0.3, L2 3e-6": "225.8, 207.6, 200.2, 196.3 (stopped)",
    "Adagrad 0.3, features seen >= 2 times": (
        "224.2, 198.4, ..., 171.9, 170.6; test 163.32"
    ),
    "Adagrad 1.0": "176.5, 169.0, 171.3, 170.0, 170.1, 170.2, 170.4 (stopped)",
    "Adagrad 0.3, L2 1e-7, data.reset_at_eos": (
        "213.4, 188.4, 177.6, 171.8 (stopped; 171.9 without resets)"
    ),
}

VARIANTS = (*COUNTED, "maxent5", "maxent5_flat", "maxent5_exact", "neural5")


def ptb_data(c):
  c.data.source = "files"
  c.data.local_name = "ptb"
  c.data.hf_path = "ptb_text_only"
  c.data.text_column = "sentence"
  return c


def counted(c, order: int, smoothing: str):
  c.model.kind = "count_ngram"
  c.model.order = order
  c.model.smoothing = smoothing
  c.model.delta = 1.0
  c.data.reset_at_eos = True
  return c


def adam_on_plateau(c, learning_rate: float):
  """Adam, no clipping, the rate halved when validation stops improving."""
  c.optim.name = "adam"
  c.optim.learning_rate = learning_rate
  c.optim.clip_norm = 0.0
  c.optim.schedule = "plateau"
  c.optim.plateau_factor = 0.5
  return c


def maxent(c, order: int, hash_bits: int, classes: int = 0):
  c.model.kind = "maxent"
  c.model.order = order
  c.model.hash_bits = hash_bits
  c.model.maxent_classes = classes
  if not classes:
    return adam_on_plateau(c, 1e-2)
  c = adam_on_plateau(c, 0.1)
  c.optim.name = "adagrad"
  c.optim.adagrad_init = 0.0
  return c


def neural(c, order: int, embed: int, hidden: int, dropout: float):
  c.model.kind = "neural_ngram"
  c.model.order = order
  c.model.embed_dim = embed
  c.model.hidden = hidden
  c.model.num_layers = 1
  c.model.dropout = dropout
  c.model.init_scale = 0.0  # 1 / sqrt(fan-in)
  return adam_on_plateau(c, 1e-3)


def get_config(variant: str = "kn5"):
  if variant not in VARIANTS:
    raise ValueError(f"unknown variant {variant!r}; choose from {VARIANTS}")
  c = ptb_data(base.get_base_config())
  c.name = f"ptb_{variant}"
  c.data.batch_size = 64
  c.data.bptt = 32
  c.data.eval_batch_size = 10
  c.train.log_every = 50
  c.train.checkpoint_every = 200
  if variant in COUNTED:
    return counted(c, *COUNTED[variant])
  if variant == "maxent5":
    c.train.num_epochs = 2
    return maxent(c, 5, 24, classes=100)
  if variant == "maxent5_flat":
    c.train.num_epochs = 3
    return maxent(c, 5, 24, classes=0)
  if variant == "maxent5_exact":
    c.train.num_epochs = 8
    c = maxent(c, 5, 24, classes=100)
    c.model.maxent_features = "exact"
    c.optim.learning_rate = 0.3
    c.optim.weight_decay = 1e-7
    return c
  c.train.num_epochs = 12
  return neural(c, 5, 128, 500, 0.3)
