"""train_and_evaluate(config, workdir): the training loop.

The loop is thin: one compiled train step per segment, metrics fetched from
the device every ``log_every`` steps (the only host syncs besides
checkpoints), a validation pass and checkpoints at each epoch end, and
automatic resumption from the run directory's latest checkpoint.
"""

import dataclasses
import functools
import os
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from rnnlm_jax import checkpoint
from rnnlm_jax import config as config_lib
from rnnlm_jax import corpus as corpus_lib
from rnnlm_jax.vocab import Vocab
from rnnlm_jax import evaluation
from rnnlm_jax import metrics as metrics_lib
from rnnlm_jax import models
from rnnlm_jax import ngram
from rnnlm_jax import optim
from rnnlm_jax import parallel
from rnnlm_jax import provenance
from rnnlm_jax import rundir
from rnnlm_jax import steps
from rnnlm_jax import trials as trials_lib
from rnnlm_jax.config import Config

IncompatibleRun = rundir.IncompatibleRun


class TrainingDiverged(FloatingPointError):
  """The loss or the gradients became NaN or Inf."""


def with_vocab_size(cfg: Config, vocab_size: int) -> Config:
  if cfg.model.vocab_size not in (0, vocab_size):
    raise config_lib.ConfigError(
        f"model.vocab_size={cfg.model.vocab_size} but the vocabulary has "
        f"{vocab_size} tokens"
    )
  return config_lib.replace(cfg, model={"vocab_size": vocab_size})


def _check_finite(fetched, first_step: int, label: str = "") -> None:
  for i, m in enumerate(fetched):
    if not (np.isfinite(m["nll"]) and np.isfinite(m["grad_norm"])):
      what = "loss" if not np.isfinite(m["nll"]) else "gradient"
      raise TrainingDiverged(
          f"non-finite training {what} at step {first_step + i + 1}{label} "
          f"(checked steps {first_step + 1}-{first_step + len(fetched)}); the "
          "update "
          f"was skipped and training stopped: lower the learning rate or "
          f"enable clipping"
      )


@functools.partial(jax.jit, static_argnums=1)
def _finite_trials(params, k: int):
  """[k] bools: whether each of k trials' parameters (stacked on a leading
  axis where k > 1) are all finite, in one computation and one fetch."""
  return jnp.stack(
      [jnp.isfinite(x).reshape(k, -1).all(1) for x in jax.tree.leaves(params)]
  ).all(0)


def _fmt_time(seconds: float) -> str:
  seconds = int(max(seconds, 0))
  return f"{seconds // 3600}h{seconds // 60 % 60:02d}m{seconds % 60:02d}s"


@dataclasses.dataclass
class _Window:
  """Metrics since the last fetch."""

  first_step: int
  t0: float
  pending: list = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class _Plan:
  steps_per_epoch: int
  total_steps: int
  tokens_per_step: int
  accum: int


def _summarise(fetched: list, window: _Window, done, plan, lr, label) -> dict:
  _check_finite(fetched, window.first_step, label)
  elapsed = time.perf_counter() - window.t0
  nll = sum(float(f["nll"]) for f in fetched) / max(
      sum(float(f["count"]) for f in fetched), 1.0
  )
  rate = len(fetched) / max(elapsed, 1e-9)
  return {
      "step": done,
      "epoch": done / plan.steps_per_epoch,
      "train_loss": nll,
      "train_ppl": metrics_lib.perplexity(nll),
      "lr": lr,
      "grad_norm": float(fetched[-1]["grad_norm"]),
      "tokens_per_s": rate * plan.tokens_per_step,
      "eta_s": (plan.total_steps - done) / max(rate, 1e-9),
  }


def _progress_line(r: dict, total_steps: int) -> str:
  return (
      f"step {r['step']}/{total_steps} epoch {r['epoch']:.2f} loss "
      f"{r['train_loss']:.4f} ppl {r['train_ppl']:.2f} lr {r['lr']:.4g} "
      f"tok/s {r['tokens_per_s']:,.0f} eta {_fmt_time(r['eta_s'])}"
  )


@dataclasses.dataclass(frozen=True)
class _Stack:
  """How K trials' pytrees are held: stacked on a leading axis (K > 1) or,
  for a single run, as they are."""

  k: int

  def split(self, tree) -> list:
    if self.k == 1:
      return [tree]
    return [steps.unstack(tree, i) for i in range(self.k)]

  def join(self, trees: list):
    return trees[0] if self.k == 1 else steps.stack(trees)


def train_and_evaluate(
    cfg: Config,
    workdir: str,
    log: Callable[[str], None] = print,
    command: str | None = None,
) -> dict:
  """Trains (or resumes) the run in ``workdir`` and evaluates its best
  checkpoint on valid and test.

  Args:
    cfg: the experiment's config.
    workdir: the run directory (created, or continued if it holds a run).
    log: where progress lines go.
    command: the command line, recorded in workdir/cmd.sh.

  Returns:
    The final metrics (also written to workdir/results.json).
  """
  return train_trials([cfg], [workdir], log, [command])[0]


def _resume_step(workdirs: list[str]) -> int:
  """The step every trial can resume from: trials are checkpointed one
  after another, so a kill can leave some one checkpoint ahead; each keeps
  its previous one (vectorised groups keep two) to step back to. A trial
  ahead recomputes its steps exactly; one that cannot step back to where
  the others stand is refused."""
  saved = [checkpoint.all_steps(w, "latest") for w in workdirs]
  common = min(max(s, default=0) for s in saved)
  for w, s in zip(workdirs, saved):
    if common and common not in s:
      raise IncompatibleRun(
          f"{w} has no checkpoint at step {common}, where the other trials "
          "of its group stand; train it on its own or with trials at its "
          "own step"
      )
  return common


def _restore(workdir: str, target, step: int):
  try:
    return checkpoint.restore(workdir, "latest", target, step)
  except checkpoint.CheckpointError as e:
    raise IncompatibleRun(
        f"the checkpoint in {workdir} does not fit this version's train "
        f"state, or is damaged: {e}"
    ) from None


def _mesh(cfg: Config):
  """The device mesh for train.num_devices != 1, else None (one device)."""
  if cfg.train.num_devices == 1:
    return None
  if jax.process_count() > 1:
    raise config_lib.ConfigError(
        "the training loop runs in one process; for several hosts use "
        "rnnlm_jax.parallel directly"
    )
  try:
    mesh = parallel.make_mesh(cfg.train.num_devices)
    parallel.check_batch(cfg.data.batch_size, mesh)
  except ValueError as e:
    raise config_lib.ConfigError(f"train.num_devices: {e}") from None
  return mesh


def _on_one_device(tree, mesh):
  """Arrays of the mesh gathered onto its first device, for evaluation and
  checkpoint restores, which run on one device."""
  return tree if mesh is None else jax.device_put(tree, mesh.devices.flat[0])


def train_trials(
    cfgs: list[Config],
    workdirs: list[str],
    log: Callable[[str], None] = print,
    commands: list[str | None] | None = None,
) -> list[dict]:
  """train_and_evaluate for K trials at once (rnnlm_jax.trials): one
  compiled step vmapped over K stacked train states, each trial with its
  own run directory, written exactly as a separate run would write it.

  Returns:
    Each trial's final metrics, in order.
  """
  if len(cfgs) != len(workdirs) or len(set(workdirs)) != len(workdirs):
    raise config_lib.ConfigError(
        f"{len(cfgs)} trials need as many distinct run directories, got "
        f"{workdirs}"
    )
  commands = commands or [None] * len(cfgs)
  trials_lib.template(cfgs)  # Refuse groups that cannot share a step early.
  vocabs = [rundir.existing_vocab(w, c) for w, c in zip(workdirs, cfgs)]
  saved_vocab = next((v for v in vocabs if v is not None), None)
  corpus = corpus_lib.load_corpus(cfgs[0].data, saved_vocab)
  cfgs = [with_vocab_size(c, len(corpus.vocab)) for c in cfgs]
  if cfgs[0].model.kind == "count_ngram":
    return [count_and_evaluate(cfgs[0], corpus, workdirs[0], log, commands[0])]
  group = trials_lib.template(cfgs)
  stack = _Stack(len(cfgs))
  shared = trials_lib.shared_batches(cfgs)

  mesh = _mesh(group)

  def epoch_batches(epoch):
    per_trial = [
        corpus_lib.train_batches(corpus, c.data, epoch, c.train.seed)
        for c in (cfgs[:1] if shared else cfgs)
    ]
    batches = per_trial[0] if shared else steps.stack(per_trial)
    if mesh is None:
      return jax.device_put(batches)
    return parallel.shard_batches(batches, mesh)

  def place(state):
    """The state on the mesh: carry split with the batch, rest replicated."""
    if mesh is None:
      return state
    return parallel.shard_state(state, mesh, 1 if stack.k > 1 else 0)

  start_step = _resume_step(workdirs)
  batches = epoch_batches(0)
  for w, c, command in zip(workdirs, cfgs, commands):
    rundir.write_run_files(w, c, corpus.vocab, command)

  steps_per_epoch, batch_size = batches["x"].shape[-3:-1]
  total_steps = steps_per_epoch * group.train.num_epochs
  if group.train.max_steps:
    total_steps = min(total_steps, group.train.max_steps)
  plan = _Plan(
      steps_per_epoch,
      total_steps,
      int(batches["mask"][(0,) * (batches["mask"].ndim - 2)].sum()),
      optim.accum_steps(group.optim, steps_per_epoch),
  )
  txs = [
      optim.make_optimizer(c.optim, steps_per_epoch, c.train.num_epochs)
      for c in cfgs
  ]
  plateau_tx = optim.make_plateau(group.optim)
  fresh = [
      steps.init_train_state(
          jax.random.key(c.train.seed), c.model, tx, batch_size, plateau_tx
      )
      for c, (tx, _) in zip(cfgs, txs)
  ]
  writers = [
      metrics_lib.JsonlWriter(os.path.join(w, rundir.METRICS_FILE))
      for w in workdirs
  ]
  best_nll = [float("inf")] * stack.k
  if start_step:
    for i, w in enumerate(workdirs):
      fresh[i], record = _restore(w, fresh[i], start_step)
      best_nll[i] = record["best_valid_loss"]
    log(
        f"resumed from step {record['step']} (epoch {record['epoch']}, "
        f"segment {record['segment']})"
    )
  for w in writers:
    w.truncate_after(start_step)
  state = place(stack.join(fresh))
  for i, (w, c) in enumerate(zip(workdirs, cfgs)):
    extra = {"trial": i, "trials": stack.k} if stack.k > 1 else {}
    provenance.append(
        w, provenance.describe(c.train.seed, step=start_step, **extra)
    )
  n_params = sum(x.size for x in jax.tree.leaves(fresh[0].params))
  log(
      f"{group.name}: {n_params:,} parameters, vocab {len(corpus.vocab):,}, "
      f"{len(corpus.ids['train']):,} train tokens, {steps_per_epoch} "
      f"steps/epoch, {total_steps} steps"
      + (f", {stack.k} vectorised trials" if stack.k > 1 else "")
  )

  if group.data.mode == "sentence" and start_step % steps_per_epoch:
    batches = epoch_batches(start_step // steps_per_epoch)
  step_fn = steps.make_train_step(
      group.model, txs[0][0], group.optim.loss_reduction
  )
  if stack.k > 1:
    step_fn = steps.vectorise(step_fn, shared)
  # Compiled ahead of time: a later call with other shapes would be an error,
  # never a silent recompile.
  t0 = time.perf_counter()
  train_step = step_fn.lower(state, batches).compile()
  log(f"compiled the train step in {time.perf_counter() - t0:.1f}s")
  evaluator = evaluation.Evaluator(group, corpus)
  keep = 1 if stack.k == 1 else 2

  def save(slot, step, which):
    for i, s in enumerate(stack.split(state)):
      if i in which:
        checkpoint.save(
            workdirs[i],
            slot,
            s,
            {
                "step": step,
                "epoch": step // steps_per_epoch,
                "segment": step % steps_per_epoch,
                "best_valid_loss": best_nll[i],
                "vocab": list(corpus.vocab.tokens),
            },
            keep,
        )

  def learning_rates(done):
    scales = np.reshape(jax.device_get(state.plateau.scale), (stack.k,))
    return [
        float(schedule(done // plan.accum)) * float(scale)
        for (_, schedule), scale in zip(txs, scales)
    ]

  def label(i):
    return f" in trial {i} ({workdirs[i]})" if stack.k > 1 else ""

  # A vectorised trial that diverges stops alone: optax already skips its
  # non-finite updates, so the loop stops recording and checkpointing it,
  # the others go on, and the group fails at the end naming it.
  diverged = {}

  def stop_trial(i, error: TrainingDiverged):
    if stack.k == 1:
      raise error
    diverged[i] = str(error)
    log(f"error: {error}; the other trials go on")

  alive = lambda: [i for i in range(stack.k) if i not in diverged]

  def check_params(done):
    """Stops a trial whose last update left non-finite parameters (its loss
    and gradient were finite), before anything saves or scores them."""
    finite = jax.device_get(_finite_trials(state.params, stack.k))
    for i in alive():
      if not finite[i]:
        stop_trial(
            i,
            TrainingDiverged(
                f"non-finite parameters after step {done}{label(i)}; nothing "
                "of that step was saved: lower the learning rate or enable "
                "clipping"
            ),
        )

  window = _Window(start_step, time.perf_counter())
  run_start = time.perf_counter()
  for step in range(start_step, total_steps):
    if step % steps_per_epoch == 0 and step > 0:
      carry = models.init_carry(group.model, batch_size)
      state = place(state.replace(carry=stack.join([carry] * stack.k)))
      if group.data.mode == "sentence":
        batches = epoch_batches(step // steps_per_epoch)
    state, m = train_step(state, batches)
    window.pending.append(m)
    done = step + 1
    epoch_end = done % steps_per_epoch == 0
    if done % group.train.log_every == 0 or epoch_end or done == total_steps:
      fetched = [stack.split(f) for f in jax.device_get(window.pending)]
      lrs = learning_rates(done)
      for i in alive():
        try:
          record = _summarise(
              [f[i] for f in fetched], window, done, plan, lrs[i], label(i)
          )
        except TrainingDiverged as e:
          stop_trial(i, e)
          continue
        writers[i].write(record)
        prefix = f"[{i}] " if stack.k > 1 else ""
        log(prefix + _progress_line(record, total_steps))
      window = _Window(done, time.perf_counter())
    if epoch_end:
      check_params(done)
      valid = evaluator.nlls(
          _on_one_device(state.params, mesh), "valid", stack.k > 1
      )
      improved = []
      for i in alive():
        valid_nll = valid[i]
        if not np.isfinite(valid_nll):
          stop_trial(
              i,
              TrainingDiverged(
                  f"non-finite validation loss after step {done}{label(i)}"
              ),
          )
          continue
        writers[i].write(
            {
                "step": done,
                "epoch": done / steps_per_epoch,
                **evaluation.split_metrics(
                    valid_nll, "valid", group.data.level
                ),
            }
        )
        log(
            f"epoch {done / steps_per_epoch:.2f} valid loss {valid_nll:.4f} "
            f"ppl {metrics_lib.perplexity(valid_nll):.2f}{label(i)}"
        )
        if valid_nll < best_nll[i]:
          best_nll[i] = valid_nll
          improved.append(i)
      if group.optim.schedule == "plateau":
        state = steps.step_plateau(
            state, plateau_tx, valid if stack.k > 1 else valid[0], stack.k > 1
        )
      save("best", done, improved)
      save("latest", done, alive())
      window.t0 = time.perf_counter()
    elif done % group.train.checkpoint_every == 0 or done == total_steps:
      check_params(done)
      save("latest", done, alive())
      window.t0 = time.perf_counter()

  results = []
  for i in alive():
    w = workdirs[i]
    final = stack.split(_on_one_device(state, mesh))[i]
    if checkpoint.latest_step(w, "best") is not None:
      final, _ = checkpoint.restore(w, "best", final)
    results.append(
        {
            "step": int(jax.device_get(final.step)),
            **evaluator.report(final.params),
            "train_seconds_this_process": time.perf_counter() - run_start,
        }
    )
    rundir.write_json_atomic(os.path.join(w, rundir.RESULTS_FILE), results[-1])
  if diverged:
    raise TrainingDiverged(
        f"{len(diverged)} of {stack.k} trials diverged (the others finished):"
        f" {'; '.join(diverged[i] for i in sorted(diverged))}"
    )
  return results


def count_and_evaluate(
    cfg: Config,
    corpus: corpus_lib.Corpus,
    workdir: str,
    log: Callable[[str], None] = print,
    command: str | None = None,
) -> dict:
  """train_and_evaluate for the count-based n-gram model: training is
  counting (histories cut at <eos> when data.reset_at_eos), the counts are
  the run's checkpoint, and a finished run is loaded rather than counted
  again."""
  rundir.write_run_files(workdir, cfg, corpus.vocab, command)
  path = os.path.join(workdir, rundir.NGRAM_FILE)
  m = cfg.model
  t0 = time.perf_counter()
  if os.path.exists(path):
    model = ngram.load(path)
    log(f"loaded the counts of {path}")
  else:
    model = ngram.fit(
        corpus.ids["train"],
        m.order,
        m.vocab_size,
        m.smoothing,
        m.delta,
        start_id=corpus.start_id,
        reset_at_eos=cfg.data.reset_at_eos,
    )
    model.save(path)
  grams = sum(g.size for g in model.gram_keys)
  log(
      f"{cfg.name}: {m.smoothing} {m.order}-gram, vocab {len(corpus.vocab):,}, "
      f"{len(corpus.ids['train']):,} train tokens, {grams:,} n-grams, "
      f"{model.nbytes() / 2**20:.1f} MiB, {time.perf_counter() - t0:.1f}s"
  )
  results = {
      "step": 0,
      **evaluation.counted_report(model, corpus, cfg.data.level),
      "train_seconds_this_process": time.perf_counter() - t0,
      "ngram_mib": model.nbytes() / 2**20,
  }
  rundir.write_json_atomic(os.path.join(workdir, rundir.RESULTS_FILE), results)
  return results


def init_run_from_params(
    cfg: Config,
    workdir: str,
    params,
    vocab: Vocab,
    command: str | None = None,
) -> None:
  """A run directory holding given parameters (imported weights, say) as its
  step-0 'best' and 'latest' checkpoints, so that evaluation and sampling
  treat it like any trained run."""
  if os.path.exists(os.path.join(workdir, rundir.CONFIG_FILE)):
    raise IncompatibleRun(f"{workdir} already holds a run; use a new --workdir")
  cfg = with_vocab_size(cfg, len(vocab))
  rundir.existing_vocab(workdir, cfg)
  rundir.write_run_files(workdir, cfg, vocab, command)
  tx, _ = optim.make_optimizer(cfg.optim, 1, 1)
  state = steps.init_train_state(
      jax.random.key(cfg.train.seed), cfg.model, tx, cfg.data.batch_size
  )
  state = state.replace(params=params, opt_state=tx.init(params))
  record = {
      "step": 0,
      "epoch": 0,
      "segment": 0,
      "best_valid_loss": float("inf"),
      "vocab": list(vocab.tokens),
  }
  for slot in checkpoint.SLOTS:
    checkpoint.save(workdir, slot, state, record)


def summary_line(results: dict) -> str:
  keys = ["valid_ppl", "test_ppl", "floor_ppl", "valid_bpc", "test_bpc"]
  return " ".join(f"{k}={results[k]:.4f}" for k in keys if k in results)
