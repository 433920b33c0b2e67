"""Metrics for sentence classification and sequence tagging.

Chunk scores come from seqeval, accuracy and the confusion matrix from
scikit-learn; this module only checks inputs, flattens tag lists and formats.
Chunk scores follow CoNLL-2000's conlleval: a chunk counts as correct only when
its span and type both match, and an I-X that does not continue an X chunk
(after O, or after a chunk of another type) starts a new one.

seqeval and scikit-learn are imported where they are used: they take seconds
to import, and every script imports this module through the task registry.
"""


def _check_lengths(true_tags, pred_tags) -> None:
  if len(true_tags) != len(pred_tags):
    raise ValueError(
        f"{len(true_tags)} true sentences, {len(pred_tags)} predicted"
    )
  for i, (t, p) in enumerate(zip(true_tags, pred_tags)):
    if len(t) != len(p):
      raise ValueError(f"sentence {i}: {len(t)} true tags, {len(p)} predicted")


def _flat(true, pred) -> tuple[list, list]:
  """Flattens lists of tag lists (after checking them); flat lists pass."""
  _check_lengths(true, pred)
  if true and isinstance(true[0], (list, tuple)):
    return [x for s in true for x in s], [x for s in pred for x in s]
  return list(true), list(pred)


def chunk_scores(
    true_tags: list[list[str]], pred_tags: list[list[str]]
) -> dict:
  """Chunk precision, recall and F1 in percent, as conlleval computes them.

  Args:
    true_tags: one list of IOB tags (``B-NP``, ``I-NP``, ``O``) per sentence.
    pred_tags: the predicted tags, the same lengths sentence by sentence.

  Returns:
    ``{"precision", "recall", "f1"}``, each in [0, 100]; 0 where undefined.
  """
  from seqeval.metrics import sequence_labeling  # pylint: disable=g-import-not-at-top

  _check_lengths(true_tags, pred_tags)
  p, r, f, _ = sequence_labeling.precision_recall_fscore_support(
      [list(s) for s in true_tags],  # seqeval splits sentences only if lists
      [list(s) for s in pred_tags],
      average="micro",
      zero_division=0,
  )
  return {
      "precision": 100 * float(p),
      "recall": 100 * float(r),
      "f1": 100 * float(f),
  }


def accuracy(true, pred) -> float:
  """Percent of equal items; lists of tag lists are flattened first."""
  from sklearn import metrics  # pylint: disable=g-import-not-at-top

  return 100 * float(metrics.accuracy_score(*_flat(true, pred)))


def confusion(true, pred, labels) -> list[list[int]]:
  """Counts with rows the true label, columns the predicted, in ``labels``."""
  from sklearn import metrics  # pylint: disable=g-import-not-at-top

  matrix = metrics.confusion_matrix(*_flat(true, pred), labels=list(labels))
  return matrix.tolist()


def format_confusion(matrix, labels) -> str:
  """The matrix as a right-aligned text table, true labels down the side."""
  rows = [["true\\pred", *map(str, labels)]]
  rows += [[str(label), *map(str, r)] for label, r in zip(labels, matrix)]
  width = max(len(cell) for row in rows for cell in row)
  return "\n".join(" ".join(c.rjust(width) for c in row) for row in rows)
