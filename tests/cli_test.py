"""The command lines end to end: smoke training, a real kill and resume,
evaluation, and one clear error line for bad input."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SMOKE = "--config=experiments/configs/smoke.py"


def run(*args, timeout=300, cwd=ROOT):
  env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=str(ROOT))
  return subprocess.run(
      [sys.executable, "-m", *args],
      cwd=cwd,
      env=env,
      capture_output=True,
      text=True,
      timeout=timeout,
  )


def train_losses(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [
        (r["step"], r["train_loss"])
        for r in map(json.loads, f)
        if "train_loss" in r
    ]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("smoke"))
  proc = run("experiments.train", SMOKE, f"--workdir={workdir}")
  assert proc.returncode == 0, proc.stderr[-2000:]
  return workdir, proc.stdout


def test_smoke_training_ends_with_the_summary_line(smoke_run):
  workdir, out = smoke_run
  last = out.strip().splitlines()[-1]
  fields = dict(kv.split("=") for kv in last.split())
  assert set(fields) == {"valid_ppl", "test_ppl", "floor_ppl"}
  assert float(fields["floor_ppl"]) < float(fields["test_ppl"])
  assert "tok/s" in out and "eta" in out
  assert (Path(workdir) / "cmd.sh").read_text().count("experiments.train") == 1


def test_evaluate_reports_the_same_perplexity(smoke_run):
  workdir, out = smoke_run
  trained = dict(kv.split("=") for kv in out.strip().splitlines()[-1].split())
  proc = run("experiments.evaluate", f"--workdir={workdir}", "--json")
  assert proc.returncode == 0, proc.stderr
  got = json.loads(proc.stdout)
  assert abs(got["test_ppl"] - float(trained["test_ppl"])) < 1e-3
  assert got["path"]["backend"] == "auto"
  # Every fast path off: the same perplexity, and the first line says so.
  proc = run(
      "experiments.evaluate", f"--workdir={workdir}", "--backend=reference"
  )
  assert proc.returncode == 0, proc.stderr
  first, last = (
      proc.stdout.strip().splitlines()[0],
      proc.stdout.strip().splitlines()[-1],
  )
  assert first.startswith("path: backend=reference cell=lstm scan=autodiff")
  ref = dict(kv.split("=") for kv in last.split())
  assert abs(float(ref["test_ppl"]) - got["test_ppl"]) < 1e-4 * got["test_ppl"]


def test_killed_run_resumes_exactly(smoke_run, tmp_path):
  full_dir, _ = smoke_run
  workdir = str(tmp_path / "killed")
  env = dict(os.environ, PYTHONUNBUFFERED="1")
  proc = subprocess.Popen(
      [
          sys.executable,
          "-m",
          "experiments.train",
          SMOKE,
          f"--workdir={workdir}",
      ],
      cwd=ROOT,
      env=env,
      stdout=subprocess.DEVNULL,
      stderr=subprocess.DEVNULL,
  )
  latest = Path(workdir) / "checkpoints" / "latest"
  deadline = time.time() + 240
  while time.time() < deadline and proc.poll() is None:
    if latest.is_dir() and any(
        p.name.isdigit() and int(p.name) >= 80 for p in latest.iterdir()
    ):
      break
    time.sleep(0.05)
  assert proc.poll() is None, "the run ended before it could be killed"
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  resumed = run("experiments.train", SMOKE, f"--workdir={workdir}")
  assert resumed.returncode == 0, resumed.stderr[-2000:]
  assert "resumed from step" in resumed.stdout
  assert train_losses(workdir) == train_losses(full_dir)


def test_sigterm_checkpoints_at_the_next_step_and_resumes_exactly(
    smoke_run, tmp_path
):
  """What a scheduler's SIGTERM before a kill does: the run saves where it
  stands (before its first checkpoint), exits 143 with one line saying so,
  and the same command resumes it exactly."""
  full_dir, _ = smoke_run
  workdir = str(tmp_path / "preempted")
  env = dict(os.environ, PYTHONUNBUFFERED="1")
  proc = subprocess.Popen(
      [
          sys.executable,
          "-m",
          "experiments.train",
          SMOKE,
          f"--workdir={workdir}",
      ],
      cwd=ROOT,
      env=env,
      stdout=subprocess.PIPE,
      stderr=subprocess.DEVNULL,
      text=True,
  )
  out = []
  for line in proc.stdout:
    out.append(line)
    if line.startswith("compiled the train step"):
      proc.send_signal(signal.SIGTERM)
  assert proc.wait(timeout=240) == 143
  assert "preempted (SIGTERM) after step" in out[-1]
  saved = [p.name for p in (Path(workdir) / "checkpoints" / "latest").iterdir()]
  assert saved and all(int(s) < 40 for s in saved)  # checkpoint_every: 40.
  resumed = run("experiments.train", SMOKE, f"--workdir={workdir}")
  assert resumed.returncode == 0, resumed.stderr[-2000:]
  assert "resumed from step" in resumed.stdout
  assert train_losses(workdir) == train_losses(full_dir)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--config.model.cell=lstn"], "model.cell='lstn' is not one of"),
        (["--config.model.hiden=3"], "no such config key 'hiden'"),
        (["--config=experiments/configs/nosuch.py"], "no config file"),
        (
            ["--config=experiments/configs/ptb_lstm.py:nosuch"],
            "unknown variant 'nosuch'",
        ),
        (
            ["--config.data.synthetic_sentences=5"],
            "data.synthetic_sentences must be three positive integers",
        ),
        (["--config.optim.learning_rate=inf"], "must be finite, got inf"),
        (["--config.model.hidden=0"], "model.hidden must be positive"),
        (
            [
                "--config=experiments/configs/ptb_lstm.py:small",
                "--config.data.dir=/nonexistent/ptb",
            ],
            "data folder not found",
        ),
        (["--trials=train.seed"], "must look like KEY=V1,V2"),
        (
            ["--trials=train.seed=0,1", "--trials=optim.learning_rate=0.1"],
            "different numbers of values",
        ),
        (["--trials=model.hiden=8,16"], "cannot set model.hiden"),
        (["--trials=train.seed=0,1"], "lists 1 directories for 2 trials"),
        (
            ["--trials=train.seed=0,1", "--trials=train.seed=2,3"],
            "gives train.seed twice",
        ),
    ],
)
def test_bad_input_is_one_line_and_nonzero(args, message, tmp_path):
  if not args[0].startswith("--config="):
    args = [SMOKE, *args]
  proc = run("experiments.train", *args, f"--workdir={tmp_path}/w")
  assert proc.returncode != 0
  lines = proc.stderr.strip().splitlines()
  assert len(lines) == 1 and message in lines[0], proc.stderr


@pytest.mark.parametrize(
    "script, message",
    [
        # ml_collections applies it to the default file as the flag is
        # defined, before any flag is parsed.
        (
            "experiments.train",
            "error: no such config key 'hiden'; Did you mean \"hidden\""
            ' instead of "hiden"?',
        ),
        # No default config file: the override has nothing to apply to.
        (
            "experiments.import_torch",
            "error: Unknown command line flag 'config.model.hiden' (a config"
            " key: --config=FILE comes with it)",
        ),
    ],
)
def test_an_override_without_config_is_one_line(script, message):
  proc = run(script, "--config.model.hiden=3")
  assert proc.returncode == 1
  assert proc.stderr.strip().splitlines() == [message]


def test_config_help_lists_every_key_with_its_default_and_meaning():
  proc = run("experiments.train", SMOKE, "--config_help")
  assert proc.returncode == 0, proc.stderr
  out = proc.stdout
  assert out.startswith("--config=experiments/configs/smoke.py (name 'smoke')")
  keys = [l.split()[0] for l in out.splitlines() if l.startswith("  ") and
          not l.startswith("      ")]  # fmt: skip
  assert len(keys) == len(set(keys)) > 60 and "optim.weight_decay" in keys
  assert "\n  model.hidden = 16  (default 200)\n" in out
  # The comments in rnnlm_jax/config.py: on a field's line, and above it.
  source = (ROOT / "rnnlm_jax" / "config.py").read_text().splitlines()
  at = lambda field: next(
      i for i, l in enumerate(source) if l.strip().startswith(field + ":")
  )
  on_line = source[at("vocab_size")].split("#", 1)[1]
  above = source[at("scan_impl") - 1].split("#", 1)[1]
  words = " ".join(out.split())
  assert " ".join(on_line.split()) in words
  assert " ".join(above.split()) in words
  assert "--config_help" in run("experiments.train", "--help").stdout


def test_default_run_directory_names_are_safe_and_distinct():
  from experiments import common
  from rnnlm_jax import config as config_lib

  cfg = config_lib.Config(name="ptb lstm/small")
  name = common.default_workdir(
      cfg,
      {
          "optim.learning_rate": 0.5,
          "data.hf_path": "a/b c",
          "data.synthetic_sentences": (100, 20, 20),
          "data.dir": "/corpus",  # A location: left out.
      },
  )
  assert name == os.path.join(
      "runs",
      "ptb_lstm_small+data.hf_path=a_b_c+data.synthetic_sentences=100_20_20"
      "+optim.learning_rate=0.5",
  )
  assert common.default_workdir(cfg, {}) == os.path.join(
      "runs", "ptb_lstm_small"
  )
  long = [
      {"model.hidden": 8, "data.hf_path": "x" * 200 + str(i)} for i in (1, 2)
  ]
  a, b = (common.default_workdir(cfg, o) for o in long)
  assert a != b and len(os.path.basename(a)) <= 120


def test_default_run_directory_names_the_overrides_and_refuses_a_longer_run(
    tmp_path,
):
  args = [
      f"--config={ROOT}/experiments/configs/smoke.py",
      "--config.train.max_steps=4",
      "--config.name=smoke",  # The file's own value: not in the name.
      f"--config.data.cache_dir={tmp_path}/cache",  # A location: neither.
  ]
  first = run("experiments.train", *args, cwd=tmp_path)
  assert first.returncode == 0, first.stderr[-2000:]
  name = "runs/smoke+train.max_steps=4"
  assert first.stdout.splitlines()[0] == f"run directory: {name}"
  assert (tmp_path / name / "checkpoints" / "latest" / "4").is_dir()
  args[1] = "--config.train.max_steps=2"
  shorter = run("experiments.train", *args, f"--workdir={name}", cwd=tmp_path)
  assert shorter.returncode == 1
  (line,) = shorter.stderr.strip().splitlines()
  assert "already at step 4, past this config's last step 2" in line


@pytest.mark.parametrize(
    "args, message",
    [
        (["experiments.evaluate", "--splits=bogus"], "unknown split 'bogus'"),
        (
            ["experiments.evaluate", "--eval_batch_size=-2"],
            "not a non-negative integer",
        ),
        (["experiments.score", "--input=BAD"], "is not UTF-8 text"),
    ],
)
def test_using_a_run_with_bad_input_is_one_line(
    smoke_run, args, message, tmp_path
):
  workdir, _ = smoke_run
  bad = tmp_path / "bad.txt"
  bad.write_bytes(b"the \xff cat\n")
  args = [a.replace("BAD", str(bad)) for a in args]
  proc = run(*args, f"--workdir={workdir}")
  assert proc.returncode != 0
  lines = proc.stderr.strip().splitlines()
  assert len(lines) == 1 and message in lines[0], proc.stderr


def test_empty_and_non_utf8_corpus_files(tmp_path):
  corpus = tmp_path / "corpus"
  corpus.mkdir()
  (corpus / "train.txt").write_text("a b c\n")
  (corpus / "valid.txt").write_text("")
  (corpus / "test.txt").write_bytes(b"a \xff b\n")
  args = [
      "--config=experiments/configs/ptb_lstm.py:small",
      f"--config.data.dir={corpus}",
      f"--workdir={tmp_path}/w",
  ]
  proc = run("experiments.train", *args)
  assert proc.returncode != 0
  assert proc.stderr.count("\n") == 1 and "empty" in proc.stderr
  (corpus / "valid.txt").write_text("a b\n")
  proc = run("experiments.train", *args)
  assert proc.returncode != 0 and "byte" in proc.stderr.lower(), proc.stderr
  assert not (tmp_path / "w" / "checkpoints").exists()


def test_pytorch_weights_import_to_the_same_perplexity(smoke_run, tmp_path):
  """Export a trained run as a PyTorch state_dict + word list, import it as a
  new run, and evaluate: the perplexity is the original's."""
  from rnnlm_jax import checkpoint, interop, rundir
  from rnnlm_jax.vocab import Vocab

  workdir, _ = smoke_run
  cfg = rundir.load_run_config(workdir)
  params, _ = checkpoint.restore_params(workdir, "best")
  state_dict = tmp_path / "model.safetensors"
  interop.save_state_dict_arrays(
      str(state_dict), interop.params_to_torch(params, cfg.model)
  )
  words = tmp_path / "words.txt"
  words.write_text("\n".join(Vocab.load(f"{workdir}/vocab.json").tokens) + "\n")
  imported = tmp_path / "imported"
  proc = run(
      "experiments.import_torch",
      SMOKE,
      f"--state_dict={state_dict}",
      f"--words={words}",
      "--cell=lstm",
      f"--workdir={imported}",
  )
  assert proc.returncode == 0, proc.stderr[-2000:]
  original = run("experiments.evaluate", f"--workdir={workdir}", "--json")
  again = run("experiments.evaluate", f"--workdir={imported}", "--json")
  assert again.returncode == 0, again.stderr[-2000:]
  a, b = json.loads(original.stdout), json.loads(again.stdout)
  assert abs(a["test_ppl"] - b["test_ppl"]) < 1e-4 * a["test_ppl"]


@pytest.fixture(scope="module")
def exported(smoke_run, tmp_path_factory):
  """The smoke run's weights as a PyTorch state_dict, and its word list."""
  from rnnlm_jax import checkpoint, interop, rundir
  from rnnlm_jax.vocab import Vocab

  workdir, _ = smoke_run
  out = tmp_path_factory.mktemp("exported")
  cfg = rundir.load_run_config(workdir)
  params, _ = checkpoint.restore_params(workdir, "best")
  interop.save_state_dict_arrays(
      str(out / "model.npz"), interop.params_to_torch(params, cfg.model)
  )
  words = Vocab.load(f"{workdir}/vocab.json").tokens
  (out / "words.txt").write_text("\n".join(words) + "\n")
  return out


@pytest.mark.parametrize(
    "change, message",
    [
        ({"state_dict": "model.pt"}, "unknown state_dict file extension '.pt'"),
        ({"state_dict": "one_array.npz"}, "is not a state_dict saved as .npz"),
        ({"state_dict": "other.npz"}, "missing key 'encoder.weight'"),
        ({"cell": "gru"}, "gate multiple mismatch"),
        ({"words": "renamed.txt"}, "does not fit the corpus of config 'smoke'"),
    ],
)
def test_import_torch_bad_input_is_one_line(
    exported, change, message, tmp_path
):
  import numpy as np

  np.save(tmp_path / "one_array.npy", np.zeros(3))
  (tmp_path / "one_array.npy").rename(tmp_path / "one_array.npz")
  np.savez(tmp_path / "other.npz", weights=np.zeros(3))
  (tmp_path / "model.pt").write_bytes(b"PK\x03\x04 not a state_dict")
  # Same size as the weights' vocabulary, but a word the corpus uses is gone.
  words = (exported / "words.txt").read_text().splitlines()
  words[5] = "zzz-not-a-word"
  (tmp_path / "renamed.txt").write_text("\n".join(words) + "\n")
  args = {
      "state_dict": str(exported / "model.npz"),
      "words": str(exported / "words.txt"),
      "cell": "lstm",
      "workdir": str(tmp_path / "imported"),
  }
  for key, name in change.items():
    args[key] = name if key == "cell" else str(tmp_path / name)
  flags = [f"--{k}={v}" for k, v in args.items()]
  proc = run("experiments.import_torch", SMOKE, *flags)
  assert proc.returncode == 1
  lines = proc.stderr.strip().splitlines()
  assert len(lines) == 1 and message in lines[0], proc.stderr
  assert not (tmp_path / "imported" / "checkpoints").exists()


def test_trials_that_differ_in_shape_are_one_line_and_nonzero(tmp_path):
  proc = run(
      "experiments.train",
      SMOKE,
      "--trials=model.hidden=8,16",
      f"--workdir={tmp_path}/a,{tmp_path}/b",
  )
  assert proc.returncode != 0
  lines = proc.stderr.strip().splitlines()
  assert len(lines) == 1 and "differ in model.hidden" in lines[0], proc.stderr
  assert not (tmp_path / "a").exists()


def summary(stdout: str) -> dict:
  return dict(kv.split("=") for kv in stdout.strip().splitlines()[-1].split())


@pytest.mark.parametrize(
    "args, chosen",
    [
        (
            ["--cache=pointer", "--cache_size=50", "--cache_theta=0.3,1"],
            {"cache_theta", "cache_lambda"},
        ),
        (
            ["--dynamic=sgd", "--dynamic_lr=0,0.1", "--dynamic_bptt=5"],
            {"dynamic_lr", "dynamic_decay"},
        ),
        (
            ["--dynamic=rmsprop", "--dynamic_decay=0,0.01"],
            {"dynamic_lr", "dynamic_decay"},
        ),
    ],
)
def test_evaluate_with_the_cache_or_dynamic_evaluation(smoke_run, args, chosen):
  """Each mode searches two values on valid: a line for each, and the
  summary line with the static and the mode's perplexities and the values
  chosen; the static model's is training's."""
  workdir, out = smoke_run
  proc = run("experiments.evaluate", f"--workdir={workdir}", *args)
  assert proc.returncode == 0, proc.stderr
  lines = proc.stdout.strip().splitlines()
  assert len(lines) == 4  # the path, the two searched, the summary
  got, trained = summary(proc.stdout), summary(out)
  mode = args[0].split("=")[0].removeprefix("--")
  for split in ("valid", "test"):
    assert f"{mode}_{split}_ppl" in got
    static = float(got[f"static_{split}_ppl"])
    assert abs(static - float(trained[f"{split}_ppl"])) < 1e-3 * static
  assert chosen <= set(got)
  # The search chose the lower of the two on valid.
  valid = [float(l.split("valid_ppl=")[1]) for l in lines[1:3]]
  assert abs(float(got[f"{mode}_valid_ppl"]) - min(valid)) < 1e-3


def test_evaluation_modes_refuse_other_models(smoke_run, tmp_path):
  workdir, _ = smoke_run
  with open(os.path.join(workdir, "config.json")) as f:
    values = json.load(f)
  values["model"]["kind"] = "count_ngram"
  with open(tmp_path / "config.json", "w") as f:
    json.dump(values, f)
  for mode in ("--cache=pointer", "--dynamic=rmsprop"):
    proc = run("experiments.evaluate", f"--workdir={tmp_path}", mode)
    assert proc.returncode == 1
    assert proc.stderr.strip().startswith("error: ")
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "needs a recurrent language model" in proc.stderr
