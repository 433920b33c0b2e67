"""The lectures' other small networks, beside the parity network
(:mod:`rnnlm_jax.parity`): a running sum and a running compare, each
hand-set and learned, and parity read by a feed-forward network against
the RNN.

Running sum. Input: numbers x_1..x_T. Target at step t: x_1 + ... + x_t.
The hand-set solution is the linear RNN s_t = s_{t-1} + x_t. The project's
cells have no identity activation, so it is written with two ReLU units,
u = relu(s) and v = relu(-s), whose difference is s again:

  u_t = relu( x_t + u_{t-1} - v_{t-1})
  v_t = relu(-x_t - u_{t-1} + v_{t-1})
  y_t = u_t - v_t = s_t

Running compare. Input: bits. Target at step t: were more 1s than 0s seen
in x_1..x_t? The hand-set solution is the counter d_t = d_{t-1} + (2 x_t - 1)
(the same two ReLU units with input 2 x_t - 1) and a threshold at 1/2 on
the integer d_t: p(more 1s) = sigmoid(k (u_t - v_t - 1/2)).

Both are exact on strings of any length (integer arithmetic in float32 is
exact below 2^24). ``train_network`` learns either task (a
:class:`Task`) with any cell; ``score_by_length`` measures it on strings
longer than those seen.

``mlp_vs_rnn_parity`` measures the lectures' claim that a feed-forward
network finds parity hard while an RNN does not: for each string length n,
a one-hidden-layer MLP reading the whole string and a small RNN get the same
fixed training strings, the same targets (the parity of every prefix), the
same optimizer and the same number of steps, and are scored on held-out
strings.
"""

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from rnnlm_jax import parity


class Task(NamedTuple):
  """A sequence-to-sequence task with one number in and out per step."""

  name: str
  sample: Callable  # (key, batch, length) -> inputs [B, T]
  targets: Callable  # inputs [B, T] -> targets [B, T]
  loss: Callable  # (outputs [B, T], targets [B, T]) -> scalar
  score: Callable  # (outputs [B, T], targets [B, T]) -> scalar
  score_name: str


def running_sum_targets(x_BT):
  """Running total [B, T] of numbers [B, T]."""
  return jnp.cumsum(x_BT, axis=1)


def compare_targets(bits_BT):
  """1 where more 1s than 0s have been seen so far, else 0 (ints [B, T])."""
  return (jnp.cumsum(2 * bits_BT - 1, axis=1) > 0).astype(jnp.int32)


def random_numbers(key, batch: int, length: int):
  """Uniform numbers in [-1, 1]."""
  return jax.random.uniform(key, (batch, length), minval=-1.0, maxval=1.0)


def _rms_error(y_BT, target_BT):
  return jnp.sqrt(jnp.mean((y_BT - target_BT) ** 2))


def _bce(logits_BT, target_BT):
  return optax.sigmoid_binary_cross_entropy(
      logits_BT, target_BT.astype(jnp.float32)
  ).mean()


def _last_accuracy(logits_BT, target_BT):
  return jnp.mean((logits_BT[:, -1] > 0) == (target_BT[:, -1] == 1))


RUNNING_SUM = Task(
    "running sum",
    random_numbers,
    running_sum_targets,
    lambda y, t: jnp.mean((y - t) ** 2),
    _rms_error,
    "rms error over all steps",
)
COMPARE = Task(
    "compare",
    parity.random_bits,
    compare_targets,
    _bce,
    _last_accuracy,
    "accuracy at the last bit",
)


def _two_relu_units(w_in: float, b_in: float):
  """An rnn_relu layer carrying s_t = s_{t-1} + w_in x_t + b_in as
  (relu(s_t), relu(-s_t))."""
  return {
      "w_ih": jnp.array([[w_in, -w_in]]),
      "w_hh": jnp.array([[1.0, -1.0], [-1.0, 1.0]]),  # + u - v = + s_{t-1}
      "b": jnp.array([b_in, -b_in]),
  }


def hand_set_sum_network():
  """Parameters {"cell": "rnn_relu", "layer": ..., "out": ...} of the
  exact running sum: output u_t - v_t = s_t."""
  out = {"w": jnp.array([[1.0], [-1.0]]), "b": jnp.zeros((1,))}
  return {"cell": "rnn_relu", "layer": _two_relu_units(1.0, 0.0), "out": out}


def hand_set_compare_network(sharpness: float = 20.0):
  """Parameters of the exact running compare: a counter of 2 x_t - 1 and
  the logit k (d_t - 1/2)."""
  k = sharpness
  out = {"w": jnp.array([[k], [-k]]), "b": jnp.array([-0.5 * k])}
  return {"cell": "rnn_relu", "layer": _two_relu_units(2.0, -1.0), "out": out}


def outputs(params, x_BT):
  """The output unit after each step [B, T] of a one-layer RNN with one
  input and one output (a logit for the classification tasks)."""
  return parity.parity_logits(params, x_BT)


def fit(weights, loss_fn, steps: int, learning_rate: float = 1e-2):
  """Adam with global-norm clipping at 1 on ``loss_fn(weights, step)``,
  compiled once as a scan over steps. Returns (weights, losses [steps])."""
  tx = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(learning_rate))

  def body(state, step):
    w, opt_state = state
    loss, grads = jax.value_and_grad(loss_fn)(w, step)
    updates, opt_state = tx.update(grads, opt_state, w)
    return (optax.apply_updates(w, updates), opt_state), loss

  (weights, _), losses = jax.jit(
      lambda w: jax.lax.scan(body, (w, tx.init(w)), jnp.arange(steps))
  )(weights)
  return weights, losses


def train_network(
    task: Task,
    cell: str,
    hidden: int,
    length: int,
    steps: int,
    batch: int = 64,
    learning_rate: float = 1e-2,
    seed: int = 0,
):
  """Learns ``task`` from fresh strings of ``length`` every step, with the
  target after every step. Returns (params, mean loss of the last 50 steps)."""
  key = jax.random.key(seed)
  params = parity.init_classifier(key, cell, hidden)
  weights = {k: v for k, v in params.items() if k != "cell"}

  def loss_fn(w, step):
    x = task.sample(jax.random.fold_in(key, step), batch, length)
    y = outputs({"cell": cell, **w}, x)
    return task.loss(y, task.targets(x))

  weights, losses = fit(weights, loss_fn, steps, learning_rate)
  return {"cell": cell, **weights}, float(losses[-50:].mean())


def score_by_length(
    task: Task, params, lengths, num: int = 512, seed: int = 1
) -> dict[int, float]:
  """``task.score`` on ``num`` random strings of each length."""
  out = {}
  for length in lengths:
    x = task.sample(jax.random.key(seed + length), num, length)
    out[int(length)] = float(task.score(outputs(params, x), task.targets(x)))
  return out


def target_rms(lengths, num: int = 512, seed: int = 1) -> dict[int, float]:
  """The rms of the running total itself (the error of predicting 0), on
  the strings ``score_by_length`` draws."""
  out = {}
  for n in lengths:
    x = random_numbers(jax.random.key(seed + n), num, n)
    out[int(n)] = float(_rms_error(running_sum_targets(x), 0.0))
  return out


def split_strings(length: int, train_size: int, test_size: int, seed: int):
  """Distinct random bit strings of ``length``: a training set of at most
  ``train_size`` (and at most half of all 2^length strings) and a disjoint
  held-out set of at most ``test_size``. Returns two int32 arrays [N, T]."""
  total = 2**length
  n_train = min(train_size, total // 2)
  n_test = min(test_size, total - n_train)
  rng = np.random.default_rng(seed + length)
  if total <= 4 * (n_train + n_test):
    ids = rng.permutation(total)[: n_train + n_test]
  else:  # 2^length is large: draw with replacement until enough distinct.
    ids = np.unique(rng.integers(0, total, 2 * (n_train + n_test)))
    ids = rng.permutation(ids)[: n_train + n_test]
  bits = (ids[:, None] >> np.arange(length)) & 1
  bits = jnp.asarray(bits, jnp.int32)
  return bits[:n_train], bits[n_train:]


def init_mlp(key, length: int, hidden: int):
  """A one-hidden-layer tanh MLP from a whole string to one logit per
  prefix."""
  k1, k2 = jax.random.split(key)
  return {
      "w1": jax.random.normal(k1, (length, hidden)) * length**-0.5,
      "b1": jnp.zeros((hidden,)),
      "w2": jax.random.normal(k2, (hidden, length)) * hidden**-0.5,
      "b2": jnp.zeros((length,)),
  }


def mlp_logits(params, bits_BT):
  """Logits [B, T] of the parity of every prefix, from the whole string
  (bits read as -1/+1)."""
  x = 2.0 * bits_BT.astype(jnp.float32) - 1.0
  return jnp.tanh(x @ params["w1"] + params["b1"]) @ params["w2"] + params["b2"]


def _final_parity_accuracy(logits_BT, bits_BT) -> float:
  right = (logits_BT[:, -1] > 0) == (parity.parity_targets(bits_BT)[:, -1] == 1)
  return float(jnp.mean(right))


def mlp_vs_rnn_parity(
    lengths,
    train_size: int = 256,
    test_size: int = 512,
    mlp_hidden: int = 64,
    rnn_cell: str = "rnn_tanh",
    rnn_hidden: int = 16,
    steps: int = 1000,
    learning_rate: float = 1e-2,
    seed: int = 0,
) -> list[dict]:
  """Parity of a whole string: an MLP against an RNN, per string length.

  Both models are trained full-batch on the same fixed strings, with the
  same targets (the parity of every prefix), optimizer and steps.

  Returns:
    A dict per length: "length", "train_strings", "test_strings", and the
    accuracy of the final parity on the training strings ("mlp_train",
    "rnn_train") and on the held-out strings ("mlp_test", "rnn_test").
  """
  rows = []
  for length in lengths:
    train, test = split_strings(length, train_size, test_size, seed)
    targets = parity.parity_targets(train)
    key = jax.random.fold_in(jax.random.key(seed), length)

    mlp, _ = fit(
        init_mlp(key, length, mlp_hidden),
        lambda w, _: _bce(mlp_logits(w, train), targets),
        steps,
        learning_rate,
    )
    rnn = parity.init_classifier(key, rnn_cell, rnn_hidden)
    weights, _ = fit(
        {k: v for k, v in rnn.items() if k != "cell"},
        lambda w, _: _bce(outputs({"cell": rnn_cell, **w}, train), targets),
        steps,
        learning_rate,
    )
    rnn = {"cell": rnn_cell, **weights}
    rows.append(
        {
            "length": int(length),
            "train_strings": int(train.shape[0]),
            "test_strings": int(test.shape[0]),
            "mlp_train": _final_parity_accuracy(mlp_logits(mlp, train), train),
            "mlp_test": _final_parity_accuracy(mlp_logits(mlp, test), test),
            "rnn_train": _final_parity_accuracy(outputs(rnn, train), train),
            "rnn_test": _final_parity_accuracy(outputs(rnn, test), test),
        }
    )
  return rows
