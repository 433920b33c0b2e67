"""AWD-LSTM (Merity, Keskar and Socher 2018, "Regularizing and Optimizing
LSTM Language Models") on Penn Treebank, and a CPU-sized recipe.

  # the paper's model, for an accelerator (500 epochs)
  python -m experiments.train --config=experiments/configs/ptb_awd.py \
      --config.data.dir=../shared/data/ptb --workdir=runs/ptb_awd
  # then finetuning, as the paper does: a new run from the finished one's
  # best parameters, averaging from the start, stopping by the NT rule
  python -m experiments.train --config=experiments/configs/ptb_awd.py:finetune \
      --config.data.dir=../shared/data/ptb \
      --config.train.init_from=runs/ptb_awd --workdir=runs/ptb_awd_finetune
  # and the neural cache on top (Grave et al. 2017), tuned on valid
  python -m experiments.evaluate --workdir=runs/ptb_awd_finetune \
      --cache=pointer --cache_size=500 --cache_theta=0.5,0.625,0.75 \
      --cache_lambda=0.05,0.1,0.15 --eval_batch_size=1

Variants:
  awd       the paper's PTB command (salesforce/awd-lstm-lm README): 3 LSTM
            layers 400/1150/400, embeddings 400 tied to the softmax, dropout
            0.4 on the output, 0.25 between layers (dropouth), 0.4 on the
            embeddings (dropouti), embedding dropout 0.1, weight drop 0.5
            on the recurrent matrices, locked masks, AR 2 / TAR 1,
            variable-length BPTT around 70, SGD at 30 with clipping at 0.25
            and L2 1.2e-6, NT-ASGD (nonmono 5), batch 20, 500 epochs.
  finetune  the same, started from train.init_from's best parameters with
            averaging on from the first step, until the NT rule stops it.
  cpu       the techniques at Zaremba-small size for this project's 2-core
            CPU: 2 x 200 tied, variable BPTT around 35, dropouts scaled down
            for the small model, 20 epochs.
  cpu_zaremba  the baseline it is compared with: Zaremba et al.'s small
            recipe (ptb_lstm.py:small: no dropout, SGD lr 1 decayed by 0.5
            after epoch 4, clipping 5, bptt 20) at the same size and epochs.
The ablation of each technique on the cpu recipe is
experiments/sweeps/ptb_awd_ablation.py.

Differences from the paper's code: segment lengths are rounded to multiples
of 5 (data.bptt_quantum; each length is one branch of the compiled step);
parameters are initialised uniformly in +-1/sqrt(1150) (model.init_scale
-1, PyTorch's LSTM default) where the paper draws embeddings in +-0.1 and
the softmax bias at 0.

Published (Merity et al. 2018, Table 1): valid 60.0 / test 57.3 after
finetuning (60.7 / 58.8 before; 53.9 / 52.8 with the neural cache); with
dynamic evaluation (Krause et al. 2018) test 51.1.

Measured results: see RESULTS.
"""

from experiments.configs import base
from experiments.configs import ptb_lstm

RESULTS = {
    "awd": "not run here: about 500 epochs of a 24M-parameter model, for an accelerator",
    "finetune": "not run here (follows awd)",
    "cpu": "not yet run",
    "cpu_zaremba": "not yet run",
}

VARIANTS = ("awd", "finetune", "cpu", "cpu_zaremba")


def awd_config(c, embed, hidden, layers, bptt, epochs, batch):
  """Merity et al.'s recipe on config c, at the given sizes."""
  c.model.cell = "lstm"
  c.model.embed_dim = embed
  c.model.hidden = hidden
  c.model.last_hidden = embed
  c.model.num_layers = layers
  c.model.tie_weights = True
  c.model.init_scale = -1.0
  c.model.dropout_mask = "locked"
  c.model.dropout = 0.4
  c.model.dropout_hidden = 0.25
  c.model.dropout_input = 0.4
  c.model.dropout_embed = 0.1
  c.model.weight_drop = 0.5
  c.model.ar_alpha = 2.0
  c.model.tar_beta = 1.0
  c.data.batch_size = batch
  c.data.bptt = bptt
  c.data.variable_bptt = True
  c.data.eval_batch_size = 10
  c.optim.name = "sgd"
  c.optim.learning_rate = 30.0
  c.optim.clip_norm = 0.25
  c.optim.weight_decay = 1.2e-6
  c.optim.schedule = "constant"
  c.optim.loss_reduction = "mean"
  c.optim.averaging = "nt"
  c.optim.nonmono = 5
  c.train.num_epochs = epochs
  c.train.log_every = 100
  c.train.checkpoint_every = 500
  return c


def ptb_data(c):
  c.data.source = "files"
  c.data.local_name = "ptb"
  c.data.hf_path = "ptb_text_only"
  c.data.text_column = "sentence"
  return c


def finetune(c):
  """AWD-LSTM's finetuning of config c: from train.init_from's best
  parameters (set on the command line), averaging from the first step,
  stopped by the non-monotone rule."""
  c.optim.averaging = "always"
  c.train.early_stop = c.optim.nonmono
  return c


def get_config(variant: str = "awd"):
  if variant not in VARIANTS:
    raise ValueError(f"unknown variant {variant!r}; choose from {VARIANTS}")
  if variant == "cpu_zaremba":
    c = ptb_lstm.ptb_config("small", "lstm")
    c.name = "ptb_awd_cpu_zaremba"
    c.train.num_epochs = 20
    return c
  c = ptb_data(base.get_base_config())
  c.name = f"ptb_awd_{variant}"
  if variant == "cpu":
    awd_config(c, 200, 200, 2, 35, 20, 20)
    c.model.dropout = 0.3
    c.model.dropout_hidden = 0.2
    c.model.dropout_input = 0.3
    c.model.dropout_embed = 0.05
    c.model.weight_drop = 0.3
    c.model.init_scale = 0.1
    return c
  awd_config(c, 400, 1150, 3, 70, 500, 20)
  return finetune(c) if variant == "finetune" else c
