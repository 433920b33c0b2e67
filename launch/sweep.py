"""Launches a sweep: python -m launch.sweep --sweep=experiments/sweeps/FILE.py

  python -m launch.sweep --sweep=experiments/sweeps/arch_x_tbptt.py --dry_run
  python -m launch.sweep --sweep=experiments/sweeps/arch_x_tbptt.py --parallel=2
  python -m launch.sweep --sweep=experiments/sweeps/arch_x_tbptt.py --status
  python -m launch.sweep --sweep=... --retry_failed        # or --only=NAME,...
  python -m launch.sweep --sweep=... --executor=slurm --slurm_time=2:00:00

Every run gets a directory <root>/<run name> (default root
runs/sweeps/<sweep name>) that experiments.train fills (cmd.sh, config.json,
metrics.jsonl, checkpoints, results.json), beside the launcher's own
launch.json (status, exit code, log, times, host, pid and its start time,
its slot's GPU, the launcher's pid and start time, or SLURM job) and
launch.log (the run's stdout and stderr; a vectorised group logs to
<root>/logs/<group>.log instead).

A launch starts the pending runs: never started, or started by a launcher or
job that died without an exit status (launch.json records them as 'dead';
they resume from their checkpoints). Finished runs (results.json) and
running ones (a live pid on this host, a task in squeue; a pid whose start
time is not the recorded one is another process) are skipped. A live local
process that a killed launcher left behind (SIGKILL gives it no chance to
stop its children) is adopted: it holds one of --parallel's slots (its own
GPU) until it ends, and its launch.json then says 'ended'. Failed runs are
reported with the tail of their log and only run again with --retry_failed
or when named by --only. The launcher exits 1 when any run has failed. One
launcher at a time launches a sweep (it holds <root>/.launch.lock);
--status and --dry_run need no lock.

--python names the interpreter that runs experiments.train (a virtual
environment's, or a stand-in script in the tests): each command is
PYTHON -m experiments.train ...
"""

import datetime
import fcntl
import os
import socket
import sys
import time

from absl import app
from absl import flags

from launch import local
from launch import slurm
from launch import sweeps

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOCK_FILE = ".launch.lock"  # In the sweep root: one launcher at a time.

_SWEEP = flags.DEFINE_string("sweep", None, "Sweep file (get_sweep()).")
_EXECUTOR = flags.DEFINE_enum(
    "executor", "local", ["local", "slurm"], "Where the runs go."
)
_ROOT = flags.DEFINE_string(
    "root", None, "Sweep root; default runs/sweeps/<sweep name>."
)
_PARALLEL = flags.DEFINE_integer(
    "parallel",
    0,
    "local: processes at once (0: one per GPU, or max(1, cores // 2) on"
    " CPU); slurm: the job array's %N limit (0: none).",
)
_VECTORIZE = flags.DEFINE_bool(
    "vectorize",
    False,
    "Train runs that differ only in seed, learning rate, init scale, dropout"
    " or clipping in one process (experiments.train --trials).",
)
_DRY_RUN = flags.DEFINE_bool(
    "dry_run", False, "Print the commands; run and write nothing."
)
_ONLY = flags.DEFINE_list("only", [], "Launch only these runs (by name).")
_RETRY_FAILED = flags.DEFINE_bool(
    "retry_failed", False, "Launch failed runs again too."
)
_STATUS = flags.DEFINE_bool(
    "status", False, "Print the sweep's state and launch nothing."
)
_PYTHON = flags.DEFINE_string(
    "python", sys.executable, "Interpreter that runs experiments.train."
)
_SLURM_PARTITION = flags.DEFINE_string("slurm_partition", "", "--partition")
_SLURM_TIME = flags.DEFINE_string("slurm_time", "", "--time, e.g. 4:00:00")
_SLURM_CPUS = flags.DEFINE_integer("slurm_cpus", 0, "--cpus-per-task")
_SLURM_GPUS = flags.DEFINE_integer("slurm_gpus", 0, "GPUs per task (--gres)")
_SLURM_MEM = flags.DEFINE_string("slurm_mem", "", "--mem, e.g. 16G")
_SLURM_EXTRA = flags.DEFINE_multi_string(
    "slurm_extra", [], "A raw #SBATCH line (repeatable)."
)


def _now() -> str:
  return datetime.datetime.now().isoformat(timespec="seconds")


def _path(p: str) -> str:
  """Relative to the repository (the children's working directory) when
  inside it, absolute otherwise."""
  p = os.path.abspath(p)
  rel = os.path.relpath(p, REPO)
  return p if rel.startswith("..") else rel


def _abs(p: str) -> str:
  return os.path.join(REPO, p)


def sweep_states(runs, root: str) -> tuple[dict, dict]:
  """Each run's state, and for failed ones the detail to show."""
  records = {
      r.name: sweeps.read_json(
          _abs(os.path.join(root, r.name, sweeps.RECORD_FILE))
      )
      for r in runs
  }
  jobs = [
      rec["job_id"]
      for rec in records.values()
      if rec and rec.get("executor") == "slurm"
  ]
  queued = slurm.queue(jobs) if jobs else {}
  accounted = slurm.accounting(jobs) if jobs else {}
  states, failures = {}, {}
  for run in runs:
    run_dir = _abs(os.path.join(root, run.name))
    rec = records[run.name]
    done = os.path.exists(os.path.join(run_dir, sweeps.RESULTS_FILE))
    alive, code = None, None
    if rec and rec.get("executor") == "slurm":
      task = (str(rec.get("job_id")), rec.get("task"))
      alive = task in queued
      code = _read_exit(run_dir)
      if code is None and task in accounted:
        code = accounted[task][1]
    elif rec:
      alive = local.pid_alive(
          rec.get("pid"), rec.get("host"), rec.get("pid_start")
      )
      if alive is None:
        # Started on another host: trust its record until it ends.
        alive = rec.get("exit_code") is None and rec.get("status") == "running"
    state = sweeps.run_state(done, rec, alive, code)
    states[run.name] = state
    if state == "failed":
      if rec.get("exit_code") is not None:
        code = rec["exit_code"]
      log = rec.get("log")
      tail = sweeps.log_tail(_abs(log) if log else None)
      failures[run.name] = f"exit {code}; log {log}\n{tail}"
  return states, failures


def _read_exit(run_dir: str):
  try:
    with open(os.path.join(run_dir, sweeps.EXIT_FILE)) as f:
      return int(f.read().strip())
  except (OSError, ValueError):
    return None


def make_jobs(sweep, runs, root: str, python: str, vectorize: bool):
  """The processes that train these runs: one per run, or one per group."""
  jobs = []
  if vectorize:
    steps = {
        r.name: sweeps.checkpoint_step(_abs(os.path.join(root, r.name)))
        for r in runs
    }
    for grp in sweeps.group(runs, steps=steps):
      dirs = [os.path.join(root, r.name) for r in grp.runs]
      log = (
          os.path.join(root, "logs", f"{grp.name}.log")
          if len(grp.runs) > 1
          else os.path.join(dirs[0], sweeps.LOG_FILE)
      )
      argv = sweeps.group_command(python, sweep.config, grp, dirs)
      name = grp.name if len(grp.runs) > 1 else grp.runs[0].name
      jobs.append(local.Job(name, argv, log, dirs))
  else:
    for r in runs:
      d = os.path.join(root, r.name)
      argv = sweeps.train_command(python, sweep.config, r.overrides, d)
      jobs.append(
          local.Job(r.name, argv, os.path.join(d, sweeps.LOG_FILE), [d])
      )
  return jobs


def _record_start(job, status: str, **fields):
  for d in job.run_dirs:
    os.makedirs(_abs(d), exist_ok=True)
    sweeps.update_record(
        _abs(d),
        status=status,
        exit_code=None,
        end=None,
        start=_now(),
        host=socket.gethostname(),
        log=job.log,
        group=job.name if len(job.run_dirs) > 1 else None,
        command=sweeps.shell(job.argv),
        **fields,
    )


def mark_dead(runs, root: str, states: dict) -> list[str]:
  """Records in launch.json what became of runs whose launcher (or job)
  died before they ended, so none says 'running' forever: 'ended' where the
  run finished (results.json), else 'dead' (pending: a launch resumes it
  from its checkpoints). Returns the dead runs' names."""
  dead = []
  for r in runs:
    run_dir = _abs(os.path.join(root, r.name))
    rec = sweeps.read_json(os.path.join(run_dir, sweeps.RECORD_FILE))
    if (
        not rec
        or rec.get("status") not in ("running", "submitted")
        or rec.get("exit_code") is not None
        or states[r.name] not in ("done", "pending")
    ):
      continue
    if states[r.name] == "done":
      sweeps.update_record(run_dir, status="ended", found_ended=_now())
    else:
      sweeps.update_record(run_dir, status="dead", found_dead=_now())
      dead.append(r.name)
  return dead


def adopted_processes(runs, root: str, states: dict) -> list[local.Adopted]:
  """The live processes of this host that an earlier, killed launcher
  started (one per process: a vectorised group's runs share one)."""
  by_pid = {}
  for r in runs:
    if states[r.name] != "running":
      continue
    d = os.path.join(root, r.name)
    rec = sweeps.read_json(_abs(os.path.join(d, sweeps.RECORD_FILE))) or {}
    if rec.get("executor") != "local" or not isinstance(rec.get("pid"), int):
      continue
    if rec.get("host") != socket.gethostname():
      continue  # Its slots are another host's.
    a = by_pid.setdefault(
        rec["pid"],
        local.Adopted(
            rec.get("group") or r.name,
            rec["pid"],
            rec.get("pid_start"),
            rec.get("slot_env") or {},
            [],
        ),
    )
    a.run_dirs.append(d)
  return list(by_pid.values())


def launch_local(jobs, parallel: int, adopted=()) -> None:
  gpus = local.gpu_devices()
  num_gpus = len(gpus)
  parallel = parallel or local.default_parallel(
      num_gpus, len(local.cpu_cores())
  )
  if num_gpus:
    parallel = min(parallel, num_gpus)
  print(
      f"launching {len(jobs)} processes, {parallel} at a time"
      + (f" on {num_gpus} GPUs" if num_gpus else " on CPU"),
      flush=True,
  )
  for a in adopted:
    print(
        f"{a.name} is still running (pid {a.pid}, started by a launcher that"
        " is gone): not started again, and counted toward --parallel",
        flush=True,
    )
  abs_jobs = [local.Job(j.name, j.argv, _abs(j.log), j.run_dirs) for j in jobs]
  by_name = {j.name: j for j in jobs}

  def on_start(job, pid, env):
    _record_start(
        by_name[job.name],
        "running",
        executor="local",
        pid=pid,
        pid_start=local.start_time(pid),
        slot_env=env,
        launcher_pid=os.getpid(),
        launcher_start=local.start_time(os.getpid()),
    )
    print(f"started {job.name} (pid {pid})", flush=True)

  def on_end(job, code):
    for d in job.run_dirs:
      sweeps.update_record(_abs(d), status="exited", exit_code=code, end=_now())
    print(f"{'finished' if code == 0 else 'FAILED'} {job.name} (exit {code})")

  def on_adopted_end(a):
    # Its exit status is lost with the launcher that started it: results.json
    # tells whether it finished; otherwise it is pending.
    for d in a.run_dirs:
      sweeps.update_record(_abs(d), status="ended", end=_now())
    print(f"{a.name} (pid {a.pid}, adopted) ended", flush=True)

  local.run_jobs(
      abs_jobs,
      parallel,
      gpus,
      on_start,
      on_end,
      cwd=REPO,
      adopted=adopted,
      on_adopted_end=on_adopted_end,
  )


def launch_slurm(sweep_name: str, jobs, root: str, parallel: int) -> None:
  res = slurm.Resources(
      partition=_SLURM_PARTITION.value,
      time=_SLURM_TIME.value,
      cpus=_SLURM_CPUS.value,
      gpus=_SLURM_GPUS.value,
      mem=_SLURM_MEM.value,
      max_parallel=parallel,
      extra=tuple(_SLURM_EXTRA.value),
  )
  job_name = f"{sweep_name}-{time.strftime('%Y%m%d-%H%M%S')}"
  tasks = []
  for job in jobs:
    for d in job.run_dirs:
      os.makedirs(_abs(d), exist_ok=True)
      try:
        os.remove(os.path.join(_abs(d), sweeps.EXIT_FILE))
      except FileNotFoundError:
        pass
    os.makedirs(os.path.dirname(_abs(job.log)), exist_ok=True)
    tasks.append(slurm.task_line(job.argv, job.log, job.run_dirs))
  script = slurm.render(_abs(root), job_name, tasks, REPO, res)
  job_id = slurm.submit(script)
  for i, job in enumerate(jobs):
    _record_start(
        job,
        "submitted",
        executor="slurm",
        job_id=job_id,
        task=i,
        script=script,
    )
  print(f"submitted job array {job_id} ({len(jobs)} tasks): {script}")


_LOCKS = []  # Open lock files, kept open for the life of the process.


def _lock(root: str) -> None:
  """Takes <root>/.launch.lock for the rest of this process.

  Raises:
    SweepError: another launcher holds it.
  """
  os.makedirs(root, exist_ok=True)
  f = open(os.path.join(root, LOCK_FILE), "a+", encoding="utf-8")
  try:
    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except BlockingIOError:
    f.seek(0)
    pid = f.read().strip() or "unknown"
    f.close()
    raise sweeps.SweepError(
        f"another launcher is running this sweep (pid {pid})"
    ) from None
  f.truncate(0)
  f.write(f"{os.getpid()}\n")
  f.flush()
  _LOCKS.append(f)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  try:
    _main()
  except (sweeps.SweepError, ValueError, OSError) as e:
    print(f"error: {str(e).strip().splitlines()[0]}", file=sys.stderr)
    sys.exit(1)


def _main():
  if not _SWEEP.value:
    raise sweeps.SweepError("give --sweep=experiments/sweeps/FILE.py")
  sweep = sweeps.load_sweep(_SWEEP.value)
  runs = sweeps.expand(sweep)
  root = _path(_ROOT.value or os.path.join(REPO, "runs", "sweeps", sweep.name))
  if "," in root:
    raise sweeps.SweepError(f"--root {root} contains a comma")
  if _PARALLEL.value < 0:
    raise sweeps.SweepError("--parallel must be >= 0")
  # Held until the launcher exits (the children do not inherit it): between
  # reading the runs' states and recording their start, another launcher
  # would see the same runs pending and start them too.
  if not (_STATUS.value or _DRY_RUN.value):
    _lock(_abs(root))
  states, failures = sweep_states(runs, root)
  if _STATUS.value:
    print(sweeps.summary(sweep.name, states, failures))
    return
  chosen = set(sweeps.select(states, _ONLY.value, _RETRY_FAILED.value))
  todo = [r for r in runs if r.name in chosen]
  jobs = make_jobs(sweep, todo, root, _PYTHON.value, _VECTORIZE.value)
  if _DRY_RUN.value:
    for job in jobs:
      print(sweeps.shell(job.argv))
    print(
        f"dry run: would launch {len(todo)} of {len(runs)} runs in"
        f" {len(jobs)} processes under {root}"
    )
    print(sweeps.summary(sweep.name, states, failures))
    return
  for name in mark_dead(runs, root, states):
    print(
        f"{name}: its process died without an exit status; it is pending"
        " (a launch resumes it from its checkpoints)",
        flush=True,
    )
  adopted = (
      adopted_processes(runs, root, states)
      if _EXECUTOR.value == "local"
      else []
  )
  if jobs:
    if _EXECUTOR.value == "local":
      launch_local(jobs, _PARALLEL.value, adopted)
    else:
      launch_slurm(sweep.name, jobs, root, _PARALLEL.value)
  else:
    print("nothing to launch")
  states, failures = sweep_states(runs, root)
  print(sweeps.summary(sweep.name, states, failures), flush=True)
  if any(s == "failed" for s in states.values()):
    sys.exit(1)


if __name__ == "__main__":
  app.run(main)
