"""Ablation tables (rnnlm_jax.ablation, .tables, .ablation_figures) from
tiny real run directories, in one file so that the runs train once:
grouping, statistics equal to numpy's over each run's results.json, the
written files, incomplete runs, and the command line's errors."""

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from experiments.configs import smoke
from rnnlm_jax import ablation
from rnnlm_jax import ablation_figures
from rnnlm_jax import config as config_lib
from rnnlm_jax import rundir
from rnnlm_jax import tables
from rnnlm_jax import train

ROOT = Path(__file__).resolve().parents[1]
# (cell, bptt, seed): two seeds of one configuration, one of the others.
RUNS = (
    ("lstm", 4, 0),
    ("lstm", 4, 1),
    ("lstm", 16, 0),
    ("rnn_tanh", 4, 0),
    ("rnn_tanh", 16, 0),
)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def tiny_config(cell, bptt, seed):
  c = smoke.get_config()
  c.data.synthetic_sentences = (150, 30, 30)
  c.train.num_epochs = 2
  c.model.hidden = 8
  c.model.num_layers = 1
  c.model.cell = cell
  c.data.bptt = bptt
  c.train.seed = seed
  return config_lib.from_dict(c.to_dict())


def run_name(cell, bptt, seed):
  return f"cell={cell},bptt={bptt},seed={seed}"


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
  """A sweep folder of finished runs, one unfinished run (config.json only)
  in the two-seed configuration and one with a broken config.json."""
  root = tmp_path_factory.mktemp("sweep")
  for cell, bptt, seed in RUNS:
    train.train_and_evaluate(
        tiny_config(cell, bptt, seed),
        str(root / run_name(cell, bptt, seed)),
        log=lambda s: None,
    )
  unfinished = root / run_name("lstm", 4, 2)
  unfinished.mkdir()
  shutil.copy(root / run_name("lstm", 4, 0) / rundir.CONFIG_FILE, unfinished)
  values = json.loads((unfinished / rundir.CONFIG_FILE).read_text())
  values["train"]["seed"] = 2
  (unfinished / rundir.CONFIG_FILE).write_text(json.dumps(values))
  broken = root / "broken"
  broken.mkdir()
  (broken / rundir.CONFIG_FILE).write_text("{")
  queued = root / "queued"
  queued.mkdir()
  (queued / ablation.LAUNCH_RECORD).write_text('{"status": "queued"}')
  out = str(tmp_path_factory.mktemp("tables"))
  summary, written = tables.build_tables([str(root)], out)
  return root, out, summary, written


def results_of(root, cell, bptt, seed):
  path = root / run_name(cell, bptt, seed) / rundir.RESULTS_FILE
  return json.loads(path.read_text())


def configurations():
  """{(cell, bptt): [seed, ...]} of RUNS, sorted as the table must be."""
  out = {}
  for cell, bptt, seed in sorted(RUNS):
    out.setdefault((cell, bptt), []).append(seed)
  return out


def test_groups_are_the_configurations_without_the_seed(sweep):
  _, _, summary, _ = sweep
  g = summary.grouping
  assert g.keys == ("model.cell", "data.bptt")
  assert g.names == ("cell", "bptt")
  want = configurations()
  assert [r.values for r in summary.rows] == list(want)
  assert [r.n for r in summary.rows] == [len(s) for s in want.values()]
  assert [sorted(r.seeds) for r in summary.rows] == list(want.values())
  assert summary.metrics == ("valid_ppl", "test_ppl")
  assert summary.has_floor


def test_means_and_stds_equal_numpys_over_results_json(sweep):
  root, _, summary, _ = sweep
  for row, ((cell, bptt), seeds) in zip(summary.rows, configurations().items()):
    for m in summary.metrics:
      x = [results_of(root, cell, bptt, s)[m] for s in seeds]
      mean, std = row.stats[m]
      np.testing.assert_allclose(mean, np.mean(x), rtol=1e-12)
      if len(x) > 1:
        np.testing.assert_allclose(std, np.std(x, ddof=1), rtol=1e-12)
        assert std > 0
      else:
        assert np.isnan(std)


def test_incomplete_runs_are_listed_and_left_out(sweep):
  _, out, summary, _ = sweep
  incomplete = {r.label: r.problem for r in summary.grouping.incomplete}
  assert set(incomplete) == {run_name("lstm", 4, 2), "broken", "queued"}
  assert incomplete[run_name("lstm", 4, 2)] == "no results.json"
  assert incomplete["broken"].startswith("config.json not valid JSON")
  assert incomplete["queued"] == "not started, launcher: queued"
  assert summary.rows[0].n == 2  # lstm, bptt 4: seeds 0 and 1, not 2.
  md = Path(out, "table.md").read_text()
  assert "Incomplete, not in the means (3 runs)" in md
  assert str(out) not in md and "/tmp" not in md
  assert run_name("lstm", 4, 2) in md


def test_csv_parses_back_to_the_same_numbers(sweep):
  _, out, summary, _ = sweep
  rows = list(csv.DictReader(io.StringIO(Path(out, "table.csv").read_text())))
  assert len(rows) == len(summary.rows)
  for parsed, row in zip(rows, summary.rows):
    assert (parsed["cell"], int(parsed["bptt"])) == row.values
    assert int(parsed["n"]) == row.n
    for m in summary.metrics:
      mean, std = row.stats[m]
      assert float(parsed[f"{m}_mean"]) == mean
      if np.isnan(std):
        assert parsed[f"{m}_std"] == ""
      else:
        assert float(parsed[f"{m}_std"]) == std
    assert float(parsed["floor_ppl"]) == row.floor


def test_markdown_has_one_row_per_group_and_is_printed(sweep):
  _, out, summary, _ = sweep
  md = Path(out, "table.md").read_text()
  table = [line for line in md.splitlines() if line.startswith("|")]
  assert table[0].split("|")[1:4] == [" cell ", " bptt ", " n "]
  assert len(table) == 2 + len(summary.rows)
  assert "| rnn_tanh | 16 | 1 |" in md
  assert "± -" in md and md.count(" ± ") >= 2 * len(summary.rows)
  # One process made every run: one commit and device for all of them.
  note = tables.provenance_note(summary)
  assert note.startswith("Made (or resumed) by ") and note in md
  assert note.endswith(f"({len(RUNS)} runs).")


def test_latex_is_a_booktabs_tabular_with_escapes(sweep):
  _, out, _, _ = sweep
  tex = Path(out, "table.tex").read_text()
  assert tex.startswith("\\begin{tabular}{llrrrr}")
  for word in ("\\toprule", "\\midrule", "\\bottomrule", "$\\pm$"):
    assert word in tex
  assert "test\\_ppl" in tex and "rnn\\_tanh" in tex
  assert "test_ppl" not in tex and "rnn_tanh" not in tex


def test_pivot_has_cells_down_and_bptt_across(sweep):
  _, out, summary, _ = sweep
  pivot = Path(out, "pivot.md").read_text()
  assert "| cell \\ bptt | 4 | 16 |" in pivot
  lstm4 = summary.rows[0].stats["test_ppl"]
  assert f"{tables.format_stat(*lstm4)} (2)" in pivot
  assert pivot.count("| rnn_tanh |") == len(summary.metrics)


def test_figures_are_png_files(sweep):
  _, out, _, written = sweep
  for name in ("valid_curves.png", "ppl_vs_bptt.png"):
    path = Path(out, name)
    assert str(path) in written
    assert path.read_bytes()[:8] == PNG_SIGNATURE
  assert not [f for f in os.listdir(out) if f.endswith(".tmp")]


def test_group_by_pools_the_other_keys(sweep):
  root, _, _, _ = sweep
  grouping = ablation.group_runs(ablation.find_runs(str(root)), ["cell"])
  assert grouping.keys == ("model.cell",)
  assert grouping.pooled == ("data.bptt",)
  summary = ablation.summarise(grouping, ["test_ppl"])
  assert [r.n for r in summary.rows] == [3, 2]
  assert "Pooled within a row" in tables.to_markdown(summary)
  assert tables.to_pivot(summary) is None
  assert ablation_figures.ppl_vs_bptt_figure(summary) is None


def test_tune_keeps_the_best_validation_row_per_other_keys(sweep):
  _, _, summary, _ = sweep
  tuned = ablation.tune(summary, "bptt", "valid_ppl")
  want = {}
  for row in summary.rows:
    cell, valid = row.values[0], row.stats["valid_ppl"][0]
    if cell not in want or valid < want[cell].stats["valid_ppl"][0]:
      want[cell] = row
  assert tuned.rows == tuple(want.values())
  assert tuned.tuned == (("data.bptt", "valid_ppl"),)
  assert "`data.bptt` tuned" in tables.to_markdown(tuned)
  with pytest.raises(config_lib.ConfigError, match="tune_metric"):
    ablation.tune(summary, "bptt", "valid_acc")
  with pytest.raises(
      config_lib.ConfigError, match="--tune 'hidden' is not one of"
  ):
    ablation.tune(summary, "hidden", "valid_ppl")


def test_a_copied_run_is_flagged_as_a_repeat(sweep, tmp_path):
  root, _, _, _ = sweep
  for name in ("a", "b"):
    shutil.copytree(root / run_name("lstm", 16, 0), tmp_path / name)
  summary, _ = tables.build_tables([str(tmp_path)], str(tmp_path / "t"))
  (row,) = summary.rows
  assert (row.n, row.repeats, row.stats["test_ppl"][1]) == (2, 1, 0.0)
  assert "1 run with the config and seed of another" in (
      tables.to_markdown(summary)
  )


def test_formatting():
  assert tables.format_stat(73.93, 0.7086) == "73.93 ± 0.71"
  assert tables.format_stat(1.5432, 0.01234) == "1.543 ± 0.012"
  assert tables.format_stat(3283.4, float("nan")) == "3,283 ± -"
  assert tables.format_stat(73.93, 0.7, tex=True) == "73.93 $\\pm$ 0.70"
  assert ablation.format_value((150, 30, 30)) == "(150, 30, 30)"


def test_short_names_and_sorting():
  assert ablation.short_names(["model.cell", "data.bptt"]) == ("cell", "bptt")
  assert ablation.short_names(["name", "optim.name", "model.hidden"]) == (
      "name",
      "optim.name",
      "hidden",
  )
  assert sorted([16, "a", 4, 2.5], key=ablation.sort_key) == [2.5, 4, 16, "a"]
  assert tables.tex_escape("a_b & 50%") == "a\\_b \\& 50\\%"


def test_missing_folder_and_unknown_metric_are_user_errors(sweep, tmp_path):
  root, _, _, _ = sweep
  with pytest.raises(FileNotFoundError):
    ablation.find_runs(str(tmp_path / "nowhere"))
  with pytest.raises(config_lib.ConfigError, match="no run directories"):
    tables.build_tables([str(tmp_path)])
  with pytest.raises(config_lib.ConfigError, match="metric 'test_bpc'"):
    tables.build_tables([str(root)], str(tmp_path / "t"), ["test_bpc"])


def cli(*args):
  return subprocess.run(
      [sys.executable, "-m", "experiments.tables", *args],
      cwd=ROOT,
      capture_output=True,
      text=True,
      timeout=120,
  )


def test_cli_prints_the_table_and_fails_in_one_line_on_an_empty_folder(
    sweep, tmp_path
):
  root, out, _, _ = sweep
  proc = cli(f"--runs={root}", f"--out={tmp_path / 'cli'}")
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert proc.stdout == Path(out, "table.md").read_text()
  proc = cli(f"--runs={tmp_path / 'cli'}")
  assert proc.returncode == 1
  lines = proc.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("error: no run directories")


def test_epochs_and_steps_make_rows_but_logging_does_not(sweep, tmp_path):
  root, _, _, _ = sweep

  def copy(name, seed, **train):
    shutil.copytree(root / run_name("lstm", 16, 0), tmp_path / name)
    path = tmp_path / name / rundir.CONFIG_FILE
    values = json.loads(path.read_text())
    values["train"].update(seed=seed, **train)
    path.write_text(json.dumps(values))

  copy("a", 0)
  copy("b", 1, log_every=7, checkpoint_every=14, num_devices=2)
  copy("c", 0, num_epochs=5)
  copy("d", 0, max_steps=11)
  summary, _ = tables.build_tables([str(tmp_path)], str(tmp_path / "t"))
  assert not summary.grouping.incomplete, summary.grouping.incomplete
  keys = summary.grouping.keys
  assert set(keys) == {"train.num_epochs", "train.max_steps"}
  assert sorted(r.n for r in summary.rows) == [1, 1, 2]
  (pair,) = [r for r in summary.rows if r.n == 2]
  assert sorted(pair.seeds) == [0, 1]
