"""Tasks: what the training loop trains.

A task supplies its parameters, batches, loss, metrics, evaluation and, where
it has one, decoding. The train step (rnnlm_jax.steps), the loop
(rnnlm_jax.train), run directories, checkpoints, resumption, vectorised
trials and sweeps know nothing else of it: language modelling
(rnnlm_jax.tasks.lm) is one task; classification, tagging, translation and
embeddings are written against the same protocol.
"""

from typing import Any, Protocol

from rnnlm_jax.vocab import Vocab
from rnnlm_jax.config import Config
from rnnlm_jax.tasks import embed
from rnnlm_jax.tasks import lm
from rnnlm_jax.tasks import sentences
from rnnlm_jax.tasks import translation


class Task(Protocol):
  """One config's task over its loaded data.

  Shapes: S segments per epoch, B examples per batch, K stacked trials.
  """

  cfg: Config  # the run's config, completed from the data (vocab size)
  vocab: Vocab  # saved with the run (vocab.json, checkpoints)
  # The validation metric that picks the best checkpoint; lower is better.
  selection_metric: str
  # A training loss above this (averaged over a log window) stops the run
  # as divergence, as a NaN does; math.inf for none.
  max_train_loss: float

  def init_params(self, key) -> Any:
    """The model's initial parameters."""

  def init_carry(self) -> Any:
    """State handed from one training batch to the next within an epoch
    (the recurrent state of truncated BPTT); () for tasks without one."""

  def init_hparams(self) -> dict:
    """Hyperparameters that are traced data, so trials may differ in them
    (the dropout rate)."""

  def train_batches(self, epoch: int) -> dict:
    """One epoch's batches as host arrays [S, B, ...]; the step takes
    segment ``step % S``, so the position in the data is the step."""

  def batches_change_each_epoch(self) -> bool:
    """Whether train_batches depends on the epoch (reshuffled data)."""

  def loss(self, params, carry, batch, key, hparams) -> tuple:
    """``(objective, (carry, sums))`` for one batch: the scalar that is
    differentiated, the next carry, and a dict of scalar sums ("count", the
    examples or tokens they sum over, among them) that the loop adds up
    over a log window."""

  def summarise(self, sums: dict, split: str = "train") -> dict:
    """What is logged from summed metrics: {"<split>_loss": ..., ...}."""

  def evaluate(self, params, split: str, k: int = 1) -> list[dict]:
    """summarise's metrics over a whole split, for each of k trials whose
    parameters are stacked on a leading axis (k > 1) or for one model."""

  def report(self, params) -> dict:
    """The final metrics written to results.json."""

  def describe(self) -> str:
    """The data's size, for the run's first line."""

  def decode(self, params, *args, **kwargs) -> Any:
    """Outputs of the trained model (samples, translations), where the task
    has them."""


def make_tasks(
    cfgs: list[Config], saved_vocab: Vocab | None = None
) -> list[Task]:
  """One task per config, all over the same data, loaded once (with a
  resumed run's saved vocabulary)."""
  if cfgs[0].task == "lm":
    return lm.make_tasks(cfgs, saved_vocab)
  if cfgs[0].task == "translate":
    return translation.make_tasks(cfgs, saved_vocab)
  if cfgs[0].task == "embed":
    return embed.make_tasks(cfgs, saved_vocab)
  return sentences.make_tasks(cfgs, saved_vocab)


def make_task(
    cfg: Config,
    saved_vocab: Vocab | None = None,
    eval_batch_size: int | None = None,
) -> Task:
  """A saved run's task, evaluating ``eval_batch_size`` examples at once
  (the config's by default)."""
  (task,) = make_tasks([cfg], saved_vocab)
  if eval_batch_size and cfg.task == "lm":
    task = lm.LanguageModel(task.cfg, task.corpus, eval_batch_size)
  elif eval_batch_size and cfg.task == "translate":
    task = translation.TranslationTask(task.cfg, task.data, eval_batch_size)
  elif eval_batch_size and cfg.task == "embed":
    task = embed.EmbeddingTask(task.cfg, task.data, eval_batch_size)
  elif eval_batch_size:
    task = sentences.SentenceTask(task.cfg, task.data, eval_batch_size)
  return task
