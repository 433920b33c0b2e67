"""Tests for rnnlm_jax.gradient_study: the study writes its tables and
figures, and a diverged run is reported, not hidden."""

import os

from experiments.configs import default
from rnnlm_jax import config as config_lib
from rnnlm_jax import gradient_study

BASE = config_lib.from_dict(default.get_config().to_dict())


def test_study_writes_its_figures_and_table(tmp_path):
  out = str(tmp_path)
  settings = gradient_study.QUICK._replace(cells=("rnn_tanh", "lstm"))
  gradient_study.run_study(out, settings, BASE)
  for name in ("gradients.png", "gradients.md", "clipping.png", "clipping.md"):
    assert os.path.getsize(os.path.join(out, name)) > 0
  with open(os.path.join(out, "gradients.md")) as f:
    table = f.read()
  for cell in ("rnn_tanh", "lstm"):
    assert f"| {cell} | no |" in table and f"| {cell} | yes |" in table
  assert "| rnn_tanh init 1.0 | no |" in table


def test_study_reports_a_diverged_run(tmp_path, monkeypatch):
  from rnnlm_jax import train

  def diverge(cfg, workdir, log):
    raise train.TrainingDiverged("non-finite training loss at step 7")

  monkeypatch.setattr(train, "train_and_evaluate", diverge)
  assert gradient_study.fresh_run(None, str(tmp_path / "run")) == ({}, True)
  runs = [
      {
          "clip": 0.0,
          "diverged": True,
          "valid_ppl": None,
          "step": [5, 6],
          "loss": [4.0, 9.0],
          "grad_norm": [1.0, 1e6],
      }
  ]
  table = gradient_study.clipping_table(runs, gradient_study.QUICK)
  assert "| 0 | 6 | 9 | 1e+06 | yes | - |" in table
  fig = gradient_study.plot_clipping(runs, gradient_study.QUICK)
  legend = fig.axes[0].get_legend().get_texts()[0].get_text()
  import matplotlib.pyplot as plt

  plt.close(fig)
  assert "NaN at step 7" in legend
