"""The translation task (Config.task "translate"): an encoder-decoder
(rnnlm_jax.seq2seq) over sentence pairs (rnnlm_jax.pairs).

Batches are padded and bucketed by source length
(rnnlm_jax.buckets.make_pair_batches), reshuffled each epoch; the decoder is
trained with teacher forcing (scheduled sampling and label smoothing as
options); the loss is the mean over the batch's target tokens, each
sentence's <eos> included. There is no carry between batches.

Model selection uses ``valid_loss``, the teacher-forced NLL per target token.
The final report decodes valid and test greedily and with beam search
(model.beam_size, ranked by log p / length ** model.length_alpha), detokenises
the output (Moses) and scores it with sacrebleu against the untokenised
reference sentences: BLEU and chrF, case-insensitive when the model was
trained on lowercased text (data.lowercase; sacrebleu's signature says so),
and BLEU by source length.

The two vocabularies are saved as one (the run's vocab.json): each token
prefixed with its side, "src:" or "tgt:" (``joint_vocab``).
"""

import dataclasses
import functools
import math
import time

import jax
import jax.numpy as jnp
import numpy as np

from rnnlm_jax import buckets
from rnnlm_jax import config as config_lib
from rnnlm_jax import decoding
from rnnlm_jax import pairs as pairs_lib
from rnnlm_jax import seq2seq
from rnnlm_jax import steps
from rnnlm_jax.config import Config
from rnnlm_jax.errors import DataError
from rnnlm_jax.tasks import sentences
from rnnlm_jax.tasks.lm import DIVERGED_MARGIN
from rnnlm_jax.vocab import EOS
from rnnlm_jax.vocab import UNK
from rnnlm_jax.vocab import Vocab
from rnnlm_jax.vocab import build_vocab

BOS = "<bos>"
SIDES = ("src", "tgt")
SOURCE_SPECIALS = (UNK,)
TARGET_SPECIALS = (EOS, UNK, BOS)  # <eos> is id 0, the padding's id.
DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)
# Source-length bins of the BLEU-by-length table: [low, high] tokens.
LENGTH_BINS = ((1, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 15), (16, 20),
               (21, 30), (31, 1000))


def joint_vocab(src: Vocab, tgt: Vocab) -> Vocab:
  """Both vocabularies as one, each token prefixed with its side."""
  return Vocab(
      tuple(f"src:{t}" for t in src.tokens)
      + tuple(f"tgt:{t}" for t in tgt.tokens)
  )


def split_vocab(vocab: Vocab) -> tuple[Vocab, Vocab]:
  """joint_vocab's inverse."""
  sides = {s: [] for s in SIDES}
  for token in vocab.tokens:
    side, sep, word = token.partition(":")
    if not sep or side not in sides:
      raise DataError(
          f"the run's vocabulary token {token!r} has no src: or tgt: prefix "
          "(not a translation run's)"
      )
    sides[side].append(word)
  return Vocab(tuple(sides["src"])), Vocab(tuple(sides["tgt"]))


@dataclasses.dataclass(frozen=True)
class TranslationData:
  src_vocab: Vocab
  tgt_vocab: Vocab
  pairs: dict  # split -> pairs.Pairs (with the count of pairs dropped)


def fractions(cfg: Config) -> tuple:
  return tuple(cfg.data.split_fractions) or DEFAULT_FRACTIONS


def load_data(cfg: Config, saved_vocab: Vocab | None = None) -> TranslationData:
  """The split, tokenised and length-filtered pairs, and the vocabularies of
  train's two sides (or a run's)."""
  d = cfg.data
  splits = pairs_lib.load_pairs(
      sentences.data_source(cfg),
      d.src_lang,
      d.tgt_lang,
      d.lowercase,
      d.max_sentence_len,
      fractions(cfg),
      d.split_seed,
  )
  if saved_vocab is not None:
    src_vocab, tgt_vocab = split_vocab(saved_vocab)
  else:
    build = lambda seqs, specials: build_vocab(
        seqs, d.vocab_max_size, d.vocab_min_count, specials
    )
    src_vocab = build(splits["train"].src, SOURCE_SPECIALS)
    tgt_vocab = build(splits["train"].tgt, TARGET_SPECIALS)
  return TranslationData(src_vocab, tgt_vocab, splits)


def complete_config(cfg: Config, data: TranslationData) -> Config:
  """cfg with both vocabulary sizes taken from the data."""
  for key, have, now in (
      ("model.vocab_size", cfg.model.vocab_size, len(data.src_vocab)),
      ("model.target_vocab_size", cfg.model.target_vocab_size,
       len(data.tgt_vocab)),
  ):
    if have not in (0, now):
      raise config_lib.ConfigError(f"{key}={have} but the data gives {now}")
  return config_lib.replace(
      cfg,
      model={
          "vocab_size": len(data.src_vocab),
          "target_vocab_size": len(data.tgt_vocab),
      },
  )


def encode_target(tgt_vocab: Vocab, tokens) -> np.ndarray:
  """[<bos>, ids..., <eos>]."""
  ids = tgt_vocab.encode(tokens)
  return np.concatenate(
      [[tgt_vocab.id(BOS)], ids, [tgt_vocab.id(EOS)]]
  ).astype(np.int32)


def make_loss(cfg: Config):
  """``loss(params, carry, batch, key, hparams)`` of one scheduled batch of
  a bucketed epoch (rnnlm_jax.steps.switch_buckets)."""
  return steps.switch_buckets(
      lambda params, b, key, rate: seq2seq.loss_sums(
          params, cfg.model, b, key, rate
      )
  )


def _eval_sums(params, cfg: Config, b: dict) -> dict:
  """Teacher-forced sums of one padded batch, without dropout."""
  _, sums = seq2seq.loss_sums(params, cfg.model, b)
  return sums


def bleu_scores(hyps: list[str], refs: list[str], lowercase: bool) -> dict:
  """sacrebleu's corpus BLEU and chrF, and BLEU's signature."""
  import sacrebleu  # pylint: disable=g-import-not-at-top

  bleu = sacrebleu.metrics.BLEU(lowercase=lowercase)
  chrf = sacrebleu.metrics.CHRF(lowercase=lowercase)
  return {
      "bleu": bleu.corpus_score(hyps, [refs]).score,
      "chrf": chrf.corpus_score(hyps, [refs]).score,
      "signature": str(bleu.get_signature()),
  }


def bleu_by_length(hyps, refs, src_lengths, lowercase: bool) -> dict:
  """{"low-high": {"bleu", "sentences"}} over LENGTH_BINS of the source
  length (bins without sentences left out)."""
  out = {}
  lengths = np.asarray(src_lengths)
  for low, high in LENGTH_BINS:
    picked = np.flatnonzero((lengths >= low) & (lengths <= high))
    if not len(picked):
      continue
    scores = bleu_scores(
        [hyps[i] for i in picked], [refs[i] for i in picked], lowercase
    )
    out[f"{low}-{high}"] = {"bleu": scores["bleu"], "sentences": len(picked)}
  return out


class Translator:
  """Decoding of a trained encoder-decoder: batches of tokenised source
  sentences to target tokens, greedy (beam 1) or by beam search, compiled
  once per bucket shape."""

  def __init__(self, cfg: Config, src_vocab: Vocab, tgt_vocab: Vocab):
    self.cfg = cfg
    self.src_vocab = src_vocab
    self.tgt_vocab = tgt_vocab
    self.bos = tgt_vocab.id(BOS)
    self.eos = tgt_vocab.id(EOS)
    # Of the last translate call, without each bucket's first (compiling)
    # batch; nan where every bucket had one batch.
    self.sentences_per_second = math.nan
    self._decode = jax.jit(
        functools.partial(_decode_batch, cfg.model, self.bos, self.eos),
        static_argnames=("beam", "max_len"),
    )

  def max_len(self, src_len: int) -> int:
    """Decoding steps for sources up to src_len tokens: the configured
    length or twice the source, and the <eos>."""
    return max(self.cfg.data.max_sentence_len, 2 * src_len) + 1

  def translate(
      self, params, sources: list, beam: int, alpha: float,
      batch_size: int = 64,
  ) -> list[dict]:
    """{"tokens", "logp", "score"} per tokenised source sentence."""
    if not sources:
      return []
    ids = [self.src_vocab.encode(s) for s in sources]
    lengths = [max(len(s), 1) for s in ids]
    ids = [s if len(s) else np.array([self.src_vocab.id(UNK)]) for s in ids]
    dummy = [np.array([self.bos, self.eos], np.int32)] * len(ids)
    bounds = buckets.bucket_bounds(lengths, self.cfg.data.num_buckets)
    batches = buckets.make_pair_batches(ids, dummy, batch_size, bounds)
    results = [None] * len(ids)
    timed = [0, 0.0]  # Sentences and seconds of calls that did not compile.
    for b in batches["buckets"]:
      max_len = self.max_len(b["src"].shape[-1])
      for s in range(b["src"].shape[0]):
        t0 = time.perf_counter()
        out = jax.device_get(
            self._decode(
                params, b["src"][s], b["src_mask"][s], beam=beam,
                max_len=max_len, alpha=alpha,
            )
        )
        if s > 0:
          timed[0] += int((b["index"][s] >= 0).sum())
          timed[1] += time.perf_counter() - t0
        for row, e in enumerate(b["index"][s]):
          if e < 0:
            continue
          n = int(out["lengths"][row])
          toks = [int(t) for t in out["tokens"][row, :n]]
          if toks and toks[-1] == self.eos:
            toks = toks[:-1]
          results[e] = {
              "tokens": [self.tgt_vocab.tokens[t] for t in toks],
              "logp": float(out["logp"][row]),
              "score": float(out["score"][row]),
          }
    self.sentences_per_second = timed[0] / timed[1] if timed[1] else math.nan
    return results


def _decode_batch(mcfg, bos, eos, params, src_BS, mask_BS, beam, max_len,
                  alpha):
  """The best hypothesis of each source sentence. The encoded source is a
  constant of the step (repeated once per beam: a hypothesis's parent is
  always of its own sentence), not part of the state the beam reorders."""
  memory = seq2seq.encode_source(params, mcfg, src_BS, mask_BS)
  state = seq2seq.init_decoder_state(params, mcfg, memory)
  first_B = jnp.full(src_BS.shape[:1], bos, jnp.int32)
  if beam > 1:
    memory = jax.tree.map(lambda a: jnp.repeat(a, beam, axis=0), memory)
  step = functools.partial(_step, mcfg, memory)
  if beam == 1:
    toks, lengths, logp = decoding.greedy_batched(
        step, params, state, first_B, max_len, eos
    )
    score = logp / jnp.maximum(lengths, 1).astype(jnp.float32) ** alpha
    return {"tokens": toks, "lengths": lengths, "logp": logp, "score": score}
  toks, lengths, logp, score = decoding.beam_search_batched(
      step, params, state, first_B, beam, max_len, eos, alpha
  )
  return {
      "tokens": toks[:, 0],
      "lengths": lengths[:, 0],
      "logp": logp[:, 0],
      "score": score[:, 0],
  }


def _step(mcfg, memory, params, state, tokens_N):
  """The decoder's step as the searches drive it."""
  state, logits_NV, _ = seq2seq.decoder_step(
      params, mcfg, memory, state, tokens_N
  )
  return state, jax.nn.log_softmax(logits_NV)


class TranslationTask:
  """A translate config over its loaded data (rnnlm_jax.tasks.Task)."""

  selection_metric = "valid_loss"

  def __init__(self, cfg: Config, data: TranslationData, eval_batch_size=None):
    self.cfg = cfg
    self.data = data
    self.vocab = joint_vocab(data.src_vocab, data.tgt_vocab)
    self.eval_batch_size = eval_batch_size or cfg.data.eval_batch_size
    self.max_train_loss = (
        math.log(cfg.model.target_vocab_size) + DIVERGED_MARGIN
    )
    self.encoded = {
        s: (
            [data.src_vocab.encode(t) for t in p.src],
            [encode_target(data.tgt_vocab, t) for t in p.tgt],
        )
        for s, p in data.pairs.items()
    }
    lengths = [len(s) for s in self.encoded["train"][0]]
    self.bounds = buckets.bucket_bounds(lengths, cfg.data.num_buckets)
    self.loss = make_loss(cfg)
    sums = functools.partial(_eval_sums, cfg=cfg)
    self._sums = jax.jit(lambda p, b: sums(p, b=b))
    self._sums_stacked = jax.jit(jax.vmap(lambda p, b: sums(p, b=b),
                                          in_axes=(0, None)))
    self._eval_batches = {}
    self.translator = Translator(cfg, data.src_vocab, data.tgt_vocab)

  # Training.
  def init_params(self, key):
    return seq2seq.init_params(key, self.cfg.model)

  def init_carry(self):
    return ()

  def init_hparams(self) -> dict:
    return {"dropout": jnp.float32(self.cfg.model.dropout)}

  def _batches(self, split: str, batch_size: int, rng=None) -> dict:
    src, tgt = self.encoded[split]
    return buckets.make_pair_batches(src, tgt, batch_size, self.bounds, rng)

  def train_batches(self, epoch: int) -> dict:
    rng = np.random.default_rng([self.cfg.train.seed, epoch])
    return self._batches("train", self.cfg.data.batch_size, rng)

  def batches_change_each_epoch(self) -> bool:
    return True

  def summarise(self, sums: dict, split: str = "train") -> dict:
    count = max(float(sums["count"]), 1.0)
    loss = float(sums["nll"]) / count
    return {
        f"{split}_loss": loss,
        f"{split}_ppl": math.exp(min(loss, 700.0)),
        f"{split}_acc": 100.0 * float(sums["correct"]) / count,
    }

  def describe(self) -> str:
    d = self.data
    train = self._batches("train", self.cfg.data.batch_size)
    sizes = ", ".join(f"{s} {len(p.src):,}" for s, p in d.pairs.items())
    dropped = sum(p.dropped for p in d.pairs.values())
    return (
        f"{self.cfg.data.src_lang}->{self.cfg.data.tgt_lang} pairs: {sizes} "
        f"({dropped:,} over {self.cfg.data.max_sentence_len} tokens "
        f"dropped), vocab {len(d.src_vocab):,} source / {len(d.tgt_vocab):,} "
        f"target, {len(self.bounds)} length buckets {list(self.bounds)}, "
        f"{100 * buckets.padding_fraction(train):.1f}% padding"
    )

  # Evaluation.
  def evaluate(self, params, split: str, k: int = 1) -> list[dict]:
    """Teacher-forced loss, perplexity and token accuracy of each trial."""
    if split not in self._eval_batches:
      self._eval_batches[split] = self._batches(split, self.eval_batch_size)
    fn = self._sums if k == 1 else self._sums_stacked
    per_batch = [
        fn(params, jax.tree.map(lambda a: a[s], b))
        for b in self._eval_batches[split]["buckets"]
        for s in range(b["src"].shape[0])
    ]
    total = jax.device_get(jax.tree.map(lambda *a: sum(a), *per_batch))
    if k == 1:
      return [self.summarise(total, split)]
    return [
        self.summarise(jax.tree.map(lambda a: a[i], total), split)
        for i in range(k)
    ]

  def translate_split(self, params, split: str, beam: int) -> dict:
    """Hypotheses of a split's sources, detokenised, with the decoding
    speed (Translator.sentences_per_second)."""
    p = self.data.pairs[split]
    out = self.translator.translate(
        params, p.src, beam, self.cfg.model.length_alpha, self.eval_batch_size
    )
    lang = self.cfg.data.tgt_lang
    return {
        "hyps": [pairs_lib.detokenize(o["tokens"], lang) for o in out],
        "sentences_per_second": self.translator.sentences_per_second,
    }

  def report(self, params, splits=None) -> dict:
    """Loss and perplexity, and the BLEU and chrF of greedy and beam
    decoding, of valid and test; BLEU by source length of the beam."""
    results = {}
    m, lowercase = self.cfg.model, self.cfg.data.lowercase
    beams = sorted({1, m.beam_size})
    for split in splits or ("valid", "test"):
      (metrics,) = self.evaluate(params, split)
      results.update(metrics)
      p = self.data.pairs[split]
      results[f"{split}_sentences"] = len(p.src)
      for beam in beams:
        out = self.translate_split(params, split, beam)
        scores = bleu_scores(out["hyps"], p.tgt_text, lowercase)
        suffix = "" if beam == m.beam_size else "_greedy"
        results[f"{split}_bleu{suffix}"] = scores["bleu"]
        results[f"{split}_chrf{suffix}"] = scores["chrf"]
        if math.isfinite(out["sentences_per_second"]):
          results[f"{split}_sentences_per_second{suffix}"] = out[
              "sentences_per_second"
          ]
        results["bleu_signature"] = scores["signature"]
        if beam == m.beam_size:
          results[f"{split}_bleu_by_length"] = bleu_by_length(
              out["hyps"], p.tgt_text, [len(s) for s in p.src], lowercase
          )
    return results

  def decode(self, params, sources, beam=None) -> list[dict]:
    """translate_sentences with this task's model."""
    return translate_sentences(
        self.cfg, self.data.src_vocab, self.data.tgt_vocab, params, sources,
        beam, self.translator,
    )


def translate_sentences(
    cfg: Config,
    src_vocab: Vocab,
    tgt_vocab: Vocab,
    params,
    sources: list[str],
    beam: int | None = None,
    translator: Translator | None = None,
    batch_size: int = 64,
) -> list[dict]:
  """Translations of untokenised source sentences: {"source", "tokens",
  "text" (detokenised), "logp", "score"} each; beam 1 is greedy (default:
  the config's model.beam_size)."""
  d = cfg.data
  translator = translator or Translator(cfg, src_vocab, tgt_vocab)
  tokens = [pairs_lib.tokenize(s, d.src_lang, d.lowercase) for s in sources]
  out = translator.translate(
      params, tokens, beam or cfg.model.beam_size, cfg.model.length_alpha,
      batch_size,
  )
  return [
      {"source": s, **o, "text": pairs_lib.detokenize(o["tokens"], d.tgt_lang)}
      for s, o in zip(sources, out)
  ]


def attention_matrix(cfg: Config, params, src_ids, tgt_ids) -> np.ndarray:
  """The attention weights [target tokens + <eos>, source tokens] of one
  sentence pair (a decoded output, teacher-forced back through the model)."""
  b = {
      "src": np.asarray(src_ids, np.int32)[None],
      "src_mask": np.ones((1, len(src_ids)), bool),
      "tgt_in": np.asarray(tgt_ids[:-1], np.int32)[None],
      "tgt_out": np.asarray(tgt_ids[1:], np.int32)[None],
      "tgt_mask": np.ones((1, len(tgt_ids) - 1), bool),
  }
  _, attn_BTS = seq2seq.teacher_forced(params, cfg.model, b)
  return np.asarray(attn_BTS[0])


def make_tasks(
    cfgs: list[Config], saved_vocab: Vocab | None = None
) -> list[TranslationTask]:
  """One task per config over data loaded once, from the first config's
  data section."""
  data = load_data(cfgs[0], saved_vocab)
  return [TranslationTask(complete_config(c, data), data) for c in cfgs]
