"""The encoder-decoder translator: a recurrent encoder, an attentional
recurrent decoder, as pure functions over a plain parameter pytree.

The source side is the sentence tasks' encoder (rnnlm_jax.encoder.encode:
embedding, stacked (bi)directional layers of model.cell). Its top layer's
outputs are the memory the decoder attends to, D = encoder.output_dim wide;
its final states (the forward state at each sentence's last token, with the
backward state at its first) pass through a learned bridge, tanh of a dense
layer per decoder layer, to the decoder's initial carries.

The decoder is model.decoder_layers (0: model.num_layers) layers of the same
cell, run one step at a time because attention couples the steps.
model.attention picks how the source enters:

  "none": only through the bridge; the output is the top state h_t.
  "bahdanau" (Bahdanau et al. 2015): the previous top state s_{t-1} scores
      the source, v^T tanh(W_query s_{t-1} + W_key m_s); the context enters
      layer 0 with the embedding; the output is a_t = tanh(W_c [h_t; ctx_t]).
  "luong_dot", "luong_general" (Luong et al. 2015): the current top state
      scores the source, h_t . m_s or h_t^T W m_s; the output is
      a_t = tanh(W_c [h_t; ctx_t]), and with model.input_feeding a_{t-1}
      enters layer 0 with the next embedding.

Attention weights are a softmax over each sentence's real source positions:
exactly zero on padding. The key projection of the memory is computed once
per source (``encode_source``), not at every step.

Shape letters beyond the package's: S source length (T is the target's),
D memory width, A attention width, F the encoder's final states' width.

Parameters:

  {"encoder": {"embed": [Vs, E], "layers": [...]},    # as encoder.init_params
   "bridge": [{"w": [F, k * H], "b": [k * H]}, ...],  # per decoder layer; k:
                                                      # the cell's carry arity
   "tgt_embed": [Vt, E],
   "decoder": [cell params, ...],  # layer 0's input: [emb; ctx (bahdanau);
                                   # a_{t-1} (luong, input feeding)]
   "attention": {"W_query": [H, A], "W_key": [D, A], "v": [A]}  # bahdanau
              | {"W": [H, D]}                                   # luong_general
              | {},                                             # else
   "combine": {"W_c": [H + D, H]},  # attention models only
   "out": {"w": [H, Vt], "b": [Vt]}}

The memory and the decoder state are dicts of arrays with the batch as the
leading axis of every leaf, so a beam search may repeat their rows:

  memory = {"values": [B, S, D], "mask": [B, S] bool,
            "keys": [B, S, A] (bahdanau: values @ W_key) | [B, S, H] (luong:
            values @ W^T, or the values themselves for luong_dot); none
            for attention "none",
            "init": [(h [B, H], c [B, H] (LSTM)), ...] per decoder layer}
  state = {"carry": [carry tuple per decoder layer],
           "feed": a_{t-1} [B, H] (luong with input feeding)}

Dropout (model.dropout, when a key is given) acts as in the language models:
on the embeddings, between layers, and on the output before the softmax; the
encoder's as encoder.encode does it. Keys: the encoder takes
split(key)[0]; decoder step t takes fold_in(split(key)[1], t), so the
teacher-forced scan and a loop of ``decoder_step`` draw the same masks.
"""

import dataclasses

import jax
import jax.numpy as jnp

from rnnlm_jax import cells as cells_lib
from rnnlm_jax import encoder
from rnnlm_jax import models
from rnnlm_jax.config import ModelConfig

ATTENTIONS = ("none", "bahdanau", "luong_dot", "luong_general")


def decoder_layers(cfg: ModelConfig) -> int:
  return cfg.decoder_layers or cfg.num_layers


def attention_dim(cfg: ModelConfig) -> int:
  return cfg.attention_dim or cfg.hidden


def _is_luong(cfg: ModelConfig) -> bool:
  return cfg.attention.startswith("luong")


def _feeds(cfg: ModelConfig) -> bool:
  """Whether a_{t-1} is part of layer 0's input (Luong's input feeding)."""
  return _is_luong(cfg) and cfg.input_feeding


def _extra_input_dim(cfg: ModelConfig) -> int:
  """The width of layer 0's input beyond the embedding."""
  if cfg.attention == "bahdanau":
    return encoder.output_dim(cfg)
  return cfg.hidden if _feeds(cfg) else 0


def _ends(cfg: ModelConfig) -> ModelConfig:
  """cfg whose encoder.pool gives the encoder's final states: the forward
  state at the last token, with the backward one at the first."""
  return dataclasses.replace(cfg, pooling="ends")


def init_params(key, cfg: ModelConfig):
  """Initial parameters (module docstring), Uniform(-init_scale,
  init_scale) as encoder.init_params (<= 0: 1/sqrt(hidden))."""
  if cfg.attention not in ATTENTIONS:
    raise ValueError(
        f"unknown attention {cfg.attention!r}; choose one of {ATTENTIONS}"
    )
  if cfg.vocab_size <= 0 or cfg.target_vocab_size <= 0:
    raise ValueError(
        "model.vocab_size and model.target_vocab_size must be set first"
    )
  cell = cells_lib.get_cell(cfg.cell)
  H, D, A, E = (
      cfg.hidden,
      encoder.output_dim(cfg),
      attention_dim(cfg),
      models.embed_dim(cfg),
  )
  if cfg.attention == "luong_dot" and D != H:
    raise ValueError(f"luong_dot needs memory width {D} == hidden {H}")
  L = decoder_layers(cfg)
  keys = iter(jax.random.split(key, 8 + 3 * L))
  scale = cfg.init_scale if cfg.init_scale > 0 else H**-0.5
  u = lambda shape: jax.random.uniform(
      next(keys), shape, jnp.float32, -scale, scale
  )
  # The encoder's parameters as encoder.init_params builds them, without
  # the sentence tasks' head.
  enc = encoder.init_params(next(keys), cfg, 1, per_token=False)
  width = cell.carry_arity * H
  params = {
      "encoder": {"embed": enc["embed"], "layers": enc["layers"]},
      "bridge": [
          {"w": u((encoder.pooled_dim(_ends(cfg)), width)), "b": u((width,))}
          for _ in range(L)
      ],
      "tgt_embed": u((cfg.target_vocab_size, E)),
      "decoder": [
          cells_lib.init_params(
              cell,
              next(keys),
              E + _extra_input_dim(cfg) if l == 0 else H,
              H,
              cfg.init_scale,
          )
          for l in range(L)
      ],
      "attention": {},
      "out": {
          "w": u((H, cfg.target_vocab_size)),
          "b": u((cfg.target_vocab_size,)),
      },
  }
  if cfg.attention == "bahdanau":
    params["attention"] = {
        "W_query": u((H, A)),
        "W_key": u((D, A)),
        "v": u((A,)),
    }
  elif cfg.attention == "luong_general":
    params["attention"] = {"W": u((H, D))}
  if cfg.attention != "none":
    params["combine"] = {"W_c": u((H + D, H))}
  return params


def _dropout_fn(cfg: ModelConfig, key, rate):
  """drop(i, x): dropout of x with the i-th of L + 1 keys split from key
  (0: the embedding, l: layer l's input, L: the output), or the identity
  (no key, or model.dropout 0, as in encoder.encode: evaluation)."""
  if key is None or cfg.dropout <= 0:
    return lambda i, x: x
  rate = cfg.dropout if rate is None else rate
  keys = jax.random.split(key, decoder_layers(cfg) + 1)
  return lambda i, x: models.dropout(keys[i], rate, x)


def encode_source(
    params, cfg, src_BS, src_mask_BS, dropout_key=None, rate=None
):
  """The memory the decoder attends to and starts from (module docstring).

  Args:
    params: the model's parameters.
    cfg: the ModelConfig.
    src_BS: source token ids, left-aligned, padding after each sentence.
    src_mask_BS: true at real tokens.
    dropout_key: the encoder's dropout key, or None (no dropout).
    rate: the dropout rate (may be traced); None: model.dropout.

  Returns:
    memory: {"values", "mask", "keys" (attention models), "init"}.
  """
  cell = cells_lib.get_cell(cfg.cell)
  H = cfg.hidden
  outs = encoder.encode(
      params["encoder"], cfg, src_BS, src_mask_BS, None, dropout_key, rate
  )
  ends_BF = encoder.pool(_ends(cfg), outs, src_mask_BS)
  init = []
  for bridge in params["bridge"]:
    carry_BK = jnp.tanh(ends_BF @ bridge["w"] + bridge["b"])
    init.append(
        tuple(carry_BK[:, k * H : (k + 1) * H] for k in range(cell.carry_arity))
    )
  values_BSD = outs["out"]
  memory = {
      "values": values_BSD,
      "mask": src_mask_BS.astype(bool),
      "init": init,
  }
  if cfg.attention == "bahdanau":
    memory["keys"] = values_BSD @ params["attention"]["W_key"]
  elif cfg.attention == "luong_general":
    # h^T W m_s = h . (m_s W^T): a dot against keys projected once.
    memory["keys"] = values_BSD @ params["attention"]["W"].T
  elif cfg.attention == "luong_dot":
    memory["keys"] = values_BSD
  return memory


def init_decoder_state(params, cfg, memory):
  """The decoder's state before its first step (module docstring)."""
  del params
  state = {"carry": list(memory["init"])}
  if _feeds(cfg):
    state["feed"] = jnp.zeros_like(memory["init"][0][0])
  return state


def masked_softmax(scores_BS, mask_BS):
  """Softmax over the positions mask_BS marks: exactly 0 elsewhere, and all
  zeros (not NaN) for a row without any; finite gradients either way."""
  s = jnp.where(mask_BS, scores_BS, -jnp.inf)
  top = jax.lax.stop_gradient(s.max(axis=-1, keepdims=True))
  e = jnp.exp(s - jnp.where(jnp.isfinite(top), top, 0.0))
  total = e.sum(axis=-1, keepdims=True)
  return e / jnp.where(total > 0, total, 1.0)


def _attend(memory, scores_BS):
  """(context [B, D], weights [B, S]) of scores over the memory."""
  attn_BS = masked_softmax(scores_BS, memory["mask"])
  ctx_BD = jnp.einsum("bs,bsd->bd", attn_BS, memory["values"])
  return ctx_BD, attn_BS


def _split_layer0(params, cfg):
  """Layer 0's w_ih as (embedding rows [E, G], the other rows [X, G])."""
  w = params["decoder"][0]["w_ih"]
  e = models.embed_dim(cfg)
  return w[:e], w[e:]


def _embed_projection(params, cfg, emb_xE):
  """The embedding's part of layer 0's input projection (with the bias)."""
  w_emb, _ = _split_layer0(params, cfg)
  return emb_xE @ w_emb + params["decoder"][0]["b"]


def _advance(params, cfg, memory, state, xw_emb_BG, drop):
  """One decoder step from the embedding's part of layer 0's projection.

  Returns:
    (state, out_BH: what the vocabulary projection reads, dropped; attn_BS).
  """
  cell = cells_lib.get_cell(cfg.cell)
  carries = state["carry"]
  _, w_rest = _split_layer0(params, cfg)
  mask_BS = memory["mask"]
  if cfg.attention == "bahdanau":
    query_BA = carries[-1][0] @ params["attention"]["W_query"]
    e_BSA = jnp.tanh(query_BA[:, None, :] + memory["keys"])
    ctx_BD, attn_BS = _attend(memory, e_BSA @ params["attention"]["v"])
    xw_BG = xw_emb_BG + ctx_BD @ w_rest
  elif _feeds(cfg):
    xw_BG = xw_emb_BG + state["feed"] @ w_rest
  else:
    xw_BG = xw_emb_BG
  new_carries, h_BH = [], None
  for l, layer in enumerate(params["decoder"]):
    if l > 0:
      xw_BG = drop(l, h_BH) @ layer["w_ih"] + layer["b"]
    carry, h_BH = cell.step(layer, carries[l], xw_BG)
    new_carries.append(carry)
  new_state = {"carry": new_carries}
  if cfg.attention == "none":
    out_BH, attn_BS = h_BH, jnp.zeros(mask_BS.shape, h_BH.dtype)
  else:
    if _is_luong(cfg):
      ctx_BD, attn_BS = _attend(
          memory, jnp.einsum("bh,bsh->bs", h_BH, memory["keys"])
      )
    out_BH = jnp.tanh(
        jnp.concatenate([h_BH, ctx_BD], -1) @ params["combine"]["W_c"]
    )
    if _feeds(cfg):
      new_state["feed"] = out_BH
  return new_state, drop(decoder_layers(cfg), out_BH), attn_BS


def _logits(params, out_xH):
  return out_xH @ params["out"]["w"] + params["out"]["b"]


def decoder_step(
    params, cfg, memory, state, token_B, dropout_key=None, rate=None
):
  """One decoder step, given the previous target token.

  Args:
    params, cfg: the model.
    memory: encode_source's memory.
    state: the decoder state (init_decoder_state, or this function's).
    token_B: the previous target token of each row (BOS at the first step).
    dropout_key: this step's dropout key, or None (no dropout).
    rate: the dropout rate (may be traced); None: model.dropout.

  Returns:
    (state, logits_BV over the target vocabulary, attn_BS: the attention
    weights, zeros for attention "none").
  """
  drop = _dropout_fn(cfg, dropout_key, rate)
  emb_BE = drop(0, jnp.take(params["tgt_embed"], token_B, axis=0))
  state, out_BH, attn_BS = _advance(
      params, cfg, memory, state, _embed_projection(params, cfg, emb_BE), drop
  )
  return state, _logits(params, out_BH), attn_BS


def _keys(cfg: ModelConfig, key):
  """(encoder dropout key, decoder dropout key) of a dropout key, or
  Nones."""
  if key is None or cfg.dropout <= 0:
    return None, None
  return tuple(jax.random.split(key))


def _step_keys(key, steps: int):
  """Decoder step t's dropout key, for t < steps: [steps] keys."""
  return jax.vmap(lambda t: jax.random.fold_in(key, t))(jnp.arange(steps))


def teacher_forced(
    params,
    cfg,
    batch,
    dropout_key=None,
    rate=None,
    sample_key=None,
    sampling_rate=None,
):
  """The decoder over the gold target prefixes (or, with scheduled
  sampling, partly its own previous predictions).

  Args:
    params, cfg: the model.
    batch: {"src", "src_mask", "tgt_in", "tgt_out", "tgt_mask"}, each
      [B, S] or [B, T]; tgt_in starts with BOS.
    dropout_key, rate: dropout (module docstring), or None: none.
    sample_key: scheduled sampling's key, or None: teacher forcing.
    sampling_rate: with a sample_key, the probability (may be traced) that a
      row's step t > 0 is fed the argmax of its step t - 1 instead of the
      gold token, drawn per row and step; None: model.scheduled_sampling.
      Sampling runs when a sample_key is given and either this is not None
      or model.scheduled_sampling > 0.

  Returns:
    (logits_BTV, attn_BTS).
  """
  enc_key, dec_key = _keys(cfg, dropout_key)
  memory = encode_source(
      params, cfg, batch["src"], batch["src_mask"], enc_key, rate
  )
  state = init_decoder_state(params, cfg, memory)
  tgt_in_BT = batch["tgt_in"]
  steps = tgt_in_BT.shape[1]
  step_keys = None if dec_key is None else _step_keys(dec_key, steps)
  if sample_key is not None and (
      sampling_rate is not None or cfg.scheduled_sampling > 0
  ):
    if sampling_rate is None:
      sampling_rate = cfg.scheduled_sampling
    return _scheduled_sampling(
        params,
        cfg,
        memory,
        state,
        tgt_in_BT,
        step_keys,
        rate,
        sample_key,
        sampling_rate,
    )
  # The embeddings' share of layer 0's projection for all steps in one
  # matmul, with each step's own embedding dropout mask.
  emb_TBE = jnp.take(params["tgt_embed"], tgt_in_BT.T, axis=0)
  if step_keys is not None:
    emb_TBE = jax.vmap(lambda k, e: _dropout_fn(cfg, k, rate)(0, e))(
        step_keys, emb_TBE
    )
  xw_emb_TBG = _embed_projection(params, cfg, emb_TBE)

  def body(state, xs):
    xw_emb_BG, key = xs
    drop = _dropout_fn(cfg, key, rate)
    state, out_BH, attn_BS = _advance(
        params, cfg, memory, state, xw_emb_BG, drop
    )
    return state, (out_BH, attn_BS)

  _, (out_TBH, attn_TBS) = jax.lax.scan(body, state, (xw_emb_TBG, step_keys))
  # The vocabulary projection of all steps in one matmul.
  logits_BTV = _logits(params, jnp.swapaxes(out_TBH, 0, 1))
  return logits_BTV, jnp.swapaxes(attn_TBS, 0, 1)


def _scheduled_sampling(
    params,
    cfg,
    memory,
    state,
    tgt_in_BT,
    step_keys,
    rate,
    sample_key,
    sampling_rate,
):
  """teacher_forced's scan with scheduled sampling: the logits are needed
  inside the loop to choose the next input, so nothing is hoisted."""
  batch_size, steps = tgt_in_BT.shape

  def body(carry, xs):
    state, predicted_B = carry
    t, gold_B, key = xs
    own_B = jax.random.bernoulli(
        jax.random.fold_in(sample_key, t), sampling_rate, (batch_size,)
    )
    token_B = jnp.where(own_B & (t > 0), predicted_B, gold_B)
    state, logits_BV, attn_BS = decoder_step(
        params, cfg, memory, state, token_B, key, rate
    )
    predicted_B = jnp.argmax(logits_BV, axis=-1).astype(gold_B.dtype)
    return (state, predicted_B), (logits_BV, attn_BS)

  _, (logits_TBV, attn_TBS) = jax.lax.scan(
      body,
      (state, tgt_in_BT[:, 0]),
      (jnp.arange(steps), tgt_in_BT.T, step_keys),
  )
  return jnp.swapaxes(logits_TBV, 0, 1), jnp.swapaxes(attn_TBS, 0, 1)


def token_losses(cfg: ModelConfig, logits_BTV, targets_BT):
  """(label-smoothed cross-entropy, unsmoothed nll), each [B, T]: the
  smoothed target is optax.smooth_labels' (1 - a) onehot + a / V."""
  # At least float32 (bfloat16 logits), float64 under x64.
  dtype = jnp.promote_types(jnp.float32, logits_BTV.dtype)
  logp_BTV = jax.nn.log_softmax(logits_BTV.astype(dtype))
  nll_BT = -jnp.take_along_axis(logp_BTV, targets_BT[..., None], -1)[..., 0]
  a = cfg.label_smoothing
  if a == 0:
    return nll_BT, nll_BT
  return (1.0 - a) * nll_BT - a * logp_BTV.mean(-1), nll_BT


def loss_sums(params, cfg, batch, key=None, rate=None, sampling_rate=None):
  """The training objective and the sums behind the metrics.

  Args:
    params, cfg: the model.
    batch: as teacher_forced's.
    key: None for evaluation (no dropout, no sampling); else split into the
      dropout key and scheduled sampling's key.
    rate: the dropout rate (may be traced); None: model.dropout.
    sampling_rate: scheduled sampling's rate (may be traced); None:
      model.scheduled_sampling.

  Returns:
    (objective: the mean over real target tokens of the label-smoothed
    cross-entropy; {"nll": the sum of the unsmoothed nll, "count": the
    number of real target tokens, "correct": argmax hits}, float32 scalars).
  """
  dropout_key = sample_key = None
  if key is not None:
    dropout_key, sample_key = jax.random.split(key)
  logits_BTV, _ = teacher_forced(
      params, cfg, batch, dropout_key, rate, sample_key, sampling_rate
  )
  mask_BT = batch["tgt_mask"].astype(bool)
  targets_BT = batch["tgt_out"]
  smoothed_BT, nll_BT = token_losses(cfg, logits_BTV, targets_BT)
  count = mask_BT.sum().astype(jnp.float32)
  hits_BT = jnp.argmax(logits_BTV, axis=-1) == targets_BT
  sums = {
      "nll": jnp.where(mask_BT, nll_BT, 0.0).sum().astype(jnp.float32),
      "count": count,
      "correct": (hits_BT & mask_BT).sum().astype(jnp.float32),
  }
  objective = jnp.where(mask_BT, smoothed_BT, 0.0).sum() / jnp.maximum(count, 1)
  return objective, sums
