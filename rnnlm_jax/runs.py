"""The bookkeeping of a training run, or of K vectorised trials trained as
one program: their states, metric writers, progress lines, checkpoints,
validation, divergence checks and final report. The loop that drives it is
rnnlm_jax.train's ``_train``; a plain run is the case K = 1.
"""

import dataclasses
import functools
import os
import signal
import time

import jax
import jax.numpy as jnp
import numpy as np

from rnnlm_jax import checkpoint
from rnnlm_jax import config as config_lib
from rnnlm_jax import optim
from rnnlm_jax import parallel
from rnnlm_jax import provenance
from rnnlm_jax import rundir
from rnnlm_jax import sampling
from rnnlm_jax import steps
from rnnlm_jax.config import Config

IncompatibleRun = rundir.IncompatibleRun

# The keys of metrics records and results that measure time: a resumed run
# repeats every other value of an uninterrupted one exactly.
TIMING_KEYS = (
    "tokens_per_s",
    "window_s",
    "eta_s",
    "train_seconds_this_process",
)


def without_timings(records) -> list[dict]:
  """The records (metrics.jsonl rows, results) with TIMING_KEYS left out."""
  return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in records]


class TrainingDiverged(FloatingPointError):
  """The loss, the gradients, the parameters or a validation metric became
  NaN or Inf, or the training loss rose above the task's ceiling."""


class Preempted(SystemExit):
  """The run was sent SIGTERM: it saved its latest checkpoint at the step
  boundary that followed and exits with status 143 (128 + SIGTERM); the
  same command resumes it exactly."""

  def __init__(self):
    super().__init__(128 + signal.SIGTERM)


def _check_finite(per_step: list[dict], first_step: int, label: str) -> None:
  """Raises TrainingDiverged at the first step whose metrics (the task's
  sums and the gradient's norm) are not finite."""
  for i, m in enumerate(per_step):
    bad = [k for k, v in m.items() if not np.isfinite(v)]
    if bad:
      what = "gradient" if bad == ["grad_norm"] else "loss"
      raise TrainingDiverged(
          f"non-finite training {what} at step {first_step + i + 1}{label} "
          f"(checked steps {first_step + 1}-{first_step + len(per_step)}); "
          "the update was skipped and training stopped: lower the learning "
          "rate or enable clipping"
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


def _fmt_metrics(metrics: dict, split: str) -> str:
  """'loss 4.1234 ppl 61.23' from {'<split>_loss': ..., '<split>_ppl': ...}."""
  return " ".join(
      f"{k.removeprefix(split + '_')} {v:.4f}"
      if k.endswith("_loss")
      else f"{k.removeprefix(split + '_')} {v:.2f}"
      for k, v in metrics.items()
  )


@dataclasses.dataclass(frozen=True)
class Plan:
  """When the loop logs, validates, samples and checkpoints."""

  steps_per_epoch: int
  total_steps: int
  log_every: int
  eval_every: int
  checkpoint_every: int
  sample_every: int = 0

  @classmethod
  def of(cls, cfg: Config, steps_per_epoch: int) -> "Plan":
    total = steps_per_epoch * cfg.train.num_epochs
    if cfg.train.max_steps:
      total = min(total, cfg.train.max_steps)
    return cls(
        steps_per_epoch,
        total,
        cfg.train.log_every,
        cfg.train.eval_every or steps_per_epoch,
        cfg.train.checkpoint_every,
        cfg.train.sample_every,
    )

  def validates(self, done: int) -> bool:
    return done % self.eval_every == 0

  def logs(self, done: int) -> bool:
    # Validation follows a fetch, so a diverged loss stops the run first.
    epoch_end = done % self.steps_per_epoch == 0
    last = done == self.total_steps
    return (
        done % self.log_every == 0 or epoch_end or last or self.validates(done)
    )

  def samples(self, done: int) -> bool:
    """train.sample_every's steps, and the last."""
    every = self.sample_every
    return bool(every) and (done % every == 0 or done == self.total_steps)

  def checkpoints(self, done: int) -> bool:
    return done % self.checkpoint_every == 0 or done == self.total_steps


@dataclasses.dataclass
class Window:
  """Per-step metrics since the last fetch: on the device (``pending``) and,
  in a run resumed after preemption, those its checkpoint carried over,
  per trial on the host."""

  first_step: int
  t0: float
  pending: list = dataclasses.field(default_factory=list)
  carried: list | None = None

  def fetch(self, runs: "Runs") -> list[list[dict]]:
    """Each trial's per-step metrics of the window, as floats."""
    fetched = [runs.split(f) for f in jax.device_get(self.pending)]
    return [
        (self.carried[i] if self.carried else [])
        + [{k: float(v) for k, v in f[i].items()} for f in fetched]
        for i in range(runs.k)
    ]


def _progress_line(r: dict, total_steps: int, train: dict) -> str:
  return (
      f"step {r['step']}/{total_steps} epoch {r['epoch']:.2f} "
      f"{_fmt_metrics(train, 'train')} lr {r['lr']:.4g} "
      f"tok/s {r['tokens_per_s']:,.0f} eta {_fmt_time(r['eta_s'])}"
  )


def resume_step(workdirs: list[str]) -> int:
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


def _nonmono(history: list[float], value: float, n: int) -> bool:
  """AWD-LSTM's non-monotone rule (Merity et al. 2018): more than n
  validations so far and ``value`` worse than the best of all but the last
  n. n = 0: never."""
  return n > 0 and len(history) > n and value > min(history[:-n])


def _init_from(state, task, tx):
  """``state`` with the parameters of train.init_from's 'best' checkpoint
  (finetuning) and a fresh optimizer state for them."""
  source = task.cfg.train.init_from
  try:
    params, record = checkpoint.restore_params(source, "best")
  except (FileNotFoundError, checkpoint.CheckpointError) as e:
    raise IncompatibleRun(f"train.init_from: {e}") from None
  if list(record.get("vocab", [])) != list(task.vocab.tokens):
    raise IncompatibleRun(
        f"train.init_from: {source} was trained with another vocabulary"
    )
  shapes = lambda t: jax.tree.map(lambda x: tuple(x.shape), t)
  try:
    params = jax.tree.map(
        lambda new, old: jnp.asarray(new, old.dtype), params, state.params
    )
    same = shapes(params) == shapes(state.params)
  except (ValueError, TypeError):
    same = False
  if not same:
    raise IncompatibleRun(
        f"train.init_from: the parameters of {source} do not fit this "
        "model's (another model config)"
    )
  return state.replace(
      params=params, opt_state=tx.init(optim.trainable(params))
  )


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


def _make_sampler(task):
  """train.sample_every's sampler of a language-model task
  (sampling.make_sampler)."""
  t = task.cfg.train
  return sampling.make_sampler(
      task.cfg.model,
      task.vocab,
      task.cfg.data.level,
      t.sample_prompt,
      t.sample_length,
      t.sample_count,
      sampling.Decoding(temperature=t.sample_temperature),
  )


class Runs:
  """K runs trained as one program. K = 1 is a plain run; K > 1 are
  vectorised trials (rnnlm_jax.trials): one compiled step vmapped over K
  train states stacked on a leading axis, each trial with its own task,
  optimizer and run directory, written exactly as a separate run would
  write it. A trial that diverges stops alone: optax already skips its
  non-finite updates, so its directory is no longer written, the others go
  on, and the group fails at the end naming it.

  ``trial_tasks`` give each trial its initial state and, where the trials
  do not share them, its batches; ``task``, of the group's template config
  (rnnlm_jax.trials.template), gives the compiled step and evaluation.
  """

  def __init__(self, trial_tasks, task, workdirs, shared, log):
    self.tasks, self.task, self.workdirs = trial_tasks, task, workdirs
    self.cfg = task.cfg
    self.k = len(trial_tasks)
    self.shared = shared  # Whether the trials train on the same batches.
    self.log = log
    self.mesh = _mesh(self.cfg)
    self.diverged = {}
    self.best = [float("inf")] * self.k
    # Every validation's selection metric, per trial: the non-monotone
    # rules of optim.averaging='nt' and train.early_stop read it.
    self.history = [[] for _ in range(self.k)]
    self.stopped = False  # train.early_stop has ended training.
    self.writers = []
    self.sample_writers = []
    # train.sample_every's compiled sampler; made here, so that a prompt
    # the vocabulary cannot encode stops the run before it starts.
    self.sampler = _make_sampler(task) if self.cfg.train.sample_every else None
    self.plan = None
    self.txs = None
    self.plateau_tx = optim.make_plateau(self.cfg.optim)

  # Stacking and placing.
  def split(self, tree) -> list:
    if self.k == 1:
      return [tree]
    return [steps.unstack(tree, i) for i in range(self.k)]

  def join(self, trees: list):
    return trees[0] if self.k == 1 else steps.stack(trees)

  def place(self, state):
    """The state on the mesh: carry split with the batch, rest replicated."""
    if self.mesh is None:
      return state
    return parallel.shard_state(state, self.mesh, 1 if self.k > 1 else 0)

  def on_one_device(self, tree):
    """Arrays of the mesh gathered onto its first device, for evaluation and
    checkpoint restores, which run on one device."""
    if self.mesh is None:
      return tree
    return jax.device_put(tree, self.mesh.devices.flat[0])

  def batches(self, epoch: int) -> dict:
    """One epoch's batches on the device(s): shared, or stacked per trial.
    The first call fixes the plan (the number of steps per epoch)."""
    trials = self.tasks[:1] if self.shared else self.tasks
    per_trial = [t.train_batches(epoch) for t in trials]
    if self.plan is None:
      steps_per_epoch = steps.num_segments(per_trial[0])
      self.plan = Plan.of(self.cfg, steps_per_epoch)
    batches = per_trial[0] if self.shared else steps.stack(per_trial)
    if self.mesh is None:
      return jax.device_put(batches)
    return parallel.shard_batches(batches, self.mesh)

  def reset_carry(self, state):
    carry = self.task.init_carry()
    return self.place(state.replace(carry=self.join([carry] * self.k)))

  # Trials that go on.
  def alive(self) -> list[int]:
    return [i for i in range(self.k) if i not in self.diverged]

  def label(self, i: int) -> str:
    return f" in trial {i} ({self.workdirs[i]})" if self.k > 1 else ""

  def stop(self, i: int, error: TrainingDiverged) -> None:
    if self.k == 1:
      raise error
    self.diverged[i] = str(error)
    self.log(f"error: {error}; the other trials go on")

  # Start.
  def restore_or_init(self, start_step: int, path: dict):
    """The runs' state at ``start_step`` (restored from their checkpoints, or
    initialised at 0), their metric writers and provenance records, and the
    log window that the checkpoints carried over."""
    plan = self.plan
    self.txs = [
        optim.make_optimizer(
            t.cfg.optim,
            plan.steps_per_epoch,
            t.cfg.train.num_epochs,
            lr_scaled=bool(getattr(t, "bptt_lengths", ())),
        )
        for t in self.tasks
    ]
    states, carried = [], []
    for i, (t, w, (tx, _)) in enumerate(
        zip(self.tasks, self.workdirs, self.txs)
    ):
      seed = t.cfg.train.seed
      state = steps.init_train_state(
          jax.random.key(seed), t, tx, plateau_tx=self.plateau_tx
      )
      if start_step:
        state, record = _restore(w, state, start_step)
        self.best[i] = record["best_valid_loss"]
        self.history[i] = list(record.get("valid_history", []))
        self.stopped = bool(record.get("stopped", False))
        carried.append(record.get("pending", []))
      elif t.cfg.train.init_from:
        state = _init_from(state, t, tx)
      states.append(state)
      self.writers.append(
          rundir.make_writers(w, start_step, self.cfg.train.tensorboard)
      )
      self.sample_writers.append(
          rundir.make_sample_writer(w, start_step, self.sampler is not None)
      )
      extra = {"trial": i, "trials": self.k} if self.k > 1 else {}
      provenance.append(
          w, provenance.describe(seed, step=start_step, **path, **extra)
      )
    if start_step:
      self.log(
          f"resumed from step {record['step']} (epoch {record['epoch']}, "
          f"segment {record['segment']})"
      )
    n_params = sum(
        x.size for x in jax.tree.leaves(optim.trainable(states[0].params))
    )
    self.log(
        f"{self.cfg.name}: {n_params:,} parameters, {self.task.describe()}, "
        f"{plan.steps_per_epoch} steps/epoch, {plan.total_steps} steps"
        + (f", {self.k} vectorised trials" if self.k > 1 else "")
    )
    first = start_step - len(carried[0]) if carried else start_step
    window = Window(first, time.perf_counter(), carried=carried)
    return self.place(self.join(states)), window

  def compile_step(self, state, batches):
    """The train step compiled once: a later call with other shapes is an
    error, never a silent recompile."""
    step_fn = steps.make_train_step(self.task, self.txs[0][0])
    if self.k > 1:
      step_fn = steps.vectorise(step_fn, self.shared)
    t0 = time.perf_counter()
    compiled = step_fn.lower(state, batches).compile()
    self.log(f"compiled the train step in {time.perf_counter() - t0:.1f}s")
    return compiled

  # Metrics.
  def _write(self, i: int, record: dict) -> None:
    for w in self.writers[i]:
      w.write(record)

  def close(self) -> None:
    for writers in self.writers:
      for w in writers:
        w.close()

  def _learning_rates(self, state, done: int) -> list[float]:
    scales = np.reshape(jax.device_get(state.plateau.scale), (self.k,))
    accum = optim.accum_steps(self.cfg.optim, self.plan.steps_per_epoch)
    return [
        float(schedule(done // accum)) * float(scale)
        for (_, schedule), scale in zip(self.txs, scales)
    ]

  def log_train(self, state, window: "Window", done: int) -> None:
    """Fetches the window's metrics and writes each trial's record, or stops
    the trials whose training diverged."""
    per_trial = window.fetch(self)
    lrs = self._learning_rates(state, done)
    elapsed = max(time.perf_counter() - window.t0, 1e-9)
    rate = (done - window.first_step) / elapsed
    first = done - len(per_trial[0])
    for i in self.alive():
      try:
        _check_finite(per_trial[i], first, self.label(i))
        sums = {
            k: sum(m[k] for m in per_trial[i])
            for k in per_trial[i][0]
            if k != "grad_norm"
        }
        train = self.task.summarise(sums)
        self._check_train(train, first, done, i)
      except TrainingDiverged as e:
        self.stop(i, e)
        continue
      record = {
          "step": done,
          "epoch": done / self.plan.steps_per_epoch,
          **train,
          "lr": lrs[i],
          "grad_norm": per_trial[i][-1]["grad_norm"],
          # The tokens read ("tokens"), where the task counts examples.
          "tokens_per_s": sums.get("tokens", sums["count"]) / elapsed,
          # This window's training seconds (no evaluation, sampling or
          # checkpointing): their sum is the run's training time so far.
          "window_s": elapsed,
          "eta_s": (self.plan.total_steps - done) / max(rate, 1e-9),
      }
      self._write(i, record)
      prefix = f"[{i}] " if self.k > 1 else ""
      self.log(prefix + _progress_line(record, self.plan.total_steps, train))

  def _check_train(self, train: dict, first: int, done: int, i: int):
    """Raises TrainingDiverged for a training loss above the task's ceiling
    (a run that no longer learns) or a non-finite training metric."""
    loss, ceiling = train["train_loss"], self.task.max_train_loss
    if loss > ceiling:
      raise TrainingDiverged(
          f"training loss {loss:.4g} over steps {first + 1}-{done}"
          f"{self.label(i)}, above {ceiling:.4g}, the task's ceiling for a "
          "run that learns: lower the learning rate or enable clipping"
      )
    for k, v in train.items():
      if not np.isfinite(v):
        raise TrainingDiverged(
            f"non-finite {k} over steps {first + 1}-{done}{self.label(i)}"
        )

  def sample(self, state, done: int) -> None:
    """Draws train.sample_count samples from each trial's parameters (those
    validation scores), with a key of its train.seed and the step only (a
    resumed run draws what an uninterrupted one did; training's keys are
    untouched), and writes them to the log (newlines as '\\n', one line a
    sample) and to its samples.txt."""
    t = self.cfg.train
    params = optim.eval_params(state.params, state.opt_state)
    per_trial = self.split(self.on_one_device(params))
    for i in self.alive():
      seed = self.tasks[i].cfg.train.seed
      key = jax.random.fold_in(jax.random.key(seed), done)
      texts = self.sampler(per_trial[i], key)
      prefix = f"[{i}] " if self.k > 1 else ""
      for text in texts:
        escaped = text.replace("\n", "\\n")
        self.log(f"{prefix}sample at step {done}: {escaped}")
      self.sample_writers[i].write(
          {
              "step": done,
              "epoch": done / self.plan.steps_per_epoch,
              "temperature": t.sample_temperature,
              "prompt": t.sample_prompt,
              "samples": texts,
          }
      )

  # Validation and checkpoints.
  def check_params(self, state, done: int) -> None:
    """Stops a trial whose last update left non-finite parameters (its loss
    and gradient were finite), before anything saves or scores them."""
    finite = jax.device_get(_finite_trials(state.params, self.k))
    for i in self.alive():
      if not finite[i]:
        self.stop(
            i,
            TrainingDiverged(
                f"non-finite parameters after step {done}{self.label(i)}; "
                "nothing of that step was saved: lower the learning rate or "
                "enable clipping"
            ),
        )

  def validate(self, state, done: int):
    """Scores every trial on valid, stops the ones with a non-finite metric
    (an infinite perplexity, say), saves the improved ones as 'best' and
    steps the plateau schedule; returns the state."""
    task, epoch = self.task, done / self.plan.steps_per_epoch
    params = optim.eval_params(state.params, state.opt_state)
    valid = task.evaluate(self.on_one_device(params), "valid", self.k)
    improved, trigger, stop = [], [False] * self.k, []
    for i in self.alive():
      bad = [k for k, v in valid[i].items() if not np.isfinite(v)]
      if bad:
        self.stop(
            i,
            TrainingDiverged(
                f"non-finite validation {bad[0].removeprefix('valid_')} "
                f"after step {done}{self.label(i)}; nothing of that step was "
                "saved: lower the learning rate or enable clipping"
            ),
        )
        continue
      self._write(i, {"step": done, "epoch": epoch, **valid[i]})
      self.log(
          f"epoch {epoch:.2f} valid {_fmt_metrics(valid[i], 'valid')}"
          f"{self.label(i)}"
      )
      value = valid[i][task.selection_metric]
      if value < self.best[i]:
        self.best[i] = value
        improved.append(i)
      trigger[i] = _nonmono(self.history[i], value, self.cfg.optim.nonmono)
      stop.append(_nonmono(self.history[i], value, self.cfg.train.early_stop))
      self.history[i].append(value)
    state = self._maybe_average(state, trigger, epoch)
    if self.cfg.train.early_stop and stop and all(stop):
      self.stopped = True
      self.log(
          f"epoch {epoch:.2f}: validation worse than the best before the "
          f"last {self.cfg.train.early_stop}: training stops "
          "(train.early_stop)"
      )
    if self.cfg.optim.schedule == "plateau":
      selected = [v[task.selection_metric] for v in valid]
      state = steps.step_plateau(
          state,
          self.plateau_tx,
          selected if self.k > 1 else selected[0],
          self.k > 1,
      )
    self.save(state, "best", done, improved)
    return state

  def _maybe_average(self, state, trigger: list[bool], epoch: float):
    """Switches iterate averaging on for the trials whose validation just
    met optim.averaging='nt''s rule (rnnlm_jax.optim)."""
    if self.cfg.optim.averaging != "nt":
      return state
    on = np.reshape(
        jax.device_get(optim.is_averaging(state.opt_state)), (self.k,)
    )
    start = [t and not o for t, o in zip(trigger, on)]
    if not any(start):
      return state
    for i in np.flatnonzero(start):
      self.log(
          f"epoch {epoch:.2f}: validation worse than the best before the "
          f"last {self.cfg.optim.nonmono}: averaging the iterates from here "
          f"(NT-ASGD){self.label(int(i))}"
      )
    which = start if self.k > 1 else start[0]
    opt_state = optim.start_averaging(state.opt_state, np.asarray(which))
    return self.place(state.replace(opt_state=opt_state))

  def save(self, state, slot: str, done: int, which=None, window=None):
    """Checkpoints the trials ``which`` (those alive) into ``slot``, with
    the per-step metrics of an unfinished log window (``window``,
    fetched). The 'best' slot holds the parameters validated
    (optim.eval_params: the average of the iterates once averaging)."""
    which = self.alive() if which is None else which
    if slot == "best":
      state = state.replace(
          params=optim.eval_params(state.params, state.opt_state)
      )
    for i, s in enumerate(self.split(state)):
      if i in which:
        checkpoint.save(
            self.workdirs[i],
            slot,
            s,
            {
                "step": done,
                "epoch": done // self.plan.steps_per_epoch,
                "segment": done % self.plan.steps_per_epoch,
                "best_valid_loss": self.best[i],
                "vocab": list(self.task.vocab.tokens),
                "pending": window[i] if window else [],
                "valid_history": self.history[i],
                "stopped": self.stopped,
            },
            1 if self.k == 1 else 2,
        )

  def preempt(self, state, window: "Window", done: int):
    """Saves 'latest' with the unlogged metrics and raises Preempted; a
    trial whose unlogged steps diverged stops first, as it would have at
    its next log."""
    per_trial = window.fetch(self)
    first = done - len(per_trial[0])
    for i in self.alive():
      try:
        _check_finite(per_trial[i], first, self.label(i))
      except TrainingDiverged as e:
        self.stop(i, e)
    self.check_params(state, done)
    self.save(state, "latest", done, window=per_trial)
    self.log(
        f"preempted (SIGTERM) after step {done}: saved the latest "
        "checkpoint; the same command resumes the run"
    )
    raise Preempted()

  # End.
  def report(self, state, run_start: float, path: dict) -> list[dict]:
    """Each trial's final metrics, of its best checkpoint (its final state
    where it has none), written to results.json."""
    results = []
    for i in self.alive():
      w = self.workdirs[i]
      final = self.split(self.on_one_device(state))[i]
      final = final.replace(
          params=optim.eval_params(final.params, final.opt_state)
      )
      if checkpoint.latest_step(w, "best") is not None:
        final, _ = checkpoint.restore(w, "best", final)
      results.append(
          {
              "step": int(jax.device_get(final.step)),
              **self.task.report(final.params),
              **path,
              "train_seconds_this_process": time.perf_counter() - run_start,
          }
      )
      rundir.write_json_atomic(
          os.path.join(w, rundir.RESULTS_FILE), results[-1]
      )
    if self.diverged:
      raise TrainingDiverged(
          f"{len(self.diverged)} of {self.k} trials diverged (the others "
          "finished): "
          + "; ".join(self.diverged[i] for i in sorted(self.diverged))
      )
    return results
