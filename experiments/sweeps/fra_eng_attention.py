"""French-to-English translators: attention (none, Bahdanau, Luong general)
x cell (GRU, LSTM), one seed each.

  RNNLM_DATA=../shared/data python -m launch.sweep \
      --sweep=experiments/sweeps/fra_eng_attention.py --parallel=2
  python -m launch.sweep --sweep=experiments/sweeps/fra_eng_attention.py --status
  python -m experiments.tables --runs=runs/sweeps/fra_eng_attention \
      --metric=valid_bleu --metric=test_bleu --metric=test_chrf
  python -m experiments.bleu_by_length \
      --workdirs=runs/sweeps/fra_eng_attention/RUN_A,runs/sweeps/fra_eng_attention/RUN_B

experiments/configs/fra_eng.py's model (a bidirectional encoder and a decoder
of 256 units, 3 epochs) with each attention and cell. Runtime and results:
see docs/translation.md.
"""

from launch.sweeps import Sweep


def get_sweep():
  return Sweep(
      name="fra_eng_attention",
      config="experiments/configs/fra_eng.py:attention",
      axes=[
          {"model.attention": attention, "model.cell": cell}
          for cell in ("gru", "lstm")
          for attention in ("none", "bahdanau", "luong_general")
      ],
      seeds=[0],
  )
