"""Exact n-gram features for the class-factorised maxent model.

The hashed model (rnnlm_jax.window) gives every (context, word) pair the
weight of its hash bucket, shared with every other pair hashed there. The
published maximum-entropy language models (Rosenfeld 1996; Alumae and
Kurimo 2010, the toolkit behind the maxent 5-gram of Mikolov's thesis) have
a weight only for the pairs seen in training, and none (0) for the rest.
This module builds that feature set from the training tokens and reads it
inside the compiled step:

  logit(w | h) = bias[w] + sum over k = 1..n-1 of word_weights[(c_k, w)]
  logit(class c | h) = class_bias[c] + sum over k of class_weights[(c_k, c)]

where c_k is the context of the k most recent tokens and a sum runs over
the pairs that are features (seen at least ``model.maxent_min_count`` times
in training, order by order). The contexts are read by window.contexts'
rule, over the training stream as training reads it (a leading <eos>, and
the run's resets under data.reset_at_eos); each of the B rows a batch
splits the stream into starts from an empty window, so the few contexts of
those starts have no features.

The index, built once on the host (``build_index``), is a trie of the
contexts seen in training and two sorted feature lists, all int32:

  child_ptr [nodes + 1], child_tok [nodes - 1]: node 0 is the empty
    context; the children of node p (its context extended by one older
    token) are the edges child_ptr[p] .. child_ptr[p + 1] - 1, sorted by
    that token (child_tok), and edge e leads to node e + 1;
  word_ptr [nodes + 1], word_ids [F]: node p's word features are
    word_ptr[p] .. word_ptr[p + 1] - 1, sorted by word; feature i's weight
    is word_weights[i];
  class_ptr [nodes + 1], class_ids [G]: the same for the classes.

It travels in the parameters under params[optim.FROZEN], which the
optimizer never sees (optim.trainable), so checkpoints, evaluation and
sampling read the same features as training did. Lookups are binary
searches of a fixed number of steps within a node's range; the scores of a
token's class window (or of the whole vocabulary) are scatter-adds of at
most that many features per context.
"""

import jax
import jax.numpy as jnp
import numpy as np

from rnnlm_jax.errors import DataError

KEYS = (
    "child_ptr",
    "child_tok",
    "word_ptr",
    "word_ids",
    "class_ptr",
    "class_ids",
)


def _stream_contexts(ids: np.ndarray, num_orders: int, pad: int, reset):
  """ctx [N - 1, K]: ctx[t, j] is the token j steps before ids[t] (j = 0:
  ids[t] itself), PAD before the stream's start or before a reset at or
  before t (window.contexts' rule); the target of row t is ids[t + 1]."""
  n = len(ids) - 1
  t = np.arange(n)
  last = np.zeros(n, np.int64)
  if reset is not None:
    last = np.maximum.accumulate(np.where(reset[:n], t, 0))
  cols = [
      np.where(
          t - j >= last,
          np.concatenate([np.full(j, pad, np.int64), ids[: n - j]]),
          pad,
      )
      for j in range(num_orders)
  ]
  return np.stack(cols, axis=1)


def _ptr(sorted_owner: np.ndarray, num_nodes: int) -> np.ndarray:
  return np.searchsorted(sorted_owner, np.arange(num_nodes + 1)).astype(
      np.int32
  )


def _features(nodes_NK, labels_N, num_labels: int, min_count: int):
  """The (node, label) pairs seen at least min_count times over every
  order, sorted: (owner node [F], label [F])."""
  keys = nodes_NK.astype(np.int64) * num_labels + labels_N[:, None]
  keys, counts = np.unique(keys.ravel(), return_counts=True)
  keys = keys[counts >= min_count]
  return keys // num_labels, (keys % num_labels).astype(np.int32)


def build_index(
    train_ids,
    vocab_size: int,
    order: int,
    word_class,
    min_count: int = 1,
    reset=None,
) -> dict:
  """The exact feature index (see the module docstring) of the training
  tokens ``train_ids`` read as one stream: numpy int32 arrays under KEYS.
  ``word_class`` [V] gives each word's class; ``reset`` [N] (bool, or None)
  marks where the stream's window restarts (data.reset_at_eos)."""
  if min_count < 1:
    raise ValueError(f"min_count must be >= 1, got {min_count}")
  ids = np.asarray(train_ids, np.int64)
  if len(ids) < 2:
    raise ValueError("the training text needs at least two tokens")
  V, K = vocab_size, order - 1
  ctx_NK = _stream_contexts(
      ids, K, V, None if reset is None else np.asarray(reset, bool)
  )
  node_N = np.zeros(len(ctx_NK), np.int64)
  nodes, parents, tokens = [], [], []
  count = 1
  for j in range(K):
    # Each node of order j + 1 is (its parent, the j-th token back); unique
    # keys sort by parent, then token, which numbers the edges.
    key = node_N * (V + 1) + ctx_NK[:, j]
    uniq, inverse = np.unique(key, return_inverse=True)
    parents.append(uniq // (V + 1))
    tokens.append(uniq % (V + 1))
    node_N = count + inverse.reshape(-1)
    nodes.append(node_N)
    count += len(uniq)
  nodes_NK = np.stack(nodes, axis=1)
  y = ids[1:]
  word_node, word_ids = _features(nodes_NK, y, V, min_count)
  classes = np.asarray(word_class, np.int64)
  num_classes = int(classes.max()) + 1
  class_node, class_ids = _features(
      nodes_NK, classes[y], num_classes, min_count
  )
  if not len(word_ids) or not len(class_ids):
    raise DataError(
        f"model.maxent_min_count={min_count} leaves no features: no pair"
        " occurs that often in the training text"
    )
  return {
      "child_ptr": _ptr(np.concatenate(parents), count),
      "child_tok": np.concatenate(tokens).astype(np.int32),
      "word_ptr": _ptr(word_node, count),
      "word_ids": word_ids,
      "class_ptr": _ptr(class_node, count),
      "class_ids": class_ids,
  }


def _take(a, i, fill):
  return jnp.take(a, i, mode="fill", fill_value=fill)


def search(sorted_vals, lo, hi, query, steps: int):
  """The first i in [lo, hi) with sorted_vals[i] >= query, else hi, for
  each element of lo, hi, query (int32 arrays of one shape); ``steps``
  halvings cover a range of up to 2**steps - 1 entries."""

  def halve(_, bounds):
    lo, hi = bounds
    mid = (lo + hi) // 2
    right = _take(sorted_vals, mid, np.iinfo(np.int32).max) < query
    open_ = lo < hi
    return (
        jnp.where(open_ & right, mid + 1, lo),
        jnp.where(open_ & ~right, mid, hi),
    )

  lo, _ = jax.lax.fori_loop(0, steps, halve, (lo, hi))
  return lo


def _range(ptr, node):
  """[start, end) of each node's entries; empty where node < 0."""
  known = node >= 0
  safe = jnp.maximum(node, 0)
  return (
      jnp.where(known, ptr[safe], 0),
      jnp.where(known, ptr[safe + 1], 0),
  )


def context_nodes(index, ctx_NK, vocab_size: int):
  """int32 [N, K]: the trie node of each row's 1..K most recent tokens, -1
  where that context was not seen in training (nor any longer one)."""
  steps = (vocab_size + 1).bit_length()
  node = jnp.zeros(ctx_NK.shape[:1], jnp.int32)
  out = []
  for j in range(ctx_NK.shape[1]):
    tok = ctx_NK[:, j].astype(jnp.int32)
    start, end = _range(index["child_ptr"], node)
    e = search(index["child_tok"], start, end, tok, steps)
    hit = (e < end) & (_take(index["child_tok"], e, -1) == tok)
    node = jnp.where(hit, e + 1, -1)
    out.append(node)
  return jnp.stack(out, axis=1)


def _scatter_scores(ids, weights, pos, valid, first, width: int):
  """[N, width]: the weights of the features at positions pos [N, R]
  (where valid) added at column id - first."""
  n = pos.shape[0]
  col = jnp.where(valid, _take(ids, pos, 0) - first[:, None], width)
  vals = jnp.where(valid, _take(weights, pos, 0.0), 0.0)
  rows = jnp.broadcast_to(jnp.arange(n)[:, None], pos.shape)
  out = jnp.zeros((n, width + 1), weights.dtype).at[rows, col].add(vals)
  return out[:, :width]


def word_scores(params, index, nodes_NK, lo, hi, first, width: int, V: int):
  """[N, width]: the summed word-feature weights of the words first ..
  first + width - 1 of each row, counting only the features of words in
  [lo, hi) (at most width of them per context)."""
  steps = V.bit_length()
  total = 0.0
  for j in range(nodes_NK.shape[1]):
    start, end = _range(index["word_ptr"], nodes_NK[:, j])
    a = search(index["word_ids"], start, end, lo, steps)
    b = search(index["word_ids"], a, end, hi, steps)
    pos = a[:, None] + jnp.arange(width)
    total = total + _scatter_scores(
        index["word_ids"],
        params["word_weights"],
        pos,
        pos < b[:, None],
        first,
        width,
    )
  return total


def class_scores(params, index, nodes_NK, num_classes: int):
  """[N, C]: the summed class-feature weights of each row's contexts."""
  first = jnp.zeros(nodes_NK.shape[:1], jnp.int32)
  total = 0.0
  for j in range(nodes_NK.shape[1]):
    start, end = _range(index["class_ptr"], nodes_NK[:, j])
    pos = start[:, None] + jnp.arange(num_classes)
    total = total + _scatter_scores(
        index["class_ids"],
        params["class_weights"],
        pos,
        pos < end[:, None],
        first,
        num_classes,
    )
  return total
