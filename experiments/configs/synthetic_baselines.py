"""The classic baselines on the built-in synthetic language, beside its
true perplexity floor (the default LSTM run is the recurrent reference).

  python -m experiments.train --config=experiments/configs/synthetic_baselines.py:kn5

The language (rnnlm_jax.synthetic) makes verbs agree in number with subjects
that relative clauses and prepositional phrases can push many words back, so
a model with a window of n-1 words cannot know the number of the subject
when the verb comes: the gap between an n-gram's perplexity and the floor is
what that window misses.

Variants: kn5, kn3, kn2 (modified Kneser-Ney), katz3, add1_3, maxent5,
neural5 (as in ptb_baselines, sized for a 187-word vocabulary).

Measured results: see RESULTS.
"""

from experiments.configs import base
from experiments.configs import ptb_baselines

RESULTS = {
    v: "not yet run"
    for v in ("kn5", "kn3", "kn2", "katz3", "add1_3", "maxent5", "neural5")
}

COUNTED = {
    "kn5": (5, "modified_kneser_ney"),
    "kn3": (3, "modified_kneser_ney"),
    "kn2": (2, "modified_kneser_ney"),
    "katz3": (3, "backoff"),
    "add1_3": (3, "add_delta"),
}
VARIANTS = (*COUNTED, "maxent5", "neural5")


def get_config(variant: str = "kn5"):
  if variant not in VARIANTS:
    raise ValueError(f"unknown variant {variant!r}; choose from {VARIANTS}")
  c = base.get_base_config()
  c.name = f"synthetic_{variant}"
  c.data.source = "synthetic"
  c.data.batch_size = 32
  c.data.bptt = 35
  c.data.eval_batch_size = 16
  c.train.log_every = 50
  if variant in COUNTED:
    return ptb_baselines.counted(c, *COUNTED[variant])
  c.train.num_epochs = 6
  if variant == "maxent5":
    return ptb_baselines.maxent(c, 5, 20)
  return ptb_baselines.neural(c, 5, 32, 128, 0.1)
