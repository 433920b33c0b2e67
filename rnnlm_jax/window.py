"""Fixed-window language models: p(x_t+1 | the last n-1 tokens).

Two classics from before recurrent networks, written so that they plug into
the same train step, evaluation, checkpoints and configs as the RNNs:

- the neural n-gram model of Bengio et al. (2003): the n-1 context
  embeddings, concatenated, through tanh hidden layers to a softmax, with
  optional direct connections from the embeddings to the output;
- the maximum-entropy (log-linear) model: logit_w = b_w + sum over the
  context orders k = 1..n-1 of theta[hash(last k tokens, w)], one weight per
  (n-gram context, word) indicator feature, hashed into 2**hash_bits
  buckets, as in Mikolov's maxent / RNNME models; or, with
  model.maxent_features="exact", one weight per pair seen in training
  (rnnlm_jax.maxent_features).

Their "carry" is the window itself: the last n-1 token ids [B, n-1], oldest
first, with PAD (= vocab_size, one id past the vocabulary) where no token is
visible (the start of a stream, or before a reset). A segment's contexts are
read from concat(carry, x), so streaming a split in segments with the carry
passed along gives exactly the contexts of one long pass.
"""

import jax
import jax.numpy as jnp
import numpy as np

from rnnlm_jax import maxent_features
from rnnlm_jax import optim
from rnnlm_jax.config import ModelConfig

# A multiplicative (FNV-like) hash in uint32 arithmetic, with a final
# Fibonacci-hashing multiply to spread the low bits.
_MIX = np.uint32(0x01000193)
_WORD = np.uint32(0x9E3779B1)
_SEED = np.uint32(0x811C9DC5)


def context_size(cfg: ModelConfig) -> int:
  return cfg.order - 1


def pad_id(cfg: ModelConfig) -> int:
  return cfg.vocab_size


def init_carry(cfg: ModelConfig, batch: int):
  return jnp.full((batch, context_size(cfg)), pad_id(cfg), jnp.int32)


def contexts(carry_BK, x_BT, reset_BT, pad: int):
  """The window before each prediction and the carry after the segment.

  Returns:
    ctx_BTK: ctx[b, t, j] is the token j steps before x[b, t] (j = 0 is
      x[b, t] itself), PAD where it lies before a reset at or before t.
    new_carry_BK: the last K tokens, oldest first, masked as seen from the
      segment's last position.
  """
  K = carry_BK.shape[1]
  T = x_BT.shape[1]
  seq = jnp.concatenate([carry_BK, x_BT.astype(carry_BK.dtype)], axis=1)
  t = jnp.arange(T)[:, None]
  j = jnp.arange(K)[None, :]
  ctx_BTK = seq[:, K + t - j]
  if reset_BT is not None:
    # x index of the latest reset at or before t (a reset at s hides every
    # token before s); -T - K when there is none in this segment.
    marks = jnp.where(reset_BT, jnp.arange(T)[None, :], -T - K)
    last_BT = jax.lax.cummax(marks, axis=1)
    visible = (t - j)[None] >= last_BT[:, :, None]
    ctx_BTK = jnp.where(visible, ctx_BTK, pad)
  new_carry = ctx_BTK[:, T - 1, ::-1]
  return ctx_BTK, new_carry


def _dropout(key, rate, x):
  keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
  return jnp.where(keep, x / (1.0 - rate), 0.0)


# ----------------------------------------------------------------- neural n-gram


def init_neural(key, cfg: ModelConfig):
  """{"embed": [V+1, E], "hidden": [{"w", "b"}] * L, "out": {"w": [H, V],
  "b": [V]}, and "direct": [K*E, V] when cfg.direct}."""
  V, K, E, H = cfg.vocab_size, context_size(cfg), cfg.embed_dim, cfg.hidden
  E = E or H
  keys = jax.random.split(key, 3 + cfg.num_layers)
  scale = cfg.init_scale
  u = lambda k, shape, s: jax.random.uniform(k, shape, jnp.float32, -s, s)
  glorot = lambda fan_in: scale if scale > 0 else fan_in**-0.5
  hidden = []
  fan_in = K * E
  for layer in range(cfg.num_layers):
    hidden.append(
        {
            "w": u(keys[3 + layer], (fan_in, H), glorot(fan_in)),
            "b": jnp.zeros((H,), jnp.float32),
        }
    )
    fan_in = H
  params = {
      "embed": u(keys[0], (V + 1, E), glorot(E)),
      "hidden": hidden,
      "out": {
          "w": u(keys[1], (H, V), glorot(H)),
          "b": jnp.zeros((V,), jnp.float32),
      },
  }
  if cfg.direct:
    params["direct"] = jnp.zeros((K * E, V), jnp.float32)
  return params


def apply_neural(
    params, cfg: ModelConfig, carry, x_BT, reset_BT, dropout_key, rate=None
):
  ctx_BTK, carry = contexts(carry, x_BT, reset_BT, pad_id(cfg))
  B, T, K = ctx_BTK.shape
  use_dropout = dropout_key is not None and cfg.dropout > 0
  keys = (
      jax.random.split(dropout_key, cfg.num_layers + 1) if use_dropout else None
  )
  rate = cfg.dropout if rate is None else rate
  drop = lambda i, h: _dropout(keys[i], rate, h) if use_dropout else h
  e_BTF = jnp.take(params["embed"], ctx_BTK, axis=0).reshape(B, T, -1)
  e_BTF = drop(0, e_BTF)
  h = e_BTF
  for i, layer in enumerate(params["hidden"]):
    h = drop(i + 1, jnp.tanh(h @ layer["w"] + layer["b"]))
  logits = h @ params["out"]["w"] + params["out"]["b"]
  if "direct" in params:
    logits = logits + e_BTF @ params["direct"]
  return logits, carry


# ----------------------------------------------------------------------- maxent


def init_maxent(key, cfg: ModelConfig, train_ids=None, train_reset=None):
  """{"bias": [V] (the unigram features), "table": [2**hash_bits + V - 1]},
  and with model.maxent_classes = C > 0 the class part's {"class_bias": [C],
  "class_table": [2**hash_bits + C - 1]}: all zero, the uniform
  distribution, as is usual for a log-linear model.

  With model.maxent_features="exact", the tables are "word_weights" [F]
  and "class_weights" [G], one per feature of the index that
  maxent_features.build_index makes of ``train_ids`` (the training
  tokens, with ``train_reset`` marking where the window restarts), kept
  under params[optim.FROZEN]."""
  del key
  C = cfg.maxent_classes
  zeros = lambda n: jnp.zeros((n,), jnp.float32)
  if cfg.maxent_features == "exact":
    if train_ids is None:
      raise ValueError(
          "model.maxent_features='exact' builds its features from the "
          "training tokens: pass train_ids (experiments.train and the "
          "language-model task do; a bare ModelConfig cannot)"
      )
    _, word_class, _ = class_layout(cfg.vocab_size, C)
    index = maxent_features.build_index(
        train_ids,
        cfg.vocab_size,
        cfg.order,
        word_class,
        cfg.maxent_min_count,
        train_reset,
    )
    return {
        "bias": zeros(cfg.vocab_size),
        "class_bias": zeros(C),
        "word_weights": zeros(len(index["word_ids"])),
        "class_weights": zeros(len(index["class_ids"])),
        optim.FROZEN: {k: jnp.asarray(v) for k, v in index.items()},
    }
  params = {
      "bias": zeros(cfg.vocab_size),
      "table": zeros(2**cfg.hash_bits + cfg.vocab_size - 1),
  }
  if C:
    params["class_bias"] = zeros(C)
    params["class_table"] = zeros(2**cfg.hash_bits + C - 1)
  return params


def class_starts(vocab_size: int, num_classes: int) -> np.ndarray:
  """int [C + 1]: class i holds the word ids [starts[i], starts[i + 1]).

  The vocabulary is ranked by frequency (rnnlm_jax.vocab.build_vocab), and
  Mikolov's classes bin words so that each holds an equal share of the sum
  of sqrt(unigram probability). Under Zipf's law (p ~ 1 / rank) that sum up
  to rank r grows as sqrt(r), so the bins end at ranks V (i / C)^2: one word
  for the most frequent class, about 2 V / C for the rarest. Each class
  holds at least one word."""
  V, C = vocab_size, num_classes
  i = np.arange(C + 1)
  return i + np.floor((V - C) * (i / C) ** 2).astype(np.int64)


def class_layout(vocab_size: int, num_classes: int):
  """(starts [C + 1], word_class [V], width): class_starts, each word's
  class, and the largest class's size."""
  starts = class_starts(vocab_size, num_classes)
  sizes = np.diff(starts)
  return starts, np.repeat(np.arange(num_classes), sizes), int(sizes.max())


def context_offsets(ctx_BTK, hash_bits: int):
  """int32 [B, T, K]: entry k is the table offset of the k+1 most recent
  tokens, the top hash_bits bits of a hash. The hash of a longer context extends
  the shorter one's, so orders share weights only by collision."""
  h = jnp.full(ctx_BTK.shape[:2], _SEED, jnp.uint32)
  out = []
  for k in range(ctx_BTK.shape[2]):
    h = (h ^ (ctx_BTK[:, :, k].astype(jnp.uint32) + np.uint32(1))) * _MIX
    out.append(h)
  shift = np.uint32(32 - hash_bits)
  return ((jnp.stack(out, axis=-1) * _WORD) >> shift).astype(jnp.int32)


def _context_rows(table, starts_N, width: int):
  """[N, width]: the run of ``width`` weights at each offset."""
  return jax.vmap(lambda s: jax.lax.dynamic_slice(table, (s,), (width,)))(
      starts_N
  )


def apply_maxent(
    params, cfg: ModelConfig, carry, x_BT, reset_BT, dropout_key, rate=None
):
  """The feature (context c, word w) has the weight table[offset(c) + w]:
  each context's V weights are one contiguous run at a hashed offset, so
  the lookup is a slice per context rather than V scattered reads (three
  times faster on a CPU), and a collision pairs (c, w) with (c', w + d).

  With classes, the (context, class) features are a second table read the
  same way, and the returned logits are the log-probabilities
  log p(class(w) | h) + log p(w | class(w), h) (normalised: their softmax is
  the model's distribution). A token's loss then reaches the word weights
  of its own class only, about 2 V / C words per context rather than V."""
  del dropout_key, rate  # No dropout in the log-linear model.
  ctx_BTK, carry = contexts(carry, x_BT, reset_BT, pad_id(cfg))
  B, T, K = ctx_BTK.shape
  V, C = cfg.vocab_size, cfg.maxent_classes
  if optim.FROZEN in params:
    index = params[optim.FROZEN]
    nodes = maxent_features.context_nodes(index, ctx_BTK.reshape(-1, K), V)
    whole = jnp.zeros(B * T, jnp.int32)
    scores = params["bias"] + maxent_features.word_scores(
        params, index, nodes, whole, whole + V, whole, V, V
    )
    class_scores = params["class_bias"] + maxent_features.class_scores(
        params, index, nodes, C
    )
    lp = class_factored_log_probs(scores, class_scores, V)
    return lp.reshape(B, T, V), carry
  starts = context_offsets(ctx_BTK, cfg.hash_bits).reshape(-1)
  rows = _context_rows(params["table"], starts, V)
  scores = params["bias"] + rows.reshape(B, T, K, V).sum(axis=2)
  if not C:
    return scores, carry
  class_rows = _context_rows(params["class_table"], starts, C)
  class_scores = params["class_bias"] + class_rows.reshape(B, T, K, C).sum(2)
  return class_factored_log_probs(scores, class_scores, V), carry


def maxent_class_nll(params, cfg: ModelConfig, carry, x_BT, y_BT, reset_BT):
  """-log p(y | h) of the class-factorised maxent model, reading only the
  target's class: the same function as the NLL of apply_maxent's
  log-probabilities (tested), at about K (C + 2 V / C) weights a token
  instead of K (C + V).

  Returns:
    (nll_BT, final carry).
  """
  ctx_BTK, carry = contexts(carry, x_BT, reset_BT, pad_id(cfg))
  B, T, K = ctx_BTK.shape
  V, C = cfg.vocab_size, cfg.maxent_classes
  starts, word_class, width = class_layout(V, C)
  word_class = jnp.asarray(word_class)
  y = y_BT.reshape(-1)
  cls = word_class[y]
  lo, hi = jnp.asarray(starts)[cls], jnp.asarray(starts)[cls + 1]
  # A window of `width` ids holding the class, kept inside the vocabulary.
  first = jnp.minimum(lo, V - width)
  if optim.FROZEN in params:
    index = params[optim.FROZEN]
    nodes = maxent_features.context_nodes(index, ctx_BTK.reshape(-1, K), V)
    scores = bias_window(params, first, width) + maxent_features.word_scores(
        params, index, nodes, lo, hi, first, width, V
    )
    class_scores = params["class_bias"] + maxent_features.class_scores(
        params, index, nodes, C
    )
  else:
    offsets = context_offsets(ctx_BTK, cfg.hash_bits).reshape(-1, K)
    window_rows = jax.vmap(
        lambda o, f: jax.lax.dynamic_slice(params["table"], (o + f,), (width,))
    )
    rows = jax.vmap(window_rows, in_axes=(1, None), out_axes=1)(offsets, first)
    scores = bias_window(params, first, width) + rows.sum(axis=1)
    class_rows = _context_rows(params["class_table"], offsets.reshape(-1), C)
    class_scores = params["class_bias"] + class_rows.reshape(-1, K, C).sum(1)
  ids = first[:, None] + jnp.arange(width)
  inside = (ids >= lo[:, None]) & (ids < hi[:, None])
  log_z = jax.nn.logsumexp(jnp.where(inside, scores, -jnp.inf), axis=-1)
  score_y = jnp.take_along_axis(scores, (y - first)[:, None], axis=1)[:, 0]
  class_lp = jax.nn.log_softmax(class_scores, axis=-1)
  class_lp_y = jnp.take_along_axis(class_lp, cls[:, None], axis=1)[:, 0]
  return -(class_lp_y + score_y - log_z).reshape(B, T), carry


def bias_window(params, first_N, width: int):
  """[N, width]: the unigram weights of the words first .. first + width - 1."""
  return jax.vmap(
      lambda f: jax.lax.dynamic_slice(params["bias"], (f,), (width,))
  )(first_N)


def class_factored_log_probs(scores_NV, class_scores_NC, vocab_size: int):
  """log p(class(w)) + log p(w | class(w)): a softmax over the classes, and
  one over each class's words (class_starts' contiguous id ranges).

  The per-class sums and their broadcast back to the words are products
  with the [V, C] class-membership matrix, dense matmuls (scatters and
  segment sums are several times slower on a CPU); each class's maximum,
  the exponentials' stabiliser, is read through a gather outside the
  gradient."""
  C = class_scores_NC.shape[-1]
  starts, word_class, width = class_layout(vocab_size, C)
  member_VC = jnp.asarray(word_class[:, None] == np.arange(C), jnp.float32)
  # Each class's ids, padded with the id V (a -inf column): [C, width].
  slots = starts[:-1, None] + np.arange(width)
  slots = np.where(slots < starts[1:, None], slots, vocab_size)
  lead = scores_NV.shape[:-1]
  s_NV = scores_NV.reshape(-1, vocab_size)
  padded = jnp.pad(s_NV, ((0, 0), (0, 1)), constant_values=-jnp.inf)
  top_NC = jax.lax.stop_gradient(padded[:, slots].max(axis=-1))
  top_NV = jax.lax.stop_gradient(top_NC[:, word_class])
  sums_NC = jnp.exp(s_NV - top_NV) @ member_VC
  class_lp_NC = jax.nn.log_softmax(class_scores_NC.reshape(-1, C), axis=-1)
  shift_NC = class_lp_NC - top_NC - jnp.log(sums_NC)
  lp_NV = s_NV + shift_NC @ member_VC.T
  return lp_NV.reshape(*lead, vocab_size)
