"""Word embeddings, judged and looked at: SimLex-999 similarity, the Google
analogy questions (3CosAdd and 3CosMul), nearest neighbours, the word2vec
C tool's text and binary files, 2-D projections, and the embeddings of a
trained run directory.

Every function takes ``words`` (a list of V strings, most frequent first, as
gensim and the run vocabularies order them) and ``vectors_VD`` ([V, D]).
The benchmarks look words up case-insensitively: a word's row is that of
the first word in ``words`` order with the same lowercased form (gensim's
``case_insensitive=True``, with the same first-occurrence rule), and
analogy answers are searched over those first occurrences only.

Shape letters beside the package's: Q questions, C candidate answers, U
distinct question words, N words plotted.
"""

import dataclasses
import math
import os
import pathlib
import warnings

import numpy as np

from rnnlm_jax import figures
from rnnlm_jax import models
from rnnlm_jax import rundir
from rnnlm_jax.atomic import atomic_write
from rnnlm_jax.errors import DataError

# Tokens never offered as an analogy's answer.
SPECIAL_TOKENS = ("<unk>", "<eos>", "<bos>", "<pad>")
# 3CosMul's epsilon (Levy & Goldberg 2014), against division by zero.
COSMUL_EPS = 1e-3
# Analogy questions scored together: their distinct words' cosines with
# the vocabulary, three tables of them, bound the memory (3 x 3 x 128 x V
# floats at most, 150 MB for 33k words; the Google set's blocks have about
# 40 distinct words).
_BLOCK = 128
# Elements of the score buffers of the questions scored at once (1 MiB).
_CACHE_ELEMENTS = 1 << 18
METHODS = ("add", "mul")


class EmbeddingError(DataError):
  """Bad embeddings, benchmark file or query; the message is one line, a
  malformed file's starting with FILE:LINE (or FILE: byte N)."""


# ----------------------------------------------------------------- the files


def _read_text(path) -> list[str]:
  try:
    with open(path, encoding="utf-8", newline=None) as f:
      return f.read().splitlines()
  except FileNotFoundError:
    raise EmbeddingError(f"{path}: no such file") from None
  except UnicodeDecodeError as e:
    raise EmbeddingError(f"{path}: not UTF-8 ({e.reason})") from None


def load_simlex(path) -> list[tuple[str, str, float]]:
  """(word1, word2, score) of a word-similarity file: SimLex-999's
  tab-separated columns (a header naming "SimLex999" picks the score's
  column; without one, the fourth), or three columns word1, word2, score
  (WordSim-353, gensim's evaluate_word_pairs). Blank lines and lines
  starting with # are skipped."""
  lines = _read_text(path)
  column = None
  pairs = []
  for n, line in enumerate(lines, 1):
    if not line.strip() or line.startswith("#"):
      continue
    fields = line.split("\t")
    if not pairs and column is None and fields[0].strip().lower() == "word1":
      names = [f.strip() for f in fields]
      column = names.index("SimLex999") if "SimLex999" in names else 2
      continue
    col = column if column is not None else (3 if len(fields) > 3 else 2)
    if len(fields) <= max(col, 2):
      raise EmbeddingError(
          f"{path}:{n}: expected word1, word2 and a score separated by tabs, "
          f"got {len(fields)} field(s)"
      )
    w1, w2 = fields[0].strip(), fields[1].strip()
    if not w1 or not w2 or len(w1.split()) > 1 or len(w2.split()) > 1:
      raise EmbeddingError(f"{path}:{n}: expected two words, got {w1!r} {w2!r}")
    try:
      score = float(fields[col])
    except ValueError:
      score = math.nan
    if not math.isfinite(score):
      raise EmbeddingError(
          f"{path}:{n}: expected a number in column {col + 1}, got "
          f"{fields[col].strip()!r}"
      )
    pairs.append((w1, w2, score))
  if not pairs:
    raise EmbeddingError(f"{path}: no word pairs")
  return pairs


def load_analogies(path) -> dict[str, list[tuple[str, str, str, str]]]:
  """{section: [(a, b, c, d), ...]} of an analogy file (Mikolov et al.'s
  questions-words.txt): ": section" lines, then "a b c d" lines, in file
  order; a section named twice gathers both parts."""
  sections: dict[str, list] = {}
  current = None
  for n, line in enumerate(_read_text(path), 1):
    if not line.strip():
      continue
    if line.startswith(":"):
      current = line[1:].strip()
      if not current:
        raise EmbeddingError(f"{path}:{n}: a ':' line without a section name")
      sections.setdefault(current, [])
      continue
    words = line.split()
    if len(words) != 4:
      raise EmbeddingError(
          f"{path}:{n}: expected four words 'a b c d' or ': section', got "
          f"{len(words)} word(s)"
      )
    if current is None:
      raise EmbeddingError(f"{path}:{n}: a question before any ': section'")
    sections[current].append(tuple(words))
  if not any(sections.values()):
    raise EmbeddingError(f"{path}: no analogy questions")
  return sections


def _check(words, vectors_VD) -> np.ndarray:
  vectors_VD = np.asarray(vectors_VD, np.float32)
  if vectors_VD.ndim != 2 or vectors_VD.shape[0] != len(words):
    raise EmbeddingError(
        f"{len(words)} words for vectors of shape {vectors_VD.shape}"
    )
  return vectors_VD


def save_word2vec(path, words, vectors_VD, binary: bool) -> None:
  """Writes the word2vec C tool's format, atomically: a "V D" line, then
  per word the word, a space and its D numbers (text: as decimals that read
  back to the same float32, separated by spaces; binary: little-endian
  float32), and a newline."""
  vectors_VD = _check(words, vectors_VD)
  for word in words:
    if not word or any(ch.isspace() for ch in word):
      raise EmbeddingError(
          f"{path}: the word {word!r} cannot be written: the word2vec "
          "format separates words by whitespace"
      )

  def write(f):
    f.write(f"{len(words)} {vectors_VD.shape[1]}\n".encode())
    rows = vectors_VD.astype("<f4")
    for word, row in zip(words, rows):
      if binary:
        f.write(word.encode("utf-8") + b" " + row.tobytes() + b"\n")
      else:
        numbers = " ".join(f"{x:.9g}" for x in row.tolist())
        f.write(f"{word} {numbers}\n".encode("utf-8"))

  atomic_write(pathlib.Path(path), write)


def _header(path, data: bytes) -> tuple[int, int, int]:
  """(V, D, offset of the first entry)."""
  end = data.find(b"\n")
  head = data[: end if end >= 0 else len(data)]
  try:
    v, d = (int(x) for x in head.decode("ascii").split())
  except (UnicodeDecodeError, ValueError):
    raise EmbeddingError(
        f"{path}:1: expected a header 'VOCAB_SIZE DIM', got {head[:40]!r}"
    ) from None
  if v < 0 or d <= 0:
    raise EmbeddingError(f"{path}:1: bad header sizes {v} {d}")
  return v, d, end + 1 if end >= 0 else len(data)


def _parse_text_line(path, n: int, line: str, dim: int):
  parts = line.rstrip().split(" ")
  if len(parts) != dim + 1 or not parts[0]:
    raise EmbeddingError(
        f"{path}:{n}: expected a word and {dim} numbers, got "
        f"{len(parts)} field(s)"
    )
  try:
    return parts[0], np.array(parts[1:], np.float32)
  except ValueError:
    raise EmbeddingError(f"{path}:{n}: a value is not a number") from None


def _looks_like_text(data: bytes, start: int, dim: int) -> bool:
  """Whether the first entry after the header parses as a text line."""
  end = data.find(b"\n", start)
  try:
    line = data[start : end if end >= 0 else len(data)].decode("utf-8")
    _parse_text_line("", 0, line, dim)
  except (UnicodeDecodeError, EmbeddingError):
    return False
  return True


def _load_text(path, data, v, d, start):
  try:
    lines = data[start:].decode("utf-8").split("\n")
  except UnicodeDecodeError as e:
    raise EmbeddingError(
        f"{path}: byte {start + e.start}: not UTF-8 ({e.reason})"
    ) from None
  if lines and not lines[-1]:
    lines.pop()
  words, vectors_VD = [], np.empty((v, d), np.float32)
  for i, line in enumerate(lines):
    if i >= v:
      if line.strip():
        raise EmbeddingError(
            f"{path}:{i + 2}: more entries than the header's {v}"
        )
      continue
    word, vectors_VD[i] = _parse_text_line(path, i + 2, line, d)
    words.append(word)
  if len(words) < v:
    raise EmbeddingError(
        f"{path}:{len(lines) + 2}: the header promises {v} words, the file "
        f"ends after {len(words)}"
    )
  return words, vectors_VD


def _load_binary(path, data, v, d, start):
  words, vectors_VD = [], np.empty((v, d), np.float32)
  pos, width = start, 4 * d
  for i in range(v):
    while data[pos : pos + 1] == b"\n":  # A newline after the last vector.
      pos += 1
    space = data.find(b" ", pos)
    if space < 0 or space == pos or space - pos > 1000:
      raise EmbeddingError(
          f"{path}: byte {pos}: expected word {i + 1} of {v} and a space"
      )
    try:
      words.append(data[pos:space].decode("utf-8"))
    except UnicodeDecodeError:
      raise EmbeddingError(
          f"{path}: byte {pos}: word {i + 1} is not UTF-8"
      ) from None
    pos = space + 1
    if pos + width > len(data):
      raise EmbeddingError(
          f"{path}: byte {pos}: the vector of {words[-1]!r} is cut short "
          f"({len(data) - pos} of {width} bytes)"
      )
    vectors_VD[i] = np.frombuffer(data, "<f4", d, pos)
    pos += width
  if data[pos:].strip(b"\n"):
    raise EmbeddingError(
        f"{path}: byte {pos}: data after the header's {v} vectors"
    )
  return words, vectors_VD


def load_word2vec(
    path, binary: bool | None = None
) -> tuple[list[str], np.ndarray]:
  """(words, vectors_VD float32) of a word2vec C tool file, text or
  binary (None: binary when the name ends .bin, else by the first entry);
  a newline after each binary vector is optional."""
  try:
    data = pathlib.Path(path).read_bytes()
  except FileNotFoundError:
    raise EmbeddingError(f"{path}: no such file") from None
  v, d, start = _header(path, data)
  if binary is None:
    binary = str(path).endswith(".bin") or not (
        v == 0 or _looks_like_text(data, start, d)
    )
  load = _load_binary if binary else _load_text
  return load(path, data, v, d, start)


# ------------------------------------------------------------------- scoring


def _unit(vectors_VD) -> np.ndarray:
  """Rows scaled to length 1 (zero rows stay zero)."""
  norms = np.linalg.norm(vectors_VD, axis=1, keepdims=True)
  return vectors_VD / np.maximum(norms, np.finfo(np.float32).tiny)


def _lower_index(words) -> dict[str, int]:
  """{lowercased word: the index of its first occurrence}."""
  index = {}
  for i, word in enumerate(words):
    index.setdefault(word.lower(), i)
  return index


def _find(words, index: dict, word: str) -> int:
  """A query word's row: the word itself, else its lowercased form's."""
  try:
    return words.index(word)
  except ValueError:
    pass
  if word.lower() in index:
    return index[word.lower()]
  raise EmbeddingError(f"{word!r} is not in the vocabulary")


def evaluate_simlex(words, vectors_VD, pairs) -> dict:
  """Spearman's rho between the pairs' scores and their cosine similarity
  ("rho"; nan under two covered pairs) over the pairs whose both words are
  in the vocabulary ("covered" of "total")."""
  unit_VD = _unit(_check(words, vectors_VD))
  index = _lower_index(words)
  gold, cosine = [], []
  for w1, w2, score in pairs:
    i, j = index.get(w1.lower()), index.get(w2.lower())
    if i is not None and j is not None:
      gold.append(score)
      cosine.append(float(unit_VD[i] @ unit_VD[j]))
  rho = math.nan
  if len(gold) >= 2:
    import scipy.stats  # pylint: disable=g-import-not-at-top  (seconds)

    with warnings.catch_warnings():
      warnings.simplefilter("ignore")  # Constant input: rho is nan.
      rho = float(scipy.stats.spearmanr(gold, cosine).statistic)
  return {"rho": rho, "covered": len(gold), "total": len(pairs)}


@dataclasses.dataclass(frozen=True)
class _Candidates:
  """The rows an analogy may answer with: each lowercased form's first
  occurrence, less the excluded tokens."""

  rows: np.ndarray  # [C] indices into words
  unit_CD: np.ndarray  # their unit vectors
  position: np.ndarray  # [V] each word's index in rows, or -1

  @classmethod
  def make(cls, words, unit_VD, exclude):
    drop = {w.lower() for w in exclude}
    rows = np.array(
        [i for w, i in _lower_index(words).items() if w not in drop], np.int64
    )
    position = np.full(len(words), -1, np.int64)
    position[rows] = np.arange(len(rows))
    return cls(rows, unit_VD[rows], position)


class _Scorer:
  """Scores of every candidate d for questions a:b::c:?, the question's own
  words at -inf, for a block of questions at a time: the cosines of the
  block's distinct words with every candidate, then the scores of a few
  questions at a time from their rows, in buffers small enough to stay in
  cache (the Google set against a 33k vocabulary: about 2e9 element
  operations)."""

  def __init__(self, unit_VD, cands: _Candidates, abc_Q3: np.ndarray):
    uniq, inverse = np.unique(abc_Q3, return_inverse=True)
    self.inverse_Q3 = inverse.reshape(abc_Q3.shape)
    self.cos_UC = unit_VD[uniq] @ cands.unit_CD.T
    # Levy & Goldberg's cosines, shifted into [0, 1], and 1 / (cos'(x, a)
    # + eps) for the division.
    self.shift_UC = (self.cos_UC + 1) / 2
    self.inv_UC = 1 / (self.shift_UC + COSMUL_EPS)
    self.own_Q3 = cands.position[abc_Q3]

  def scores(self, lo: int, hi: int, method: str, out=None, tmp=None):
    """[hi - lo, C] scores of questions lo:hi of the block."""
    a, b, c = self.inverse_Q3[lo:hi].T
    shape = (hi - lo, self.cos_UC.shape[1])
    out = np.empty(shape, np.float32) if out is None else out[: hi - lo]
    tmp = np.empty(shape, np.float32) if tmp is None else tmp[: hi - lo]
    if method == "add":
      np.take(self.cos_UC, b, 0, out=out)
      out += np.take(self.cos_UC, c, 0, out=tmp)
      out -= np.take(self.cos_UC, a, 0, out=tmp)
    else:
      np.take(self.shift_UC, b, 0, out=out)
      out *= np.take(self.shift_UC, c, 0, out=tmp)
      out *= np.take(self.inv_UC, a, 0, out=tmp)
    own = self.own_Q3[lo:hi]
    q, k = np.nonzero(own >= 0)
    out[q, own[q, k]] = -np.inf
    return out


def evaluate_analogies(
    words, vectors_VD, sections, exclude=SPECIAL_TOKENS
) -> dict:
  """Accuracy on analogy questions a:b::c:d: d must be the vocabulary's
  argmax of 3CosAdd, cos(x, b) - cos(x, a) + cos(x, c) ("acc_add"), and of
  3CosMul, cos'(x, b) cos'(x, c) / (cos'(x, a) + 1e-3) with cos' = (cos +
  1) / 2 ("acc_mul"), over x other than a, b, c and ``exclude``. Scored
  over the questions whose four words are in the vocabulary ("covered" of
  "total"; nan with none covered), overall and per section ("sections")."""
  unit_VD = _unit(_check(words, vectors_VD))
  index = _lower_index(words)
  cands = _Candidates.make(words, unit_VD, exclude)
  names, rows = [], []
  for name, questions in sections.items():
    for question in questions:
      ids = [index.get(w.lower()) for w in question]
      if None not in ids:
        names.append(name)
        rows.append(ids)
  rows_Q4 = np.array(rows, np.int64).reshape(-1, 4)
  hits = {m: np.zeros(len(rows_Q4), bool) for m in METHODS}
  num_cands = len(cands.rows)
  small = max(1, _CACHE_ELEMENTS // max(1, num_cands))
  buffers = [np.empty((small, num_cands), np.float32) for _ in range(2)]
  for start in range(0, len(rows_Q4) if num_cands else 0, _BLOCK):
    block = rows_Q4[start : start + _BLOCK]
    scorer = _Scorer(unit_VD, cands, block[:, :3])
    for lo in range(0, len(block), small):
      hi = min(lo + small, len(block))
      for m in METHODS:
        best = np.argmax(scorer.scores(lo, hi, m, *buffers), 1)
        hits[m][start + lo : start + hi] = cands.rows[best] == block[lo:hi, 3]
  names = np.array(names, dtype=object)

  def summary(mask, total):
    n = int(mask.sum())
    acc = lambda m: float(hits[m][mask].mean()) if n else math.nan
    return {
        "acc_add": acc("add"),
        "acc_mul": acc("mul"),
        "covered": n,
        "total": total,
    }

  out = summary(np.ones(len(names), bool), sum(map(len, sections.values())))
  out["sections"] = {
      name: summary(names == name, len(questions))
      for name, questions in sections.items()
  }
  return out


def evaluate(words, vectors_VD, simlex_path, analogy_path) -> dict:
  """Both benchmarks from their files, as one flat dict: simlex_rho,
  simlex_pairs (covered), simlex_total, analogy_acc (3CosAdd),
  analogy_acc_mul, analogy_covered, analogy_total and analogy_sections
  (per section, as evaluate_analogies). A path of None leaves its keys
  out."""
  out = {}
  if simlex_path is not None:
    s = evaluate_simlex(words, vectors_VD, load_simlex(simlex_path))
    out.update(
        simlex_rho=s["rho"], simlex_pairs=s["covered"], simlex_total=s["total"]
    )
  if analogy_path is not None:
    a = evaluate_analogies(words, vectors_VD, load_analogies(analogy_path))
    out.update(
        analogy_acc=a["acc_add"],
        analogy_acc_mul=a["acc_mul"],
        analogy_covered=a["covered"],
        analogy_total=a["total"],
        analogy_sections=a["sections"],
    )
  return out


def results_table(results: dict) -> str:
  """SimLex's rho and the analogy accuracy per section, with coverage, as
  text (of evaluate's results)."""
  lines = []
  if "simlex_rho" in results:
    lines.append(
        f"SimLex-999: rho={results['simlex_rho']:.4f} over "
        f"{results['simlex_pairs']} of {results['simlex_total']} pairs"
    )
  if "analogy_sections" in results:
    rows = [
        (name, s["acc_add"], s["acc_mul"], s["covered"], s["total"])
        for name, s in results["analogy_sections"].items()
    ]
    rows.append(
        (
            "all",
            results["analogy_acc"],
            results["analogy_acc_mul"],
            results["analogy_covered"],
            results["analogy_total"],
        )
    )
    width = max(len(r[0]) for r in rows)
    lines.append(f"{'analogies':<{width}}  3CosAdd  3CosMul  covered")
    for name, add, mul, covered, total in rows:
      lines.append(
          f"{name:<{width}}  {add:7.4f}  {mul:7.4f}  {covered}/{total}"
      )
  return "\n".join(lines)


def neighbours(words, vectors_VD, query: str, k: int = 10):
  """The k words of highest cosine similarity to ``query`` (found as
  written, else case-insensitively), other than itself: [(word, cos)]."""
  unit_VD = _unit(_check(words, vectors_VD))
  q = _find(words, _lower_index(words), query)
  cos_V = unit_VD @ unit_VD[q]
  cos_V[q] = -np.inf
  order = np.argsort(-cos_V, kind="stable")[: min(k, len(words) - 1)]
  return [(words[i], float(cos_V[i])) for i in order]


def solve_analogy(
    words, vectors_VD, a, b, c, k: int = 5, method: str = "add"
) -> list[tuple[str, float]]:
  """The k best answers to a:b::c:? by 3CosAdd ("add") or 3CosMul ("mul"),
  over the candidates evaluate_analogies searches: [(word, score)]."""
  if method not in METHODS:
    raise EmbeddingError(f"method must be one of {METHODS}, got {method!r}")
  unit_VD = _unit(_check(words, vectors_VD))
  index = _lower_index(words)
  abc = np.array([[_find(words, index, w) for w in (a, b, c)]])
  cands = _Candidates.make(words, unit_VD, SPECIAL_TOKENS)
  scores = _Scorer(unit_VD, cands, abc).scores(0, 1, method)[0]
  order = np.argsort(-scores, kind="stable")[:k]
  return [
      (words[cands.rows[i]], float(scores[i]))
      for i in order
      if np.isfinite(scores[i])
  ]


def projection_figure(
    words, vectors_VD, chosen, path, method: str = "pca", seed: int = 0
) -> list[str]:
  """A labelled scatter plot of the chosen words' vectors projected to 2-D
  (PCA, or t-SNE with perplexity min(30, n - 1)), written as a PNG at
  ``path`` atomically. Returns the chosen words not in the vocabulary,
  which are left out."""
  # pylint: disable=g-import-not-at-top
  from sklearn.decomposition import PCA
  from sklearn.manifold import TSNE

  vectors_VD = _check(words, vectors_VD)
  index = _lower_index(words)
  found, missing = [], []
  for word in chosen:
    try:
      found.append((word, _find(words, index, word)))
    except EmbeddingError:
      missing.append(word)
  if len(found) < 2:
    raise EmbeddingError(
        f"a projection needs two known words, got {len(found)} of "
        f"{len(chosen)}"
    )
  x_ND = vectors_VD[[i for _, i in found]]
  if method == "pca":
    xy_N2 = PCA(n_components=2, random_state=seed).fit_transform(x_ND)
  elif method == "tsne":
    xy_N2 = TSNE(
        n_components=2,
        perplexity=min(30, len(found) - 1),
        init="pca",
        random_state=seed,
    ).fit_transform(x_ND)
  else:
    raise EmbeddingError(f"projection must be pca or tsne, got {method!r}")
  plt = figures.pyplot()
  fig, ax = plt.subplots(figsize=(7, 6))
  try:
    ax.scatter(xy_N2[:, 0], xy_N2[:, 1], s=12)
    for (word, _), (x, y) in zip(found, xy_N2):
      ax.annotate(word, (x, y), xytext=(3, 3), textcoords="offset points")
    name = {"pca": "PCA", "tsne": "t-SNE"}[method]
    ax.set_title(f"{len(found)} words, {name}")
    atomic_write(
        pathlib.Path(path), lambda f: fig.savefig(f, format="png", dpi=120)
    )
  finally:
    plt.close(fig)
  return missing


# --------------------------------------------------------------- run folders


def _rows(workdir, params, key_path, which):
  node = params
  for key in key_path:
    if not isinstance(node, dict) or key not in node:
      raise EmbeddingError(
          f"{workdir}: the checkpoint has no params[{']['.join(key_path)}] "
          f"for --which={which}"
      )
    node = node[key]
  return np.asarray(node, np.float32)


def run_vectors(
    workdir: str, which: str = "input", slot: str = "best"
) -> tuple[list[str], np.ndarray]:
  """(words, vectors_VD) of a run directory's checkpoint, words in the
  vocabulary's id order. "input": the embedding a model reads words
  through (a translator's source side); "output": a language model's
  output layer as one [H] vector per word (the embedding where tied), a
  translator's target embedding, a skip-gram or CBOW model's context
  vectors."""
  if which not in ("input", "output"):
    raise EmbeddingError(f"which must be input or output, got {which!r}")
  cfg = rundir.load_run_config(workdir)
  task, kind = cfg.task, cfg.model.kind
  if task == "embed" and kind == "ppmi_svd":
    if which == "output":
      raise EmbeddingError(f"{workdir}: model.kind=ppmi_svd has no output side")
    return load_word2vec(os.path.join(workdir, rundir.VECTORS_FILE), True)
  lm_kinds = ("rnn", "neural_ngram")
  if (task == "lm" and kind not in lm_kinds) or (
      task == "embed" and kind not in ("skipgram", "cbow")
  ):
    raise EmbeddingError(f"{workdir}: model.kind={kind} has no word embeddings")
  if task in ("classify", "tag") and which == "output":
    raise EmbeddingError(
        f"{workdir}: task={task} has no output embeddings; use input"
    )
  if task not in ("lm", "classify", "tag", "translate", "embed"):
    raise EmbeddingError(f"{workdir}: task={task} has no word embeddings")
  trained = rundir.load_trained(workdir, slot)
  words, params = list(trained.vocab.tokens), trained.params
  if task == "translate":
    # pylint: disable=g-import-not-at-top
    from rnnlm_jax.tasks import translation  # Pulls in the seq2seq model.

    src, tgt = translation.split_vocab(trained.vocab)
    if which == "input":
      words, path = list(src.tokens), ("encoder", "embed")
    else:
      words, path = list(tgt.tokens), ("tgt_embed",)
    vectors_VD = _rows(workdir, params, path, which)
  elif task == "embed":
    vectors_VD = _rows(workdir, params, (which,), which)
  elif which == "input":
    vectors_VD = _rows(workdir, params, ("embed",), which)
  else:
    vectors_VD = np.asarray(models.output_weights(params), np.float32).T
  # The neural n-gram's embedding has one more row: the padding's.
  vectors_VD = vectors_VD[: len(words)]
  if vectors_VD.ndim != 2 or len(vectors_VD) != len(words):
    raise EmbeddingError(
        f"{workdir}: {len(words)} words for {which} vectors of shape "
        f"{vectors_VD.shape}"
    )
  return words, vectors_VD
