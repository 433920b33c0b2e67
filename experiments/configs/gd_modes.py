"""Online, minibatch and full-batch gradient descent on the synthetic corpus.

  python -m experiments.train --config=experiments/configs/gd_modes.py:online
  python -m experiments.train --config=experiments/configs/gd_modes.py:minibatch
  python -m experiments.train --config=experiments/configs/gd_modes.py:batch

The same small tanh RNN and corpus (2,000 training sentences), SGD, three
ways of turning data into updates:
  online     one stream (batch 1), an update after every segment
  minibatch  32 streams, an update after every segment
  batch      32 streams, gradients accumulated over the whole epoch and
             applied once per epoch (optax.MultiSteps)
Measured results: see RESULTS.
"""

from experiments.configs import base

RESULTS = {
    # Run 2026-12-07 on the 2-core CPU; training seconds exclude
    # compilation and evaluation (experiments.curves, docs/gd_modes.png).
    "online": "valid loss 3.2910 (ppl 26.87), test ppl 28.01; 5,235 updates,"
    " 104,700 tokens, 2.8 s of training",
    "minibatch": "valid loss 2.9999 (ppl 20.08), test ppl 20.88; 640 updates,"
    " 409,600 tokens, 1.8 s of training",
    "batch": "valid loss 3.4579 (ppl 31.75), test ppl 33.51; 100"
    " updates, 2,048,000 tokens, 9.5 s of training",
}

VARIANTS = {
    #            batch  accum  lr    epochs
    "online": (1, 1, 0.05, 5),
    "minibatch": (32, 1, 0.5, 20),
    "batch": (32, -1, 2.0, 100),
}


def get_config(variant: str = "minibatch"):
  if variant not in VARIANTS:
    raise ValueError(
        f"unknown variant {variant!r}; choose from {sorted(VARIANTS)}"
    )
  batch, accum, lr, epochs = VARIANTS[variant]
  c = base.get_base_config()
  c.name = f"gd_{variant}"
  c.data.synthetic_sentences = (2000, 300, 300)
  c.data.batch_size = batch
  c.data.bptt = 20
  c.data.eval_batch_size = 10
  c.model.cell = "rnn_tanh"
  c.model.hidden = 64
  c.model.num_layers = 1
  c.optim.name = "sgd"
  c.optim.learning_rate = lr
  c.optim.clip_norm = 1.0
  c.optim.grad_accum_steps = accum
  c.train.num_epochs = epochs
  c.train.log_every = 50
  # About 50 validation points for the 5,235 online updates; one per epoch
  # for the others.
  c.train.eval_every = 100 if batch == 1 else 0
  c.train.checkpoint_every = 500
  return c
