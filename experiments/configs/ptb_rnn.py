"""An Elman tanh RNN on Penn Treebank, Zaremba's small/medium/large shapes.

  python -m experiments.train --config=experiments/configs/ptb_rnn.py:small \
      --config.data.dir=../shared/data/ptb

Variants: small, medium, large as in ptb_lstm.py (2 layers of 200 / 650 /
1500, bptt 20 / 35 / 35), with the tanh cell and its own optimiser: Adam
at 2e-3 on the mean token loss, gradient norm clipped at 1, the rate halved
whenever validation does not improve, dropout 0.2 for small (the LSTM
recipe's rate for the larger ones). The LSTM's SGD recipes do not suit the
plain RNN on this corpus (measured, see TRIALS): SGD at 0.5 with the
norm clipped at 0.5 underfits (training and validation perplexity together
near 190 after 8 epochs); clipped at 5 instead, the training loss stays
at 8.6-8.7 for its first 600 steps (uniform guessing: 9.21), and the
PyTorch example's SGD at 20 on the mean loss, clipped at 0.25, diverges.
Measured results: see RESULTS.
"""

from experiments.configs import ptb_lstm

RESULTS = {
    "small": (
        "not run to the end. Stopped after 3 of 13 epochs (7,600 steps,"
        " 2026-12-07, the CPU shared with one other run): valid 234.76,"
        " 208.91, 203.55, the training loss's windows at ppl 151-177 in"
        " epoch 3, so dropout 0.2 lets it overfit. With"
        " --config.model.dropout=0.5 (2026-12-07, stopped after 3 epochs,"
        " 7,400 steps, at 4,600-5,100 tok/s): valid 255.70,"
        " 227.78, 215.87, training perplexity near validation's, so no"
        " overfitting but slow progress. Neither reaches the 130 target at"
        " that pace."
    ),
    "medium": "not yet run",
    "large": "not yet run",
}

# The small shape under SGD (2026-12-07, 2-core CPU).
TRIALS = {
    "lr 0.5, clip 0.5, decay 0.5 after epoch 4": (
        "valid 398.8, 289.8, 252.2, 227.7, 208.3, 199.0, 195.0, 193.1 after"
        " epochs 1-8, training perplexity 184 at epoch 8; stopped there"
    ),
    "lr 0.5, clip 5": "training loss 8.68 at step 400, 8.62 at step 600",
    "lr 20, mean loss, clip 0.25, dropout 0.2": (
        "training loss 16.3 at step 100, 19.5 at step 900: diverged"
    ),
}

# Not the same recipe: Mikolov's RNN (Mikolov 2012).
PUBLISHED = {"small": "124.7 (Mikolov's RNN, not this recipe)"}


def get_config(variant: str = "small"):
  c = ptb_lstm.ptb_config(variant, "rnn_tanh")
  c.optim.name = "adam"
  c.optim.learning_rate = 2e-3
  c.optim.loss_reduction = "mean"
  c.optim.clip_norm = 1.0
  c.optim.schedule = "plateau"
  c.optim.plateau_factor = 0.5
  if variant == "small":
    c.model.dropout = 0.2
  return c
