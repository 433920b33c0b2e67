"""Zaremba, Sutskever and Vinyals (2014) LSTMs on Penn Treebank (Mikolov split).

  python -m experiments.train --config=experiments/configs/ptb_lstm.py:small \
      --config.data.dir=../shared/data/ptb

Variants (batch 20, SGD lr 1 decayed per epoch, loss summed over time and
averaged over the batch as in the paper's code; "decay d after epoch k" means
k epochs at lr 1, then the rate is multiplied by d at every epoch, the
paper's factors):
  small   2x200, no dropout, bptt 20, 13 epochs, init +-0.1,  clip 5,  decay 0.5 after epoch 4
  medium  2x650, dropout 0.5, bptt 35, 39 epochs, init +-0.05, clip 5,  decay 1/1.2 after epoch 6
  large   2x1500, dropout 0.65, bptt 35, 55 epochs, init +-0.04, clip 10, decay 1/1.15 after epoch 14
Published test perplexities: 114.5 / 82.7 / 78.4 (small / medium / large).

Without --config.data.dir the folder $RNNLM_DATA/ptb is used, or, with
neither, the hub dataset ptb_text_only.

Measured results: see RESULTS.
"""

from experiments.configs import base

RESULTS = {
    "small": (
        "test ppl 114.82, valid 119.10 (best-by-validation checkpoint, epoch"
        " 6 of 13; eval batch 10); 65.7 min on a shared 2-core CPU (2,200-3,300"
        " tok/s, tests running alongside)"
    ),
    "medium": "not yet run",
    "large": "not yet run",
}

# Test perplexity, Zaremba, Sutskever and Vinyals (2014).
PUBLISHED = {
    "small": "114.5 (Zaremba et al. 2014)",
    "medium": "82.7 (Zaremba et al. 2014)",
    "large": "78.4 (Zaremba et al. 2014)",
}

VARIANTS = {
    #         hidden dropout bptt epochs init  clip  decay      after
    "small": (200, 0.0, 20, 13, 0.1, 5.0, 0.5, 4),
    "medium": (650, 0.5, 35, 39, 0.05, 5.0, 1 / 1.2, 6),
    "large": (1500, 0.65, 35, 55, 0.04, 10.0, 1 / 1.15, 14),
}


def ptb_config(variant: str, cell: str):
  if variant not in VARIANTS:
    raise ValueError(
        f"unknown variant {variant!r}; choose from {sorted(VARIANTS)}"
    )
  hidden, dropout, bptt, epochs, init, clip, decay, after = VARIANTS[variant]
  c = base.get_base_config()
  c.name = f"ptb_{cell}_{variant}"
  c.data.source = "files"
  c.data.local_name = "ptb"
  c.data.hf_path = "ptb_text_only"
  c.data.text_column = "sentence"
  c.data.batch_size = 20
  c.data.bptt = bptt
  c.data.eval_batch_size = 10
  c.model.cell = cell
  c.model.hidden = hidden
  c.model.num_layers = 2
  c.model.dropout = dropout
  c.model.init_scale = init
  c.optim.name = "sgd"
  c.optim.learning_rate = 1.0
  c.optim.clip_norm = clip
  c.optim.schedule = "epoch_decay"
  c.optim.decay_factor = decay
  c.optim.decay_after_epochs = after
  c.optim.loss_reduction = "sum_time"
  c.train.num_epochs = epochs
  c.train.log_every = 200
  c.train.checkpoint_every = 1000
  return c


def get_config(variant: str = "small"):
  return ptb_config(variant, "lstm")
