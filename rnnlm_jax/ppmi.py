"""Count-based word vectors: co-occurrence counts, positive PMI and a truncated
SVD, with the choices Levy, Goldberg & Dagan (2015, "Improving distributional
similarity with lessons learned from word embeddings") carry over from
word2vec and GloVe: context-distribution smoothing (``cds_alpha``), shifted
PMI (``shift``, word2vec's number of negative samples), eigenvalue weighting
(``eig_power``) and distance-weighted windows (``weighting``).

Everything is scipy.sparse and vectorised numpy: counting loops over the
window's offsets only, so counting and PPMI on WikiText-2's train split (2 M
tokens, the 23k words of count >= 5, window 5) take about a second; the SVD
is the slow stage (docs/library.md).
"""

import time

import numpy as np
import scipy.sparse
import scipy.sparse.linalg

WEIGHTINGS = ("uniform", "harmonic", "linear")


def _offset_weight(d: int, window: int, weighting: str) -> float:
  """The weight of a (word, context) pair ``d`` positions apart."""
  if weighting == "uniform":
    return 1.0
  if weighting == "harmonic":  # GloVe
    return 1.0 / d
  return (window - d + 1) / window  # word2vec's dynamic window, in expectation


def cooccurrence(
    ids: np.ndarray,
    vocab_size: int,
    window: int,
    doc_ids: np.ndarray | None = None,
    weighting: str = "uniform",
) -> scipy.sparse.csr_matrix:
  """Symmetric (word, context) counts within ``window`` positions.

  Every position ``i`` counts each position ``j`` with ``0 < |i - j| <=
  window`` as a context, so a pair ``d`` apart adds its weight to both
  ``[a, b]`` and ``[b, a]`` (twice to ``[a, a]`` when both tokens are ``a``)
  and the matrix is symmetric.

  Positions with ``ids < 0`` (out of vocabulary, dropped) are removed before
  windowing, as word2vec removes its rare words: they count nothing, and the
  tokens on either side of them become neighbours. Pairs never cross a
  boundary where ``doc_ids`` changes (compared after that removal, so a
  document's tokens need not be contiguous ids, only contiguous positions).

  Args:
    ids: [N] int token ids, ``< vocab_size``; negative ids are dropped.
    vocab_size: V.
    window: the largest distance counted, >= 1.
    doc_ids: [N] ints (line or document numbers, say), or None for one
      document.
    weighting: a pair ``d`` apart counts ``"uniform"``: 1; ``"harmonic"``:
      1 / d (GloVe); ``"linear"``: (window - d + 1) / window (word2vec's
      dynamic window, in expectation).

  Returns:
    [V, V] float64 CSR matrix with sorted indices and no duplicate or zero
    entries.
  """
  ids = np.asarray(ids)
  if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
    raise ValueError(
        f"ids must be a 1-D integer array, got {ids.dtype} of shape {ids.shape}"
    )
  if window < 1:
    raise ValueError(f"window must be >= 1, got {window}")
  if weighting not in WEIGHTINGS:
    raise ValueError(
        f"weighting must be one of {WEIGHTINGS}, got {weighting!r}"
    )
  if ids.size and ids.max() >= vocab_size:
    raise ValueError(f"id {ids.max()} is outside a vocabulary of {vocab_size}")
  keep = ids >= 0
  ids = ids[keep].astype(np.int32 if vocab_size < 2**31 else np.int64)
  if doc_ids is not None:
    doc_ids = np.asarray(doc_ids)
    if doc_ids.shape != keep.shape:
      raise ValueError(
          f"doc_ids has shape {doc_ids.shape}, ids has shape {keep.shape}"
      )
    doc_ids = doc_ids[keep]

  rows, cols, vals = [], [], []
  for d in range(1, min(window, ids.size - 1) + 1):
    left, right = ids[:-d], ids[d:]
    if doc_ids is not None:
      same = doc_ids[:-d] == doc_ids[d:]
      left, right = left[same], right[same]
    w = _offset_weight(d, window, weighting)
    rows.append(left)
    cols.append(right)
    vals.append(np.full(left.size, w))
  if not vals:
    return scipy.sparse.csr_matrix((vocab_size, vocab_size), dtype=np.float64)
  # One direction summed, then added to its transpose: exactly symmetric.
  one_way = scipy.sparse.coo_matrix(
      (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
      shape=(vocab_size, vocab_size),
  ).tocsr()  # sums the duplicates
  counts = (one_way + one_way.T).tocsr()
  counts.sum_duplicates()
  return counts


def ppmi(
    counts: scipy.sparse.spmatrix,
    cds_alpha: float = 0.75,
    shift: float = 1.0,
) -> scipy.sparse.csr_matrix:
  """Shifted positive PMI with context-distribution smoothing.

  PPMI(w, c) = max(log(P(w, c) / (P(w) P_alpha(c))) - log(shift), 0), where
  P(w, c) = #(w, c) / D, P(w) = #w / D (row sums), and P_alpha(c) = #c^alpha
  / sum_c' #c'^alpha (column sums, c' over the contexts seen). D cancels, so the log is log #(w, c) -
  log #w - log P_alpha(c). Only the stored entries are computed (an unseen
  pair has PMI -inf, clipped to 0), and the zeros are dropped.

  Args:
    counts: [V, W] non-negative co-occurrence counts (``cooccurrence``).
    cds_alpha: the context-distribution smoothing exponent, >= 0; 1 is plain
      PMI, 0 a uniform context distribution.
    shift: k of log k subtracted (word2vec's negative samples); 1 is none.

  Returns:
    [V, W] float64 CSR matrix of the positive entries.
  """
  if cds_alpha < 0:
    raise ValueError(f"cds_alpha must be >= 0, got {cds_alpha}")
  if shift <= 0:
    raise ValueError(f"shift must be > 0, got {shift}")
  m = scipy.sparse.csr_matrix(counts, dtype=np.float64, copy=True)
  m.sum_duplicates()
  if m.nnz and m.data.min() < 0:
    raise ValueError("counts must be non-negative")
  m.eliminate_zeros()
  row_sum = np.asarray(m.sum(axis=1)).reshape(-1)
  col_sum = np.asarray(m.sum(axis=0)).reshape(-1)
  # An unseen context has no entries, so its log is never read.
  seen = col_sum > 0
  log_p_ctx = np.zeros_like(col_sum)
  log_p_ctx[seen] = cds_alpha * np.log(col_sum[seen])
  log_p_ctx[seen] -= np.log(np.sum(col_sum[seen] ** cds_alpha))
  row_of = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
  pmi = np.log(m.data) - np.log(row_sum[row_of]) - log_p_ctx[m.indices]
  m.data = np.maximum(pmi - np.log(shift), 0.0)
  m.eliminate_zeros()
  return m


def svd_vectors(
    matrix: scipy.sparse.spmatrix | np.ndarray,
    dim: int,
    eig_power: float = 0.5,
    seed: int = 0,
) -> np.ndarray:
  """Word vectors U S^eig_power from a truncated SVD U S V^T of ``matrix``.

  scipy's ``svds`` (ARPACK) starts from a vector drawn from ``seed``, so a
  given input gives the same vectors from call to call. The components come
  in decreasing order of singular value, and each column's sign makes its
  entry of largest magnitude (the first, on a tie) positive, so that
  machines whose solvers land on opposite signs agree (up to rounding). Where singular values
  repeat, the vectors of that subspace are not unique.

  Args:
    matrix: [V, W] sparse or dense matrix (``ppmi``).
    dim: the number of components, 0 < dim < min(V, W) (ARPACK's limit).
    eig_power: p of S^p; 0 gives U, 1 gives U S (Levy et al. find 0 and 0.5
      better than 1).
    seed: seeds the solver's starting vector.

  Returns:
    [V, dim] float32 vectors.
  """
  shape = matrix.shape
  if not 0 < dim < min(shape):
    raise ValueError(f"dim must be in (0, {min(shape)}) for a {shape} matrix")
  if scipy.sparse.issparse(matrix):
    matrix = scipy.sparse.csr_matrix(matrix, dtype=np.float64)
  else:
    matrix = np.asarray(matrix, np.float64)
  v0 = np.random.default_rng(seed).standard_normal(min(shape))
  u, s, _ = scipy.sparse.linalg.svds(matrix, k=dim, v0=v0, solver="arpack")
  order = np.argsort(-s, kind="stable")
  u, s = u[:, order], s[order]
  top = np.argmax(np.abs(u), axis=0)
  u *= np.where(u[top, np.arange(dim)] < 0, -1.0, 1.0)
  return (u * s**eig_power).astype(np.float32)


def fit(
    ids: np.ndarray,
    vocab_size: int,
    dim: int,
    window: int,
    doc_ids: np.ndarray | None = None,
    cds_alpha: float = 0.75,
    shift: float = 1.0,
    eig_power: float = 0.5,
    weighting: str = "uniform",
    seed: int = 0,
) -> tuple[np.ndarray, dict]:
  """Word vectors from a token stream: ``cooccurrence``, ``ppmi``, then
  ``svd_vectors`` (their docstrings define the arguments).

  Returns:
    ([V, dim] float32 vectors, stats): ``stats`` holds ``tokens`` (the
    positions kept), ``cooccurrence_nonzeros``, ``ppmi_nonzeros`` (also as
    ``nonzeros``) and the seconds each stage took (``seconds_cooccurrence``, ``seconds_ppmi``, ``seconds_svd``,
    ``seconds``).
  """
  t0 = time.perf_counter()
  counts = cooccurrence(ids, vocab_size, window, doc_ids, weighting)
  t1 = time.perf_counter()
  pos = ppmi(counts, cds_alpha, shift)
  t2 = time.perf_counter()
  vectors = svd_vectors(pos, dim, eig_power, seed)
  t3 = time.perf_counter()
  stats = {
      "tokens": int((np.asarray(ids) >= 0).sum()),
      "cooccurrence_nonzeros": int(counts.nnz),
      "ppmi_nonzeros": int(pos.nnz),
      "nonzeros": int(pos.nnz),
      "seconds_cooccurrence": t1 - t0,
      "seconds_ppmi": t2 - t1,
      "seconds_svd": t3 - t2,
      "seconds": t3 - t0,
  }
  return vectors, stats
