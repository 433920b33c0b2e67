"""The sweep launcher: expansion, grouping, run states, the launch cycle with a
stand-in for experiments.train (fails once, then succeeds), SLURM rendering,
and one real tiny sweep end to end."""

import fcntl
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from launch import local
from launch import slurm
from launch import sweeps
from launch.sweeps import Sweep, product, zip_

ROOT = Path(__file__).resolve().parents[1]


def launch(*args, timeout=300, env=None):
  return subprocess.run(
      [sys.executable, "-m", "launch.sweep", *args],
      cwd=ROOT,
      env=env,
      capture_output=True,
      text=True,
      timeout=timeout,
  )


# ---------------------------------------------------------------------------
# Expansion and grouping.


def test_arch_x_tbptt_is_15_cells_times_3_seeds():
  sweep = sweeps.load_sweep("experiments/sweeps/arch_x_tbptt.py")
  runs = sweeps.expand(sweep)
  assert len(runs) == 45 and len({r.name for r in runs}) == 45
  expected = [
      (cell, bptt, seed)
      for cell in ["rnn_tanh", "gru", "lstm"]
      for bptt in [5, 10, 20, 35, 70]
      for seed in [0, 1, 2]
  ]
  got = [
      (
          r.overrides["model.cell"],
          r.overrides["data.bptt"],
          r.overrides["train.seed"],
      )
      for r in runs
  ]
  assert got == expected
  by_name = {r.name: r for r in runs}
  assert by_name["cell=gru+bptt=5+seed=1"].overrides == {
      "model.cell": "gru",
      "data.bptt": 5,
      "train.seed": 1,
  }


def test_ptb_sweeps_reduced_and_full():
  reduced = sweeps.expand(
      sweeps.load_sweep("experiments/sweeps/ptb_arch_x_tbptt.py")
  )
  full = sweeps.expand(
      sweeps.load_sweep("experiments/sweeps/ptb_arch_x_tbptt.py:full")
  )
  assert len(reduced) == 30 and len(full) == 45
  # Fixed overrides reach every run but not its name.
  assert all(r.overrides["model.num_layers"] == 1 for r in reduced)
  assert "layers" not in reduced[0].name
  assert "model.num_layers" not in full[0].overrides


def test_controlled_sweeps_keep_tokens_and_updates_equal():
  for spec, n, tokens, processes in (
      ("", 135, 1120, 15),
      (":ptb", 36, 700, 6),
  ):
    runs = sweeps.expand(
        sweeps.load_sweep(
            "experiments/sweeps/arch_x_tbptt_controlled.py" + spec
        )
    )
    assert len(runs) == n
    assert {
        r.overrides["data.bptt"] * r.overrides["data.batch_size"] for r in runs
    } == {tokens}
    # One process per (cell, bptt): the rates and seeds are its trials.
    groups = sweeps.group(runs)
    assert len(groups) == processes
    assert all("optim.learning_rate" in g.trials for g in groups)


def test_zip_product_and_fixed():
  sweep = Sweep(
      name="t",
      config="c.py",
      axes=product(
          zip_({"optim.learning_rate": [0.1, 0.3], "model.hidden": [8, 16]}),
          {"model.cell": ["gru", "lstm"]},
      ),
      seeds=[4],
      fixed={"train.num_epochs": 1},
  )
  runs = sweeps.expand(sweep)
  assert [r.name for r in runs] == [
      "learning_rate=0.1+hidden=8+cell=gru+seed=4",
      "learning_rate=0.1+hidden=8+cell=lstm+seed=4",
      "learning_rate=0.3+hidden=16+cell=gru+seed=4",
      "learning_rate=0.3+hidden=16+cell=lstm+seed=4",
  ]
  assert all(r.overrides["train.num_epochs"] == 1 for r in runs)
  # A plain list of override dicts is an axis too; colliding short names
  # keep their whole key.
  runs = sweeps.expand(
      Sweep(
          name="t",
          config="c.py",
          axes=[{"model.dropout": 0.1, "data.dropout": 0.2}, {}],
      )
  )
  assert [r.name for r in runs] == [
      "model.dropout=0.1+data.dropout=0.2",
      "base",
  ]


@pytest.mark.parametrize(
    "make",
    [
        lambda: zip_({"a.b": [1, 2], "a.c": [1]}),
        lambda: product({"a.b": [1]}, {"a.b": [2]}),
        lambda: product({"a.b": 3}),
        lambda: sweeps.expand(
            Sweep("t", "c.py", axes=product({"a.b": [1]}), fixed={"a.b": 2})
        ),
        lambda: sweeps.expand(Sweep("t", "c.py", axes=[{"a.b": 1}] * 2)),
        lambda: sweeps.expand(
            Sweep("t", "c.py", axes=[{"train.seed": 1}], seeds=[0])
        ),
    ],
)
def test_bad_sweeps_are_refused(make):
  with pytest.raises(sweeps.SweepError):
    make()


def test_rendered_overrides_round_trip():
  assert sweeps.override_args(
      {"a.b": 0.001, "a.c": True, "a.d": (150, 30, 30), "a.e": "gru"}
  ) == [
      "--config.a.b=0.001",
      "--config.a.c=True",
      "--config.a.d=(150,30,30)",
      "--config.a.e=gru",
  ]


def test_vectorize_groups_runs_that_differ_only_in_vectorisable_keys():
  runs = sweeps.expand(sweeps.load_sweep("experiments/sweeps/arch_x_tbptt.py"))
  groups = sweeps.group(runs)
  assert len(groups) == 15
  assert groups[0].name == "cell=rnn_tanh+bptt=5"
  for g in groups:
    assert g.trials == {"train.seed": (0, 1, 2)}
    assert {r.overrides["model.cell"] for r in g.runs} == {
        g.shared["model.cell"]
    }
  # Learning rate and seed both vectorise; the cell does not.
  runs = sweeps.expand(
      Sweep(
          name="t",
          config="c.py",
          axes=product(
              {"model.cell": ["gru", "lstm"]},
              {"optim.learning_rate": [0.1, 1.0]},
          ),
          seeds=[0, 1],
          fixed={"optim.clip_norm": 1.0},
      )
  )
  groups = sweeps.group(runs)
  assert [g.name for g in groups] == ["cell=gru", "cell=lstm"]
  assert groups[0].trials == {
      "optim.learning_rate": (0.1, 0.1, 1.0, 1.0),
      "train.seed": (0, 1, 0, 1),
  }
  assert groups[0].shared == {"optim.clip_norm": 1.0, "model.cell": "gru"}
  cmd = sweeps.group_command("py", "c.py", groups[0], ["d0", "d1", "d2", "d3"])
  assert cmd == [
      "py",
      "-m",
      "experiments.train",
      "--config=c.py",
      "--config.optim.clip_norm=1.0",
      "--config.model.cell=gru",
      "--trials=optim.learning_rate=0.1,0.1,1.0,1.0",
      "--trials=train.seed=0,1,0,1",
      "--workdir=d0,d1,d2,d3",
  ]
  # A group of one is the ordinary single-run command.
  one = sweeps.group(runs[:1])[0]
  assert sweeps.group_command("py", "c.py", one, ["d0"]) == (
      sweeps.train_command("py", "c.py", runs[0].overrides, "d0")
  )


def _seed_runs(**fixed):
  return sweeps.expand(
      Sweep("t", "c.py", axes=[{"model.cell": "gru"}], seeds=[0, 1, 2, 3],
            fixed=fixed)
  )  # fmt: skip


def test_groups_split_by_checkpoint_step(tmp_path):
  runs = _seed_runs()
  # Seeds 0 and 2 resume from step 40, seed 1 from 0 (no checkpoint), seed
  # 3 alone from step 80: a vectorised group resumes from one step.
  for name, folders in [
      ("cell=gru+seed=0", ["20", "40", "40.orbax-checkpoint-tmp-1"]),
      ("cell=gru+seed=2", ["40"]),
      ("cell=gru+seed=3", ["80"]),
      ("cell=gru+seed=1", []),
  ]:
    latest = tmp_path / name / "checkpoints" / "latest"
    latest.mkdir(parents=True)
    for f in folders:
      (latest / f).mkdir()
  (tmp_path / "cell=gru+seed=1" / "checkpoints" / "latest" / "7").touch()
  steps = {r.name: sweeps.checkpoint_step(str(tmp_path / r.name)) for r in runs}
  assert steps == {
      "cell=gru+seed=0": 40,
      "cell=gru+seed=1": 0,
      "cell=gru+seed=2": 40,
      "cell=gru+seed=3": 80,
  }
  assert sweeps.checkpoint_step(str(tmp_path / "nowhere")) == 0
  groups = sweeps.group(runs, steps=steps)
  assert [(g.name, [r.name for r in g.runs]) for g in groups] == [
      ("cell=gru+step=40", ["cell=gru+seed=0", "cell=gru+seed=2"]),
      ("cell=gru+seed=1", ["cell=gru+seed=1"]),
      ("cell=gru+seed=3", ["cell=gru+seed=3"]),
  ]
  assert groups[0].trials == {"train.seed": (0, 2)}
  # Equal steps (none given: all 0) make one group, named without a step.
  (one,) = sweeps.group(runs)
  assert one.name == "cell=gru" and len(one.runs) == 4


def test_groups_avoid_what_trials_refuse():
  # Mixed signs of init_scale: two kinds of initialisation.
  runs = sweeps.expand(
      Sweep(
          "t",
          "c.py",
          axes=product({"model.init_scale": [0.1, -1.0, 0.05, 0.0]}),
          seeds=[0],
      )
  )
  groups = sweeps.group(runs)
  assert [
      [r.overrides["model.init_scale"] for r in g.runs] for g in groups
  ] == [
      [0.1, 0.05],
      [-1.0, 0.0],
  ]
  assert [g.name for g in groups] == ["init_scale=pos", "init_scale=nonpos"]
  # A count n-gram has nothing to vectorise: each run alone.
  groups = sweeps.group(_seed_runs(**{"model.kind": "count_ngram"}))
  assert [len(g.runs) for g in groups] == [1, 1, 1, 1]
  assert [g.name for g in groups] == [f"cell=gru+seed={s}" for s in range(4)]


def test_launcher_keys_equal_the_librarys():
  from rnnlm_jax import rundir  # pylint: disable=g-import-not-at-top
  from rnnlm_jax import trials  # pylint: disable=g-import-not-at-top

  # The launcher keeps copies so that it imports no jax (rnnlm_jax.rundir
  # imports orbax: seconds per launcher start).
  assert set(sweeps.VECTORIZABLE) == set(trials.VECTORISABLE)
  assert sweeps.RESULTS_FILE == rundir.RESULTS_FILE
  out = subprocess.run(
      [
          sys.executable,
          "-c",
          "import sys, launch.sweep;"
          " print(sorted({m.split('.')[0] for m in sys.modules}"
          " & {'jax', 'orbax', 'rnnlm_jax'}))",
      ],
      cwd=ROOT,
      capture_output=True,
      text=True,
  )
  assert out.stdout.strip() == "[]", out.stderr


# ---------------------------------------------------------------------------
# Run states.


def test_run_state():
  assert sweeps.run_state(True, None, None) == "done"
  assert sweeps.run_state(True, {"exit_code": 1}, False) == "done"
  assert sweeps.run_state(False, None, None) == "pending"
  running = {"status": "running", "pid": 1, "exit_code": None}
  assert sweeps.run_state(False, running, True) == "running"
  # Started, process gone, no exit status: interrupted, so resumable.
  assert sweeps.run_state(False, running, False) == "pending"
  assert sweeps.run_state(False, {"exit_code": 2}, False) == "failed"
  assert sweeps.run_state(False, {"exit_code": 0}, False) == "failed"
  # SLURM: the exit status comes from the task's exit file or sacct.
  assert sweeps.run_state(False, {"job_id": "7"}, False, 1) == "failed"


def test_select():
  states = {"a": "done", "b": "failed", "c": "pending", "d": "running"}
  assert sweeps.select(states) == ["c"]
  assert sweeps.select(states, retry_failed=True) == ["b", "c"]
  assert sweeps.select(states, only=["b"]) == ["b"]
  assert sweeps.select(states, only=["a", "d"]) == []
  with pytest.raises(sweeps.SweepError):
    sweeps.select(states, only=["zz"])


def test_a_dead_pid_is_not_alive():
  proc = subprocess.Popen([sys.executable, "-c", "pass"])
  proc.wait()
  assert local.pid_alive(proc.pid) is False
  assert local.pid_alive(os.getpid()) is True
  assert local.pid_alive(os.getpid(), host="another-host") is None
  # A live pid that started at another time is another process.
  started = local.start_time(os.getpid())
  assert isinstance(started, int)
  assert local.pid_alive(os.getpid(), started=started) is True
  assert local.pid_alive(os.getpid(), started=started + 1) is False


def test_cpu_slots_split_the_cores():
  s = local.slots(2, 0, [0, 1, 2, 3, 4])
  assert [x["cpus"] for x in s] == [{0, 1}, {2, 3}]
  assert s[0]["env"] == {"OMP_NUM_THREADS": "2"}
  g = local.slots(2, 4, [0, 1])
  assert [x["env"]["CUDA_VISIBLE_DEVICES"] for x in g] == ["0", "1"]
  assert local.default_parallel(0, 2) == 1
  assert local.default_parallel(0, 16) == 8
  assert local.default_parallel(4, 16) == 4


# ---------------------------------------------------------------------------
# The launch cycle, with a stand-in for experiments.train.

FAKE_TRAIN = """\
#!{python}
# Stands in for `python -m experiments.train`: counts its attempts in each
# run directory; a GRU or tanh run fails on its first attempt.
import json, os, sys
args = dict(a[2:].split("=", 1) for a in sys.argv[3:] if "=" in a)
for d in args["workdir"].split(","):
  os.makedirs(d, exist_ok=True)
  path = os.path.join(d, "attempts")
  n = int(open(path).read()) + 1 if os.path.exists(path) else 1
  open(path, "w").write(str(n))
  print("training", d, flush=True)
  with open(os.path.join(d, "slot"), "w") as f:
    cpus = sorted(os.sched_getaffinity(0))
    json.dump({{"cpus": cpus, "omp": os.environ.get("OMP_NUM_THREADS"),
               "cuda": os.environ.get("CUDA_VISIBLE_DEVICES")}}, f)
  if args.get("config.model.cell") in ("gru", "rnn_tanh") and n == 1:
    print("error: boom in", d, file=sys.stderr)
    sys.exit(3)
  json.dump({{"test_ppl": 1.0}}, open(os.path.join(d, "results.json"), "w"))
"""

CYCLE_SWEEP = """\
from launch.sweeps import Sweep, product
def get_sweep():
  return Sweep(
      name="cycle",
      config="experiments/configs/smoke.py",
      axes=product({"model.cell": ["lstm", "gru", "rnn_tanh"]}),
  )
"""


@pytest.fixture
def cycle(tmp_path):
  fake = tmp_path / "fake_python"
  fake.write_text(FAKE_TRAIN.format(python=sys.executable))
  fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
  sweep = tmp_path / "cycle.py"
  sweep.write_text(CYCLE_SWEEP)
  root = tmp_path / "root"
  args = [f"--sweep={sweep}", f"--root={root}", f"--python={fake}"]
  return root, args


def attempts(root):
  return {
      d.name: int((d / "attempts").read_text())
      for d in root.iterdir()
      if (d / "attempts").exists()
  }


def test_failed_runs_are_reported_and_retried_alone(cycle):
  root, args = cycle
  first = launch(*args, "--parallel=2")
  assert first.returncode == 1, first.stderr
  assert "3 runs: 1 done, 0 running, 2 failed, 0 pending" in first.stdout
  assert "failed: cell=gru" in first.stdout
  assert "error: boom in" in first.stdout  # the log's tail
  assert "exit 3" in first.stdout
  rec = json.loads((root / "cell=gru" / "launch.json").read_text())
  assert rec["exit_code"] == 3 and rec["status"] == "exited"
  assert rec["log"].endswith("cell=gru/launch.log")

  again = launch(*args)
  assert "nothing to launch" in again.stdout and again.returncode == 1
  assert attempts(root) == {"cell=lstm": 1, "cell=gru": 1, "cell=rnn_tanh": 1}

  only = launch(*args, "--only=cell=gru")
  assert "2 done, 0 running, 1 failed" in only.stdout
  assert attempts(root) == {"cell=lstm": 1, "cell=gru": 2, "cell=rnn_tanh": 1}

  retry = launch(*args, "--retry_failed")
  assert retry.returncode == 0, retry.stdout
  assert "3 done, 0 running, 0 failed, 0 pending" in retry.stdout
  assert attempts(root) == {"cell=lstm": 1, "cell=gru": 2, "cell=rnn_tanh": 2}


def test_concurrent_cpu_runs_get_disjoint_cores(cycle):
  root, args = cycle
  cores = local.cpu_cores()
  if len(cores) < 2:
    pytest.skip("needs two cores")
  launch(*args, "--parallel=2")
  slots = [
      json.loads((d / "slot").read_text()) for d in root.iterdir() if d.is_dir()
  ]
  assert len(slots) == 3
  share = len(cores) // 2
  assert all(len(s["cpus"]) == share for s in slots)
  assert all(s["omp"] == str(share) for s in slots)
  # Two slots, each with its own cores; the third run reused one.
  first, second = {tuple(s["cpus"]) for s in slots}
  assert not set(first) & set(second)


def _fake_nvidia_smi(folder, num_gpus):
  fake = folder / "nvidia-smi"
  fake.write_text(
      "#!/bin/sh\n"
      + "".join(
          f"echo 'GPU {i}: NVIDIA H100 (UUID: GPU-{i})'\n"
          for i in range(num_gpus)
      )
  )
  fake.chmod(0o755)


def test_gpus_are_counted_with_nvidia_smi(tmp_path, monkeypatch):
  _fake_nvidia_smi(tmp_path, 2)
  monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
  monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
  assert local.count_gpus() == 2
  assert local.gpu_devices() == ["0", "1"]
  monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
  assert local.count_gpus() == 0
  assert local.gpu_devices() == []


def test_an_existing_cuda_visible_devices_is_split_among_slots(
    cycle, tmp_path, monkeypatch
):
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  _fake_nvidia_smi(bin_dir, 8)
  monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
  monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5,2")
  assert local.gpu_devices() == ["5", "2"]
  with pytest.raises(ValueError, match="only 2 GPUs"):
    local.slots(3, local.gpu_devices(), [0])
  root, args = cycle
  out = launch(*args, "--parallel=4", env=dict(os.environ))
  assert "2 at a time on 2 GPUs" in out.stdout, out.stdout + out.stderr
  used = [
      json.loads((d / "slot").read_text())["cuda"]
      for d in sorted(root.iterdir())
      if d.is_dir()
  ]
  assert len(used) == 3 and set(used) == {"5", "2"}


def test_a_run_whose_launcher_died_is_pending_and_resumed(cycle):
  root, args = cycle
  dead = subprocess.Popen([sys.executable, "-c", "pass"])
  dead.wait()
  run_dir = root / "cell=lstm"
  run_dir.mkdir(parents=True)
  sweeps.update_record(
      str(run_dir), status="running", pid=dead.pid, exit_code=None,
      host=os.uname().nodename, executor="local",
  )  # fmt: skip
  status = launch(*args, "--status")
  assert "0 running, 0 failed, 3 pending" in status.stdout
  # A live pid reused by another process (another start time) is not the
  # run's.
  started = local.start_time(os.getpid())
  sweeps.update_record(str(run_dir), pid=os.getpid(), pid_start=started - 1)
  status = launch(*args, "--status", "--only=cell=lstm")
  assert "0 running, 0 failed, 3 pending" in status.stdout
  # The live pid is running, and a launch leaves it alone.
  sweeps.update_record(str(run_dir), pid_start=started)
  status = launch(*args, "--status", "--only=cell=lstm")
  assert "1 running" in status.stdout
  launch(*args, "--only=cell=lstm")
  assert not (run_dir / "attempts").exists()


SLOW_TRAIN = """\
#!{python}
# Stands in for experiments.train: writes its pid, then waits to be stopped.
import os, sys, time
args = dict(a[2:].split("=", 1) for a in sys.argv[3:] if "=" in a)
os.makedirs(args["workdir"], exist_ok=True)
open(os.path.join(args["workdir"], "pid"), "w").write(str(os.getpid()))
time.sleep(120)
"""


def test_sigterm_stops_the_children_and_leaves_runs_pending(cycle, tmp_path):
  root, args = cycle
  slow = tmp_path / "slow_python"
  slow.write_text(SLOW_TRAIN.format(python=sys.executable))
  slow.chmod(0o755)
  args = [*args[:2], f"--python={slow}"]
  proc = subprocess.Popen(
      [sys.executable, "-m", "launch.sweep", *args, "--only=cell=lstm"],
      cwd=ROOT,
      stdout=subprocess.DEVNULL,
      stderr=subprocess.DEVNULL,
  )
  pid_file = root / "cell=lstm" / "pid"
  for _ in range(300):
    if pid_file.exists() and pid_file.read_text():
      break
    time.sleep(0.1)
  child = int(pid_file.read_text())
  assert local.pid_alive(child)
  proc.send_signal(signal.SIGTERM)
  assert proc.wait(timeout=60) == -signal.SIGTERM
  assert not local.pid_alive(child)
  rec = json.loads((root / "cell=lstm" / "launch.json").read_text())
  assert rec["exit_code"] is None and rec["pid"] == child
  status = launch(*args, "--status")
  assert "0 running, 0 failed, 3 pending" in status.stdout


HELD_TRAIN = """\
#!{python}
# Stands in for experiments.train: counts its attempts, writes its pid, and
# finishes (results.json) once its run directory holds a file named go.
import json, os, sys, time
args = dict(a[2:].split("=", 1) for a in sys.argv[3:] if "=" in a)
d = args["workdir"]
os.makedirs(d, exist_ok=True)
path = os.path.join(d, "attempts")
n = int(open(path).read()) + 1 if os.path.exists(path) else 1
open(path, "w").write(str(n))
open(os.path.join(d, "pid"), "w").write(str(os.getpid()))
while not os.path.exists(os.path.join(d, "go")):
  time.sleep(0.05)
json.dump({{"test_ppl": 1.0}}, open(os.path.join(d, "results.json"), "w"))
"""


@pytest.fixture
def held(cycle, tmp_path):
  """The cycle sweep with HELD_TRAIN; kills what it started at the end."""
  root, args = cycle
  fake = tmp_path / "held_python"
  fake.write_text(HELD_TRAIN.format(python=sys.executable))
  fake.chmod(0o755)
  procs = []

  def start(*extra):
    out = open(tmp_path / f"launcher{len(procs)}.out", "w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "launch.sweep", *args[:2], f"--python={fake}",
         *extra],
        cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
    )  # fmt: skip
    procs.append(proc)
    return proc, out

  yield root, start
  for proc in procs:
    proc.kill()
    proc.wait()
  for pid_file in root.glob("*/pid"):
    try:
      os.kill(int(pid_file.read_text()), signal.SIGKILL)
    except (ProcessLookupError, ValueError):
      pass


def wait_for(predicate, what, timeout=60):
  for _ in range(int(timeout / 0.05)):
    if predicate():
      return
    time.sleep(0.05)
  raise AssertionError(f"timed out waiting for {what}")


def pid_of(root, name):
  path = root / name / "pid"
  return int(path.read_text()) if path.exists() and path.read_text() else None


def test_a_sigkilled_launchers_live_run_is_adopted_not_duplicated(held):
  root, start = held
  first, _ = start("--parallel=1")
  wait_for(lambda: pid_of(root, "cell=lstm"), "the first run")
  orphan = pid_of(root, "cell=lstm")
  first.kill()  # SIGKILL: no chance to stop its child.
  first.wait()
  assert local.pid_alive(orphan)
  rec = json.loads((root / "cell=lstm" / "launch.json").read_text())
  assert rec["status"] == "running" and rec["launcher_pid"] == first.pid

  second, out = start("--parallel=1")
  wait_for(
      lambda: "still running" in Path(out.name).read_text(), "the adoption"
  )
  time.sleep(1.0)  # Time enough to (wrongly) start another run.
  # The live run is neither started again nor run beside, past --parallel.
  assert attempts(root) == {"cell=lstm": 1}
  (root / "cell=lstm" / "go").touch()  # The orphan finishes...
  wait_for(lambda: pid_of(root, "cell=gru"), "the next run")  # ...and frees.
  assert not (root / "cell=rnn_tanh" / "attempts").exists()
  (root / "cell=gru" / "go").touch()
  (root / "cell=rnn_tanh").mkdir(exist_ok=True)
  (root / "cell=rnn_tanh" / "go").touch()
  assert second.wait(timeout=60) == 0, Path(out.name).read_text()
  text = Path(out.name).read_text()
  assert "3 runs: 3 done, 0 running, 0 failed, 0 pending" in text
  assert attempts(root) == {"cell=lstm": 1, "cell=gru": 1, "cell=rnn_tanh": 1}
  rec = json.loads((root / "cell=lstm" / "launch.json").read_text())
  assert rec["status"] == "ended" and rec["exit_code"] is None


def test_a_dead_launchers_dead_run_is_marked_and_relaunched(held):
  root, start = held
  first, _ = start("--only=cell=lstm")
  wait_for(lambda: pid_of(root, "cell=lstm"), "the run")
  child = pid_of(root, "cell=lstm")
  first.kill()
  first.wait()
  os.kill(child, signal.SIGKILL)
  wait_for(lambda: not local.pid_alive(child), "the run to die")
  (root / "cell=lstm" / "go").touch()
  second, out = start("--only=cell=lstm")
  assert second.wait(timeout=60) == 0, Path(out.name).read_text()
  text = Path(out.name).read_text()
  assert "cell=lstm: its process died without an exit status" in text
  assert "1 done" in text
  assert attempts(root) == {"cell=lstm": 2}
  rec = json.loads((root / "cell=lstm" / "launch.json").read_text())
  assert rec["status"] == "exited" and rec["exit_code"] == 0
  assert "found_dead" in rec


def test_dry_run_runs_and_writes_nothing(cycle):
  root, args = cycle
  out = launch(*args, "--dry_run")
  assert out.returncode == 0, out.stderr
  assert out.stdout.count("-m experiments.train") == 3
  assert "--workdir=" + str(root / "cell=gru") in out.stdout
  assert not root.exists()


def test_vectorize_relaunches_only_unfinished_members(tmp_path):
  sweep = tmp_path / "seeds.py"
  sweep.write_text(
      "from launch.sweeps import Sweep\n"
      "def get_sweep():\n"
      "  return Sweep(name='seeds', config='experiments/configs/smoke.py',"
      " axes=[{'model.cell': 'gru'}], seeds=[0, 1, 2])\n"
  )
  root = tmp_path / "root"
  done = root / "cell=gru+seed=0"
  done.mkdir(parents=True)
  (done / "results.json").write_text("{}")
  out = launch(f"--sweep={sweep}", f"--root={root}", "--vectorize", "--dry_run")
  assert out.returncode == 0, out.stderr
  (cmd,) = [l for l in out.stdout.splitlines() if "experiments.train" in l]
  assert "--trials=train.seed=1,2" in cmd
  assert f"--workdir={root}/cell=gru+seed=1,{root}/cell=gru+seed=2" in cmd


def test_a_second_launcher_stops_in_one_line(cycle):
  root, args = cycle
  root.mkdir()
  with open(root / ".launch.lock", "w") as held:
    fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
    held.write(f"{os.getpid()}\n")
    held.flush()
    out = launch(*args)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [
        f"error: another launcher is running this sweep (pid {os.getpid()})"
    ]
    assert attempts(root) == {}
    for flag in ["--status", "--dry_run"]:
      assert launch(*args, flag).returncode == 0, flag
  # Released: the next launcher runs, and leaves its own pid.
  out = launch(*args, "--only=cell=lstm")
  assert out.returncode == 0, out.stderr
  assert attempts(root) == {"cell=lstm": 1}
  assert (root / ".launch.lock").read_text().strip().isdigit()


def test_bad_input_is_one_error_line(tmp_path):
  out = launch(f"--sweep={tmp_path}/missing.py")
  assert out.returncode == 1
  assert out.stderr.strip().splitlines() == [
      f"error: no sweep file {tmp_path}/missing.py"
  ]


# ---------------------------------------------------------------------------
# SLURM, without SLURM: the rendered script run by hand, recorded outputs.


def test_rendered_slurm_script_runs_its_task(cycle, tmp_path):
  root, args = cycle
  fake = args[2].split("=", 1)[1]
  runs = sweeps.expand(sweeps.load_sweep(args[0].split("=", 1)[1]))
  tasks = []
  for r in runs:
    d = str(root / r.name)
    argv = sweeps.train_command(fake, "c.py", r.overrides, d)
    tasks.append(slurm.task_line(argv, f"{d}.log", [d]))
  res = slurm.Resources(
      partition="gpu", time="1:00:00", cpus=4, gpus=1, mem="8G",
      max_parallel=2, extra=("--qos=low", "#SBATCH --exclusive"),
  )  # fmt: skip
  script = slurm.render(str(root), "cycle-1", tasks, str(ROOT), res)
  text = Path(script).read_text()
  for line in [
      "#SBATCH --array=0-2%2",
      "#SBATCH --partition=gpu",
      "#SBATCH --time=1:00:00",
      "#SBATCH --cpus-per-task=4",
      "#SBATCH --gres=gpu:1",
      "#SBATCH --mem=8G",
      "#SBATCH --qos=low",
      "#SBATCH --exclusive",
  ]:
    assert line in text.splitlines()
  # Task 1 is the GRU, which fails on its first attempt.
  env = dict(os.environ, SLURM_ARRAY_TASK_ID="1")
  out = subprocess.run(["bash", script], env=env, capture_output=True)
  assert out.returncode == 3
  assert (root / "cell=gru" / sweeps.EXIT_FILE).read_text() == "3\n"
  assert "boom" in (root / "cell=gru.log").read_text()
  out = subprocess.run(["bash", script], env=env, capture_output=True)
  assert out.returncode == 0
  assert (root / "cell=gru" / sweeps.EXIT_FILE).read_text() == "0\n"
  assert (root / "cell=gru" / "results.json").exists()
  assert not (root / "cell=lstm").exists()


def test_parse_squeue_and_sacct():
  squeue = textwrap.dedent("""\
      1234_[3-5,8%2]|PENDING
      1234_1|RUNNING
      99|RUNNING
      """)
  assert slurm.parse_squeue(squeue) == {
      ("1234", 3): "PENDING",
      ("1234", 4): "PENDING",
      ("1234", 5): "PENDING",
      ("1234", 8): "PENDING",
      ("1234", 1): "RUNNING",
  }
  sacct = textwrap.dedent("""\
      1234_0|COMPLETED|0:0
      1234_1|FAILED|3:0
      1234_2|CANCELLED by 0|0:15
      1234_6|TIMEOUT|0:0
      1234_7|RUNNING|0:0
      1234_[8-9]|PENDING|0:0
      """)
  assert slurm.parse_sacct(sacct) == {
      ("1234", 0): ("COMPLETED", 0),
      ("1234", 1): ("FAILED", 3),
      ("1234", 2): ("CANCELLED", 143),
      ("1234", 6): ("TIMEOUT", 1),
      ("1234", 7): ("RUNNING", None),
      ("1234", 8): ("PENDING", None),
      ("1234", 9): ("PENDING", None),
  }


def _fake_tool(folder, name, script):
  tool = folder / name
  tool.write_text("#!/bin/sh\n" + script)
  tool.chmod(0o755)


def test_a_failing_squeue_is_an_error_not_an_empty_queue(
    cycle, tmp_path, monkeypatch
):
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
  _fake_tool(
      bin_dir,
      "squeue",
      "echo 'slurm_load_jobs error: Invalid job id specified' >&2; exit 1\n",
  )
  assert slurm.queue(["17"]) == {}  # Forgotten jobs: nothing queued.
  _fake_tool(
      bin_dir,
      "squeue",
      "echo 'slurm_load_jobs error: Unable to contact slurm controller'"
      " >&2; exit 1\n",
  )
  with pytest.raises(sweeps.SweepError, match="Unable to contact"):
    slurm.queue(["17"])
  # The launcher stops in one line rather than submit the runs again.
  root, args = cycle
  run_dir = root / "cell=lstm"
  run_dir.mkdir(parents=True)
  sweeps.update_record(
      str(run_dir), status="submitted", executor="slurm", job_id="17",
      task=0, exit_code=None,
  )  # fmt: skip
  _fake_tool(bin_dir, "sacct", "exit 1\n")
  _fake_tool(bin_dir, "sbatch", "echo 99; touch " + str(tmp_path / "sub"))
  env = dict(os.environ)
  for flag in ["--status", "--executor=slurm"]:
    out = launch(*args, flag, env=env)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [
        "error: squeue failed (exit 1): slurm_load_jobs error: Unable to"
        " contact slurm controller"
    ]
  assert not (tmp_path / "sub").exists()


# ---------------------------------------------------------------------------
# A real tiny sweep.

TINY_SWEEP = """\
from launch.sweeps import Sweep
def get_sweep():
  return Sweep(
      name="tiny",
      config="experiments/configs/smoke.py",
      axes=[{}],
      seeds=[0, 1],
      fixed={
          "data.synthetic_sentences": (150, 30, 30),
          "train.num_epochs": 1,
          "model.num_layers": 1,
      },
  )
"""


@pytest.mark.parametrize("vectorize", [False, True])
def test_tiny_sweep_end_to_end(tmp_path, vectorize):
  sweep = tmp_path / "tiny.py"
  sweep.write_text(TINY_SWEEP)
  root = tmp_path / "root"
  flags = ["--vectorize"] if vectorize else ["--parallel=2"]
  out = launch(f"--sweep={sweep}", f"--root={root}", *flags)
  assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
  assert "2 runs: 2 done" in out.stdout
  seeds = []
  for name in ["seed=0", "seed=1"]:
    run = root / name
    results = json.loads((run / "results.json").read_text())
    assert results["test_ppl"] > 1
    config = json.loads((run / "config.json").read_text())
    seeds.append(config["train"]["seed"])
    assert config["data"]["synthetic_sentences"] == [150, 30, 30]
    assert "experiments.train" in (run / "cmd.sh").read_text()
    record = json.loads((run / "launch.json").read_text())
    assert record["exit_code"] == 0
    # A vectorised group logs once, for all its members.
    log = "logs/all.log" if vectorize else f"{name}/launch.log"
    assert record["log"].endswith(log), record
    # The launcher reads the step a run resumes from as orbax does.
    from rnnlm_jax import checkpoint  # pylint: disable=g-import-not-at-top

    step = checkpoint.latest_step(str(run), "latest")
    assert step and sweeps.checkpoint_step(str(run)) == step
  assert seeds == [0, 1]
  again = launch(f"--sweep={sweep}", f"--root={root}", *flags)
  assert "nothing to launch" in again.stdout and again.returncode == 0
