"""Vectorised trials: K runs that differ only in their seed or in
shape-preserving hyperparameters, trained as one compiled program.

The trials share the data, the model's shapes and the optimizer's
structure; what may differ is data in the train state (see
rnnlm_jax.steps): the seed (initial parameters and dropout masks), the
learning rate and clipping norm (in the optimizer state), the dropout rate
and the initialisation scale. ``jax.vmap`` runs the train step over the K
stacked states, so small models fill an accelerator (or the vector units of
a CPU) that one of them would leave idle. Each trial keeps its own run
directory, exactly like a separate run's, and its metrics equal a separate
run's within float tolerance (tested).
"""

import dataclasses

from rnnlm_jax import config as config_lib
from rnnlm_jax import rundir
from rnnlm_jax.config import Config

VECTORISABLE = (
    "train.seed",
    "optim.learning_rate",
    "optim.clip_norm",
    "model.dropout",
    "model.init_scale",
)


def _vectorisable_key(key: str) -> bool:
  return key in VECTORISABLE or key == "name"


def template(cfgs: list[Config]) -> Config:
  """The config that fixes the group's compiled structure.

  Raises ConfigError if the trials differ in anything but VECTORISABLE keys
  (or their names), or if a trial's init_scale selects another kind of
  initialisation (<= 0 is PyTorch's 1/sqrt(H), a function of the shape).
  Dropout is built where any trial uses it (a rate of 0 then keeps every
  unit, exactly).
  """
  if not cfgs:
    raise config_lib.ConfigError("no trials given")
  first = rundir.flatten(cfgs[0])
  for cfg in cfgs[1:]:
    for key, value in rundir.flatten(cfg).items():
      if value != first[key] and not _vectorisable_key(key):
        raise config_lib.ConfigError(
            f"trials may differ only in {', '.join(VECTORISABLE)}; they "
            f"differ in {key} ({first[key]!r} vs {value!r})"
        )
  if len({c.model.init_scale > 0 for c in cfgs}) > 1:
    raise config_lib.ConfigError(
        "trials must all have model.init_scale > 0 or all <= 0"
    )
  if cfgs[0].model.kind == "count_ngram" and len(cfgs) > 1:
    raise config_lib.ConfigError(
        "model.kind='count_ngram' has nothing to vectorise"
    )
  if cfgs[0].data.variable_bptt and len({c.train.seed for c in cfgs}) > 1:
    # Each seed draws its own segment lengths: the epochs cannot be stacked.
    raise config_lib.ConfigError(
        "trials with data.variable_bptt must share train.seed"
    )
  base = cfgs[0]
  return dataclasses.replace(
      base,
      model=dataclasses.replace(
          base.model, dropout=max(c.model.dropout for c in cfgs)
      ),
  )


def shared_batches(cfgs: list[Config]) -> bool:
  """Whether every trial trains on the same batches: a language model's
  stream-mode batches do not depend on the seed; sentence-mode shuffles and
  the sentence tasks' (rnnlm_jax.tasks.sentences) do."""
  streams = cfgs[0].task == "lm" and cfgs[0].data.mode != "sentence"
  return streams or len({c.train.seed for c in cfgs}) == 1
