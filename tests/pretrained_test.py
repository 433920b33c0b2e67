"""Embeddings from a language-model run: each word the run knows gets its
row, the others keep theirs, and the coverage is counted."""

import jax
import numpy as np
import pytest

from experiments.configs import smoke
from rnnlm_jax import config as config_lib
from rnnlm_jax import models
from rnnlm_jax import pretrained
from rnnlm_jax import train
from rnnlm_jax.config import ConfigError
from rnnlm_jax.vocab import Vocab


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
  cfg = config_lib.from_dict(smoke.get_config().to_dict())
  vocab = Vocab(("<eos>", "the", "film", "good", "<unk>"))
  cfg = train.with_vocab_size(cfg, len(vocab))
  params = models.init_lm(jax.random.key(0), cfg.model)
  workdir = str(tmp_path_factory.mktemp("lm"))
  train.init_run_from_params(cfg, workdir, params, vocab)
  return workdir, np.asarray(params["embed"]), vocab


def test_known_words_take_the_runs_rows_and_coverage_is_counted(lm_run):
  workdir, embed, lm_vocab = lm_run
  vocab = Vocab(("<unk>", "good", "bad", "film"))
  train_tokens = [("good", "film"), ("bad", "film", "film")]
  got = pretrained.embeddings_from_run(workdir, vocab, train_tokens)
  np.testing.assert_array_equal(got.found_V, [False, True, False, True])
  assert got.token_coverage == pytest.approx(4 / 5)
  mine = np.full((4, embed.shape[1]), 7.0, np.float32)
  out = got.apply(mine)
  np.testing.assert_array_equal(out[1], embed[lm_vocab.id("good")])
  np.testing.assert_array_equal(out[3], embed[lm_vocab.id("film")])
  np.testing.assert_array_equal(out[[0, 2]], 7.0)  # <unk> is not mapped.
  assert "2 of 4 words (50.0%), 80.0% of train tokens" in got.describe()


def test_a_missing_run_or_another_width_is_refused(lm_run, tmp_path):
  with pytest.raises(FileNotFoundError):
    pretrained.embeddings_from_run(str(tmp_path), Vocab(("a",)), [])
  workdir, embed, _ = lm_run
  with pytest.raises(ConfigError, match=f"width {embed.shape[1]}"):
    pretrained.embeddings_from_run(workdir, Vocab(("a",)), [], dim=3)


def test_sentence_options_are_refused_for_a_language_model():
  with pytest.raises(ConfigError, match="model.bidirectional"):
    config_lib.from_dict({"model": {"bidirectional": True}})
  with pytest.raises(ConfigError, match="model.head='softmax'"):
    config_lib.from_dict({"task": "classify", "model": {"head": "crf"}})
  with pytest.raises(ConfigError, match="only with data.target='chunk'"):
    config_lib.from_dict(
        {"task": "tag", "model": {"feature_dim": 4}, "data": {"target": "pos"}}
    )
