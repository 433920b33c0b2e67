"""AWD-LSTM (Merity, Keskar and Socher 2018) on WikiText-2, for an
accelerator.

  python -m experiments.train --config=experiments/configs/wikitext2_awd.py \
      --config.data.dir=../shared/data/wikitext-2 --workdir=runs/wt2_awd
  python -m experiments.train --config=experiments/configs/wikitext2_awd.py:finetune \
      --config.data.dir=../shared/data/wikitext-2 \
      --config.train.init_from=runs/wt2_awd --workdir=runs/wt2_awd_finetune

The paper's WikiText-2 command (salesforce/awd-lstm-lm README): its PTB model
(experiments/configs/ptb_awd.py) with the code's defaults for what that
command leaves out: dropout 0.4 on the output, 0.2 between layers
(dropouth), 0.65 on the embeddings (dropouti), embedding dropout 0.1,
weight drop 0.5, batch 80, 750 epochs. The same differences from the
paper's code as ptb_awd.py's.

Published (Merity et al. 2018, Table 2): valid 68.6 / test 65.8 after
finetuning; 53.8 / 52.0 with the neural cache; with dynamic evaluation
(Krause et al. 2018) test 44.3.

Measured results: see RESULTS.
"""

from experiments.configs import base
from experiments.configs import ptb_awd

RESULTS = {
    "awd": "not run here: 750 epochs of a 33M-parameter model, for an accelerator",
    "finetune": "not run here (follows awd)",
}

VARIANTS = ("awd", "finetune")


def get_config(variant: str = "awd"):
  if variant not in VARIANTS:
    raise ValueError(f"unknown variant {variant!r}; choose from {VARIANTS}")
  c = base.get_base_config()
  c.name = f"wikitext2_awd_{variant}"
  c.data.source = "files"
  c.data.local_name = "wikitext-2"
  c.data.hf_path = "wikitext"
  c.data.hf_name = "wikitext-2-v1"
  c.data.text_column = "text"
  ptb_awd.awd_config(c, 400, 1150, 3, 70, 750, 80)
  c.model.dropout_hidden = 0.2
  c.model.dropout_input = 0.65
  return ptb_awd.finetune(c) if variant == "finetune" else c
