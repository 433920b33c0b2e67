"""Word vectors on WikiText-2 train: word2vec's skip-gram and CBOW with
negative sampling, and PPMI-SVD (counted), at gensim's default
hyperparameters (100 dimensions, window 5, 5 negatives, subsampling 1e-3,
min count 5, 5 epochs, learning rate 0.025 decaying linearly to 0.0001).

  python -m experiments.train --config=experiments/configs/word2vec.py:skipgram \\
      --config.data.dir=../shared/data/wikitext-2
  python -m experiments.embeddings --workdir=runs/word2vec_skipgram \\
      --neighbours=king,france --analogy=man:king::woman:?

Variants:
  skipgram   skip-gram, negative sampling
  cbow       CBOW (the window's mean vector), negative sampling
  ppmi_svd   PPMI with context-distribution smoothing 0.75, truncated SVD to
             100 dimensions, U * S ** 0.5 (rnnlm_jax.ppmi)
  smoke      a tiny skip-gram for the tests

The run ends with ``simlex_rho=... analogy_acc=...``: SimLex-999's Spearman
rho and the Google analogies' 3CosAdd accuracy over the pairs and questions
whose words are all in the vocabulary (coverage in results.json). The
evaluation files are found beside data.dir (../simlex-999,
../word-analogy); data.simlex_file and data.analogy_file name others.

WikiText-2's train split has about 2 million words: a thousandth of the
corpora word2vec was published on, so absolute scores sit far below the
published ones (and a third of the analogy questions name words it lacks).

Measured results: see RESULTS.
"""

from experiments.configs import base

RESULTS = {
    # WikiText-2, seed 0, the 2-core AMD EPYC with nothing else running;
    # docs/embeddings.md has the table with gensim and the language models.
    "skipgram": (
        "SimLex rho 0.2021 (833 of 999 pairs), analogies 4.77% 3CosAdd"
        " (8,087 of 19,544 questions); 50 s, about 480,000 words/s, 1.05x"
        " gensim's (experiments.word2vec_peer, median of 3)"
    ),
    "cbow": (
        "SimLex rho 0.1518, analogies 3.41%; 33 s, about 655,000 words/s,"
        " 0.57x gensim's"
    ),
    "ppmi_svd": "SimLex rho 0.1517, analogies 12.70%; 15 s (SVD 7.6 s)",
}

VARIANTS = ("skipgram", "cbow", "ppmi_svd", "smoke")


def get_config(variant: str = "skipgram"):
  if variant not in VARIANTS:
    raise ValueError(
        f"unknown variant {variant!r}; choose from {sorted(VARIANTS)}"
    )
  c = base.get_base_config()
  c.name = f"word2vec_{variant}"
  c.task = "embed"
  c.data.source = "files"
  c.data.local_name = "wikitext-2"
  c.data.hf_path = "wikitext"
  c.data.hf_name = "wikitext-2-v1"
  c.data.vocab_min_count = 5
  c.data.subsample = 1e-3
  c.data.batch_size = 1024  # centre words per step
  c.data.eval_batch_size = 1024
  c.model.kind = "skipgram" if variant == "smoke" else variant
  c.model.embed_dim = 100
  c.model.window = 5
  c.model.negatives = 5
  c.model.ns_exponent = 0.75
  c.optim.name = "sgd"
  c.optim.learning_rate = 0.025
  c.optim.schedule = "linear"
  c.optim.min_lr_ratio = 0.0001 / 0.025
  c.optim.clip_norm = 0.0
  c.train.num_epochs = 5
  c.train.log_every = 100
  c.train.checkpoint_every = 500
  if variant == "smoke":
    c.model.embed_dim = 16
    c.data.vocab_min_count = 1
    c.data.batch_size = 16
    c.data.eval_batch_size = 32
    c.optim.learning_rate = 0.05
    c.train.num_epochs = 2
    c.train.log_every = 2
    c.train.checkpoint_every = 4
  return c
