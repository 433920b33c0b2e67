"""Running parity: the textbook task that an RNN's state must carry
indefinitely.

Input: a bit string x_1..x_T. Target at step t: x_1 XOR ... XOR x_t.

``hand_set_network`` is an Elman network with sigmoid units whose weights
are set by hand to compute the parity exactly: two hidden units, an OR and
an AND of (x_t, p_{t-1}), whose difference is p_t = x_t XOR p_{t-1}:

  h1_t = sigmoid(k (x_t + h1_{t-1} - h2_{t-1} - 0.5))    # OR
  h2_t = sigmoid(k (x_t + h1_{t-1} - h2_{t-1} - 1.5))    # AND
  p(parity = 1) = sigmoid(k (h1_t - h2_t - 0.5))

With a steep k every unit saturates within exp(-k/2) of 0 or 1, so the
error never accumulates. The same cells (rnn_tanh, lstm, ...) can learn the
task from data: ``train_classifier`` fits one with optax and
``accuracy_by_length`` measures it on strings longer than those seen.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from rnnlm_jax import cells as cells_lib
from rnnlm_jax import scan


def parity_targets(bits_BT):
  """Running parity [B, T] of bits [B, T] (ints 0/1)."""
  return jnp.cumsum(bits_BT, axis=1) % 2


def hand_set_network(sharpness: float = 20.0):
  """Parameters {"cell": "rnn_sigmoid", "layer": ..., "out": ...} of the
  exact parity network."""
  k = sharpness
  layer = {
      "w_ih": jnp.array([[k, k]]),  # x_t feeds both units
      "w_hh": jnp.array([[k, k], [-k, -k]]),  # + h1 - h2 = + p_{t-1}
      "b": jnp.array([-0.5 * k, -1.5 * k]),
  }
  out = {"w": jnp.array([[k], [-k]]), "b": jnp.array([-0.5 * k])}
  return {"cell": "rnn_sigmoid", "layer": layer, "out": out}


def init_classifier(key, cell: str, hidden: int, scale: float = 0.0):
  """A one-layer recurrent classifier of the running parity."""
  k_layer, k_out = jax.random.split(key)
  c = cells_lib.get_cell(cell)
  return {
      "cell": cell,
      "layer": cells_lib.init_params(c, k_layer, 1, hidden, scale),
      "out": {
          "w": jax.random.normal(k_out, (hidden, 1)) * hidden**-0.5,
          "b": jnp.zeros((1,)),
      },
  }


def parity_logits(params, bits_BT):
  """Logit of parity 1 after each bit: [B, T]."""
  cell = cells_lib.get_cell(params["cell"])
  hidden = params["layer"]["w_hh"].shape[0]
  B = bits_BT.shape[0]
  x_TB1 = bits_BT.T[:, :, None].astype(jnp.float32)
  _, h_TBH = scan.run_layer(
      cell, params["layer"], cells_lib.init_carry(cell, B, hidden), x_TB1
  )
  logits = h_TBH @ params["out"]["w"] + params["out"]["b"]
  return logits[:, :, 0].T


def random_bits(key, batch: int, length: int):
  return jax.random.bernoulli(key, 0.5, (batch, length)).astype(jnp.int32)


def _split(params):
  cell = params["cell"]
  return cell, {k: v for k, v in params.items() if k != "cell"}


def train_classifier(
    cell: str,
    hidden: int,
    length: int,
    steps: int,
    batch: int = 64,
    learning_rate: float = 1e-2,
    seed: int = 0,
    last_only: bool = False,
):
  """Adam on the cross-entropy over random strings of ``length`` bits (fresh
  ones every step), at every step, or at the last bit only (``last_only``:
  the error signal must then travel back the whole string). Returns
  (params, mean loss of the last 50 steps)."""
  key = jax.random.key(seed)
  cell_name, weights = _split(init_classifier(key, cell, hidden))
  tx = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(learning_rate))

  def loss_fn(w, bits):
    logits = parity_logits({"cell": cell_name, **w}, bits)
    targets = parity_targets(bits).astype(jnp.float32)
    if last_only:
      logits, targets = logits[:, -1], targets[:, -1]
    return optax.sigmoid_binary_cross_entropy(logits, targets).mean()

  @jax.jit
  def train_step(w, opt_state, step):
    bits = random_bits(jax.random.fold_in(key, step), batch, length)
    loss, grads = jax.value_and_grad(loss_fn)(w, bits)
    updates, opt_state = tx.update(grads, opt_state, w)
    return optax.apply_updates(w, updates), opt_state, loss

  def body(state, step):
    w, opt_state = state
    w, opt_state, loss = train_step(w, opt_state, step)
    return (w, opt_state), loss

  (weights, _), losses = jax.lax.scan(
      body, (weights, tx.init(weights)), jnp.arange(steps)
  )
  return {"cell": cell_name, **weights}, float(losses[-50:].mean())


def accuracy_by_length(
    params, lengths, num: int = 512, seed: int = 1
) -> dict[int, float]:
  """Fraction of random strings whose parity after the last bit is right."""
  out = {}
  for length in lengths:
    bits = random_bits(jax.random.key(seed + length), num, length)
    logits = parity_logits(params, bits)[:, -1]
    right = (logits > 0).astype(jnp.int32) == parity_targets(bits)[:, -1]
    out[int(length)] = float(np.mean(np.asarray(right)))
  return out
