"""Vanishing and exploding gradients: how strongly the loss at step t depends
on the hidden state k steps earlier, and the recurrent weights' spectrum.

What is measured. The readout J_t is the cross-entropy -log p(y_t | x_<=t)
of one example's target y_t at step t (the norm is that of the gradient of the
log-probability too). For every example b of a batch and every k <= t,

  g[t, k, b] = || d J_t^b / d h_k^b ||_2,

where h_k is the top layer's hidden output at step k (for the LSTM the output
h, not the cell c). Reported norms are means over the batch; examples do not
interact, so the gradient of the batch sum sum_b J_t^b with respect to h_k^b
is d J_t^b / d h_k^b.

How. A zero "probe" delta_k [B, H] is added to the top layer's output after
each step, h_k + delta_k, and that sum is both read out and fed to step k + 1
(as the h part of the carry). Then d J / d delta_k = d J / d h_k exactly, and
one reverse pass yields the gradient at every step. Lower layers (if any) run
unprobed; dropout is off; the state starts at zero.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from rnnlm_jax import cells as cells_lib
from rnnlm_jax import models
from rnnlm_jax import scan
from rnnlm_jax.config import ModelConfig


def _check(cfg: ModelConfig) -> None:
  if cfg.kind != "rnn":
    raise ValueError(f"gradient norms need a recurrent model, not {cfg.kind!r}")


def _probed_logprobs(params, cfg: ModelConfig, x_BT, y_BT, delta_TBH):
  """log p(y[b, t] | x[b, :t+1]) [T, B], with delta_t added to the top
  layer's output after step t."""
  cell = cells_lib.get_cell(cfg.cell)
  batch = x_BT.shape[0]
  dtype = params["embed"].dtype
  carries = [
      tuple(
          a.astype(dtype) for a in cells_lib.init_carry(cell, batch, cfg.hidden)
      )
      for _ in params["layers"]
  ]
  x_TBE = jnp.take(params["embed"], x_BT.T, axis=0)
  # The layers below the top one (none for a 1-layer model) run unprobed.
  _, h_TBI = scan.run_stack(cell, params["layers"][:-1], carries[:-1], x_TBE)
  top = params["layers"][-1]
  xw_TBG = scan.project_inputs(top, h_TBI)

  def body(carry, inputs):
    xw_BG, d_BH = inputs
    carry, h_BH = cell.step(top, carry, xw_BG)
    h_BH = h_BH + d_BH
    return (h_BH, *carry[1:]), h_BH

  _, h_TBH = jax.lax.scan(body, carries[-1], (xw_TBG, delta_TBH))
  logits_TBV = h_TBH @ models.output_weights(params) + params["out"]["b"]
  logp_TBV = jax.nn.log_softmax(logits_TBV, axis=-1)
  return jnp.take_along_axis(logp_TBV, y_BT.T[..., None], axis=-1)[..., 0]


def _zeros_probe(params, cfg, x_BT):
  b, t = x_BT.shape
  return jnp.zeros((t, b, cfg.hidden), params["embed"].dtype)


@functools.partial(jax.jit, static_argnums=(1, 3))
def state_gradient_norms(params, cfg: ModelConfig, x_BT, t: int, y_B=None):
  """|| d J_t / d h_k || for k = 0..t, averaged over the batch: [t + 1].

  Args:
    params: language-model parameters (models.init_lm).
    cfg: its model config (kind "rnn").
    x_BT: int tokens; steps 0..t are read.
    t: the step whose loss J_t is differentiated.
    y_B: the target of step t; by default the next token x_BT[:, t + 1].

  Entry k is the mean over examples of ||d J_t^b / d h_k^b||; entry t (the
  state read out directly) is the readout gradient ||W_out (p_t - onehot)||.
  """
  _check(cfg)
  x_BT = jnp.asarray(x_BT)
  if y_B is None:
    if t + 1 >= x_BT.shape[1]:
      raise ValueError(f"no next token after step {t}: pass y_B")
    y_B = x_BT[:, t + 1]
  x_BT = x_BT[:, : t + 1]
  y_BT = jnp.broadcast_to(jnp.asarray(y_B)[:, None], x_BT.shape)

  def loss(delta):
    return -_probed_logprobs(params, cfg, x_BT, y_BT, delta)[t].sum()

  g_TBH = jax.grad(loss)(_zeros_probe(params, cfg, x_BT))
  return jnp.linalg.norm(g_TBH, axis=-1).mean(axis=1)


@functools.partial(jax.jit, static_argnums=1)
def gradient_norm_matrix(params, cfg: ModelConfig, x_BT, y_BT):
  """G[t, k] = mean over the batch of || d J_t / d h_k ||, [T, T]; zero for
  k > t (the future does not affect J_t). One reverse pass per t, vmapped."""
  _check(cfg)

  def losses(delta):
    return -_probed_logprobs(params, cfg, x_BT, y_BT, delta).sum(axis=1)

  jac_TTBH = jax.jacrev(losses)(_zeros_probe(params, cfg, x_BT))
  return jnp.linalg.norm(jac_TTBH, axis=-1).mean(axis=-1)


def gradient_norm_by_distance(params, cfg: ModelConfig, x_BT, y_BT=None):
  """Mean || d J_t / d h_{t-d} || as a function of the distance d: [T].

  Entry d averages over every position t >= d of the sequence (T - d
  positions, so far distances rest on fewer positions) and over the batch.
  Entry 0 is the readout gradient. y_BT are the targets (y[:, t] for J_t); by
  default the next tokens, so that x_BT[:, 1:] are the targets of
  x_BT[:, :-1] and the result has length T - 1.
  """
  x_BT = jnp.asarray(x_BT)
  if y_BT is None:
    x_BT, y_BT = x_BT[:, :-1], x_BT[:, 1:]
  g = np.asarray(gradient_norm_matrix(params, cfg, x_BT, jnp.asarray(y_BT)))
  n = g.shape[0]
  return np.array([np.diagonal(g, offset=-d).mean() for d in range(n)])


# The block of the stacked recurrent matrix that forms the candidate state:
# LSTM gates (i, f, g, o), GRU gates (r, z, n): the third block.
_CANDIDATE_BLOCK = {"lstm": 2, "gru": 2}


def recurrent_spectrum(params, cfg: ModelConfig, layer: int = 0) -> dict:
  """Spectrum of a layer's recurrent weights.

  The cells compute h @ w_hh with w_hh [H, gates * H]. Reported:
    spectral_radius: max |eigenvalue| of the [H, H] block W,
    max_singular: the largest singular value of W,
    max_singular_stacked: the largest singular value of the whole w_hh,
  where W is w_hh itself for the Elman cells (rnn_*) and the candidate block
  for the gated cells (LSTM g = tanh block, GRU n block, columns 2H:3H).

  For a tanh RNN, dh_{k+1}/dh_k = diag(1 - h_{k+1}^2) W^T, so with
  max_singular < 1 every gradient shrinks with distance; a sigmoid's slope is
  at most 1/4, so there the bound is max_singular < 4.
  """
  _check(cfg)
  w = np.asarray(params["layers"][layer]["w_hh"], np.float64)
  h = w.shape[0]
  block = _CANDIDATE_BLOCK.get(cfg.cell, 0)
  w_block = w[:, block * h : (block + 1) * h]
  return {
      "block": "candidate" if cfg.cell in _CANDIDATE_BLOCK else "w_hh",
      "spectral_radius": float(np.abs(np.linalg.eigvals(w_block)).max()),
      "max_singular": float(np.linalg.norm(w_block, 2)),
      "max_singular_stacked": float(np.linalg.norm(w, 2)),
  }
