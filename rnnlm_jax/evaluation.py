"""Evaluation of a saved run: its config, vocabulary and checkpoint."""

import os

import jax

from rnnlm_jax import checkpoint
from rnnlm_jax import config as config_lib
from rnnlm_jax import corpus as corpus_lib
from rnnlm_jax import data
from rnnlm_jax import optim
from rnnlm_jax import steps
from rnnlm_jax import train


def load_params(workdir: str, cfg: config_lib.Config, slot: str = "best"):
  """Parameters and record from a run directory's checkpoint slot."""
  if checkpoint.latest_step(workdir, slot) is None:
    raise FileNotFoundError(f"no {slot!r} checkpoint in {workdir}")
  # The optimizer's state shape does not depend on steps per epoch.
  tx, _ = optim.make_optimizer(cfg.optim, 1, 1)
  target = steps.init_train_state(jax.random.key(0), cfg.model, tx,
                                  cfg.data.batch_size)
  state, record = checkpoint.restore(workdir, slot, target)
  return state.params, record


def evaluate_run(workdir: str, slot: str = "best",
                 splits=("valid", "test"), batch_size: int | None = None,
                 data_dir: str | None = None) -> dict:
  """Mean loss, perplexity (and bits per character) of each split."""
  cfg = train.load_run_config(workdir)
  if data_dir:
    cfg = config_lib.replace(cfg, data={"dir": data_dir})
  for split in splits:
    if split not in corpus_lib.SPLITS:
      raise ValueError(f"unknown split {split!r}; choose from {corpus_lib.SPLITS}")
  vocab = data.Vocab.load(os.path.join(workdir, train.VOCAB_FILE))
  corpus = corpus_lib.load_corpus(cfg.data, vocab)
  params, record = load_params(workdir, cfg, slot)
  evaluator = train.Evaluator(cfg, corpus, batch_size)
  results = {"step": record["step"], "eval_batch_size": evaluator.batch_size}
  for split in splits:
    nll, count = evaluator.nll(params, split)
    results.update(train.split_metrics(nll, split, cfg.data.level))
    results[f"{split}_tokens"] = count
  if corpus.floor_ppl:
    results["floor_ppl"] = corpus.floor_ppl["test"]
  return results
