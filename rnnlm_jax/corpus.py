"""From a DataConfig to token ids: the built-in synthetic language, a folder
of text files, or a hub dataset; and from token ids to the device-ready
batches of one epoch or one evaluation split.
"""

import dataclasses
import os

import numpy as np

from rnnlm_jax import batching
from rnnlm_jax import buckets
from rnnlm_jax import cache
from rnnlm_jax import english
from rnnlm_jax import pcfg
from rnnlm_jax import synthetic
from rnnlm_jax.config import DataConfig
from rnnlm_jax.errors import DataError
from rnnlm_jax.sources import SPLITS
from rnnlm_jax.vocab import EOS, Vocab, encode_splits


@dataclasses.dataclass(frozen=True)
class Corpus:
  vocab: Vocab
  ids: dict  # split -> int32 [N]
  floor_ppl: dict  # split -> perplexity of the true generator (synthetic only)

  @property
  def start_id(self) -> int:
    """The token before the first one of a split (<eos>, or the newline for
    characters)."""
    return self.vocab.boundary_id


def _source(cfg: DataConfig) -> dict:
  return {
      "dir": cfg.dir,
      "hf_path": cfg.hf_path,
      "hf_name": cfg.hf_name,
      "text_column": cfg.text_column,
      "level": cfg.level,
      "split_fractions": tuple(cfg.split_fractions) or None,
      "encoding_errors": cfg.encoding_errors,
  }


def load_corpus(cfg: DataConfig, vocab: Vocab | None = None) -> Corpus:
  """Loads and encodes all three splits; ``vocab`` (a saved run's) is reused
  instead of building one from train."""
  if cfg.source == "synthetic":
    n_train, n_valid, n_test = cfg.synthetic_sentences
    made = synthetic.make_corpus(n_train, n_valid, n_test, cfg.synthetic_seed)
    if vocab is None:
      # The language's whole vocabulary, so that a small train split leaves
      # no test word unknown and the floor stays exact.
      words = pcfg.vocabulary(english.default_grammar())
      vocab = Vocab(tokens=(EOS, *words))
    vocab, ids = encode_splits({s: made[s] for s in SPLITS}, "word", vocab)
    floors = {
        s: synthetic.floor_perplexity(made["logprob"][s], made["num_tokens"][s])
        for s in SPLITS
    }
    return Corpus(vocab, ids, floors)
  source = _source(cfg)
  if cfg.source == "files":
    source["hf_path"] = ""
    if not cfg.dir:
      raise DataError(
          "data.source='files' needs data.dir (or the "
          "RNNLM_DATA environment variable)"
      )
  else:
    source["dir"] = ""
  vocab, ids = cache.load_corpus(
      source,
      cfg.level,
      cfg.vocab_max_size,
      cfg.vocab_min_count,
      vocab,
      os.path.expanduser(cfg.cache_dir) or None,
  )
  return Corpus(vocab, ids, {})


def reset_mask(x_SBT, cfg: DataConfig, start_id: int):
  """Where the state (or window) restarts: at each <eos> under
  data.reset_at_eos, else nowhere."""
  if cfg.reset_at_eos:
    return x_SBT == start_id
  return np.zeros(x_SBT.shape, bool)


def _stack_segments(ids_BN, bptt):
  n = batching.num_segments(ids_BN, bptt)
  if n == 0:
    raise DataError(
        f"too little data: a stream of {ids_BN.shape[1]} tokens has no full "
        f"segment of bptt={bptt}; lower data.batch_size or data.bptt"
    )
  xs, ys = zip(*(batching.segment(ids_BN, i, bptt) for i in range(n)))
  return np.stack(xs), np.stack(ys)


def _sentence_arrays(ids_N, start_id, batch_size, cfg: DataConfig, seed):
  batches = batching.sentence_batches(
      ids_N, start_id, batch_size, cfg.max_sentence_len, seed
  )
  x, y, mask = (np.stack(a) for a in zip(*batches))
  reset = np.zeros(x.shape, bool)
  reset[:, :, 0] = True
  return {"x": x, "y": y, "mask": mask.astype(np.float32), "reset": reset}


def _variable_batches(ids_BN, cfg: DataConfig, start_id, epoch, seed):
  """A variable-length BPTT epoch (batching.variable_segments) in the
  bucketed layout (rnnlm_jax.buckets): one bucket per segment length, the
  schedule in stream order."""
  rng = np.random.default_rng(np.random.SeedSequence([seed, epoch]))
  try:
    lengths, per_length = batching.variable_segments(
        ids_BN,
        cfg.bptt,
        cfg.bptt_std,
        cfg.bptt_half_prob,
        cfg.bptt_quantum,
        rng,
    )
  except ValueError as e:
    raise DataError(f"{e}; lower data.batch_size or data.bptt") from None
  allowed = batching.bptt_lengths(cfg.bptt, cfg.bptt_std, cfg.bptt_quantum)
  bucket = np.searchsorted(allowed, lengths)
  within = np.zeros(len(lengths), np.int64)
  for k in range(len(allowed)):
    at = bucket == k
    within[at] = np.arange(at.sum())
  return {
      buckets.SCHEDULE: np.stack([bucket, within], 1).astype(np.int32),
      "buckets": tuple(
          {
              "x": x,
              "y": y,
              "mask": np.ones(x.shape, np.float32),
              "reset": reset_mask(x, cfg, start_id),
          }
          for x, y in per_length
      ),
  }


def train_batches(corpus: Corpus, cfg: DataConfig, epoch: int, seed: int):
  """One epoch's batches as numpy arrays [S, B, T]: x, y, mask, reset.

  Stream mode: B contiguous streams cut into segments of bptt tokens, the
  same every epoch; with data.variable_bptt, segments of lengths drawn
  afresh each epoch (by seed and epoch), in the bucketed layout of
  rnnlm_jax.buckets, one bucket per length. Sentence mode: independent padded sentences, shuffled
  by (seed, epoch) so that the order is a function of the epoch.
  """
  ids = corpus.ids["train"]
  if cfg.mode == "sentence":
    return _sentence_arrays(
        ids,
        corpus.start_id,
        cfg.batch_size,
        cfg,
        int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0]),
    )
  ids_BN = batching.train_stream(ids, cfg.batch_size, corpus.start_id)
  if cfg.variable_bptt:
    return _variable_batches(ids_BN, cfg, corpus.start_id, epoch, seed)
  x, y = _stack_segments(ids_BN, cfg.bptt)
  return {
      "x": x,
      "y": y,
      "mask": np.ones(x.shape, np.float32),
      "reset": reset_mask(x, cfg, corpus.start_id),
  }


def eval_batches(
    corpus: Corpus, cfg: DataConfig, split: str, batch_size: int | None = None
):
  """Batches [S, B, T] covering every token of a split exactly once."""
  batch_size = batch_size or cfg.eval_batch_size
  ids = corpus.ids[split]
  if len(ids) == 0:
    raise DataError(f"split {split!r} has no tokens")
  if cfg.mode == "sentence":
    return _sentence_arrays(ids, corpus.start_id, batch_size, cfg, None)
  x, y, mask = batching.eval_stream(ids, batch_size, cfg.bptt, corpus.start_id)
  return {
      "x": x,
      "y": y,
      "mask": mask.astype(np.float32),
      "reset": reset_mask(x, cfg, corpus.start_id),
  }
