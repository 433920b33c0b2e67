"""The neural language models behind one interface: init_lm, init_carry and
apply_lm(params, cfg, carry, x_BT, reset_BT, dropout_key) -> (logits, carry).

model.kind picks the family: "rnn" (below), or the fixed-window
"neural_ngram" and "maxent" models of rnnlm_jax.window, whose carry is the
window of previous tokens. The count-based n-gram model ("count_ngram") has
no parameters to train and lives in rnnlm_jax.ngram.

The recurrent model is embedding -> stacked cells -> softmax. Its
parameters are a plain pytree:

  {"embed": [V, E],
   "layers": [cell params, ...],           # one dict per layer (see cells)
   "out": {"w": [H, V], "b": [V]}}         # no "w" when weights are tied

Every layer is model.hidden wide but the top one, model.last_hidden wide
where that is set (``layer_widths``); H above is the top layer's width.

Dropout (Zaremba et al. 2014) acts on the non-recurrent connections only: the
embeddings, the outputs passed between layers, and the top layer's output,
with a fresh mask at every time step, or with one mask per sequence shared
by its time steps (model.dropout_mask="locked"). The rest of AWD-LSTM's
regularisers (Merity et al. 2018) are switches of the same config: whole
words dropped from the embedding matrix (``embedding_dropout``), DropConnect
on the recurrent weights (``weight_drop``), and the activation penalties
(``activation_penalty``) that rnnlm_jax.tasks.lm adds to the training
objective. Every mask is drawn from the dropout key, so a resumed run draws
the masks an uninterrupted one would.

How the layers and the softmax are computed (the reference, or a fast path
checked to compute the same function) is rnnlm_jax.backends' choice: a
``backends.Path``, resolved from the config at trace time.
"""

import functools

import jax
import jax.numpy as jnp

from rnnlm_jax import backends
from rnnlm_jax import cells as cells_lib
from rnnlm_jax import losses
from rnnlm_jax import matmul
from rnnlm_jax import scan
from rnnlm_jax import window
from rnnlm_jax.config import ModelConfig

# kind -> (init(key, cfg), apply(params, cfg, carry, x, reset, key)).
_WINDOW_MODELS = {
    "neural_ngram": (window.init_neural, window.apply_neural),
    "maxent": (window.init_maxent, window.apply_maxent),
}


def _check_kind(cfg: ModelConfig) -> None:
  if cfg.kind != "rnn" and cfg.kind not in _WINDOW_MODELS:
    raise ValueError(f"model.kind={cfg.kind!r} has no neural parameters")


def embed_dim(cfg: ModelConfig) -> int:
  return cfg.embed_dim or cfg.hidden


def layer_widths(cfg: ModelConfig) -> tuple:
  """Each layer's hidden width: model.hidden, and model.last_hidden (where
  set) for the top layer."""
  top = cfg.last_hidden or cfg.hidden
  return (cfg.hidden,) * (cfg.num_layers - 1) + (top,)


def init_lm(key, cfg: ModelConfig, train_ids=None, train_reset=None):
  """Initial parameters of the language model described by cfg;
  ``train_ids``, the training tokens, and ``train_reset``, where their
  window restarts, for a model that builds its features from them
  (model.maxent_features="exact")."""
  if cfg.vocab_size <= 0:
    raise ValueError("model.vocab_size must be set before init_lm")
  _check_kind(cfg)
  if cfg.kind == "maxent":
    return window.init_maxent(key, cfg, train_ids, train_reset)
  if cfg.kind in _WINDOW_MODELS:
    return _WINDOW_MODELS[cfg.kind][0](key, cfg)
  cell = cells_lib.get_cell(cfg.cell)
  k_emb, k_out_w, k_out_b, *k_layers = jax.random.split(key, 3 + cfg.num_layers)
  scale = cfg.init_scale if cfg.init_scale > 0 else cfg.hidden**-0.5
  u = lambda k, shape: jax.random.uniform(k, shape, jnp.float32, -scale, scale)
  widths = layer_widths(cfg)
  inputs = (embed_dim(cfg),) + widths[:-1]
  layers = [
      cells_lib.init_params(cell, k, i, h, cfg.init_scale)
      for k, i, h in zip(k_layers, inputs, widths)
  ]
  out = {"b": u(k_out_b, (cfg.vocab_size,))}
  if not cfg.tie_weights:
    out["w"] = u(k_out_w, (widths[-1], cfg.vocab_size))
  return {
      "embed": u(k_emb, (cfg.vocab_size, embed_dim(cfg))),
      "layers": layers,
      "out": out,
  }


def init_carry(cfg: ModelConfig, batch: int):
  """Zero state: a tuple with one carry (tuple of [B, H_l] arrays) per
  layer; for the window models, an empty window."""
  _check_kind(cfg)
  if cfg.kind in _WINDOW_MODELS:
    return window.init_carry(cfg, batch)
  cell = cells_lib.get_cell(cfg.cell)
  return tuple(cells_lib.init_carry(cell, batch, h) for h in layer_widths(cfg))


def output_weights(params):
  return params["out"]["w"] if "w" in params["out"] else params["embed"].T


def dropout(key, rate, x, num_steps=None, steps=slice(None), locked=False):
  """Inverted dropout of x_TB...; with ``num_steps``, x holds the time steps
  ``steps`` of a [num_steps, ...] array, and gets that slice of its mask, so
  a sequence run in time chunks is dropped as it would be whole. ``locked``
  (variational dropout, Gal and Ghahramani 2016): one mask [B, ...] for
  every time step, the same in every chunk."""
  if locked:
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape[1:])
  else:
    shape = x.shape if num_steps is None else (num_steps,) + x.shape[1:]
    keep = jax.random.bernoulli(key, 1.0 - rate, shape)[steps]
  return jnp.where(keep, x / (1.0 - rate), 0.0)


def embedding_dropout(key, rate, embed_VE, x_TB):
  """The embeddings of tokens x_TB with whole words dropped (AWD-LSTM's
  embedding dropout): each of the V words is kept with probability
  1 - rate, its row then scaled by 1 / (1 - rate) at every position, or
  zero at every position. The rows of the masked matrix, without building
  it: [T, B, E]."""
  keep_V = jax.random.bernoulli(key, 1.0 - rate, embed_VE.shape[:1])
  keep_TB1 = jnp.take(keep_V, x_TB, axis=0)[..., None]
  e_TBE = jnp.take(embed_VE, x_TB, axis=0)
  return jnp.where(keep_TB1, e_TBE / (1.0 - rate), 0.0)


def weight_drop(key, rate, layers):
  """The layers with DropConnect on each recurrent weight w_hh (AWD-LSTM's
  WeightDrop): one mask over its entries per call, so every time step and
  every sequence of the batch sees the same dropped weight, the kept
  entries scaled by 1 / (1 - rate). The gradient reaches the parameter
  through the mask; the parameter itself is not changed."""
  keys = jax.random.split(key, len(layers))
  return [
      {**p, "w_hh": dropout(k, rate, p["w_hh"])} for k, p in zip(keys, layers)
  ]


def _site_rate(own: float, cfg: ModelConfig, rate):
  """(whether a dropout site drops, its rate): its own setting, or where
  that is -1, model.dropout's (``rate``, possibly traced)."""
  if own >= 0:
    return own > 0, own
  return cfg.dropout > 0, rate


def _folds_embedding(path, cfg: ModelConfig, tokens: int, use_dropout: bool):
  """Whether layer 0 gathers rows of embed @ w_ih (see
  ModelConfig.fold_embedding): fewer FLOPs when V <= B * T. use_dropout:
  whether the embeddings are dropped (model.dropout_input's rate or
  model.dropout_embed), which the table cannot hold."""
  return (
      path.fold_embedding
      and cfg.vocab_size <= tokens
      and not use_dropout
      and cfg.remat_chunk <= 0
  )


def _top_states(params, cfg, carry, x_BT, reset_BT, dropout_key, rate):
  """(top-layer outputs h_TBH, the same after output dropout, final carry);
  see hidden_states."""
  cell = cells_lib.get_cell(cfg.cell)
  train = dropout_key is not None
  locked = cfg.dropout_mask == "locked"
  drops_input, input_rate = _site_rate(cfg.dropout_input, cfg, rate)
  drops_hidden, hidden_rate = _site_rate(cfg.dropout_hidden, cfg, rate)
  drops_words = train and cfg.dropout_embed > 0
  drops_input = train and drops_input
  keys, awd_keys = None, None
  if train:
    # Zaremba's sites: the embeddings, between layers l - 1 and l, output.
    keys = jax.random.split(dropout_key, cfg.num_layers + 1)
    # AWD's: the embedding matrix's words, the recurrent weights.
    awd_keys = jax.random.split(jax.random.fold_in(dropout_key, 1), 2)
  num_steps = x_BT.shape[1]
  between = None
  if train and drops_hidden:
    between = lambda l, h, steps: dropout(
        keys[l], hidden_rate, h, num_steps, steps, locked
    )
  layers = params["layers"]
  if train and cfg.weight_drop > 0:
    layers = weight_drop(awd_keys[1], cfg.weight_drop, layers)

  dtype = layers[0]["w_ih"].dtype
  path = backends.resolve(cfg, dtype)
  x_TBE, xw_TBG = None, None
  if _folds_embedding(path, cfg, x_BT.size, drops_input or drops_words):
    table_VG = scan.project_inputs(layers[0], params["embed"], path.dot)
    xw_TBG = jnp.take(table_VG, x_BT.T, axis=0)
  else:
    if drops_words:
      x_TBE = embedding_dropout(
          awd_keys[0], cfg.dropout_embed, params["embed"], x_BT.T
      )
    else:
      x_TBE = jnp.take(params["embed"], x_BT.T, axis=0)
    if drops_input:
      x_TBE = dropout(keys[0], input_rate, x_TBE, locked=locked)
  reset_TB = None if reset_BT is None else reset_BT.T
  dtypes = (dtype, jax.tree.leaves(carry)[0].dtype)
  kernel = path.layer(num_steps, *dtypes) is not None
  carry, h_TBH = scan.run_stack(
      cell,
      layers,
      carry,
      x_TBE,
      reset_TB,
      between=between,
      unroll=cfg.unroll,
      impl=path.scan,
      remat_chunk=cfg.remat_chunk,
      first_xw_TBG=xw_TBG,
      time_chunks=backends.time_chunks(path, num_steps, kernel),
      dot=path.dot,
      fast=lambda steps: path.layer(steps, *dtypes),
  )
  dropped_TBH = h_TBH
  if train and cfg.dropout > 0:
    dropped_TBH = dropout(keys[cfg.num_layers], rate, h_TBH, locked=locked)
  return h_TBH, dropped_TBH, carry


def hidden_states(
    params,
    cfg: ModelConfig,
    carry,
    x_BT,
    reset_BT=None,
    dropout_key=None,
    dropout_rate=None,
):
  """Top-layer states h_BTH (after output dropout) and the final carry.

  Args:
    params: model parameters.
    cfg: model config.
    carry: state from init_carry or from the previous segment.
    x_BT: int token ids.
    reset_BT: optional bool mask; zero the state before consuming x_BT[b, t].
    dropout_key: a PRNG key turns dropout (of every kind: model.dropout and
      its sites' own rates, dropout_embed, weight_drop) on (training); None
      turns it off.
    dropout_rate: model.dropout's rate, possibly traced (vectorised
      trials); default cfg.dropout. It is the output's rate, and the
      embeddings' and between layers' where their own rates are -1. A site
      drops only where its configured rate is > 0.
  """
  rate = cfg.dropout if dropout_rate is None else dropout_rate
  _, h_TBH, carry = _top_states(
      params, cfg, carry, x_BT, reset_BT, dropout_key, rate
  )
  return jnp.swapaxes(h_TBH, 0, 1), carry


def apply_lm(
    params,
    cfg: ModelConfig,
    carry,
    x_BT,
    reset_BT=None,
    dropout_key=None,
    dropout_rate=None,
):
  """Next-token logits.

  Returns:
    (logits_BTV, final carry).
  """
  _check_kind(cfg)
  if cfg.kind in _WINDOW_MODELS:
    apply = _WINDOW_MODELS[cfg.kind][1]
    return apply(params, cfg, carry, x_BT, reset_BT, dropout_key, dropout_rate)
  h_BTH, carry = hidden_states(
      params, cfg, carry, x_BT, reset_BT, dropout_key, dropout_rate
  )
  return output_logits(params, h_BTH), carry


def activation_penalty(
    h_BTH, dropped_BTH, mask_BT, ar_alpha, tar_beta, reset_BT=None
):
  """AWD-LSTM's activation regularisation (AR) and temporal activation
  regularisation (TAR) of the top layer's outputs: ar_alpha * the mean of
  dropped_BTH ** 2 (after output dropout), plus tar_beta * the mean of
  (h_t - h_{t-1}) ** 2 (before it) over the consecutive positions of the
  segment. Means over positions and units; positions whose mask_BT is 0
  (padding; None: none) are left out, and so are the pairs they are in;
  so is a pair across a state reset (reset_BT[b, t] true: h_t starts a new
  sentence under data.reset_at_eos, and owes h_{t-1} no smoothness).
  AWD-LSTM never resets, so without resets this is its formula. A weight of
  0 builds nothing of its term."""
  if mask_BT is None:
    mask_BT = jnp.ones(h_BTH.shape[:2], h_BTH.dtype)
  mask_BT = mask_BT.astype(h_BTH.dtype)
  units = h_BTH.shape[-1]
  penalty = jnp.zeros((), h_BTH.dtype)
  if ar_alpha:
    squares = jnp.sum(jnp.square(dropped_BTH) * mask_BT[..., None])
    penalty += ar_alpha * squares / jnp.maximum(mask_BT.sum() * units, 1.0)
  if tar_beta:
    pairs_BT = mask_BT[:, 1:] * mask_BT[:, :-1]
    if reset_BT is not None:
      pairs_BT = pairs_BT * (1 - reset_BT[:, 1:].astype(h_BTH.dtype))
    steps_BTH = h_BTH[:, 1:] - h_BTH[:, :-1]
    squares = jnp.sum(jnp.square(steps_BTH) * pairs_BT[..., None])
    penalty += tar_beta * squares / jnp.maximum(pairs_BT.sum() * units, 1.0)
  return penalty


def output_logits(params, h_BTH):
  """The softmax layer: h @ w + b for all positions as one matmul."""
  return h_BTH @ output_weights(params) + params["out"]["b"]


def _nll_of_rows(hb_NH, wb_HV, y_N, dot):
  """(nll_N, z_NV, lse_N) with the bias folded into hb (a column of ones)
  and wb (its last row)."""
  z_NV = dot(hb_NH, wb_HV).astype(jnp.promote_types(hb_NH.dtype, jnp.float32))
  m_N = jnp.max(z_NV, axis=-1)
  lse_N = m_N + jnp.log(jnp.sum(jnp.exp(z_NV - m_N[:, None]), axis=-1))
  zy_N = jnp.take_along_axis(z_NV, y_N[:, None], axis=-1)[:, 0]
  return lse_N - zy_N, z_NV, lse_N


def _fold_bias(h_NH, w_HV, b_V):
  # The bias enters the matmul as one more row of w against a column of
  # ones: adding it to the [N, V] logits afterwards would cost a full extra
  # pass over them (on CPU, as much as the matmul itself).
  ones_N1 = jnp.ones((h_NH.shape[0], 1), h_NH.dtype)
  hb_NH = jnp.concatenate([h_NH, ones_N1], axis=1)
  wb_HV = jnp.concatenate([w_HV, b_V[None].astype(w_HV.dtype)], axis=0)
  return hb_NH, wb_HV


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _softmax_xent(dot, fast, h_NH, w_HV, b_V, y_N):
  # Not differentiated (evaluation): the plain computation, which computes
  # no gradient (a loss-only kernel measured slower: docs/performance.md).
  del fast
  return _nll_of_rows(*_fold_bias(h_NH, w_HV, b_V), y_N, dot)[0]


def _softmax_xent_fwd(dot, fast, h_NH, w_HV, b_V, y_N):
  if fast is not None:
    # The loss and softmax - onehot from one kernel that reduces the logits
    # in cache (backends.Path.softmax_kernel).
    nll_N, e_NV = fast(h_NH, w_HV, b_V, y_N)
    return nll_N, (h_NH, w_HV, b_V, y_N, e_NV, None)
  nll_N, z_NV, lse_N = _nll_of_rows(*_fold_bias(h_NH, w_HV, b_V), y_N, dot)
  return nll_N, (h_NH, w_HV, b_V, y_N, z_NV, lse_N)


def _softmax_xent_bwd(dot, fast, res, g_N):
  del fast
  h_NH, w_HV, b_V, y_N, z_NV, lse_N = res
  g_N1 = g_N[:, None]
  if lse_N is None:
    # z is softmax - onehot already; g scales the products' small operands
    # instead. (The bias's gradient as one more row of the weight's product
    # measured slower: slicing it off copied the [H, V] gradient.)
    dh_NH = dot(z_NV, w_HV, trans_b=True) * g_N1
    dw_HV = matmul.weight_grad(h_NH * g_N1, z_NV, dot)
    return dh_NH, dw_HV, (z_NV * g_N1).sum(axis=0), None
  onehot_NV = y_N[:, None] == jnp.arange(z_NV.shape[-1])[None, :]
  # softmax - onehot, built in one elementwise pass (no scatter).
  p_NV = jnp.exp(z_NV - lse_N[:, None])
  dz_NV = (jnp.where(onehot_NV, p_NV - 1.0, p_NV) * g_N1).astype(h_NH.dtype)
  dh_NH = dot(dz_NV, w_HV, trans_b=True)
  dw_HV = matmul.weight_grad(h_NH, dz_NV, dot)
  db_V = dz_NV.sum(axis=0).astype(b_V.dtype)
  return dh_NH, dw_HV.astype(w_HV.dtype), db_V, None


_softmax_xent.defvjp(_softmax_xent_fwd, _softmax_xent_bwd)


def output_nll(params, h_BTH, y_BT, path=None):
  """-log p(y | h) of the softmax layer, [B, T], without materialising the
  logits beyond one [B*T, V] array (a custom VJP writes the backward as one
  elementwise pass and the three matmuls). Equal to
  losses.token_nll(output_logits(params, h_BTH), y_BT). path: a
  backends.Path (its GEMM and softmax kernel), or None for the reference."""
  b, t, h = h_BTH.shape
  dot = matmul.xla_dot if path is None else path.dot
  fast = None if path is None else path.softmax_kernel(h_BTH.dtype)
  nll_N = _softmax_xent(
      dot,
      fast,
      h_BTH.reshape(b * t, h),
      output_weights(params),
      params["out"]["b"],
      y_BT.reshape(b * t),
  )
  return nll_N.reshape(b, t)


def token_nll(
    params,
    cfg: ModelConfig,
    carry,
    x_BT,
    y_BT,
    reset_BT=None,
    dropout_key=None,
    dropout_rate=None,
):
  """Per-token negative log-likelihood of targets y_BT: the fast path for
  training and evaluation, equal to losses.token_nll of apply_lm's logits.

  Returns:
    (nll_BT, final carry).
  """
  _check_kind(cfg)
  if cfg.kind == "maxent" and cfg.maxent_classes:
    return window.maxent_class_nll(params, cfg, carry, x_BT, y_BT, reset_BT)
  if cfg.kind in _WINDOW_MODELS:
    logits, carry = apply_lm(
        params, cfg, carry, x_BT, reset_BT, dropout_key, dropout_rate
    )
    return losses.token_nll(logits, y_BT), carry
  h_BTH, carry = hidden_states(
      params, cfg, carry, x_BT, reset_BT, dropout_key, dropout_rate
  )
  path = backends.resolve(cfg, params["layers"][0]["w_ih"].dtype)
  return output_nll(params, h_BTH, y_BT, path), carry


def token_nll_with_states(
    params,
    cfg: ModelConfig,
    carry,
    x_BT,
    y_BT,
    reset_BT=None,
    dropout_key=None,
    dropout_rate=None,
):
  """token_nll of the recurrent model, with the top layer's outputs before
  and after output dropout (for activation_penalty).

  Returns:
    (nll_BT, final carry, h_BTH, dropped_BTH).
  """
  if cfg.kind != "rnn":
    raise ValueError(f"model.kind={cfg.kind!r} has no recurrent states")
  rate = cfg.dropout if dropout_rate is None else dropout_rate
  h_TBH, dropped_TBH, carry = _top_states(
      params, cfg, carry, x_BT, reset_BT, dropout_key, rate
  )
  h_BTH, dropped_BTH = (jnp.swapaxes(a, 0, 1) for a in (h_TBH, dropped_TBH))
  path = backends.resolve(cfg, params["layers"][0]["w_ih"].dtype)
  nll_BT = output_nll(params, dropped_BTH, y_BT, path)
  return nll_BT, carry, h_BTH, dropped_BTH
