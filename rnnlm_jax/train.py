"""train_and_evaluate(config, workdir): the training loop, for any task.

The loop (``_train``) reads top to bottom: restore or initialise, compile the
step once, then per step: the train step; every ``log_every`` steps fetch the
metrics (the only host syncs besides validation, samples and checkpoints)
and check them; every ``sample_every`` steps draw samples; every
``eval_every`` steps (0: at each epoch's end) validate, keep the
best checkpoint, step the plateau schedule, start iterate averaging
(optim.averaging='nt') and stop early (train.early_stop); checkpoints; the
final report.
It knows the task (rnnlm_jax.tasks) only through its protocol, and vectorised
trials only through ``runs.Runs`` (their bookkeeping: states, writers,
checkpoints, validation), of which one plain run is the case K = 1.

A run resumes by itself from its directory's latest checkpoint, and a run
sent SIGTERM (as schedulers do before they kill) checkpoints at the next step
boundary and exits with status 143 (``Preempted``).
"""

import contextlib
import os
import signal
import time
from typing import Callable

import jax

from rnnlm_jax import backends
from rnnlm_jax import checkpoint
from rnnlm_jax import config as config_lib
from rnnlm_jax import corpus as corpus_lib
from rnnlm_jax import embeddings
from rnnlm_jax import evaluation
from rnnlm_jax import metrics
from rnnlm_jax import ngram
from rnnlm_jax import optim
from rnnlm_jax import rundir
from rnnlm_jax import runs as runs_lib
from rnnlm_jax import steps
from rnnlm_jax import tasks as tasks_lib
from rnnlm_jax import trials as trials_lib
from rnnlm_jax.config import Config
from rnnlm_jax.tasks import lm
from rnnlm_jax.vocab import Vocab

IncompatibleRun = rundir.IncompatibleRun
TrainingDiverged = runs_lib.TrainingDiverged
Preempted = runs_lib.Preempted
with_vocab_size = lm.with_vocab_size


def _describe_run(cfg: Config) -> dict:
  """The run's implementation path ({"path": backends.Path.describe()}, for
  a recurrent model): logged at the start of training and recorded in
  results.json and in the run's provenance record. Resolving it checks the
  fast paths against their cells (rnnlm_jax.backends)."""
  if cfg.model.kind != "rnn":
    return {}
  return {"path": backends.resolve(cfg.model).describe()}


def train_and_evaluate(
    cfg: Config,
    workdir: str,
    log: Callable[[str], None] = print,
    command: str | None = None,
) -> dict:
  """Trains (or resumes) the run in ``workdir`` and evaluates its best
  checkpoint.

  Args:
    cfg: the experiment's config.
    workdir: the run directory (created, or continued if it holds a run).
    log: where progress lines go.
    command: the command line, recorded in workdir/cmd.sh.

  Returns:
    The final metrics (also written to workdir/results.json).
  """
  return train_trials([cfg], [workdir], log, [command])[0]


@contextlib.contextmanager
def _sigterm_deferred():
  """Within it, SIGTERM sets a flag the loop reads at each step boundary
  (yielded: a function saying whether it came) instead of killing the
  process mid-step. Only the main thread can take signals; elsewhere the
  flag stays down."""
  received = []
  try:
    previous = signal.signal(signal.SIGTERM, lambda *_: received.append(1))
  except ValueError:  # Not the main thread.
    yield lambda: False
    return
  try:
    yield lambda: bool(received)
  finally:
    signal.signal(signal.SIGTERM, previous)


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
  group = trials_lib.template(cfgs)  # Refuses groups that cannot share a step.
  vocabs = [rundir.existing_vocab(w, c) for w, c in zip(workdirs, cfgs)]
  saved_vocab = next((v for v in vocabs if v is not None), None)
  if cfgs[0].model.kind == "count_ngram":
    corpus = corpus_lib.load_corpus(cfgs[0].data, saved_vocab)
    cfg = with_vocab_size(cfgs[0], len(corpus.vocab))
    return [count_and_evaluate(cfg, corpus, workdirs[0], log, commands[0])]
  if cfgs[0].model.kind == "ppmi_svd":
    return [
        factorise_and_evaluate(
            cfgs[0], saved_vocab, workdirs[0], log, commands[0]
        )
    ]
  *trial_tasks, task = tasks_lib.make_tasks([*cfgs, group], saved_vocab)
  runs = runs_lib.Runs(
      trial_tasks, task, workdirs, trials_lib.shared_batches(cfgs), log
  )
  for w, t, command in zip(workdirs, trial_tasks, commands):
    rundir.write_run_files(w, t.cfg, t.vocab, command)
  with _sigterm_deferred() as preempted:
    try:
      return _train(runs, preempted)
    finally:
      runs.close()


def _train(runs: runs_lib.Runs, preempted: Callable[[], bool]) -> list[dict]:
  """The training loop, over K runs (one, unless they are vectorised
  trials)."""
  path = _describe_run(runs.cfg)
  if "path" in path:  # The implementation path, once, at the start.
    runs.log(backends.summary(path["path"]))
  start_step = runs_lib.resume_step(runs.workdirs)
  batches = runs.batches(0)
  plan = runs.plan
  epoch = start_step // plan.steps_per_epoch
  if epoch and runs.task.batches_change_each_epoch():
    batches = runs.batches(epoch)
  state, window = runs.restore_or_init(start_step, path)
  train_step = runs.compile_step(state, batches)
  window.t0 = time.perf_counter()  # Compilation is not training time.

  run_start = time.perf_counter()
  last = start_step if runs.stopped else plan.total_steps
  for step in range(start_step, last):
    if step % plan.steps_per_epoch == 0 and step > 0:
      state = runs.reset_carry(state)
      if runs.task.batches_change_each_epoch():
        batches = runs.batches(step // plan.steps_per_epoch)
    state, m = train_step(state, batches)
    window.pending.append(m)
    done = step + 1
    if plan.logs(done):
      runs.log_train(state, window, done)
      window = runs_lib.Window(done, time.perf_counter())
    # Samples come before the checkpoint of their step: a run resumed from
    # it has them all, and redraws any written after it. Their time is left
    # out of the window's throughput.
    sampled = plan.samples(done)
    if sampled:
      t0 = time.perf_counter()
      runs.sample(state, done)
      window.t0 += time.perf_counter() - t0
    if plan.validates(done):
      runs.check_params(state, done)
      state = runs.validate(state, done)
      if runs.stopped and runs.sampler and not sampled:
        runs.sample(state, done)  # The end of training.
      runs.save(state, "latest", done)
      window.t0 = time.perf_counter()
      if runs.stopped:  # train.early_stop
        break
    elif plan.checkpoints(done):
      runs.check_params(state, done)
      runs.save(state, "latest", done)
      window.t0 = time.perf_counter()
    if preempted() and done < plan.total_steps:
      runs.preempt(state, window, done)
  return runs.report(state, run_start, path)


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
      **evaluation.counted_report(model, corpus, lm.reports_bpc(cfg.data)),
      "train_seconds_this_process": time.perf_counter() - t0,
      "ngram_mib": model.nbytes() / 2**20,
  }
  rundir.write_json_atomic(os.path.join(workdir, rundir.RESULTS_FILE), results)
  return results


def factorise_and_evaluate(
    cfg: Config,
    saved_vocab: Vocab | None,
    workdir: str,
    log: Callable[[str], None] = print,
    command: str | None = None,
) -> dict:
  """train_and_evaluate for PPMI-SVD vectors (rnnlm_jax.ppmi): training is
  counting and one truncated SVD; the vectors (word2vec binary format) are
  the run's checkpoint, and a finished run's are loaded, not computed
  again. Reports SimLex-999 and the analogies as word2vec's runs do."""
  # scipy.sparse takes seconds to import; only this kind of run needs it.
  from rnnlm_jax import ppmi  # pylint: disable=g-import-not-at-top

  (task,) = tasks_lib.make_tasks([cfg], saved_vocab)
  cfg, data, m = task.cfg, task.data, task.cfg.model
  rundir.write_run_files(workdir, cfg, data.vocab, command)
  path = os.path.join(workdir, rundir.VECTORS_FILE)
  words = list(data.vocab.tokens)
  t0 = time.perf_counter()
  if os.path.exists(path):
    words, vectors = embeddings.load_word2vec(path, binary=True)
    stats = {}
    log(f"loaded the vectors of {path}")
  else:
    vectors, stats = ppmi.fit(
        data.ids["train"],
        len(words),
        m.embed_dim,
        m.window,
        doc_ids=data.lines["train"],
        cds_alpha=m.cds_alpha,
        shift=m.ppmi_shift,
        eig_power=m.eig_power,
        seed=cfg.train.seed,
    )
    embeddings.save_word2vec(path, words, vectors, binary=True)
    log(
        f"{cfg.name}: {len(words):,} words, {stats['ppmi_nonzeros']:,} "
        f"positive PMI entries, SVD to {m.embed_dim} dimensions in "
        f"{time.perf_counter() - t0:.1f}s"
    )
  results = {
      "step": 0,
      **embeddings.evaluate(
          words, vectors, task.simlex_file, task.analogy_file
      ),
      **{f"ppmi_{k}": v for k, v in stats.items()},
      "train_seconds_this_process": time.perf_counter() - t0,
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
  state = state.replace(
      params=params, opt_state=tx.init(optim.trainable(params))
  )
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
  return " ".join(
      f"{k}={results[k]:.4f}" for k in metrics.HEADLINE if k in results
  )
