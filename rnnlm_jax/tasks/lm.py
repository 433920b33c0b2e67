"""Language modelling as a task: next-token prediction over a corpus.

Batches are one epoch's segments [S, B, T] of "x", "y", "mask" and
"reset"; the carry is the recurrent state handed from segment to segment
(truncated BPTT); the metrics are summed negative log-likelihoods and token
counts, reported as loss, perplexity and, at character level, bits per
character.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np

from rnnlm_jax import batching
from rnnlm_jax import config as config_lib
from rnnlm_jax import corpus as corpus_lib
from rnnlm_jax.vocab import Vocab
from rnnlm_jax import losses
from rnnlm_jax import metrics as metrics_lib
from rnnlm_jax import models
from rnnlm_jax.config import Config
from rnnlm_jax.config import ModelConfig

# A training loss this many nats above the uniform distribution's (log V)
# is divergence: the model gives the observed tokens e^-20 (two billionths)
# of the probability that guessing would, which no run recovers from in
# practice, while the losses of a healthy start sit at about log V.
DIVERGED_MARGIN = 20.0


def make_loss(cfg: ModelConfig, reduction: str = "mean"):
  """``loss(params, carry, batch, key, hparams) -> (objective, (carry,
  sums))`` for one segment: the mean (or time-summed) token NLL, plus the
  activation penalties where model.ar_alpha or model.tar_beta are set
  (models.activation_penalty, the same whichever the reduction), the next
  segment's carry, and {"nll": summed NLL, "count": tokens}, which never
  include the penalties."""
  penalised = cfg.ar_alpha > 0 or cfg.tar_beta > 0

  def loss(params, carry, batch, key, hparams):
    args = (
        params,
        cfg,
        carry,
        batch["x"],
        batch["y"],
        batch["reset"],
        key,
        hparams["dropout"],
    )
    if penalised:
      nll_BT, carry, h_BTH, dropped_BTH = models.token_nll_with_states(*args)
    else:
      nll_BT, carry = models.token_nll(*args)
    objective = losses.training_loss(nll_BT, batch["mask"], reduction)
    if penalised:
      objective += models.activation_penalty(
          h_BTH,
          dropped_BTH,
          batch["mask"],
          cfg.ar_alpha,
          cfg.tar_beta,
          batch["reset"],
      )
    total, count = losses.masked_sums(nll_BT, batch["mask"])
    return objective, (carry, {"nll": total, "count": count})

  return loss


def make_variable_loss(cfg: ModelConfig, reduction: str, num_lengths: int):
  """make_loss over a variable-length BPTT epoch's scheduled segment
  (rnnlm_jax.steps.select_segment of corpus.train_batches): lax.switch
  runs only the scheduled length's branch, carrying the state as a fixed
  length does."""
  segment_loss = make_loss(cfg, reduction)

  def loss(params, carry, batch, key, hparams):
    branches = [
        lambda p, c, bs, k, h, i=i: segment_loss(p, c, bs[i], k, h)
        for i in range(num_lengths)
    ]
    return jax.lax.switch(
        batch["bucket"], branches, params, carry, batch["buckets"], key, hparams
    )

  return loss


def make_evaluate(cfg: ModelConfig):
  """A jitted ``evaluate(params, carry, batches) -> (nll_sum, count, carry)``.

  Runs every segment of a split in one compiled lax.scan, carrying the state
  across segments; only the forward pass is built.
  """

  def evaluate(params, carry, batches):
    def body(c, batch):
      nll_BT, c = models.token_nll(
          params, cfg, c, batch["x"], batch["y"], batch["reset"]
      )
      return c, losses.masked_sums(nll_BT, batch["mask"])

    carry, (nll_S, count_S) = jax.lax.scan(body, carry, batches)
    return nll_S.sum(), count_S.sum(), carry

  return jax.jit(evaluate)


def reports_bpc(data) -> bool:
  """Whether the metrics of a run on this data (a DataConfig) include bits
  per character: at character level, or where data.report_bpc says that
  the tokens are characters."""
  return data.level == "char" or data.report_bpc


def split_metrics(nll: float, split: str, bpc: bool) -> dict:
  out = {f"{split}_loss": nll, f"{split}_ppl": metrics_lib.perplexity(nll)}
  if bpc:
    out[f"{split}_bpc"] = metrics_lib.bits(nll)
  return out


def report(nll_fn, corpus: corpus_lib.Corpus, bpc: bool, splits) -> dict:
  """Each split's metrics and token count from ``nll_fn(split) -> (mean
  nll, count)``, and the synthetic corpus's floor."""
  results = {}
  for split in splits:
    nll, count = nll_fn(split)
    results.update(split_metrics(nll, split, bpc))
    results[f"{split}_tokens"] = count
  if corpus.floor_ppl:
    results["floor_ppl"] = corpus.floor_ppl["test"]
    results["valid_floor_ppl"] = corpus.floor_ppl["valid"]
  return results


class Model:
  """The language model's pieces that need no data: initial parameters,
  carry and traced hyperparameters, and the loss of one batch."""

  def __init__(self, cfg: ModelConfig, batch_size: int, reduction="mean"):
    self.model_cfg = cfg
    self.batch_size = batch_size
    self.loss = make_loss(cfg, reduction)

  def init_params(self, key):
    return models.init_lm(key, self.model_cfg)

  def init_carry(self):
    return models.init_carry(self.model_cfg, self.batch_size)

  def init_hparams(self) -> dict:
    return {"dropout": jnp.float32(self.model_cfg.dropout)}


class LanguageModel(Model):
  """The language-modelling task of one config over a loaded corpus (see
  rnnlm_jax.tasks.Task). Each evaluation split's batches are put on the
  device once, on first use."""

  selection_metric = "valid_loss"

  def __init__(
      self, cfg: Config, corpus: corpus_lib.Corpus, eval_batch_size=None
  ):
    self.cfg = cfg
    self.corpus = corpus
    self.vocab = corpus.vocab
    self.eval_batch_size = eval_batch_size or cfg.data.eval_batch_size
    self.max_train_loss = math.log(len(corpus.vocab)) + DIVERGED_MARGIN
    super().__init__(cfg.model, cfg.data.batch_size, cfg.optim.loss_reduction)
    self._evaluate = make_evaluate(cfg.model)
    d = cfg.data
    self.bptt_lengths = ()
    if d.variable_bptt and d.mode == "stream":
      self.bptt_lengths = batching.bptt_lengths(
          d.bptt, d.bptt_std, d.bptt_quantum
      )
      self.loss = make_variable_loss(
          cfg.model, cfg.optim.loss_reduction, len(self.bptt_lengths)
      )
    self._train_ids = self._train_reset = None
    if cfg.model.maxent_features == "exact":
      # The stream as training reads it (batching.train_stream).
      self._train_ids = np.concatenate(
          [[corpus.start_id], corpus.ids["train"]]
      ).astype(np.int32)
      self._train_reset = corpus_lib.reset_mask(
          self._train_ids, cfg.data, corpus.start_id
      )
    # Over K trials' stacked parameters, sharing the batches.
    self._evaluate_stacked = jax.jit(
        jax.vmap(self._evaluate, in_axes=(0, None, None))
    )
    self._eval_batches = {}

  def init_params(self, key):
    """Model.init_params; the exact maxent features are built from the
    training split."""
    return models.init_lm(
        key, self.model_cfg, self._train_ids, self._train_reset
    )

  def train_batches(self, epoch: int) -> dict:
    return corpus_lib.train_batches(
        self.corpus, self.cfg.data, epoch, self.cfg.train.seed
    )

  def batches_change_each_epoch(self) -> bool:
    """Sentence mode reshuffles every epoch, and variable-length BPTT
    draws its lengths afresh; fixed-length streams stay the same."""
    return self.cfg.data.mode == "sentence" or bool(self.bptt_lengths)

  def lr_scale(self, batch):
    """The learning rate's factor for a segment (rnnlm_jax.steps): its
    length / bptt under variable-length BPTT (Merity et al. 2018), else 1."""
    if not self.bptt_lengths:
      return jnp.float32(1.0)
    lengths = jnp.asarray(self.bptt_lengths, jnp.float32)
    return lengths[batch["bucket"]] / self.cfg.data.bptt

  def summarise(self, sums: dict, split: str = "train") -> dict:
    nll = float(sums["nll"]) / max(float(sums["count"]), 1.0)
    return split_metrics(nll, split, reports_bpc(self.cfg.data))

  def describe(self) -> str:
    lengths = self.bptt_lengths
    return (
        f"vocab {len(self.vocab):,}, {len(self.corpus.ids['train']):,} "
        "train tokens"
        + (
            f", variable-length BPTT around {self.cfg.data.bptt} "
            f"({lengths[0]}-{lengths[-1]} by {self.cfg.data.bptt_quantum})"
            if lengths
            else ""
        )
    )

  def _batches(self, split: str):
    if split not in self._eval_batches:
      self._eval_batches[split] = jax.device_put(
          corpus_lib.eval_batches(
              self.corpus, self.cfg.data, split, self.eval_batch_size
          )
      )
    return self._eval_batches[split]

  def _sums(self, params, split: str) -> dict:
    carry = models.init_carry(self.cfg.model, self.eval_batch_size)
    total, count, _ = jax.device_get(
        self._evaluate(params, carry, self._batches(split))
    )
    return {"nll": total, "count": count}

  def nll(self, params, split: str) -> tuple[float, int]:
    """(mean nll per token, number of tokens) over the whole split."""
    sums = self._sums(params, split)
    return float(sums["nll"]) / max(float(sums["count"]), 1.0), int(
        sums["count"]
    )

  def evaluate(self, params, split: str, k: int = 1) -> list[dict]:
    """The split's metrics for each of k trials whose parameters are
    stacked on a leading axis (k > 1), or for one model's (k == 1)."""
    if k == 1:
      return [self.summarise(self._sums(params, split), split)]
    carry = models.init_carry(self.cfg.model, self.eval_batch_size)
    total_K, count_K, _ = jax.device_get(
        self._evaluate_stacked(params, carry, self._batches(split))
    )
    return [
        self.summarise({"nll": t, "count": c}, split)
        for t, c in zip(total_K, count_K)
    ]

  def report(self, params, splits=("valid", "test")) -> dict:
    """Loss, perplexity, bits per character (char level), token counts and
    the synthetic corpus's floor."""
    return report(
        lambda split: self.nll(params, split),
        self.corpus,
        reports_bpc(self.cfg.data),
        splits,
    )

  def decode(self, params, *args, **kwargs):
    """Sampling lives in rnnlm_jax.sampling (experiments.sample)."""
    raise NotImplementedError("sample with experiments.sample")


def with_vocab_size(cfg: Config, vocab_size: int) -> Config:
  if cfg.model.vocab_size not in (0, vocab_size):
    raise config_lib.ConfigError(
        f"model.vocab_size={cfg.model.vocab_size} but the vocabulary has "
        f"{vocab_size} tokens"
    )
  return config_lib.replace(cfg, model={"vocab_size": vocab_size})


def make_tasks(
    cfgs: list[Config], saved_vocab: Vocab | None = None
) -> list[LanguageModel]:
  """One task per config over one corpus, loaded once from the first
  config's data (``saved_vocab``: a run's, reused); each config gets the
  vocabulary's size."""
  corpus = corpus_lib.load_corpus(cfgs[0].data, saved_vocab)
  return [
      LanguageModel(with_vocab_size(c, len(corpus.vocab)), corpus) for c in cfgs
  ]
