"""word2vec on WikiText-2: skip-gram and CBOW, 3 seeds each.

  RNNLM_DATA=../shared/data python -m launch.sweep \
      --sweep=experiments/sweeps/word2vec_models.py
  python -m experiments.tables --runs=runs/sweeps/word2vec_models \
      --metric=simlex_rho --metric=analogy_acc --metric=valid_loss

experiments/configs/word2vec.py's hyperparameters (gensim's defaults).
About a minute a run on a 2-core CPU; results: see docs/embeddings.md.
"""

from launch.sweeps import Sweep


def get_sweep():
  return Sweep(
      name="word2vec_models",
      config="experiments/configs/word2vec.py:skipgram",
      axes=[{"model.kind": kind} for kind in ("skipgram", "cbow")],
      seeds=[0, 1, 2],
  )
