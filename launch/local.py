"""The local executor: runs jobs as child processes, a bounded number at once.

With GPUs (counted with `nvidia-smi -L`; those of an existing
CUDA_VISIBLE_DEVICES when it is set), each job gets one GPU of its own
through CUDA_VISIBLE_DEVICES and the default concurrency is the number of
GPUs. TPUs are not handled (their equivalent would be TPU_VISIBLE_CHIPS).
On CPU the default concurrency is max(1, cores // 2) and each job is pinned
(sched_setaffinity) to its own share of the cores: XLA's CPU thread pools
size themselves from the affinity mask, so concurrent runs do not
oversubscribe the machine. (XLA 0.10 has no intra-op thread-count flag;
--xla_cpu_multi_thread_eigen=false alone would make each run single-threaded
whatever its share.) OMP_NUM_THREADS is set to the share for the libraries
that read it.
"""

import dataclasses
import os
import signal
import socket
import subprocess
import threading
import time
from typing import Callable, Sequence


@dataclasses.dataclass
class Job:
  """One process: a run alone or a vectorised group.

  Attributes:
    name: the run's or group's name.
    argv: the command.
    log: the file that receives its stdout and stderr.
    run_dirs: the run directories it writes.
  """

  name: str
  argv: list[str]
  log: str
  run_dirs: list[str]


@dataclasses.dataclass
class Adopted:
  """A process an earlier launcher started that is still alive (that
  launcher was killed without stopping it): it is not started again, and
  it holds one of the slots until it ends.

  Attributes:
    name: its run's or group's name.
    pid: its process id.
    started: its start_time(), to tell it from a process reusing the pid.
    env: the slot's variables it was started with (its GPU), to hold that
      same slot.
    run_dirs: the run directories it writes.
  """

  name: str
  pid: int
  started: int | None
  env: dict
  run_dirs: list[str]


def count_gpus() -> int:
  """The number of NVIDIA GPUs `nvidia-smi -L` lists (0 without it)."""
  try:
    out = subprocess.run(
        ["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30
    )
  except (OSError, subprocess.TimeoutExpired):
    return 0
  if out.returncode != 0:
    return 0
  return sum(line.startswith("GPU ") for line in out.stdout.splitlines())


def gpu_devices() -> list[str]:
  """The GPUs jobs may use, as CUDA_VISIBLE_DEVICES names them.

  Those CUDA_VISIBLE_DEVICES already lists, when it is set (a launcher given
  some of a machine's GPUs keeps to them), else 0..n-1 for the n GPUs
  `nvidia-smi -L` lists.
  """
  num_gpus = count_gpus()
  if not num_gpus:
    return []
  visible = os.environ.get("CUDA_VISIBLE_DEVICES")
  if visible is None:
    return [str(i) for i in range(num_gpus)]
  return [d.strip() for d in visible.split(",") if d.strip()]


def cpu_cores() -> list[int]:
  return sorted(os.sched_getaffinity(0))


def default_parallel(num_gpus: int, num_cores: int) -> int:
  return num_gpus if num_gpus else max(1, num_cores // 2)


def slots(
    parallel: int, gpus: int | Sequence[str], cores: Sequence[int]
) -> list[dict]:
  """What each of `parallel` concurrent slots gets.

  Args:
    parallel: the number of slots.
    gpus: the GPUs to share out, one to a slot (CUDA_VISIBLE_DEVICES names,
      or a count n for 0..n-1); none: the slots share out the cores.
    cores: the CPU cores to share out.

  Returns:
    One dict per slot: env (variables to set) and cpus (the cores to pin
    to, or None).
  """
  if parallel < 1:
    raise ValueError(f"--parallel must be at least 1, got {parallel}")
  if isinstance(gpus, int):
    gpus = [str(i) for i in range(gpus)]
  if gpus:
    if parallel > len(gpus):
      raise ValueError(f"--parallel={parallel} but only {len(gpus)} GPUs")
    return [
        {"env": {"CUDA_VISIBLE_DEVICES": gpus[i]}, "cpus": None}
        for i in range(parallel)
    ]
  if parallel > len(cores):
    # More runs than cores: share all of them rather than pin several to one.
    return [{"env": {}, "cpus": None} for _ in range(parallel)]
  share = len(cores) // parallel
  return [
      {
          "env": {"OMP_NUM_THREADS": str(share)},
          "cpus": set(cores[i * share : (i + 1) * share]),
      }
      for i in range(parallel)
  ]


def _stat_fields(pid: int) -> list[str] | None:
  """/proc/<pid>/stat from field 3 (state) on; None where unreadable."""
  try:
    with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
      # The command name (field 2) is in parentheses and may hold spaces.
      return f.read().rsplit(")", 1)[1].split()
  except (OSError, IndexError):
    return None


def start_time(pid: int) -> int | None:
  """When process pid started, in clock ticks since boot (field 22 of
  /proc/<pid>/stat); None where /proc cannot tell."""
  fields = _stat_fields(pid)
  try:
    return int(fields[19]) if fields else None
  except (IndexError, ValueError):
    return None


def pid_alive(pid, host: str | None = None, started=None) -> bool | None:
  """Whether process pid is alive (not a zombie) on this host; None when
  the record is from another host, where we cannot tell.

  Args:
    pid: the recorded process id.
    host: the host it ran on.
    started: its recorded start_time(), if any: a live pid that started at
      another time is another process that reuses the id.
  """
  if host and host != socket.gethostname():
    return None
  if not isinstance(pid, int) or pid <= 0:
    return False
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    pass
  fields = _stat_fields(pid)
  if fields is None:
    return True
  if started is not None and start_time(pid) not in (None, started):
    return False
  return fields[0] not in ("Z", "X")


class _Terminated(Exception):
  """The launcher got SIGTERM (raised in the main loop, like Ctrl-C)."""


def _raise_terminated(signum, frame):
  del signum, frame
  raise _Terminated()


def run_jobs(
    jobs: Sequence[Job],
    parallel: int,
    gpus: int | Sequence[str] = 0,
    on_start: Callable[[Job, int, dict], None] = lambda job, pid, env: None,
    on_end: Callable[[Job, int], None] = lambda job, code: None,
    poll_s: float = 0.2,
    cwd: str | None = None,
    adopted: Sequence[Adopted] = (),
    on_adopted_end: Callable[[Adopted], None] = lambda a: None,
) -> dict[str, int]:
  """Runs the jobs, at most `parallel` at once, counting the adopted
  processes still alive among them; one failure stops nothing.

  Each child is its own session, so a Ctrl-C or SIGTERM of the launcher
  reaches it only through the launcher, which sends it SIGTERM and waits.
  A SIGKILL leaves the children running: the next launcher adopts them.
  on_start gets each job's pid and the variables of its slot.

  Returns:
    Job name -> exit status.
  """
  free = list(slots(parallel, gpus, cpu_cores()))
  queue = list(jobs)
  running: dict[subprocess.Popen, tuple[Job, dict, object]] = {}
  codes = {}
  # Each adopted process takes the slot it had (the same GPU) where that is
  # free, else any; past `parallel` of them, some hold none for now.
  held: list[list] = []  # [Adopted, slot or None]
  for a in adopted:
    same = [s for s in free if s["env"] == a.env]
    slot = (same or free or [None])[0]
    if slot is not None:
      free.remove(slot)
    held.append([a, slot])

  def reap_adopted():
    for entry in list(held):
      a, slot = entry
      if pid_alive(a.pid, None, a.started):
        continue
      held.remove(entry)
      if slot is not None:
        waiting = [e for e in held if e[1] is None]
        if waiting:
          waiting[0][1] = slot
        else:
          free.append(slot)
      on_adopted_end(a)

  def start(job, slot):
    os.makedirs(os.path.dirname(job.log) or ".", exist_ok=True)
    log = open(job.log, "ab")
    log.write(f"$ {subprocess.list2cmdline(job.argv)}\n".encode())
    log.flush()
    cpus = slot["cpus"]
    proc = subprocess.Popen(
        job.argv,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **slot["env"]},
        cwd=cwd,
        start_new_session=True,
        preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
    )
    running[proc] = (job, slot, log)
    on_start(job, proc.pid, slot["env"])

  # SIGTERM (kill, timeout, a batch system) stops the children like Ctrl-C
  # does: they are sessions of their own and would otherwise live on.
  in_main = threading.current_thread() is threading.main_thread()
  previous = (
      signal.signal(signal.SIGTERM, _raise_terminated) if in_main else None
  )
  try:
    while queue or running:
      reap_adopted()
      while queue and free:
        start(queue.pop(0), free.pop(0))
      for proc in list(running):
        code = proc.poll()
        if code is None:
          continue
        job, slot, log = running.pop(proc)
        log.close()
        free.append(slot)
        codes[job.name] = code
        on_end(job, code)
      time.sleep(poll_s)
  except (KeyboardInterrupt, _Terminated) as e:
    if in_main:
      signal.signal(signal.SIGTERM, signal.SIG_IGN)  # Let the children end.
    for proc in running:
      proc.send_signal(signal.SIGTERM)
    for proc in running:
      proc.wait()
    if isinstance(e, _Terminated) and in_main:
      # End as SIGTERM ends a process (status -15), records left as they
      # are: a run whose process ended without an exit status is pending.
      signal.signal(signal.SIGTERM, signal.SIG_DFL)
      os.kill(os.getpid(), signal.SIGTERM)
    raise
  finally:
    if in_main:
      signal.signal(signal.SIGTERM, previous)
  return codes
