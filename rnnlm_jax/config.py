"""The typed, frozen configuration the library works with.

Experiment files are ml_collections ConfigDicts (see experiments/configs);
``from_dict`` turns one into these dataclasses at the library boundary and
rejects unknown keys, wrong types and impossible values with one clear line.
The defaults below are the single source of every default.
"""

import dataclasses
import math
import typing
from typing import Any

from rnnlm_jax import cells as cells_lib

# The count-based n-gram model's smoothings (rnnlm_jax.ngram.METHODS).
SMOOTHING_METHODS = (
    "mle",
    "add_delta",
    "backoff",
    "kneser_ney",
    "modified_kneser_ney",
)


# The choices of the keys that select an implementation (the same function
# either way; rnnlm_jax.backends resolves them when a run starts).
BACKENDS = ("auto", "reference")
SCAN_IMPLS = ("auto", "fused", "custom_vjp", "autodiff", "cudnn")
GEMMS = ("auto", "xla", "bf16", "mkl", "openblas")


class ConfigError(ValueError):
  """A configuration value that cannot work."""


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  # rnn | neural_ngram (Bengio et al. 2003) | maxent (hashed n-gram features)
  # | count_ngram (smoothed counts, "trained" by counting).
  kind: str = "rnn"
  cell: str = "lstm"
  vocab_size: int = 0  # 0: taken from the vocabulary built from the data.
  embed_dim: int = 0  # 0: equal to hidden.
  hidden: int = 200
  num_layers: int = 2
  # Zaremba-style: on the embeddings, between layers and on the top layer's
  # output; the first two may take rates of their own (dropout_input,
  # dropout_hidden below).
  dropout: float = 0.0
  tie_weights: bool = False
  init_scale: float = 0.1  # Uniform(-s, s); <= 0 for PyTorch's 1/sqrt(H).
  # The AWD-LSTM regularisers (Merity, Keskar and Socher 2018), for a
  # recurrent language model (task "lm", kind "rnn"); the defaults are
  # Zaremba et al.'s dropout above and nothing more. dropout_mask: "step"
  # draws a fresh mask at every time step; "locked" (variational dropout)
  # one mask per sequence and forward pass, shared by all its time steps,
  # at every dropout site (embeddings, between layers, output).
  dropout_mask: str = "step"
  # The rate on the embeddings (AWD's dropouti) and between layers
  # (dropouth); -1: model.dropout, which stays the rate on the top layer's
  # output.
  dropout_input: float = -1.0
  dropout_hidden: float = -1.0
  # Whole words dropped from the embedding matrix (dropoute): a word dropped
  # is dropped at every position of the batch, the rows kept are scaled by
  # 1 / (1 - rate).
  dropout_embed: float = 0.0
  # DropConnect on every layer's recurrent weight w_hh (AWD's WeightDrop):
  # one mask per forward pass, shared by all time steps and the batch,
  # scaled by 1 / (1 - rate); the parameters themselves are not changed.
  weight_drop: float = 0.0
  # Added to the training objective only (never to the reported loss):
  # ar_alpha * mean(h_drop ** 2) over the top layer's dropped outputs, and
  # tar_beta * mean((h_t - h_{t-1}) ** 2) over its undropped outputs within
  # the segment; means over positions and units, padding left out.
  ar_alpha: float = 0.0
  tar_beta: float = 0.0
  # The top layer's width; 0: hidden. AWD's 400/1150/400 stack with tied
  # weights is hidden=1150, last_hidden=400, embed_dim=400.
  last_hidden: int = 0
  unroll: int = 1
  # "auto": fast paths (rnnlm_jax.backends) where they apply, each checked
  # at the start of the run to compute what the reference computes for this
  # cell; "reference": every fast path off (autodiff of the plain lax.scan,
  # XLA's GEMM, the plain softmax, no folded embedding or time chunks).
  backend: str = "auto"
  # How the recurrence is computed and differentiated: "custom_vjp", scan's
  # hand-written backward with the recurrent weight's gradient as one matmul
  # over all steps; "autodiff" of the plain lax.scan (the reference);
  # "fused", each layer as one custom call on CPU (rnnlm_jax.backends.fused,
  # for the cells it implements); "auto", fused where it applies (layers of
  # at least backends.FUSED_MIN_STEPS steps), else custom_vjp; "cudnn", on a
  # CUDA GPU, each LSTM layer as cuDNN's kernel.
  scan_impl: str = "auto"
  # > 0: rematerialise the backward over time in chunks of this many steps
  # (only chunk-boundary carries are kept); 0: off.
  remat_chunk: int = 0
  # Run the layers over time in this many chunks, each chunk through every
  # layer (rnnlm_jax.scan.run_stack): layer l + 1 then works on one chunk
  # while layer l works on the next, on another core. 1: off; 0 (auto): on
  # CPU, chunks of at least 25 steps, at most 4. The same function.
  time_chunks: int = 0
  # Fold the embedding into layer 0's input projection where that is fewer
  # FLOPs: the table embed @ w_ih ([V, G]) is gathered by token instead of
  # projecting every position ([B*T, E] x [E, G]). Taken when the vocabulary
  # is no larger than the tokens of a batch, no embedding dropout is active
  # and remat is off (small vocabularies: characters), and not under
  # scan_impl="cudnn"; the same function.
  fold_embedding: bool = True
  # The matmuls' GEMM (rnnlm_jax.backends.blas): "xla" (XLA's own), "mkl" or
  # "openblas" (a BLAS library's cblas_?gemm through a custom call, CPU
  # only), or "auto": "mkl" on a single device of an Intel CPU where MKL is
  # installed (requirements-mkl.txt), else "xla". The same function. "bf16":
  # XLA's with bfloat16 operands, float32 accumulation and results (for GPUs
  # and TPUs; states, gates, softmax and parameters stay float32): a close
  # function.
  gemm: str = "auto"
  # The n-gram models: n, so n - 1 tokens of context. neural_ngram uses
  # embed_dim, hidden (num_layers tanh layers) and dropout.
  order: int = 5
  direct: bool = False  # neural_ngram: direct embedding-to-output weights.
  hash_bits: int = 22  # maxent: 2**hash_bits hashed feature weights.
  # maxent: 0, one softmax over the vocabulary; C > 0, Mikolov's class-
  # factorised output p(w | h) = p(class(w) | h) p(w | class(w), h), with C
  # classes of frequency-ranked words binned by sqrt of their Zipf mass
  # (rnnlm_jax.window.class_starts), and the hashed features of both parts.
  maxent_classes: int = 0
  # maxent: "hashed" (2**hash_bits shared weights) or "exact", one weight per
  # (context, word) and (context, class) pair seen in training at least
  # maxent_min_count times (rnnlm_jax.maxent_features; needs the classes).
  maxent_features: str = "hashed"
  maxent_min_count: int = 1
  smoothing: str = "modified_kneser_ney"  # count_ngram: see rnnlm_jax.ngram.
  delta: float = 1.0  # count_ngram, smoothing add_delta: the added count.
  # The sentence tasks (Config.task "classify" and "tag"; rnnlm_jax.encoder).
  # A second layer of each recurrent layer runs over the sentence backwards;
  # the two directions' outputs are concatenated or summed (merge).
  bidirectional: bool = False
  merge: str = "concat"  # concat | sum
  # classify: the sentence's vector: "ends" (the forward direction's state at
  # the last token, with the backward direction's at the first), or the mean
  # or max of the top layer's outputs over the sentence's tokens.
  pooling: str = "ends"
  head: str = "softmax"  # tag: softmax per token | crf (linear-chain CRF)
  num_classes: int = 0  # 0: the number of labels in the data.
  # tag: > 0 embeds each token's POS tag (the data's second column) in this
  # many dimensions, concatenated to its word embedding (CoNLL-2000 chunking's
  # shared-task setting).
  feature_dim: int = 0
  num_features: int = 0  # 0: the number of POS tags in the data.
  # A language-model run directory of this project whose input embedding
  # initialises this model's, word by word through both vocabularies (the
  # coverage is logged); embed_dim must equal the run's.
  init_embeddings_from: str = ""
  # The translation task (Config.task "translate"; rnnlm_jax.seq2seq): the
  # encoder is the sentence tasks' (num_layers, bidirectional, merge), the
  # decoder a stack of decoder_layers (0: num_layers) of the same cell, its
  # initial state from the encoder's final states through a learned bridge.
  # attention: "none" (the whole source in the bridge's context vector),
  # "bahdanau" (additive, over the previous decoder state), "luong_dot" or
  # "luong_general" (over the current state; input feeding optional).
  attention: str = "none"
  decoder_layers: int = 0
  attention_dim: int = 0  # bahdanau: the scoring layer's width; 0: hidden.
  input_feeding: bool = True  # luong: the last attentional vector is input.
  target_vocab_size: int = 0  # 0: the target vocabulary's size.
  label_smoothing: float = 0.0  # The training loss only; nll is unsmoothed.
  # Training feeds the decoder the model's own previous greedy token instead
  # of the gold one with this probability (scheduled sampling); 0: teacher
  # forcing throughout.
  scheduled_sampling: float = 0.0
  # Decoding of the final report and experiments.translate: beam_size 1 is
  # greedy; hypotheses are ranked by log p / length ** length_alpha.
  beam_size: int = 5
  length_alpha: float = 1.0
  # The embedding task (Config.task "embed"): kind "skipgram" or "cbow",
  # word2vec with negative sampling (rnnlm_jax.word2vec), or "ppmi_svd",
  # counted (rnnlm_jax.ppmi); embed_dim is the vectors' size. window: the
  # context words on each side (word2vec draws each centre's from
  # 1..window; ppmi_svd counts them all); negatives per positive pair, drawn
  # from the unigram distribution raised to ns_exponent.
  window: int = 5
  negatives: int = 5
  ns_exponent: float = 0.75
  # ppmi_svd: the context distribution's smoothing exponent, the shift k of
  # shifted PPMI (max(PMI - log k, 0)), and the singular values' exponent in
  # the vectors U * S ** eig_power.
  cds_alpha: float = 0.75
  ppmi_shift: float = 1.0
  eig_power: float = 0.5


@dataclasses.dataclass(frozen=True)
class DataConfig:
  source: str = "synthetic"  # synthetic | files | hub
  dir: str = ""  # files: a folder of train/valid/test text files.
  local_name: str = (
      ""  # files: sub-folder of $RNNLM_DATA used when dir is empty.
  )
  hf_path: str = ""  # hub: e.g. "wikitext".
  hf_name: str = ""  # hub: e.g. "wikitext-2-v1".
  text_column: str = "text"
  level: str = "word"  # word | char
  # Bits per character (valid_bpc, test_bpc) at word level too: for files
  # that write characters as space-separated tokens (PTB char).
  report_bpc: bool = False
  split_fractions: (
      tuple
  ) = ()  # (train, valid, test) cut of a single-file corpus.
  encoding_errors: str = "strict"  # strict | replace
  vocab_max_size: int = 0
  vocab_min_count: int = 1
  # Sentence tasks: a word outside the vocabulary reads as its unknown-word
  # class (capitalised, digits, hyphen, suffix; rnnlm_jax.vocab), learned
  # from the train words below vocab_min_count, instead of one <unk>.
  unk_classes: bool = False
  cache_dir: str = "~/.cache/rnnlm_jax"  # Tokenized ids; "" disables the cache.
  mode: str = "stream"  # stream (truncated BPTT) | sentence
  reset_at_eos: bool = False  # stream mode: zero the state at each <eos>.
  batch_size: int = 20
  bptt: int = 35
  eval_batch_size: int = 10
  max_sentence_len: int = 64
  synthetic_sentences: tuple = (20000, 2000, 2000)  # train, valid, test.
  synthetic_seed: int = 0
  # The sentence tasks (rnnlm_jax.labelled): the share of train held out for
  # model selection (cut with a fixed seed, the same for every run); sentences
  # are grouped into this many length buckets, each padded only to its own
  # longest sentence; tag: the column predicted (chunk | pos).
  holdout_fraction: float = 0.1
  num_buckets: int = 8
  target: str = "chunk"
  labels: tuple = ()  # Empty: the labels of the train split, sorted.
  features: tuple = ()  # Empty: the POS tags of the train split (feature_dim).
  # translate (rnnlm_jax.pairs): the languages of a file of "English<TAB>
  # French" lines; lowercase before tokenising; pairs with a side longer than
  # max_sentence_len tokens are dropped. The pairs are split into
  # split_fractions (train, valid, test) by a hash of the English side salted
  # with split_seed, so a sentence and all its translations land in one split.
  src_lang: str = "fr"
  tgt_lang: str = "en"
  lowercase: bool = True
  split_seed: int = 0
  # embed: each train word of count f among N is kept with word2vec's
  # probability min(1, (sqrt(f / t) + 1) t / f), t = subsample * N, drawn
  # afresh each epoch; 0 keeps every word. The evaluation sets of the final
  # report: "" finds simlex-999/SimLex-999.txt and
  # word-analogy/questions-words.txt beside data.dir.
  subsample: float = 1e-3
  simlex_file: str = ""
  analogy_file: str = ""
  # Stream mode: variable-length truncated BPTT (Merity et al. 2018): each
  # training segment's length is drawn around bptt (with probability
  # bptt_half_prob around bptt / 2) with standard deviation bptt_std,
  # rounded to a multiple of bptt_quantum (each length is one branch of the
  # compiled step) within [max(5, bptt_quantum), bptt + 3 * bptt_std], and
  # the segment's learning rate scaled by length / bptt. An epoch keeps the
  # fixed-length run's number of steps, read from a random start.
  variable_bptt: bool = False
  bptt_std: float = 5.0
  bptt_half_prob: float = 0.05
  bptt_quantum: int = 5


@dataclasses.dataclass(frozen=True)
class OptimConfig:
  name: str = "sgd"  # sgd | momentum | adagrad | adam | adamw
  learning_rate: float = 1.0
  momentum: float = 0.9
  # adamw: decoupled; sgd, momentum, adagrad: L2 (added to the gradient).
  weight_decay: float = 0.0
  b1: float = 0.9
  b2: float = 0.999
  eps: float = 1e-8
  # adagrad: the accumulator's start (optax's default 0.1). 0: a parameter's
  # first step is lr * g / sqrt(g^2 + eps), about lr whatever the gradient's
  # scale (Duchi et al.'s Adagrad, the usual one for sparse features).
  adagrad_init: float = 0.1
  clip_norm: float = 5.0  # Global-norm clipping; 0 disables it.
  # constant | epoch_decay | plateau | warmup_cosine | linear (to
  # lr * min_lr_ratio at the last step)
  schedule: str = "constant"
  # epoch_decay: k epochs at the full rate, then lr * factor ** (epoch + 1 - k)
  # for epochs counted from 0 (TensorFlow's PTB recipe of Zaremba et al.).
  decay_factor: float = 0.5
  decay_after_epochs: int = 4
  warmup_steps: int = 0  # warmup_cosine
  min_lr_ratio: float = 0.0  # warmup_cosine, linear: final lr / peak lr
  # plateau: multiply the lr by plateau_factor when the validation loss has
  # not improved for more than plateau_patience epochs.
  plateau_factor: float = 0.25
  plateau_patience: int = 0
  grad_accum_steps: int = 1  # -1: a whole epoch per update (full-batch GD).
  # mean: per-token mean; sum_time: summed over time, mean over batch (as in
  # Zaremba et al.'s code, which their lr 1 and clip 5 assume).
  loss_reduction: str = "mean"
  # Iterate averaging (Polyak; AWD-LSTM's NT-ASGD when the base is sgd):
  # "none"; "nt", non-monotonically triggered: averaging starts after the
  # validation in which the selection metric is worse than the best of all
  # validations but the last ``nonmono``; "always": from the first step (as
  # AWD-LSTM's finetuning). Once averaging, validation, the 'best'
  # checkpoint and the final report use the average of the iterates since
  # it started; training goes on from the iterates.
  averaging: str = "none"
  nonmono: int = 5


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  num_epochs: int = 1
  seed: int = 0
  log_every: int = 100  # Steps between metric fetches (host syncs).
  checkpoint_every: int = 500  # Steps between 'latest' checkpoints.
  max_steps: int = 0  # > 0: stop early (smoke tests, benchmarks).
  # Data parallelism (rnnlm_jax.parallel): 1 device, N devices, or -1 for
  # all; the batch must be a multiple of the device count.
  num_devices: int = 1
  # Steps between validations (each keeps the best checkpoint and steps the
  # plateau schedule); 0: at the end of each epoch.
  eval_every: int = 0
  # TensorBoard event files beside metrics.jsonl (tensorboard --logdir runs).
  tensorboard: bool = True
  # > 0: stop training after the validation that is worse than the best of
  # all validations but the last early_stop (AWD-LSTM's finetuning rule);
  # the final report follows. 0: train every epoch.
  early_stop: int = 0
  # A run directory whose 'best' parameters start this run (finetuning); its
  # model must have the same shapes and its vocabulary must be this run's.
  init_from: str = ""
  # Samples while training (a language model of a neural kind): every
  # sample_every steps and at the end of training (0: never), sample_count
  # texts of sample_length tokens continuing sample_prompt ("": from the
  # boundary token; every token must be in the vocabulary) at
  # sample_temperature, from the parameters validation would score. Written
  # to the log and to the run directory's samples.txt (rnnlm_jax.rundir);
  # they leave the training's keys, data order and losses as they are.
  sample_every: int = 0
  sample_prompt: str = ""
  sample_temperature: float = 1.0
  sample_length: int = 200
  sample_count: int = 1


@dataclasses.dataclass(frozen=True)
class Config:
  name: str = "default"
  # lm: language modelling (rnnlm_jax.tasks.lm); classify: one label per
  # sentence; tag: one label per token (rnnlm_jax.tasks.sentences);
  # translate (rnnlm_jax.tasks.translation); embed: word vectors
  # (rnnlm_jax.tasks.embed).
  task: str = "lm"
  model: ModelConfig = ModelConfig()
  data: DataConfig = DataConfig()
  optim: OptimConfig = OptimConfig()
  train: TrainConfig = TrainConfig()


TASKS = ("lm", "classify", "tag", "translate", "embed")
# The language models train.sample_every samples as they train (the count-
# based n-gram model is counted, not trained in steps).
SAMPLED_KINDS = ("rnn", "neural_ngram", "maxent")
EMBEDDING_KINDS = ("skipgram", "cbow", "ppmi_svd")
LANGUAGES = ("en", "fr")
_CHOICES = {
    "task": TASKS,
    "model.merge": ("concat", "sum"),
    "model.pooling": ("ends", "mean", "max"),
    "model.head": ("softmax", "crf"),
    "model.attention": ("none", "bahdanau", "luong_dot", "luong_general"),
    "data.src_lang": LANGUAGES,
    "data.tgt_lang": LANGUAGES,
    "data.target": ("chunk", "pos"),
    "model.kind": ("rnn", "neural_ngram", "maxent", "count_ngram")
    + EMBEDDING_KINDS,
    "model.cell": tuple(cells_lib.CELLS),
    "model.dropout_mask": ("step", "locked"),
    "model.backend": BACKENDS,
    "model.scan_impl": SCAN_IMPLS,
    "model.gemm": GEMMS,
    "model.smoothing": SMOOTHING_METHODS,
    "model.maxent_features": ("hashed", "exact"),
    "data.source": ("synthetic", "files", "hub"),
    "data.level": ("word", "char"),
    "data.encoding_errors": ("strict", "replace"),
    "data.mode": ("stream", "sentence"),
    "optim.name": ("sgd", "momentum", "adagrad", "adam", "adamw"),
    "optim.schedule": (
        "constant",
        "epoch_decay",
        "plateau",
        "warmup_cosine",
        "linear",
    ),
    "optim.loss_reduction": ("mean", "sum_time"),
    "optim.averaging": ("none", "nt", "always"),
}
_POSITIVE = (
    "model.hidden",
    "model.num_layers",
    "model.unroll",
    "model.order",
    "model.delta",
    "optim.decay_after_epochs",
    "data.batch_size",
    "data.bptt",
    "data.eval_batch_size",
    "data.max_sentence_len",
    "data.vocab_min_count",
    "train.num_epochs",
    "train.log_every",
    "train.checkpoint_every",
    "data.num_buckets",
    "model.beam_size",
    "optim.nonmono",
    "data.bptt_quantum",
    "train.sample_temperature",
    "train.sample_length",
    "train.sample_count",
)
_NON_NEGATIVE = (
    "model.vocab_size",
    "model.embed_dim",
    "model.remat_chunk",
    "model.time_chunks",
    "model.dropout",
    "data.vocab_max_size",
    "optim.learning_rate",
    "optim.clip_norm",
    "optim.weight_decay",
    "optim.warmup_steps",
    "optim.plateau_patience",
    "train.max_steps",
    "model.num_classes",
    "model.feature_dim",
    "model.num_features",
    "model.decoder_layers",
    "model.attention_dim",
    "model.target_vocab_size",
    "model.length_alpha",
    "train.early_stop",
    "data.bptt_std",
    "train.sample_every",
)


def _build(cls, values: dict, prefix: str):
  hints = typing.get_type_hints(cls)
  fields = {f.name for f in dataclasses.fields(cls)}
  unknown = sorted(set(values) - fields)
  if unknown:
    raise ConfigError(f"unknown config key {prefix}{unknown[0]}")
  kwargs = {}
  for name, value in values.items():
    kind = hints[name]
    key = prefix + name
    if dataclasses.is_dataclass(kind):
      if not isinstance(value, dict):
        raise ConfigError(f"config key {key} must be a group")
      kwargs[name] = _build(kind, value, key + ".")
    else:
      kwargs[name] = _coerce(kind, value, key)
  return cls(**kwargs)


def _coerce(kind, value, key):
  if kind is tuple:
    if not isinstance(value, (list, tuple)):
      raise ConfigError(f"config key {key} must be a list, got {value!r}")
    return tuple(value)
  if kind is float and isinstance(value, int) and not isinstance(value, bool):
    return float(value)
  if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
    raise ConfigError(
        f"config key {key} must be {kind.__name__}, got {value!r}"
    )
  return value


def _get(cfg: Config, dotted: str):
  obj = cfg
  for part in dotted.split("."):
    obj = getattr(obj, part)
  return obj


def _check_finite(cfg: Config) -> None:
  for group in dataclasses.fields(cfg):
    values = getattr(cfg, group.name)
    if not dataclasses.is_dataclass(values):
      continue
    for field in dataclasses.fields(values):
      value = getattr(values, field.name)
      if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(
            f"{group.name}.{field.name} must be finite, got {value}"
        )


def validate(cfg: Config) -> Config:
  _check_finite(cfg)
  sizes = cfg.data.synthetic_sentences
  if len(sizes) != 3 or not all(
      isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in sizes
  ):
    raise ConfigError(
        "data.synthetic_sentences must be three positive integers (train, "
        f"valid, test), got {list(sizes)}"
    )
  for key, choices in _CHOICES.items():
    if _get(cfg, key) not in choices:
      raise ConfigError(
          f"{key}={_get(cfg, key)!r} is not one of {list(choices)}"
      )
  for key in _POSITIVE:
    if _get(cfg, key) <= 0:
      raise ConfigError(f"{key} must be positive, got {_get(cfg, key)}")
  for key in _NON_NEGATIVE:
    if _get(cfg, key) < 0:
      raise ConfigError(f"{key} must be >= 0, got {_get(cfg, key)}")
  if not 0.0 <= cfg.model.dropout < 1.0:
    raise ConfigError(
        f"model.dropout must be in [0, 1), got {cfg.model.dropout}"
    )
  if cfg.optim.adagrad_init < 0:
    raise ConfigError(
        f"optim.adagrad_init must be >= 0, got {cfg.optim.adagrad_init}"
    )
  if cfg.optim.weight_decay and cfg.optim.name == "adam":
    raise ConfigError(
        f"optim.weight_decay is not applied under optim.name="
        f"{cfg.optim.name!r}: use 'adamw' for decoupled weight decay"
    )
  if cfg.train.num_devices == 0 or cfg.train.num_devices < -1:
    raise ConfigError(
        "train.num_devices must be >= 1, or -1 for all devices, got "
        f"{cfg.train.num_devices}"
    )
  if cfg.optim.grad_accum_steps == 0 or cfg.optim.grad_accum_steps < -1:
    raise ConfigError(
        "optim.grad_accum_steps must be >= 1, or -1 for a "
        f"whole epoch, got {cfg.optim.grad_accum_steps}"
    )
  if cfg.train.eval_every < 0:
    raise ConfigError(
        f"train.eval_every must be >= 0 (0: each epoch's end), got "
        f"{cfg.train.eval_every}"
    )
  if cfg.train.checkpoint_every % cfg.train.log_every:
    # Checkpoints fall on metric fetches, so a resumed run logs the same
    # windows as an uninterrupted one.
    raise ConfigError(
        "train.checkpoint_every must be a multiple of " "train.log_every"
    )
  m = cfg.model
  if not 1 <= m.hash_bits <= 31:
    raise ConfigError(f"model.hash_bits must be in [1, 31], got {m.hash_bits}")
  if m.kind in ("neural_ngram", "maxent") and m.order < 2:
    raise ConfigError(f"model.kind={m.kind!r} needs model.order >= 2")
  if m.maxent_classes < 0 or (m.maxent_classes and m.kind != "maxent"):
    raise ConfigError(
        f"model.maxent_classes={m.maxent_classes} needs model.kind='maxent'"
        " and a count >= 0"
    )
  if m.maxent_features == "exact" and not (
      m.kind == "maxent" and m.maxent_classes
  ):
    raise ConfigError(
        "model.maxent_features='exact' needs model.kind='maxent' and "
        "model.maxent_classes > 0 (the class-factorised output)"
    )
  if m.maxent_features == "exact" and cfg.data.mode != "stream":
    raise ConfigError(
        "model.maxent_features='exact' builds its features from the training"
        " text read as one stream: it needs data.mode='stream'"
    )
  if m.maxent_min_count < 1:
    raise ConfigError(
        f"model.maxent_min_count must be >= 1, got {m.maxent_min_count}"
    )
  if m.vocab_size and m.maxent_classes > m.vocab_size:
    raise ConfigError(
        f"model.maxent_classes={m.maxent_classes} exceeds the vocabulary"
        f" ({m.vocab_size} words)"
    )
  # Which fast paths run here is checked when a run starts
  # (rnnlm_jax.backends.resolve); here only what no machine could run.
  if m.backend == "reference" and (
      m.scan_impl not in ("auto", "autodiff") or m.gemm not in ("auto", "xla")
  ):
    raise ConfigError(
        "model.backend='reference' turns every fast path off: it takes no "
        f"model.scan_impl={m.scan_impl!r} or model.gemm={m.gemm!r}"
    )
  if m.kind == "rnn" and m.scan_impl == "fused" and m.gemm == "bf16":
    raise ConfigError(
        "model.scan_impl='fused' runs float32 products (a BLAS library's "
        "or XLA's), not model.gemm='bf16'"
    )
  if m.kind == "rnn" and m.scan_impl == "cudnn":
    if m.cell != "lstm":
      raise ConfigError("model.scan_impl='cudnn' runs the LSTM only")
    if m.remat_chunk > 0 or cfg.data.reset_at_eos:
      raise ConfigError(
          "model.scan_impl='cudnn' takes no model.remat_chunk and no "
          "data.reset_at_eos (cuDNN resets the state only at a segment's start)"
      )
  if m.tie_weights and (m.embed_dim or m.hidden) != (m.last_hidden or m.hidden):
    raise ConfigError(
        "model.tie_weights needs model.embed_dim (0: hidden) equal to the top "
        "layer's width, model.last_hidden (0: hidden), got "
        f"{m.embed_dim or m.hidden} and {m.last_hidden or m.hidden}"
    )
  _check_regularisers(cfg)
  _check_awd_training(cfg)
  if cfg.train.sample_every and (
      cfg.task != "lm" or m.kind not in SAMPLED_KINDS
  ):
    raise ConfigError(
        "train.sample_every samples a language model of model.kind in "
        f"{list(SAMPLED_KINDS)} as it trains, not task={cfg.task!r}, "
        f"model.kind={m.kind!r}"
    )
  if cfg.data.source == "hub" and not cfg.data.hf_path:
    raise ConfigError("data.source='hub' needs data.hf_path")
  fr = cfg.data.split_fractions
  if fr and (len(fr) != 3 or min(fr) < 0 or abs(sum(fr) - 1) > 1e-6):
    raise ConfigError(
        "data.split_fractions must be empty or three fractions "
        f"summing to 1, got {list(fr)}"
    )
  if cfg.task == "embed" or m.kind in EMBEDDING_KINDS:
    _check_embed(cfg)
  else:
    _check_sentence_task(cfg)
  return cfg


def _check_awd_training(cfg: Config) -> None:
  d, o = cfg.data, cfg.optim
  if o.averaging != "none" and o.schedule == "plateau":
    raise ConfigError(
        "optim.averaging averages the iterates the optimizer makes; "
        "optim.schedule='plateau' rescales them afterwards: use another "
        "schedule"
    )
  if d.variable_bptt:
    if cfg.task != "lm" or d.mode != "stream":
      raise ConfigError(
          "data.variable_bptt is for language models in data.mode='stream'"
      )
    if o.grad_accum_steps != 1 or not 0.0 <= d.bptt_half_prob <= 1.0:
      raise ConfigError(
          "data.variable_bptt needs optim.grad_accum_steps=1 and "
          f"data.bptt_half_prob in [0, 1], got {o.grad_accum_steps} and "
          f"{d.bptt_half_prob}"
      )


# The ModelConfig keys of the AWD-LSTM regularisers and per-layer widths,
# which only the recurrent language model (rnnlm_jax.models) implements.
_LM_ONLY = (
    "dropout_mask",
    "dropout_input",
    "dropout_hidden",
    "dropout_embed",
    "weight_drop",
    "ar_alpha",
    "tar_beta",
    "last_hidden",
)


def _check_regularisers(cfg: Config) -> None:
  m = cfg.model
  for name in ("dropout_input", "dropout_hidden"):
    rate = getattr(m, name)
    if rate != -1.0 and not 0.0 <= rate < 1.0:
      raise ConfigError(
          f"model.{name} must be in [0, 1), or -1 for model.dropout's rate, "
          f"got {rate}"
      )
  for name in ("dropout_embed", "weight_drop"):
    if not 0.0 <= getattr(m, name) < 1.0:
      raise ConfigError(
          f"model.{name} must be in [0, 1), got {getattr(m, name)}"
      )
  for name in ("ar_alpha", "tar_beta", "last_hidden"):
    if getattr(m, name) < 0:
      raise ConfigError(f"model.{name} must be >= 0, got {getattr(m, name)}")
  default = ModelConfig()
  changed = [n for n in _LM_ONLY if getattr(m, n) != getattr(default, n)]
  if changed and (cfg.task != "lm" or m.kind != "rnn"):
    raise ConfigError(
        f"model.{changed[0]} is for the recurrent language model (task='lm', "
        f"model.kind='rnn'), not task={cfg.task!r}, model.kind={m.kind!r}"
    )
  if m.weight_drop and not cells_lib.get_cell(m.cell).recurrent:
    raise ConfigError(
        f"model.weight_drop drops the recurrent weight, which "
        f"model.cell={m.cell!r} does not have"
    )


def _check_embed(cfg: Config) -> None:
  m, d, o = cfg.model, cfg.data, cfg.optim
  if (cfg.task == "embed") != (m.kind in EMBEDDING_KINDS):
    raise ConfigError(
        f"task='embed' goes with model.kind in {list(EMBEDDING_KINDS)}, got "
        f"task={cfg.task!r} and model.kind={m.kind!r}"
    )
  if d.level != "word" or not m.embed_dim:
    raise ConfigError(
        "task='embed' needs data.level='word' and model.embed_dim > 0"
    )
  for key in ("model.window", "model.negatives"):
    if _get(cfg, key) < 1:
      raise ConfigError(f"{key} must be positive, got {_get(cfg, key)}")
  if (
      d.subsample < 0
      or m.ns_exponent < 0
      or m.cds_alpha <= 0
      or m.ppmi_shift <= 0
  ):
    raise ConfigError(
        "data.subsample and model.ns_exponent must be >= 0, model.cds_alpha "
        "and model.ppmi_shift > 0"
    )
  if m.kind != "ppmi_svd" and (
      o.name != "sgd"
      or o.clip_norm
      or o.weight_decay
      or o.grad_accum_steps != 1
      or cfg.train.num_devices != 1
  ):
    # The step is word2vec's sparse SGD (rnnlm_jax.word2vec): no dense
    # gradient exists to clip, decay or accumulate.
    raise ConfigError(
        f"model.kind={m.kind!r} trains by plain sparse SGD on one device: "
        "optim.name='sgd', optim.clip_norm=0, optim.weight_decay=0, "
        "optim.grad_accum_steps=1, train.num_devices=1"
    )


def _check_sentence_task(cfg: Config) -> None:
  m = cfg.model
  if cfg.task == "lm":
    if cfg.data.unk_classes:
      raise ConfigError("data.unk_classes is for task='classify' or 'tag'")
    if m.bidirectional or m.init_embeddings_from or m.feature_dim:
      raise ConfigError(
          "model.bidirectional, model.init_embeddings_from and "
          "model.feature_dim are for task='classify' or 'tag': a language "
          "model reads left to right"
      )
    return
  if m.kind != "rnn":
    raise ConfigError(f"task={cfg.task!r} needs model.kind='rnn'")
  if cfg.train.num_devices != 1 or cfg.optim.grad_accum_steps != 1:
    raise ConfigError(
        f"task={cfg.task!r} trains on one device with "
        "optim.grad_accum_steps=1"
    )
  if not 0.0 < cfg.data.holdout_fraction < 1.0:
    raise ConfigError(
        "data.holdout_fraction must be in (0, 1), got "
        f"{cfg.data.holdout_fraction}"
    )
  if cfg.task == "translate":
    _check_translate(cfg)
  if cfg.data.unk_classes and (
      cfg.task not in ("classify", "tag") or cfg.data.vocab_min_count < 2
  ):
    raise ConfigError(
        "data.unk_classes is for task='classify' or 'tag' with "
        "data.vocab_min_count >= 2 (the rare train words teach the classes)"
    )
  if cfg.task == "classify" and (m.head != "softmax" or m.feature_dim):
    raise ConfigError(
        "task='classify' takes model.head='softmax' and no model.feature_dim"
    )
  if m.feature_dim and cfg.data.target != "chunk":
    raise ConfigError(
        "model.feature_dim embeds the POS column: only with data.target="
        "'chunk'"
    )


def _check_translate(cfg: Config) -> None:
  m, d = cfg.model, cfg.data
  if d.src_lang == d.tgt_lang:
    raise ConfigError(
        f"data.src_lang and data.tgt_lang are both {d.src_lang!r}"
    )
  for key in ("model.label_smoothing", "model.scheduled_sampling"):
    if not 0.0 <= _get(cfg, key) < 1.0:
      raise ConfigError(f"{key} must be in [0, 1), got {_get(cfg, key)}")
  if m.feature_dim or m.init_embeddings_from:
    raise ConfigError(
        "task='translate' takes no model.feature_dim or "
        "model.init_embeddings_from"
    )
  memory = 2 * m.hidden if m.bidirectional and m.merge == "concat" else m.hidden
  if m.attention == "luong_dot" and memory != m.hidden:
    raise ConfigError(
        "model.attention='luong_dot' scores the decoder state against the "
        f"encoder's outputs, {memory} wide, not model.hidden={m.hidden}: use "
        "model.merge='sum', one direction, or 'luong_general'"
    )
  fr = d.split_fractions
  if fr and min(fr) <= 0:
    raise ConfigError(
        "task='translate' needs three positive data.split_fractions, got "
        f"{list(fr)}"
    )


def from_dict(values: dict[str, Any]) -> Config:
  """A validated Config from nested plain dicts (e.g. ConfigDict.to_dict())."""
  return validate(_build(Config, values, ""))


def to_dict(cfg: Config) -> dict[str, Any]:
  return dataclasses.asdict(cfg)


def replace(cfg: Config, **groups) -> Config:
  """Config with whole groups or fields replaced: replace(cfg, model={...})."""
  values = to_dict(cfg)
  for group, changes in groups.items():
    if isinstance(changes, dict):
      values[group].update(changes)
    else:
      values[group] = changes
  return from_dict(values)
