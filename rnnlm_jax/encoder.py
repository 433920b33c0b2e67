"""Recurrent sentence encoders, and the heads of the sentence tasks.

A padded batch of sentences (x_BT with a left-aligned mask_BT) runs through
the embedding and stacked recurrent layers of any cell (rnnlm_jax.cells, run
by rnnlm_jax.scan as the language models' layers are). A bidirectional layer
is two: one forward, one backward over the same batch, each sentence's
backward pass starting at its own last token (the carry is reset there, so
the padding after it never reaches a real token); their outputs are
concatenated or summed (model.merge) and fed to the next layer.

Heads: ``classify_logits`` pools each sentence into one vector (the ends:
forward state at the last token with backward state at the first; or the
mean or max over tokens) and maps it to class logits; ``tag_emissions``
maps each token's output to tag scores, for a per-token softmax or a
linear-chain CRF (rnnlm_jax.crf). Parameters are a plain pytree:

  {"embed": [V, E], "features": [P, F] (model.feature_dim > 0),
   "layers": [{"fwd": cell params, "bwd": cell params (bidirectional)}, ...],
   "out": {"w": [D, C], "b": [C]}, "crf": {...} (model.head "crf")}
"""

import jax
import jax.numpy as jnp

from rnnlm_jax import backends
from rnnlm_jax import cells as cells_lib
from rnnlm_jax import crf
from rnnlm_jax import models
from rnnlm_jax import scan
from rnnlm_jax.config import ModelConfig

DIRECTIONS = ("fwd", "bwd")


def _directions(cfg: ModelConfig) -> tuple[str, ...]:
  return DIRECTIONS if cfg.bidirectional else DIRECTIONS[:1]


def output_dim(cfg: ModelConfig) -> int:
  """The width of each token's output from the top layer."""
  if cfg.bidirectional and cfg.merge == "concat":
    return 2 * cfg.hidden
  return cfg.hidden


def pooled_dim(cfg: ModelConfig) -> int:
  """The width of a pooled sentence vector."""
  if cfg.pooling == "ends":
    return len(_directions(cfg)) * cfg.hidden
  return output_dim(cfg)


def init_params(key, cfg: ModelConfig, num_classes: int, per_token: bool):
  """Initial parameters of a classifier (per_token False) or tagger."""
  if cfg.vocab_size <= 0 or num_classes <= 0:
    raise ValueError("model.vocab_size and the classes must be set first")
  cell = cells_lib.get_cell(cfg.cell)
  dirs = _directions(cfg)
  keys = iter(jax.random.split(key, 5 + len(dirs) * cfg.num_layers))
  scale = cfg.init_scale if cfg.init_scale > 0 else cfg.hidden**-0.5
  u = lambda shape: jax.random.uniform(
      next(keys), shape, jnp.float32, -scale, scale
  )
  embed = models.embed_dim(cfg)
  params = {"embed": u((cfg.vocab_size, embed))}
  if cfg.feature_dim:
    params["features"] = u((cfg.num_features, cfg.feature_dim))
  layers, width = [], embed + cfg.feature_dim
  for _ in range(cfg.num_layers):
    layers.append({
        d: cells_lib.init_params(
            cell, next(keys), width, cfg.hidden, cfg.init_scale
        )
        for d in dirs
    })
    width = output_dim(cfg)
  params["layers"] = layers
  head_in = output_dim(cfg) if per_token else pooled_dim(cfg)
  params["out"] = {"w": u((head_in, num_classes)), "b": u((num_classes,))}
  if per_token and cfg.head == "crf":
    params["crf"] = crf.init_params(next(keys), num_classes)
  return params


def _run_direction(cell, params, cfg, path, x_TBI, lengths_B, reverse):
  steps = x_TBI.shape[0]
  # Backward: zero the carry at each sentence's last token, so its pass
  # starts there, untouched by the padding after it.
  reset_TB = None
  if reverse:
    reset_TB = jnp.arange(steps)[:, None] == (lengths_B - 1)[None, :]
  dtypes = (params["w_ih"].dtype, jnp.float32)
  # float32 carries (for bfloat16 inputs too), float64 ones for float64
  # inputs (gradient checks under jax.enable_x64).
  carry_dtype = jnp.promote_types(jnp.float32, x_TBI.dtype)
  carry = tuple(
      a.astype(carry_dtype)
      for a in cells_lib.init_carry(cell, x_TBI.shape[1], cfg.hidden)
  )
  _, h_TBH = scan.run_layer(
      cell,
      params,
      carry,
      x_TBI,
      reset_TB,
      reverse=reverse,
      unroll=cfg.unroll,
      impl=path.scan,
      dot=path.dot,
      fast=path.layer(steps, *dtypes),
  )
  return h_TBH


def encode(
    params,
    cfg: ModelConfig,
    x_BT,
    mask_BT,
    features_BT=None,
    dropout_key=None,
    dropout_rate=None,
):
  """The top layer's outputs of each direction.

  Returns:
    {"fwd": h_BTH, "bwd": h_BTH (bidirectional), "out": h_BTD merged},
    where positions past a sentence's end hold values no result depends on.
  """
  cell = cells_lib.get_cell(cfg.cell)
  path = backends.resolve(cfg, params["embed"].dtype)
  use_dropout = dropout_key is not None and cfg.dropout > 0
  rate = cfg.dropout if dropout_rate is None else dropout_rate
  keys = jax.random.split(dropout_key, cfg.num_layers + 1) if use_dropout else 0
  drop = lambda l, h: models.dropout(keys[l], rate, h) if use_dropout else h
  lengths_B = mask_BT.sum(axis=1).astype(jnp.int32)
  h_TBI = jnp.take(params["embed"], x_BT.T, axis=0)
  if cfg.feature_dim:
    f_TBF = jnp.take(params["features"], features_BT.T, axis=0)
    h_TBI = jnp.concatenate([h_TBI, f_TBF], axis=-1)
  for l, layer in enumerate(params["layers"]):
    h_TBI = drop(l, h_TBI)
    outs = {
        d: _run_direction(cell, layer[d], cfg, path, h_TBI, lengths_B, d == "bwd")
        for d in layer
    }
    if len(outs) == 1:
      h_TBI = outs["fwd"]
    elif cfg.merge == "concat":
      h_TBI = jnp.concatenate([outs["fwd"], outs["bwd"]], axis=-1)
    else:
      h_TBI = outs["fwd"] + outs["bwd"]
  outs["out"] = drop(cfg.num_layers, h_TBI)
  return {k: jnp.swapaxes(v, 0, 1) for k, v in outs.items()}


def pool(cfg: ModelConfig, outs: dict, mask_BT):
  """One vector per sentence, [B, pooled_dim(cfg)] (zeros for a padding
  row without tokens)."""
  lengths_B = mask_BT.sum(axis=1)
  mask_BT1 = mask_BT[..., None]
  if cfg.pooling == "ends":
    last_B = jnp.maximum(lengths_B - 1, 0)
    ends = [jnp.take_along_axis(outs["fwd"], last_B[:, None, None], 1)[:, 0]]
    if "bwd" in outs:
      ends.append(outs["bwd"][:, 0])
    pooled = jnp.concatenate(ends, axis=-1)
  elif cfg.pooling == "mean":
    total = jnp.where(mask_BT1, outs["out"], 0.0).sum(axis=1)
    pooled = total / jnp.maximum(lengths_B, 1)[:, None]
  else:
    pooled = jnp.where(mask_BT1, outs["out"], -jnp.inf).max(axis=1)
  return jnp.where(lengths_B[:, None] > 0, pooled, 0.0)


def classify_logits(params, cfg, x_BT, mask_BT, dropout_key=None, rate=None):
  """Class logits [B, C] of each sentence."""
  outs = encode(params, cfg, x_BT, mask_BT, None, dropout_key, rate)
  return pool(cfg, outs, mask_BT) @ params["out"]["w"] + params["out"]["b"]


def tag_emissions(
    params, cfg, x_BT, mask_BT, features_BT=None, dropout_key=None, rate=None
):
  """Tag scores [B, T, C] of each token: the softmax's logits, or the CRF's
  emission scores."""
  outs = encode(params, cfg, x_BT, mask_BT, features_BT, dropout_key, rate)
  return outs["out"] @ params["out"]["w"] + params["out"]["b"]
