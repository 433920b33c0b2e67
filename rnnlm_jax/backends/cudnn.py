"""The LSTM layer as cuDNN's kernel (``model.scan_impl="cudnn"``, GPU only).

``jax.experimental.rnn.lstm`` runs a whole layer, its input projection,
recurrence and backward, in cuDNN's kernels (the ones PyTorch's nn.LSTM
calls on a GPU). rnnlm_jax's parameters are packed into cuDNN's flat weight
at every call (a concatenation, small beside the layer) and each layer is
one call, so the model's dropout between layers and its parameters stay as
they are: the same function as the other implementations, the same
checkpoints.

The layout (jax.experimental.rnn's module docstring): for one
unidirectional layer, W_ih [4H, I], W_hh [4H, H], b_ih [4H], b_hh [4H],
flattened in that order, gates i, f, g, o (rnnlm_jax's order too).
rnnlm_jax keeps one bias, so b_hh is zero.

What it does not do: cells other than the LSTM; reversed layers; a state
reset after a segment's first position (``data.reset_at_eos``: the
configuration refuses it); rematerialisation; the folded embedding (cuDNN
projects its own inputs). cuDNN's float32 products use TF32 unless
``jax_default_matmul_precision`` asks for full precision.
"""

import jax
import jax.numpy as jnp
from jax.experimental import rnn

from rnnlm_jax import cells

# The cell whose math cuDNN's kernel computes: rnnlm_jax.cells' LSTM object
# (a cell registered as "lstm" with another function is not it).
CELL = cells.CELLS["lstm"]


def unavailable() -> str | None:
  """Why the cuDNN LSTM cannot run in this process, or None."""
  backend = jax.default_backend()
  if backend != "gpu":
    return (
        "model.scan_impl='cudnn' runs on a CUDA GPU (cuDNN's LSTM through "
        f"jax.experimental.rnn); JAX's backend here is {backend!r}"
    )
  return None


def _cudnn_lstm(x_BTI, h0, c0, weights, lengths_B, input_size, hidden_size):
  reason = unavailable()
  if reason:
    raise ValueError(reason)
  return rnn.lstm(
      x_BTI,
      h0,
      c0,
      weights,
      lengths_B,
      input_size=input_size,
      hidden_size=hidden_size,
      num_layers=1,
      dropout=0.0,
      bidirectional=False,
  )


# The kernel layer() calls, with jax.experimental.rnn.lstm's arguments for
# one unidirectional layer; tests put jax.experimental.rnn.lstm_ref in its
# place to check the packing and the model on a CPU.
kernel = _cudnn_lstm


def pack(params):
  """rnnlm_jax's LSTM parameters as cuDNN's flat weight for one layer."""
  w_ih, w_hh, b = params["w_ih"], params["w_hh"], params["b"]
  return jnp.concatenate([w_ih.T.ravel(), w_hh.T.ravel(), b, jnp.zeros_like(b)])


def layer(params, carry, x_TBI, reset_TB=None):
  """One LSTM layer over x_TBI from carry (h, c): (final carry, h_TBH). A
  reset at the first position zeroes that stream's carry; later resets are
  not applied (see the module docstring)."""
  h_BH, c_BH = carry
  if reset_TB is not None:
    keep_B1 = ~reset_TB[0][:, None]
    h_BH, c_BH = jnp.where(keep_B1, h_BH, 0.0), jnp.where(keep_B1, c_BH, 0.0)
  steps, batch, inputs = x_TBI.shape
  hidden = h_BH.shape[-1]
  y_BTH, h_n, c_n = kernel(
      jnp.swapaxes(x_TBI, 0, 1),
      h_BH[None],
      c_BH[None],
      pack(params),
      jnp.full((batch,), steps, jnp.int32),
      inputs,
      hidden,
  )
  return (h_n[0], c_n[0]), jnp.swapaxes(y_BTH, 0, 1)
