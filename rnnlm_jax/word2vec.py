"""word2vec (Mikolov et al. 2013): skip-gram and CBOW with negative sampling.

Parameters: {"input": [V, D], the word vectors (word2vec.c's syn0), and
"output": [V, D], the vectors that score a word as a prediction (syn1neg)}.
The vocabulary is in descending count order.

What follows the original tool (word2vec.c, and gensim's Word2Vec):
- words seen fewer than data.vocab_min_count times are removed from the text
  before windows are formed;
- frequent words are subsampled: each occurrence of a word of count f
  among N words is kept with probability keep_probability (below);
- each centre's window is drawn uniformly from 1..window words on each side,
  within its line (a line is a sentence; windows never cross lines);
- K negatives per positive pair are drawn from the unigram counts raised to
  3/4 (ns_exponent); a negative equal to the centre word is skipped;
- input vectors start uniform in [-0.5/D, 0.5/D), output vectors at zero;
- plain SGD, the learning rate decaying linearly to lr * min_lr_ratio;
- skip-gram scores the centre word (and the negatives) from each context
  word's input vector; CBOW from the mean of the window's input vectors, and
  each context word receives the whole gradient of that mean (undivided, as
  word2vec.c and gensim's cbow_mean=1 do).

What differs, so that it is fast in JAX rather than a loop over pairs:
- a step updates B centre words at once (a minibatch, summed gradients),
  where the original updates after every pair;
- the K negatives are drawn per centre word and shared by the pairs of its
  window, so one centre's pairs are one small matrix product; the original
  draws them per pair. Each pair still has K negatives from the same
  distribution, so the expected gradient is the original's;
- an epoch's arrays are sized for the most words subsampling can keep
  (epoch_capacity: the mean plus six standard deviations), so that every
  epoch has the same shape.

The update is written out (sparse: only the rows a batch touches change):
``skipgram_update`` and ``cbow_update`` are tested to equal
``params - lr * jax.grad`` of ``skipgram_loss`` / ``cbow_loss``.

Shapes: B centre words per batch, C = 2 * window context slots (a mask
marks the centre's drawn window), O = 1 + K output words (the centre, then
the negatives), D the vector size.
"""

import jax
import jax.numpy as jnp
import numpy as np

MODES = ("skipgram", "cbow")


def keep_probability(counts, sample: float) -> np.ndarray:
  """word2vec.c's subsampling: a word of count f among N words is kept with
  probability min(1, (sqrt(f / t) + 1) * t / f), t = sample * N (gensim's
  formula too); sample <= 0 keeps every word. Words of count 0 get 1."""
  counts = np.asarray(counts, np.float64)
  if sample <= 0:
    return np.ones_like(counts)
  t = sample * counts.sum()
  with np.errstate(divide="ignore", invalid="ignore"):
    p = (np.sqrt(counts / t) + 1.0) * t / counts
  return np.where(counts > 0, np.minimum(p, 1.0), 1.0)


def noise_distribution(counts, exponent: float = 0.75) -> np.ndarray:
  """P(w) proportional to count(w) ** exponent: where negatives come from."""
  weights = np.asarray(counts, np.float64) ** exponent
  weights[np.asarray(counts) == 0] = 0.0
  return weights / weights.sum()


def alias_table(probs) -> tuple[np.ndarray, np.ndarray]:
  """Walker's alias method for ``probs`` [V]: (accept [V] float32, alias [V]
  int32). Draw i uniformly and u in [0, 1); the sample is i if u <
  accept[i], else alias[i]. O(1) per draw, exact up to float32 rounding."""
  probs = np.asarray(probs, np.float64)
  n = len(probs)
  scaled = probs * n
  accept = np.ones(n)
  alias = np.arange(n)
  small = [i for i in range(n) if scaled[i] < 1.0]
  large = [i for i in range(n) if scaled[i] >= 1.0]
  while small and large:
    s, g = small.pop(), large.pop()
    accept[s], alias[s] = scaled[s], g
    scaled[g] -= 1.0 - scaled[s]
    (small if scaled[g] < 1.0 else large).append(g)
  return accept.astype(np.float32), alias.astype(np.int32)


def draw(key, table, shape) -> jax.Array:
  """Samples of shape ``shape`` from an alias_table."""
  accept, alias = table
  k_index, k_coin = jax.random.split(key)
  i = jax.random.randint(k_index, shape, 0, accept.shape[0])
  coin = jax.random.uniform(k_coin, shape)
  return jnp.where(coin < accept[i], i, alias[i])


def init_params(key, vocab_size: int, dim: int) -> dict:
  return {
      "input": jax.random.uniform(
          key, (vocab_size, dim), jnp.float32, -0.5 / dim, 0.5 / dim
      ),
      "output": jnp.zeros((vocab_size, dim), jnp.float32),
  }


def _outputs(key, table, centre_B, negatives: int):
  """The output words [B, O] (the centre, then K negatives) and which of
  them count [B, O] (a negative that is the centre word does not)."""
  neg_BK = draw(key, table, (centre_B.shape[0], negatives))
  out_BO = jnp.concatenate([centre_B[:, None], neg_BK], axis=1)
  valid_BO = jnp.concatenate(
      [jnp.ones_like(centre_B[:, None], bool), neg_BK != centre_B[:, None]],
      axis=1,
  )
  return out_BO, valid_BO


def _label(num_outputs: int):
  return jnp.arange(num_outputs) == 0  # [O]: the centre is the positive.


def _nll(s, weight, label):
  """Summed -log sigma(s) of positives and -log sigma(-s) of negatives."""
  return -jnp.sum(weight * jax.nn.log_sigmoid(jnp.where(label, s, -s)))


def skipgram_scores(params, batch, out_BO):
  """Scores [B, C, O]: each context word's input vector against each
  output word's vector."""
  v_BCD = params["input"][batch["context"]]
  u_BOD = params["output"][out_BO]
  return jnp.einsum("bcd,bod->bco", v_BCD, u_BOD), v_BCD, u_BOD


def skipgram_loss(params, batch, key, table, negatives: int):
  """(summed negative-sampling loss, positive pairs) of one batch
  {"centre": [B], "context": [B, C], "mask": [B, C]}."""
  out_BO, valid_BO = _outputs(key, table, batch["centre"], negatives)
  s_BCO = skipgram_scores(params, batch, out_BO)[0]
  weight = batch["mask"][:, :, None] & valid_BO[:, None, :]
  return _nll(s_BCO, weight, _label(out_BO.shape[1])), batch["mask"].sum()


def skipgram_update(params, batch, key, table, negatives: int, lr, kernel=None):
  """One SGD step on skipgram_loss, only the rows it touches written:
  (params, {"loss", "count", "tokens", "grad_norm"}). ``kernel``: a fast
  implementation of the step once the outputs are drawn
  (rnnlm_jax.backends.word2vec_kernel: checked to compute this), or None
  for the code below."""
  out_BO, valid_BO = _outputs(key, table, batch["centre"], negatives)
  if kernel is not None:
    return _kernel_step(kernel, params, batch, out_BO, valid_BO, lr, False)
  s_BCO, v_BCD, u_BOD = skipgram_scores(params, batch, out_BO)
  label = _label(out_BO.shape[1])
  weight = batch["mask"][:, :, None] & valid_BO[:, None, :]
  # -dloss/ds: 1 - sigma(s) for positives, -sigma(s) for negatives.
  g_BCO = jnp.where(weight, label - jax.nn.sigmoid(s_BCO), 0.0)
  dv_BCD = jnp.einsum("bco,bod->bcd", g_BCO, u_BOD)
  du_BOD = jnp.einsum("bco,bcd->bod", g_BCO, v_BCD)
  params = {
      "input": params["input"].at[batch["context"]].add(lr * dv_BCD),
      "output": params["output"].at[out_BO].add(lr * du_BOD),
  }
  return params, _sums(
      _nll(s_BCO, weight, label), batch["mask"].sum(), batch, dv_BCD, du_BOD
  )


def _context_mean(v_BCD, mask_BC):
  """The mean of the window's input vectors [B, D], whose gradient reaches
  every context vector undivided (word2vec.c, gensim's cbow_mean=1): the sum
  is differentiated, the mean's difference from it is a constant."""
  total_BD = jnp.einsum("bcd,bc->bd", v_BCD, mask_BC.astype(v_BCD.dtype))
  n_B1 = jnp.maximum(mask_BC.sum(axis=1, keepdims=True), 1)
  return total_BD + jax.lax.stop_gradient(total_BD / n_B1 - total_BD)


def cbow_loss(params, batch, key, table, negatives: int):
  """(summed negative-sampling loss, predicted centres) of one batch: the
  centre predicted from the mean of its window."""
  out_BO, valid_BO = _outputs(key, table, batch["centre"], negatives)
  h_BD = _context_mean(params["input"][batch["context"]], batch["mask"])
  s_BO = jnp.einsum("bd,bod->bo", h_BD, params["output"][out_BO])
  has_context = batch["mask"].any(axis=1)
  weight = valid_BO & has_context[:, None]
  return _nll(s_BO, weight, _label(out_BO.shape[1])), has_context.sum()


def cbow_update(params, batch, key, table, negatives: int, lr, kernel=None):
  """One SGD step on cbow_loss, only the rows it touches written (kernel:
  as skipgram_update's)."""
  out_BO, valid_BO = _outputs(key, table, batch["centre"], negatives)
  if kernel is not None:
    return _kernel_step(kernel, params, batch, out_BO, valid_BO, lr, True)
  mask_BC = batch["mask"]
  v_BCD = params["input"][batch["context"]]
  u_BOD = params["output"][out_BO]
  n_B1 = jnp.maximum(mask_BC.sum(axis=1, keepdims=True), 1)
  h_BD = jnp.einsum("bcd,bc->bd", v_BCD, mask_BC.astype(v_BCD.dtype)) / n_B1
  s_BO = jnp.einsum("bd,bod->bo", h_BD, u_BOD)
  label = _label(out_BO.shape[1])
  has_context = mask_BC.any(axis=1)
  weight = valid_BO & has_context[:, None]
  g_BO = jnp.where(weight, label - jax.nn.sigmoid(s_BO), 0.0)
  dh_BD = jnp.einsum("bo,bod->bd", g_BO, u_BOD)
  dv_BCD = dh_BD[:, None, :] * mask_BC[:, :, None]
  du_BOD = g_BO[:, :, None] * h_BD[:, None, :]
  params = {
      "input": params["input"].at[batch["context"]].add(lr * dv_BCD),
      "output": params["output"].at[out_BO].add(lr * du_BOD),
  }
  return params, _sums(
      _nll(s_BO, weight, label), has_context.sum(), batch, dv_BCD, du_BOD
  )


def _kernel_step(kernel, params, batch, out_BO, valid_BO, lr, cbow: bool):
  params, loss, grad_sq = kernel(
      params, batch["context"], batch["mask"], out_BO, valid_BO, lr, cbow
  )
  mask_BC = batch["mask"]
  count = mask_BC.any(axis=1).sum() if cbow else mask_BC.sum()
  return params, _metrics(loss, count, batch, grad_sq)


def _sums(loss, count, batch, dv, du) -> dict:
  return _metrics(loss, count, batch, jnp.sum(dv * dv) + jnp.sum(du * du))


def _metrics(loss, count, batch, grad_sq) -> dict:
  """A step's metrics. grad_norm is the norm of the gradient's rows before
  they are summed into the tables (the step never forms the dense
  gradient); it is finite exactly when the gradient is."""
  return {
      "loss": loss,
      "count": count.astype(jnp.float32),
      "tokens": (batch["index"] >= 0).sum().astype(jnp.float32),
      "grad_norm": jnp.sqrt(grad_sq),
  }


def encode_lines(lines, index: dict) -> tuple[np.ndarray, np.ndarray]:
  """The in-vocabulary words of ``lines`` as ids [N] and their line numbers
  [N]: words not in ``index`` are removed, as word2vec does."""
  ids, line_of = [], []
  for n, line in enumerate(lines):
    row = [index[w] for w in line.split() if w in index]
    ids.extend(row)
    line_of.extend([n] * len(row))
  return np.asarray(ids, np.int32), np.asarray(line_of, np.int32)


def window_examples(ids, line_of, w: int, centres=None):
  """For the positions ``centres`` of ``ids`` (None: all, in order): their
  contexts [n, 2w] (w words on each side) and which of them exist within
  the same line.
  Built for every position by shifted copies, one offset at a time (each a
  contiguous row), then the centres' columns taken."""
  n = len(ids)
  offsets = np.concatenate([np.arange(-w, 0), np.arange(1, w + 1)])
  context = np.zeros((2 * w, n), np.int32)
  mask = np.zeros((2 * w, n), bool)
  for j, o in enumerate(offsets):
    dst, src = (
        (slice(-o, n), slice(0, n + o))
        if o < 0
        else (slice(0, n - o), slice(o, n))
    )
    context[j, dst] = ids[src]
    mask[j, dst] = line_of[src] == line_of[dst]
  if centres is None:
    return np.ascontiguousarray(context.T), np.ascontiguousarray(mask.T)
  take = lambda a: np.ascontiguousarray(a[:, centres].T)
  return take(context), take(mask)


def _pack(centre, context, mask, batch_size: int, rows: int = 0) -> dict:
  """[n] centres into [S, B] batches, at least ``rows`` rows in all;
  padding rows have no context."""
  n = len(centre)
  steps = -(-max(n, rows) // batch_size)
  total = steps * batch_size
  index = np.full(total, -1, np.int32)
  index[:n] = np.arange(n)
  pad = lambda a, fill=0: np.concatenate(
      [a, np.full((total - n, *a.shape[1:]), fill, a.dtype)]
  ).reshape(steps, batch_size, *a.shape[1:])
  return {
      "centre": pad(centre),
      "context": pad(context),
      "mask": pad(mask, False),
      "index": index.reshape(steps, batch_size),
  }


def epoch_capacity(ids, keep_prob) -> int:
  """The centres an epoch has room for: the expected number subsampling
  keeps plus six standard deviations (exceeded with probability about
  1e-9; the surplus is then left out of that epoch)."""
  p = keep_prob[ids]
  return int(np.ceil(p.sum() + 6 * np.sqrt(np.sum(p * (1 - p))))) + 1


def epoch_batches(
    ids, line_of, keep_prob, window: int, batch_size: int, rng
) -> dict:
  """One training epoch as arrays [S, B, ...]: "centre" [S, B], "context"
  and "mask" [S, B, 2 * window] (the window's words, and which of them are
  in the centre's drawn window, within its line), "index" [S, B] (-1: a
  padding row). As word2vec.c: each occurrence is kept with probability
  keep_prob (a coin per occurrence), each kept centre's window size is
  uniform on 1..window, and the centres come in the text's order. Every
  epoch has one
  shape, epoch_capacity rows rounded up to whole batches, so the step
  compiles once.

  Args:
    ids: the train words [N] (encode_lines), line_of their line numbers.
    keep_prob: per word id, the subsampling's keep probability.
    window: the largest window (words on each side).
    batch_size: B, centre words per batch.
    rng: a numpy Generator (seeded by the run's seed and the epoch).
  """
  rows = epoch_capacity(ids, keep_prob)
  kept = rng.random(len(ids)) < keep_prob[ids]
  ids, line_of = ids[kept], line_of[kept]
  ids, line_of = ids[:rows], line_of[:rows]
  size = rng.integers(1, window + 1, len(ids))
  context, mask = window_examples(ids, line_of, window)
  distance = np.abs(
      np.concatenate([np.arange(-window, 0), np.arange(1, window + 1)])
  )
  mask &= distance[None, :] <= size[:, None]
  return _pack(ids, context, mask, batch_size, rows)


def eval_batches(ids, line_of, window: int, batch_size: int) -> dict:
  """Every position of a split as a centre with its full window, in order
  (no subsampling): one [S, B, ...] set of arrays, for a fixed held-out
  loss."""
  centres = np.arange(len(ids))
  context, mask = window_examples(ids, line_of, window, centres)
  return _pack(ids, context, mask, batch_size)
