"""Tests for rnnlm_jax.seqmetrics: chunk scores as conlleval counts them,
worked out by hand, and accuracy and confusion on small examples."""

import pytest

from rnnlm_jax import seqmetrics


def _scores(true, pred):
  return seqmetrics.chunk_scores([true.split()], [pred.split()])


def test_chunks_match_only_on_exact_span_and_type():
  # Gold chunks: NP[0,1] VP[3] PP[4] NP[5,6]                     (4 gold)
  # Predicted:   NP[0,1] exact; ADVP[2] spurious; NP[3] type error (gold VP);
  #              PP[4] exact; NP[5] boundary error (gold NP[5,6]). (5 found)
  # Correct 2: precision 2/5 = 40%, recall 2/4 = 50%,
  # f1 = 2 * 40 * 50 / (40 + 50) = 400 / 9 = 44.44...%.
  # (Token accuracy would be 4/7.)
  s = _scores(
      "B-NP I-NP O      B-VP B-PP B-NP I-NP",
      "B-NP I-NP B-ADVP B-NP B-PP B-NP O",
  )
  assert s["precision"] == pytest.approx(40.0, abs=1e-9)
  assert s["recall"] == pytest.approx(50.0, abs=1e-9)
  assert s["f1"] == pytest.approx(400 / 9, abs=1e-9)


def test_i_after_o_starts_a_chunk():
  # conlleval reads the gold I-NP I-NP after O as the chunk NP[1,2], which the
  # prediction's B-NP I-NP matches; a strict IOB2 reading finds no gold chunk.
  s = _scores("O I-NP I-NP O", "O B-NP I-NP O")
  assert s == pytest.approx({"precision": 100, "recall": 100, "f1": 100})


def test_type_change_starts_a_chunk():
  # Gold NP[0,1] VP[2]: I-VP after I-NP ends the NP and starts a VP.
  assert _scores("B-NP I-NP I-VP", "B-NP I-NP B-VP")["f1"] == pytest.approx(100)
  # So the prediction NP[0,1] NP[2] gets NP[0,1] right and nothing else.
  s = _scores("B-NP I-NP I-VP", "B-NP I-NP B-NP")
  assert s == pytest.approx({"precision": 50, "recall": 50, "f1": 50})


def test_scores_over_sentences_and_no_chunks():
  # Chunks do not run across sentences: two NP[0] chunks, both found.
  s = seqmetrics.chunk_scores([["B-NP"], ["I-NP"]], [["B-NP"], ["B-NP"]])
  assert s["f1"] == pytest.approx(100)
  s = seqmetrics.chunk_scores([["O", "O"]], [["O", "O"]])
  assert s == {"precision": 0, "recall": 0, "f1": 0}


def test_mismatched_lengths_raise():
  with pytest.raises(ValueError, match="sentence 1"):
    seqmetrics.chunk_scores([["O"], ["O", "O"]], [["O"], ["O"]])
  with pytest.raises(ValueError, match="sentences"):
    seqmetrics.chunk_scores([["O"]], [["O"], ["O"]])
  with pytest.raises(ValueError):
    seqmetrics.accuracy([["O"], ["O", "O"]], [["O", "O"], ["O"]])


def test_accuracy_and_confusion():
  true = ["pos", "pos", "neg", "neg", "neu"]
  pred = ["pos", "neg", "neg", "neg", "pos"]
  assert seqmetrics.accuracy(true, pred) == pytest.approx(60.0)  # 3 of 5
  # Tag lists are flattened: 3 of 4 tokens right.
  tags = [["B-NP", "O"], ["O", "B-VP"]]
  assert seqmetrics.accuracy(tags, [["B-NP", "O"], ["O", "O"]]) == 75.0
  labels = ["pos", "neg", "neu"]
  matrix = seqmetrics.confusion(true, pred, labels)
  # Rows true, columns predicted: pos->{pos, neg}, neg->neg twice, neu->pos.
  assert matrix == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
  table = seqmetrics.format_confusion(matrix, labels).splitlines()
  assert table[0].split() == ["true\\pred", "pos", "neg", "neu"]
  assert table[2].split() == ["neg", "0", "2", "0"]
  assert len({len(line) for line in table}) == 1  # aligned
