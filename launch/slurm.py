"""The SLURM executor: one job array, one task per run (or vectorised group).

render() writes two files under <root>/slurm/:

  <job>.cmds    one shell line per task: the command, its output appended to
                the run's log, then its exit status written to launch.exit
                in each run directory it trains
  <job>.sbatch  the batch script: #SBATCH resources, then the array task
                index selects its line of <job>.cmds

A run's state comes from squeue (its task is queued or running), then from
the exit file its task wrote, then from sacct (a task that died before it
could write one: cancelled, out of time, lost node).
"""

import dataclasses
import os
import re
import shlex
import subprocess
from typing import Sequence

from launch import sweeps

ACTIVE = ("PENDING", "RUNNING", "REQUEUED", "RESIZING", "SUSPENDED")


@dataclasses.dataclass(frozen=True)
class Resources:
  """#SBATCH settings; empty ones are left to the cluster's defaults."""

  partition: str = ""
  time: str = ""
  cpus: int = 0
  gpus: int = 0
  mem: str = ""
  max_parallel: int = 0  # The array's %N: tasks running at once.
  extra: tuple[str, ...] = ()  # Raw lines, with or without "#SBATCH ".


def task_line(argv: Sequence[str], log: str, run_dirs: Sequence[str]) -> str:
  """One line of the .cmds file (a whole shell command, no newline)."""
  q = shlex.quote
  exits = " ".join(
      f"printf '%s\\n' \"$rc\" > {q(os.path.join(d, sweeps.EXIT_FILE))}.tmp"
      f" && mv {q(os.path.join(d, sweeps.EXIT_FILE))}.tmp"
      f" {q(os.path.join(d, sweeps.EXIT_FILE))};"
      for d in run_dirs
  )
  return f'{sweeps.shell(argv)} >> {q(log)} 2>&1; rc=$?; {exits} exit "$rc"'


def render_script(
    job_name: str,
    cmds_path: str,
    num_tasks: int,
    workdir: str,
    out_dir: str,
    res: Resources,
) -> str:
  """The sbatch script of a job array over the lines of cmds_path."""
  if num_tasks < 1:
    raise ValueError("a job array needs at least one task")
  array = f"0-{num_tasks - 1}"
  if res.max_parallel:
    array += f"%{res.max_parallel}"
  lines = [
      "#!/bin/bash",
      f"#SBATCH --job-name={job_name}",
      f"#SBATCH --array={array}",
      f"#SBATCH --output={os.path.join(out_dir, job_name)}_%a.out",
  ]
  if res.partition:
    lines.append(f"#SBATCH --partition={res.partition}")
  if res.time:
    lines.append(f"#SBATCH --time={res.time}")
  if res.cpus:
    lines.append(f"#SBATCH --cpus-per-task={res.cpus}")
  if res.gpus:
    lines.append(f"#SBATCH --gres=gpu:{res.gpus}")
  if res.mem:
    lines.append(f"#SBATCH --mem={res.mem}")
  for extra in res.extra:
    extra = extra.strip()
    lines.append(extra if extra.startswith("#SBATCH") else f"#SBATCH {extra}")
  lines += [
      "",
      "set -u",
      f"cd {shlex.quote(workdir)}",
      'line=$(sed -n "$((SLURM_ARRAY_TASK_ID + 1))p" '
      f"{shlex.quote(cmds_path)})",
      'exec bash -c "$line"',
      "",
  ]
  return "\n".join(lines)


def render(
    root: str, job_name: str, tasks: Sequence[str], workdir: str, res
) -> str:
  """Writes <root>/slurm/<job_name>.cmds and .sbatch; returns the script's
  path."""
  out_dir = os.path.join(root, "slurm")
  os.makedirs(out_dir, exist_ok=True)
  cmds = os.path.join(out_dir, f"{job_name}.cmds")
  with open(cmds, "w", encoding="utf-8") as f:
    f.write("".join(t + "\n" for t in tasks))
  script = os.path.join(out_dir, f"{job_name}.sbatch")
  with open(script, "w", encoding="utf-8") as f:
    f.write(render_script(job_name, cmds, len(tasks), workdir, out_dir, res))
  return script


def submit(script: str) -> str:
  """sbatch the script; returns the job id."""
  out = subprocess.run(
      ["sbatch", "--parsable", script], capture_output=True, text=True
  )
  if out.returncode != 0:
    raise sweeps.SweepError(
        "sbatch failed: " + (out.stderr.strip() or out.stdout.strip())
    )
  return out.stdout.strip().split(";")[0]


def _tasks(spec: str) -> list[int]:
  """'3' / '[0-3,5%2]' -> task indices."""
  spec = spec.strip("[]").split("%")[0]
  tasks = []
  for part in filter(None, spec.split(",")):
    lo, _, hi = part.partition("-")
    tasks += list(range(int(lo), int(hi or lo) + 1))
  return tasks


def parse_squeue(text: str) -> dict[tuple[str, int], str]:
  """Lines of `squeue --noheader --format=%i|%T` -> {(job, task): state}.

  A pending array shows as JOB_[0-9%2]; a running task as JOB_3.
  """
  states = {}
  for line in text.splitlines():
    if "|" not in line:
      continue
    job_id, state = (s.strip() for s in line.split("|", 1))
    job, sep, tasks = job_id.partition("_")
    if not sep:
      continue  # Not an array job; not one of ours.
    for t in _tasks(tasks):
      states[(job, t)] = state
  return states


def parse_sacct(text: str) -> dict[tuple[str, int], tuple[str, int | None]]:
  """Lines of `sacct -n -P -X --format=JobID,State,ExitCode` ->
  {(job, task): (state, exit status)}.

  A task killed by signal s gets 128 + s; one that ended any other way than
  COMPLETED (cancelled, timed out, out of memory, node failure) gets a
  non-zero status even where sacct reports 0:0; one still queued or running
  gets None.
  """
  result = {}
  for line in text.splitlines():
    parts = line.strip().split("|")
    if len(parts) < 3 or "_" not in parts[0]:
      continue
    job, _, tasks = parts[0].partition("_")
    state = parts[1].split()[0] if parts[1] else ""
    m = re.fullmatch(r"(\d+):(\d+)", parts[2])
    code = 0
    if m:
      status, sig = int(m.group(1)), int(m.group(2))
      code = status or (128 + sig if sig else 0)
    if state in ACTIVE:
      code = None
    elif state != "COMPLETED":
      code = code or 1
    for t in _tasks(tasks):
      result[(job, t)] = (state, code)
  return result


def queue(job_ids: Sequence[str]) -> dict[tuple[str, int], str]:
  """The queued and running tasks of these jobs (squeue)."""
  if not job_ids:
    return {}
  try:
    out = subprocess.run(
        [
            "squeue",
            "--noheader",
            "--array",
            "--format=%i|%T",
            "--jobs=" + ",".join(sorted(set(job_ids))),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
  except (OSError, subprocess.TimeoutExpired) as e:
    raise sweeps.SweepError(f"cannot ask squeue about the runs: {e}") from e
  if out.returncode == 0:
    return parse_squeue(out.stdout)
  # squeue fails for job ids it has already forgotten: none of them queued.
  # Any other failure (no controller, no munge) says nothing about the runs,
  # and reading it as "nothing queued" would submit queued runs again.
  message = (out.stderr.strip() or out.stdout.strip()).splitlines()
  if any("invalid job id" in line.lower() for line in message):
    return {}
  raise sweeps.SweepError(
      f"squeue failed (exit {out.returncode}): "
      + (message[0] if message else "no message")
  )


def accounting(job_ids: Sequence[str]) -> dict:
  """sacct's view of these jobs' tasks ({} without accounting)."""
  if not job_ids:
    return {}
  try:
    out = subprocess.run(
        [
            "sacct",
            "-n",
            "-P",
            "-X",
            "--format=JobID,State,ExitCode",
            "--jobs=" + ",".join(sorted(set(job_ids))),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
  except (OSError, subprocess.TimeoutExpired):
    return {}
  return parse_sacct(out.stdout) if out.returncode == 0 else {}
