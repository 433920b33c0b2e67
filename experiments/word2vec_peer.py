"""rnnlm_jax's word2vec against gensim's Word2Vec, in one run: the same
corpus, vocabulary and hyperparameters (experiments/configs/word2vec.py's),
trained in turn, each then scored on SimLex-999 and the Google analogies.

  python -m experiments.word2vec_peer --data_dir=../shared/data/wikitext-2 \\
      --modes=skipgram,cbow --repeats=2 --out=word2vec_peer.json

Words/s is the train split's words (before the vocabulary cut and
subsampling, as gensim counts "raw words") times the epochs, over the wall
time of training: for rnnlm_jax, every epoch's batch building and steps,
after the step has been compiled; for gensim, its ``train`` call
(workers = the machine's cores). Repetitions alternate which goes first.
gensim is a benchmark-only dependency (requirements-dev.txt).
"""

import json
import os
import time

from absl import app
from absl import flags
import jax
import numpy as np

from experiments import common
from experiments.configs import word2vec as word2vec_configs
from rnnlm_jax import config as config_lib
from rnnlm_jax import embeddings
from rnnlm_jax import optim
from rnnlm_jax import steps
from rnnlm_jax.tasks import embed

_DATA_DIR = flags.DEFINE_string(
    "data_dir", None, "Corpus folder; default $RNNLM_DATA/wikitext-2."
)
_MODES = flags.DEFINE_list("modes", ["skipgram", "cbow"], "skipgram, cbow.")
_EPOCHS = flags.DEFINE_integer("epochs", 5, "Epochs of each training.")
_REPEATS = flags.DEFINE_integer("repeats", 1, "Repetitions, order alternating.")
_WORKERS = flags.DEFINE_integer("workers", 0, "gensim's threads; 0: all cores.")
_SEED = flags.DEFINE_integer("seed", 0, "Both implementations' seed.")
_OUT = flags.DEFINE_string("out", None, "Write the report as JSON here.")
_EXPORT_DIR = flags.DEFINE_string(
    "export_dir",
    None,
    "Write each implementation's last vectors here as MODE_IMPL.bin "
    "(word2vec binary; experiments.embeddings --vectors reads them).",
)


def _config(mode: str, data_dir: str):
  c = word2vec_configs.get_config(mode)
  c.data.dir = data_dir
  c.train.num_epochs = _EPOCHS.value
  c.train.seed = _SEED.value
  return config_lib.from_dict(c.to_dict())


def train_ours(task) -> tuple[np.ndarray, float]:
  """The input vectors after cfg's epochs, and the training's seconds."""
  cfg = task.cfg
  batches = task.train_batches(0)
  steps_per_epoch = steps.num_segments(batches)
  tx, _ = optim.make_optimizer(cfg.optim, steps_per_epoch, cfg.train.num_epochs)
  state = steps.init_train_state(jax.random.key(cfg.train.seed), task, tx)
  step = steps.make_train_step(task, tx)
  batches = jax.device_put(batches)
  step = step.lower(state, batches).compile()
  t0 = time.perf_counter()
  for epoch in range(cfg.train.num_epochs):
    if epoch:
      batches = jax.device_put(task.train_batches(epoch))
    for _ in range(steps_per_epoch):
      state, _ = step(state, batches)
  jax.block_until_ready(state.params)
  return np.asarray(state.params["input"]), time.perf_counter() - t0


def train_gensim(task, mode: str):
  """gensim's vectors (in its vocabulary's order) and training seconds."""
  from gensim.models import Word2Vec  # pylint: disable=g-import-not-at-top

  cfg, m = task.cfg, task.cfg.model
  lines = [line.split() for line in task.data.text["train"]]
  model = Word2Vec(
      vector_size=m.embed_dim,
      window=m.window,
      min_count=cfg.data.vocab_min_count,
      sample=cfg.data.subsample,
      negative=m.negatives,
      ns_exponent=m.ns_exponent,
      sg=int(mode == "skipgram"),
      cbow_mean=1,
      alpha=cfg.optim.learning_rate,
      min_alpha=cfg.optim.learning_rate * cfg.optim.min_lr_ratio,
      workers=_WORKERS.value or os.cpu_count(),
      seed=cfg.train.seed,
  )
  model.build_vocab(lines)
  t0 = time.perf_counter()
  model.train(lines, total_examples=len(lines), epochs=cfg.train.num_epochs)
  seconds = time.perf_counter() - t0
  return list(model.wv.index_to_key), model.wv.vectors, seconds


def main(argv):
  del argv
  data_dir = _DATA_DIR.value or os.path.join(
      os.environ.get(common.DATA_ENV, ""), "wikitext-2"
  )
  rows = []
  for mode in _MODES.value:
    (task,) = embed.make_tasks([_config(mode, data_dir)])
    words = list(task.vocab.tokens)
    raw = task.data.raw_words * task.cfg.train.num_epochs
    for r in range(_REPEATS.value):
      order = ("rnnlm_jax", "gensim") if r % 2 == 0 else ("gensim", "rnnlm_jax")
      for impl in order:
        if impl == "rnnlm_jax":
          vectors, seconds = train_ours(task)
          scores = embeddings.evaluate(
              words, vectors, task.simlex_file, task.analogy_file
          )
        else:
          g_words, vectors, seconds = train_gensim(task, mode)
          scores = embeddings.evaluate(
              g_words, vectors, task.simlex_file, task.analogy_file
          )
        if _EXPORT_DIR.value:
          os.makedirs(_EXPORT_DIR.value, exist_ok=True)
          embeddings.save_word2vec(
              os.path.join(_EXPORT_DIR.value, f"{mode}_{impl}.bin"),
              words if impl == "rnnlm_jax" else g_words,
              vectors,
              binary=True,
          )
        scores.pop("analogy_sections", None)
        rows.append(
            {
                "mode": mode,
                "impl": impl,
                "repeat": r,
                "seconds": seconds,
                "words_per_s": raw / seconds,
                **scores,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
  print(report(rows))
  if _OUT.value:
    with open(_OUT.value, "w") as f:
      json.dump(rows, f, indent=1)


def report(rows) -> str:
  """Medians per (mode, implementation) and rnnlm_jax / gensim ratios."""
  lines = [
      "| model | implementation | SimLex rho (pairs) | analogy 3CosAdd "
      "(covered) | words/s | words/s ratio |",
      "|---|---|---:|---:|---:|---:|",
  ]
  for mode in dict.fromkeys(r["mode"] for r in rows):
    med = {}
    for impl in ("rnnlm_jax", "gensim"):
      mine = [r for r in rows if r["mode"] == mode and r["impl"] == impl]
      med[impl] = {
          k: float(np.median([r[k] for r in mine]))
          for k in ("simlex_rho", "analogy_acc", "words_per_s")
      }
      med[impl]["pairs"] = mine[0]["simlex_pairs"]
      med[impl]["covered"] = mine[0]["analogy_covered"]
    ratio = med["rnnlm_jax"]["words_per_s"] / med["gensim"]["words_per_s"]
    for impl in ("rnnlm_jax", "gensim"):
      m = med[impl]
      lines.append(
          f"| {mode} | {impl} | {m['simlex_rho']:.4f} ({m['pairs']}) | "
          f"{100 * m['analogy_acc']:.2f}% ({m['covered']}) | "
          f"{m['words_per_s']:,.0f} | "
          f"{ratio:.2f}x |"
          if impl == "rnnlm_jax"
          else f"| {mode} | {impl} | {m['simlex_rho']:.4f} ({m['pairs']}) | "
          f"{100 * m['analogy_acc']:.2f}% ({m['covered']}) | "
          f"{m['words_per_s']:,.0f} | 1.00x |"
      )
  return "\n".join(lines)


if __name__ == "__main__":
  app.run(main)
