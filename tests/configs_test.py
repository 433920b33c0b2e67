"""Every shipped config loads, validates and builds a model."""

import glob
import importlib.util
import os

import jax
import numpy as np
import pytest

from experiments import common
from rnnlm_jax import config as config_lib
from rnnlm_jax import encoder
from rnnlm_jax import models
from rnnlm_jax import optim
from rnnlm_jax import seq2seq

CONFIG_FILES = sorted(
    p
    for p in glob.glob(os.path.join(common.CONFIG_DIR, "*.py"))
    if not os.path.basename(p).startswith(("_", "base"))
)


def load_module(path):
  spec = importlib.util.spec_from_file_location(
      os.path.basename(path)[:-3], path
  )
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def variants(path):
  module = load_module(path)
  names = list(getattr(module, "VARIANTS", {})) or [None]
  return [(path, v) for v in names]


CASES = [case for path in CONFIG_FILES for case in variants(path)]


# The corpus a config's file name promises: (data.source, data.local_name,
# data.level) by the whole name, else its first word; any other config is
# synthetic.
CORPUS_OF = {
    "ptb_char": ("files", "ptb_char", "word"),
    "ptb": ("files", "ptb", "word"),
    "wikitext2": ("files", "wikitext-2", "word"),
    "shakespeare": ("files", "tinyshakespeare", "char"),
    "sst2": ("files", "sst-2", "word"),
    "conll2000": ("files", "conll2000", "word"),
    "fra": ("files", "fra-eng", "word"),
    "word2vec": ("files", "wikitext-2", "word"),
}


def resolved(path, variant):
  module = load_module(path)
  cd = module.get_config(variant) if variant else module.get_config()
  return config_lib.from_dict(cd.to_dict())


def test_shipped_configs_have_unique_names_and_read_their_corpus():
  stems = {os.path.basename(p)[:-3] for p in CONFIG_FILES}
  assert {
      "smoke",
      "default",
      "ptb_lstm",
      "ptb_rnn",
      "ptb_gru",
      "wikitext2_lstm",
      "shakespeare_char",
  } <= stems
  configs = [(path, resolved(path, v)) for path, v in CASES]
  names = [cfg.name for _, cfg in configs]
  # Tables and run directories tell runs apart by config name.
  assert len(set(names)) == len(names), names
  for path, cfg in configs:
    stem = os.path.basename(path)[: -len(".py")]
    want = CORPUS_OF.get(stem) or CORPUS_OF.get(
        stem.split("_")[0], ("synthetic", "", "word")
    )
    got = (cfg.data.source, cfg.data.local_name, cfg.data.level)
    assert got == want, (cfg.name, got)


@pytest.mark.parametrize(
    "path, variant", CASES, ids=[f"{os.path.basename(p)}:{v}" for p, v in CASES]
)
def test_config_loads_and_builds(path, variant):
  module = load_module(path)
  cd = module.get_config(variant) if variant else module.get_config()
  cfg = config_lib.from_dict(cd.to_dict())
  assert module.__doc__ and "python -m experiments.train" in module.__doc__
  assert hasattr(module, "RESULTS")
  model = config_lib.replace(cfg, model={"vocab_size": 100}).model
  if cfg.task == "translate":
    model = config_lib.replace(
        cfg, model={"vocab_size": 100, "target_vocab_size": 90}
    ).model
    shapes = jax.eval_shape(
        lambda k: seq2seq.init_params(k, model), jax.random.key(0)
    )
    assert len(shapes["encoder"]["layers"]) == cfg.model.num_layers
    assert shapes["out"]["b"].shape == (90,)
    return
  if cfg.task != "lm":
    model = config_lib.replace(
        cfg, model={"vocab_size": 100, "num_classes": 3, "num_features": 5}
    ).model
    shapes = jax.eval_shape(
        lambda k: encoder.init_params(k, model, 3, cfg.task == "tag"),
        jax.random.key(0),
    )
    assert len(shapes["layers"]) == cfg.model.num_layers
    assert shapes["out"]["b"].shape == (3,)
    return
  if model.kind == "count_ngram":
    return  # Counts, no parameters: tests/baselines_test.py trains one.
  if model.maxent_features == "exact":
    # Built from training tokens (tests/maxent_features_test.py): in a
    # cycle, each context has one next word, so one feature per context.
    ids = np.arange(1000) % 100
    params = models.init_lm(jax.random.key(0), model, ids)
    contexts = params[optim.FROZEN]["child_tok"].shape[0]
    assert params["word_weights"].shape == (contexts,)
    return
  shapes = jax.eval_shape(lambda k: models.init_lm(k, model), jax.random.key(0))
  layers = {"rnn": "layers", "neural_ngram": "hidden"}.get(model.kind)
  if layers:
    assert len(shapes[layers]) == cfg.model.num_layers
  else:
    assert shapes["table"].shape == (2**model.hash_bits + 99,)


def test_zaremba_variants_match_the_paper():
  ptb = load_module(os.path.join(common.CONFIG_DIR, "ptb_lstm.py"))
  small, medium, large = (
      config_lib.from_dict(ptb.get_config(v).to_dict())
      for v in ("small", "medium", "large")
  )
  assert (
      small.model.hidden,
      small.model.dropout,
      small.data.bptt,
      small.train.num_epochs,
      small.optim.clip_norm,
  ) == (200, 0.0, 20, 13, 5.0)
  assert (
      medium.model.hidden,
      medium.model.dropout,
      medium.data.bptt,
      medium.train.num_epochs,
      medium.model.init_scale,
  ) == (650, 0.5, 35, 39, 0.05)
  assert (
      large.model.hidden,
      large.model.dropout,
      large.train.num_epochs,
      large.optim.clip_norm,
      large.model.init_scale,
  ) == (1500, 0.65, 55, 10.0, 0.04)
  assert (small.model.init_scale, medium.data.bptt, large.data.bptt) == (
      0.1,
      35,
      35,
  )
  assert [
      (c.optim.decay_factor, c.optim.decay_after_epochs)
      for c in (small, medium, large)
  ] == [(0.5, 4), (1 / 1.2, 6), (1 / 1.15, 14)]
  for c in (small, medium, large):
    assert c.data.batch_size == 20 and c.optim.learning_rate == 1.0
    assert c.optim.schedule == "epoch_decay" and c.optim.name == "sgd"
    assert c.optim.loss_reduction == "sum_time" and c.model.num_layers == 2


def test_unknown_key_and_bad_values_are_rejected():
  base = config_lib.to_dict(config_lib.Config())
  base["model"]["hiden"] = 3
  with pytest.raises(
      config_lib.ConfigError, match="unknown config key model.hiden"
  ):
    config_lib.from_dict(base)
  with pytest.raises(
      config_lib.ConfigError, match="data.batch_size must be positive"
  ):
    config_lib.replace(config_lib.Config(), data={"batch_size": -1})
  with pytest.raises(config_lib.ConfigError, match="must be int"):
    config_lib.replace(config_lib.Config(), model={"hidden": "big"})


def test_unknown_word_classes_are_for_sentence_tasks_with_rare_words():
  pos = resolved(os.path.join(common.CONFIG_DIR, "conll2000.py"), "pos")
  assert config_lib.replace(pos, data={"unk_classes": True}).data.unk_classes
  for cfg, data in (
      (config_lib.Config(), {"unk_classes": True}),
      (pos, {"unk_classes": True, "vocab_min_count": 1}),
  ):
    with pytest.raises(config_lib.ConfigError, match="data.unk_classes"):
      config_lib.replace(cfg, data=data)
