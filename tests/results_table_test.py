"""The results table of run directories (rnnlm_jax.results_table and
experiments.tables --results)."""

import json
import os

from experiments import tables as tables_script
from experiments.configs import ptb_lstm
from rnnlm_jax import config as config_lib
from rnnlm_jax import results_table
from rnnlm_jax import rundir
from rnnlm_jax.vocab import Vocab


def fake_run(path, command, results, windows=(), variant="small"):
  """A finished run directory, as train writes one, without training."""
  cfg = config_lib.from_dict(ptb_lstm.get_config(variant).to_dict())
  rundir.write_run_files(str(path), cfg, Vocab(["a"]), command)
  with open(os.path.join(path, rundir.RESULTS_FILE), "w") as f:
    json.dump(results, f)
  with open(os.path.join(path, rundir.METRICS_FILE), "w") as f:
    for i, w in enumerate(windows):
      f.write(json.dumps({"step": i, "train_loss": 1.0, "window_s": w}) + "\n")


def test_parse_command_keeps_what_was_run_not_where_the_data_was():
  config, settings = results_table.parse_command(
      "python -m experiments.train --config=experiments/configs/ptb_lstm.py:"
      "small --config.data.dir=../data/ptb --config.train.num_epochs=6 "
      "--workdir=runs/x"
  )
  assert config == "ptb_lstm:small"
  assert settings == ("train.num_epochs=6",)
  assert results_table.parse_command("python -m experiments.train") == (
      "default",
      (),
  )


def test_table_rows_read_the_run_directories(tmp_path):
  cmd = (
      "python -m experiments.train --config=experiments/configs/ptb_lstm.py:"
      "small --workdir=runs/a"
  )
  fake_run(
      tmp_path / "a",
      cmd,
      {"test_ppl": 115.3, "valid_ppl": 120.9},
      windows=(60.0, 90.0, 30.0),
  )
  fake_run(
      tmp_path / "b",
      cmd.replace("ptb_lstm.py:small", "default.py").replace("runs/a", "b"),
      {"test_ppl": 13.1, "floor_ppl": 12.49, "train_seconds_this_process": 12},
  )
  os.makedirs(tmp_path / "unfinished")
  with open(tmp_path / "unfinished" / rundir.CONFIG_FILE, "w") as f:
    f.write("{}")
  found = results_table.entries(str(tmp_path))
  assert [e.path for e in found] == [str(tmp_path / "b"), str(tmp_path / "a")]
  b, a = found
  assert (a.config, a.corpus, a.metric, a.value) == (
      "ptb_lstm:small",
      "ptb",
      "test_ppl",
      115.3,
  )
  assert a.seconds == 180.0  # The sum of its training windows.
  assert b.seconds == 12.0  # No windows recorded: its last process's time.
  table = tables_script.write_results([str(tmp_path)], str(tmp_path / "t"))
  rows = table.splitlines()[2:]
  assert "| 13.10 ppl | true floor 12.49 | 12 s |" in rows[0]
  assert "| 115.30 ppl | 114.5 (Zaremba et al. 2014) | 3 min |" in rows[1]
  assert f"`{cmd}`" in rows[1]
  with open(tmp_path / "t" / "results.md") as f:
    assert f.read() == table
  # --exclude leaves a folder's runs out (a sweep's, say).
  os.makedirs(tmp_path / "sweeps")
  fake_run(tmp_path / "sweeps" / "s1", cmd, {"test_ppl": 99.0})
  with_sweep = tables_script.write_results([str(tmp_path)], None)
  assert "99.00 ppl" in with_sweep
  assert tables_script.write_results([str(tmp_path)], None, ["sweeps"]) == (
      table
  )
