"""The sentence tasks: one label per sentence ("classify", SST-2) or per
token ("tag", CoNLL-2000 chunking and POS tagging).

Batches are padded and length-bucketed (rnnlm_jax.buckets), reshuffled each
epoch; the model is rnnlm_jax.encoder's (any cell, one or two directions);
the loss is the mean negative log-likelihood per sentence (classify) or per
token (tag: a softmax per token, or a linear-chain CRF's sentence NLL over
the batch's tokens). There is no carry between batches.

Model selection uses ``valid_error`` on a held-out part of train: 100 minus
the accuracy (classify, POS) or the chunk F1 (chunking). The labelled
held-out set is reported once, at the end: "dev" (SST-2's dev.tsv) or
"test" (CoNLL-2000's test.txt).
"""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from rnnlm_jax import buckets
from rnnlm_jax import config as config_lib
from rnnlm_jax import crf
from rnnlm_jax import encoder
from rnnlm_jax import labelled
from rnnlm_jax import models
from rnnlm_jax import pretrained
from rnnlm_jax import seqmetrics
from rnnlm_jax import steps
from rnnlm_jax.config import Config
from rnnlm_jax.errors import DataError
from rnnlm_jax.tasks.lm import DIVERGED_MARGIN
from rnnlm_jax.vocab import UNK
from rnnlm_jax.vocab import Vocab
from rnnlm_jax.vocab import build_vocab


@dataclasses.dataclass(frozen=True)
class SentenceData:
  """Labelled splits ("train", "valid" and the final one) and their ids."""

  vocab: Vocab
  examples: dict  # split -> labelled.Examples
  final_split: str  # "dev" (classification) or "test" (tagging)


def final_split(cfg: Config) -> str:
  return "dev" if cfg.task == "classify" else "test"


def data_source(cfg: Config) -> dict:
  d = cfg.data
  if d.source == "hub":
    return {"hf_path": d.hf_path, "hf_name": d.hf_name}
  if d.source != "files" or not d.dir:
    raise DataError(
        f"task={cfg.task!r} reads data.source='files' with data.dir (or "
        "the RNNLM_DATA environment variable), or data.source='hub'"
    )
  return {"dir": d.dir, "encoding_errors": d.encoding_errors}


def load_data(cfg: Config, saved_vocab: Vocab | None = None) -> SentenceData:
  """The task's splits, the held-out part of train cut with seed 0 (the
  same for every run), and the vocabulary of train's words (or a run's)."""
  d = cfg.data
  if cfg.task == "classify":
    splits = labelled.load_classification(data_source(cfg), d.holdout_fraction)
  else:
    splits = labelled.load_tagging(
        data_source(cfg), d.target, d.holdout_fraction
    )
  final = final_split(cfg)
  splits[final] = splits.pop("test")
  vocab = saved_vocab or build_vocab(
      splits["train"].tokens,
      d.vocab_max_size,
      d.vocab_min_count,
      (UNK,),
      d.unk_classes,
  )
  return SentenceData(vocab, splits, final)


def _names(values, given: tuple, what: str) -> tuple[str, ...]:
  """The sorted set of ``values``, or the config's own list (a run's)."""
  found = sorted(set(values))
  if not given:
    return tuple(found)
  unknown = sorted(set(found) - set(given))
  if unknown:
    raise DataError(f"the data has {what} {unknown[0]!r} not in {list(given)}")
  return tuple(given)


def complete_config(cfg: Config, data: SentenceData) -> Config:
  """cfg with the sizes and names taken from the data: vocabulary, labels
  and (model.feature_dim) the POS tags. The label and tag sets are those of
  all splits (CoNLL-2000's test has a chunk tag, I-LST, that train lacks):
  an output the model never saw in training is still one it is scored on."""
  every = list(data.examples.values())
  flat = lambda seqs: [v for s in seqs for v in s]
  if cfg.task == "classify":
    labels = [l for ex in every for l in ex.labels]
  else:
    labels = [l for ex in every for l in flat(ex.labels)]
  labels = _names(labels, cfg.data.labels, "label")
  features = cfg.data.features
  if cfg.model.feature_dim:
    tags = [f for ex in every for f in flat(ex.features)]
    features = _names(tags, features, "POS tag")
  for key, have, now in (
      ("model.vocab_size", cfg.model.vocab_size, len(data.vocab)),
      ("model.num_classes", cfg.model.num_classes, len(labels)),
      ("model.num_features", cfg.model.num_features, len(features)),
  ):
    if have not in (0, now):
      raise config_lib.ConfigError(f"{key}={have} but the data gives {now}")
  return config_lib.replace(
      cfg,
      model={
          "vocab_size": len(data.vocab),
          "num_classes": len(labels),
          "num_features": len(features),
      },
      data={"labels": labels, "features": features},
  )


def _ids_of(table: dict, values, what: str) -> np.ndarray:
  try:
    return np.array([table[v] for v in values], np.int32)
  except KeyError as e:
    raise DataError(f"{what} {e.args[0]!r} is not one of the run's") from None


def _encode(cfg: Config, vocab: Vocab, ex: labelled.Examples) -> dict:
  """Ids of a split's tokens, labels and (feature_dim) POS tags; an unknown
  label or POS tag is an error, an unknown word <unk>."""
  labels = {l: i for i, l in enumerate(cfg.data.labels)}
  features = {f: i for i, f in enumerate(cfg.data.features)}
  ids = _ids_of
  out = {"ids": [vocab.encode(t) for t in ex.tokens]}
  if cfg.task == "classify":
    out["labels"] = list(ids(labels, ex.labels, "label"))
  else:
    out["labels"] = [ids(labels, t, "tag") for t in ex.labels]
  out["features"] = None
  if cfg.model.feature_dim:
    out["features"] = [ids(features, f, "POS tag") for f in ex.features]
  return out


def _bucket_outputs(params, cfg: Config, b: dict, key=None, rate=None):
  """(nll per example [B] or token [B, T], predictions, class
  probabilities or None) of one padded batch; nll is 0 at padding."""
  m = cfg.model
  if cfg.task == "classify":
    logits_BC = encoder.classify_logits(params, m, b["x"], b["mask"], key, rate)
    logp_BC = jax.nn.log_softmax(logits_BC)
    nll_B = -jnp.take_along_axis(logp_BC, b["y"][:, None], axis=1)[:, 0]
    nll_B = jnp.where(b["index"] >= 0, nll_B, 0.0)
    return nll_B, logp_BC.argmax(-1), jnp.exp(logp_BC)
  em_BTC = encoder.tag_emissions(
      params, m, b["x"], b["mask"], b.get("features"), key, rate
  )
  if m.head == "crf":
    # The sentence's NLL, at its first token (a per-token sum, for the sums).
    nll_B = crf.nll(params["crf"], em_BTC, b["y"], b["mask"])
    nll_BT = jnp.zeros(b["mask"].shape).at[:, 0].set(nll_B)
    nll_BT = jnp.where(b["mask"], nll_BT, 0.0)
    return nll_BT, None, None
  logp_BTC = jax.nn.log_softmax(em_BTC)
  nll_BT = -jnp.take_along_axis(logp_BTC, b["y"][..., None], axis=2)[..., 0]
  pred_BT = logp_BTC.argmax(-1)
  return jnp.where(b["mask"], nll_BT, 0.0), pred_BT, None


def _weights(cfg: Config, b: dict):
  return b["index"] >= 0 if cfg.task == "classify" else b["mask"]


def make_loss(cfg: Config):
  """``loss(params, carry, batch, key, hparams)`` of one scheduled batch of
  a bucketed epoch (rnnlm_jax.steps.switch_buckets)."""

  def bucket_loss(params, b, key, rate):
    nll, pred, _ = _bucket_outputs(params, cfg, b, key, rate)
    weight = _weights(cfg, b)
    count = weight.sum().astype(jnp.float32)
    total = nll.sum()
    sums = {"nll": total, "count": count}
    if cfg.task == "classify":
      sums["tokens"] = b["mask"].sum().astype(jnp.float32)
    if pred is not None:
      sums["correct"] = ((pred == b["y"]) & weight).sum().astype(jnp.float32)
    return total / jnp.maximum(count, 1.0), sums

  return steps.switch_buckets(bucket_loss)


def make_predict(cfg: Config):
  """A jitted ``predict(params, batch) -> {"nll", "count", "pred", "prob"}``
  of one padded batch, without dropout; tags decoded by Viterbi under the
  CRF head."""

  def predict(params, b):
    nll, pred, prob = _bucket_outputs(params, cfg, b)
    if cfg.model.head == "crf" and cfg.task == "tag":
      pred = crf.viterbi(
          params["crf"],
          encoder.tag_emissions(
              params, cfg.model, b["x"], b["mask"], b.get("features")
          ),
          b["mask"],
      )
    out = {"nll": nll.sum(), "count": _weights(cfg, b).sum(), "pred": pred}
    if prob is not None:
      out["prob"] = prob
    return out

  return jax.jit(predict)


class SentenceTask:
  """A classify or tag config over its loaded data (rnnlm_jax.tasks.Task)."""

  selection_metric = "valid_error"

  def __init__(self, cfg: Config, data: SentenceData, eval_batch_size=None):
    self.cfg = cfg
    self.data = data
    self.vocab = data.vocab
    self.eval_batch_size = eval_batch_size or cfg.data.eval_batch_size
    self.max_train_loss = math.log(cfg.model.num_classes) + DIVERGED_MARGIN
    self.encoded = {
        s: _encode(cfg, data.vocab, ex) for s, ex in data.examples.items()
    }
    lengths = [len(t) for t in self.encoded["train"]["ids"]]
    self.bounds = buckets.bucket_bounds(lengths, cfg.data.num_buckets)
    self.loss = make_loss(cfg)
    self._predict = make_predict(cfg)
    self._predict_stacked = jax.jit(jax.vmap(self._predict, in_axes=(0, None)))
    self._eval_batches = {}
    self.embeddings = None
    if cfg.model.init_embeddings_from:
      self.embeddings = pretrained.embeddings_from_run(
          cfg.model.init_embeddings_from,
          data.vocab,
          data.examples["train"].tokens,
          models.embed_dim(cfg.model),
      )

  # Training.
  def init_params(self, key):
    params = encoder.init_params(
        key, self.cfg.model, self.cfg.model.num_classes, self.cfg.task == "tag"
    )
    if self.embeddings is not None:
      params["embed"] = self.embeddings.apply(params["embed"])
    return params

  def init_carry(self):
    return ()

  def init_hparams(self) -> dict:
    return {"dropout": jnp.float32(self.cfg.model.dropout)}

  def _batches(self, split: str, batch_size: int, rng=None) -> dict:
    e = self.encoded[split]
    return buckets.make_batches(
        e["ids"], e["labels"], batch_size, self.bounds, e["features"], rng
    )

  def train_batches(self, epoch: int) -> dict:
    rng = np.random.default_rng([self.cfg.train.seed, epoch])
    return self._batches("train", self.cfg.data.batch_size, rng)

  def batches_change_each_epoch(self) -> bool:
    return True

  def summarise(self, sums: dict, split: str = "train") -> dict:
    count = max(float(sums["count"]), 1.0)
    out = {f"{split}_loss": float(sums["nll"]) / count}
    if "correct" in sums:
      out[f"{split}_acc"] = 100.0 * float(sums["correct"]) / count
    return out

  def describe(self) -> str:
    train = self._batches("train", self.cfg.data.batch_size)
    n = len(self.data.examples["train"])
    text = (
        f"vocab {len(self.vocab):,}, {self.cfg.model.num_classes} labels, "
        f"{n:,} train sentences in {len(self.bounds)} length buckets "
        f"{list(self.bounds)}, {100 * buckets.padding_fraction(train):.1f}% "
        "padding"
    )
    if self.embeddings is not None:
      text += ", " + self.embeddings.describe()
    return text

  # Evaluation.
  def _outputs(self, params, split: str, k: int) -> list[dict]:
    """Each trial's summed nll and count and its predictions of every
    example of the split, in the data's order."""
    if split not in self._eval_batches:
      self._eval_batches[split] = self._batches(split, self.eval_batch_size)
    predict = self._predict if k == 1 else self._predict_stacked
    per_batch = [
        (b["index"][s], predict(params, jax.tree.map(lambda a: a[s], b)))
        for b in self._eval_batches[split]["buckets"]
        for s in range(b["x"].shape[0])
    ]
    per_batch = jax.device_get(per_batch)
    n = len(self.encoded[split]["ids"])
    trials = []
    for i in range(k):
      pick = (lambda a: a) if k == 1 else (lambda a: a[i])
      preds, probs = [None] * n, [None] * n
      nll = count = 0.0
      for index, out in per_batch:
        nll += float(pick(out["nll"]))
        count += float(pick(out["count"]))
        for row, e in enumerate(index):
          if e < 0:
            continue
          if self.cfg.task == "classify":
            preds[e] = int(pick(out["pred"])[row])
            probs[e] = pick(out["prob"])[row]
          else:
            length = len(self.encoded[split]["ids"][e])
            preds[e] = pick(out["pred"])[row, :length]
      trials.append({"nll": nll, "count": count, "pred": preds, "prob": probs})
    return trials

  def _metrics(self, out: dict, split: str) -> dict:
    names = self.cfg.data.labels
    truth = self.data.examples[split].labels
    metrics = {f"{split}_loss": out["nll"] / max(out["count"], 1.0)}
    if self.cfg.task == "classify":
      pred = [names[p] for p in out["pred"]]
      metrics[f"{split}_acc"] = seqmetrics.accuracy(truth, pred)
      metrics[f"{split}_error"] = 100.0 - metrics[f"{split}_acc"]
      return metrics
    pred = [[names[p] for p in s] for s in out["pred"]]
    metrics[f"{split}_acc"] = seqmetrics.accuracy(truth, pred)
    if self.cfg.data.target == "chunk":
      scores = seqmetrics.chunk_scores([list(t) for t in truth], pred)
      metrics[f"{split}_f1"] = scores["f1"]
      metrics[f"{split}_precision"] = scores["precision"]
      metrics[f"{split}_recall"] = scores["recall"]
      metrics[f"{split}_error"] = 100.0 - scores["f1"]
    else:
      metrics[f"{split}_error"] = 100.0 - metrics[f"{split}_acc"]
    return metrics

  def evaluate(self, params, split: str, k: int = 1) -> list[dict]:
    return [self._metrics(o, split) for o in self._outputs(params, split, k)]

  def report(self, params, splits=None) -> dict:
    """Loss, accuracy, the chunk scores (chunking) and, for classification,
    the confusion matrix (rows: true label) of valid and the final split."""
    results = {}
    for split in splits or ("valid", self.data.final_split):
      (out,) = self._outputs(params, split, 1)
      results.update(self._metrics(out, split))
      results[f"{split}_examples"] = len(out["pred"])
      if self.cfg.task == "classify":
        names = self.cfg.data.labels
        truth = self.data.examples[split].labels
        results[f"{split}_confusion"] = seqmetrics.confusion(
            truth, [names[p] for p in out["pred"]], list(names)
        )
    return results

  def decode(self, params, tokens, features=None) -> list[dict]:
    """predict_sentences with this task's model."""
    return predict_sentences(
        self.cfg,
        self.vocab,
        params,
        tokens,
        features,
        self._predict,
        self.eval_batch_size,
    )


def predict_sentences(
    cfg: Config,
    vocab: Vocab,
    params,
    tokens,
    features=None,
    predict=None,
    batch_size: int = 64,
) -> list[dict]:
  """Predictions of a trained model for tokenized sentences (with their POS
  tags, where the model reads them): {"label", "prob", "probs"} per sentence
  (classify) or {"tags"} per sentence (tag). ``predict``: make_predict(cfg),
  if already made."""
  predict = predict or make_predict(cfg)
  names = cfg.data.labels
  ids = [vocab.encode(t) for t in tokens]
  if cfg.task == "tag":
    labels = [np.zeros(len(s), np.int32) for s in ids]
  else:
    labels = [0] * len(ids)
  feature_ids = None
  if cfg.model.feature_dim:
    table = {f: i for i, f in enumerate(cfg.data.features)}
    feature_ids = [_ids_of(table, f, "POS tag") for f in features]
  lengths = [len(s) for s in ids]
  batches = buckets.make_batches(
      ids,
      labels,
      batch_size,
      buckets.bucket_bounds(lengths, cfg.data.num_buckets),
      feature_ids,
  )
  results = [None] * len(ids)
  for b in batches["buckets"]:
    for s in range(b["x"].shape[0]):
      out = jax.device_get(predict(params, jax.tree.map(lambda a: a[s], b)))
      for row, e in enumerate(b["index"][s]):
        if e < 0:
          continue
        if cfg.task == "classify":
          p = out["prob"][row]
          results[e] = {
              "label": names[int(p.argmax())],
              "prob": float(p.max()),
              "probs": {n: float(q) for n, q in zip(names, p)},
          }
        else:
          tags = out["pred"][row, : lengths[e]]
          results[e] = {"tags": [names[t] for t in tags]}
  return results


def make_tasks(
    cfgs: list[Config], saved_vocab: Vocab | None = None
) -> list[SentenceTask]:
  """One task per config over data loaded once, from the first config's
  data section."""
  data = load_data(cfgs[0], saved_vocab)
  return [SentenceTask(complete_config(c, data), data) for c in cfgs]
