"""AWD-LSTM's training techniques: NT-ASGD (iterate averaging triggered by
validation), early stopping by the same rule, finetuning from a run, and
variable-length truncated BPTT with its learning-rate scaling."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from experiments.configs import smoke
from rnnlm_jax import batching
from rnnlm_jax import checkpoint
from rnnlm_jax import config as config_lib
from rnnlm_jax import corpus as corpus_lib
from rnnlm_jax import optim
from rnnlm_jax import runs as runs_lib
from rnnlm_jax import steps
from rnnlm_jax import tasks as tasks_lib
from rnnlm_jax import train
from rnnlm_jax.config import OptimConfig


def tiny_config(**overrides):
  c = smoke.get_config()
  c.data.synthetic_sentences = (150, 30, 30)
  c.model.dropout = 0.0
  c.train.log_every = 5
  c.train.checkpoint_every = 10
  c.train.eval_every = 10
  c.train.num_epochs = 2
  cfg = config_lib.from_dict(c.to_dict())
  return config_lib.replace(cfg, **overrides) if overrides else cfg


def records(workdir):
  """metrics.jsonl's rows without their timings."""
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return runs_lib.without_timings(json.loads(line) for line in f)


def latest_state(workdir, cfg):
  (task,) = tasks_lib.make_tasks([cfg])
  spe = steps.num_segments(task.train_batches(0))
  lr_scaled = bool(task.bptt_lengths)
  tx, _ = optim.make_optimizer(cfg.optim, spe, cfg.train.num_epochs, lr_scaled)
  target = steps.init_train_state(jax.random.key(0), task, tx)
  return checkpoint.restore(workdir, "latest", target)


def assert_trees_equal(a, b):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_array_equal(x, y)


# Iterate averaging.


def test_the_average_is_the_mean_of_the_iterates_since_the_trigger():
  cfg = OptimConfig(
      name="sgd", learning_rate=0.1, clip_norm=0.0, averaging="nt"
  )
  tx, _ = optim.make_optimizer(cfg, 10, 1)
  params = {"w": jnp.array([1.0, -2.0]), "b": jnp.array(0.5)}
  state = tx.init(params)
  iterates = []
  update = jax.jit(tx.update)
  for t in range(7):
    if t == 3:
      state = optim.start_averaging(state, True)
    grads = jax.tree.map(lambda p: jnp.sin(p + t), params)
    updates, state = update(grads, state, params)
    params = optax.apply_updates(params, updates)
    if t >= 3:
      iterates.append(params)
  assert bool(optim.is_averaging(state))
  expected = jax.tree.map(lambda *xs: np.mean(xs, axis=0), *iterates)
  got = optim.eval_params(params, state)
  for k in params:
    np.testing.assert_allclose(got[k], expected[k], rtol=1e-6)


def test_before_the_trigger_evaluation_uses_the_iterate():
  cfg = OptimConfig(name="sgd", learning_rate=0.1, averaging="nt")
  tx, _ = optim.make_optimizer(cfg, 10, 1)
  params = {"w": jnp.ones(3)}
  state = tx.init(params)
  updates, state = tx.update({"w": jnp.ones(3)}, state, params)
  params = optax.apply_updates(params, updates)
  assert not bool(optim.is_averaging(state))
  assert_trees_equal(optim.eval_params(params, state), params)
  # Switched on, but no iterate since: still the iterate.
  state = optim.start_averaging(state, True)
  assert_trees_equal(optim.eval_params(params, state), params)


def test_always_averages_from_the_first_step_and_stacked_trials_choose_apart():
  cfg = OptimConfig(name="sgd", learning_rate=0.5, averaging="always")
  tx, _ = optim.make_optimizer(cfg, 10, 1)
  params = {"w": jnp.zeros(2)}
  state = tx.init(params)
  seen = []
  update = jax.jit(tx.update)
  for t in range(4):
    updates, state = update({"w": jnp.full(2, t + 1.0)}, state, params)
    params = optax.apply_updates(params, updates)
    seen.append(params["w"])
  np.testing.assert_allclose(
      optim.eval_params(params, state)["w"], np.mean(seen, 0), rtol=1e-6
  )
  # Two trials stacked, averaging in the second only.
  nt = OptimConfig(name="sgd", learning_rate=0.5, averaging="nt")
  tx, _ = optim.make_optimizer(nt, 10, 1)
  stacked = steps.stack([tx.init({"w": jnp.zeros(2)})] * 2)
  stacked = optim.start_averaging(stacked, np.array([False, True]))
  np.testing.assert_array_equal(optim.is_averaging(stacked), [False, True])


@pytest.mark.parametrize(
    "history, value, n, fires",
    [
        ([3.0, 2.0], 2.5, 1, False),  # Not worse than 3.0, the best but 1.
        ([3.0, 2.0, 2.5], 2.6, 1, True),  # Worse than 2.0.
        ([3.0, 2.0, 2.5], 2.6, 3, False),  # Only 3 so far: not more than n.
        ([5.0, 4.0, 3.0, 2.0, 1.0, 0.9], 4.5, 5, False),  # min([5.0]) = 5.
        ([5.0, 4.0, 3.0, 2.0, 1.0, 0.9], 5.5, 5, True),
        ([1.0, 2.0, 3.0], 9.0, 0, False),  # n = 0: off.
    ],
)
def test_the_non_monotone_rule(history, value, n, fires):
  assert runs_lib._nonmono(history, value, n) is fires


def test_nt_asgd_triggers_where_its_rule_says_and_reports_the_average(
    tmp_path, monkeypatch
):
  """Scripted validation losses: the fourth validation (2.4) is the first
  worse than the best before the previous one (2.0; nonmono 1)."""
  from rnnlm_jax.tasks import lm

  script = iter([3.0, 2.0, 2.5, 2.4, 2.3, 2.2, 2.1, 2.0, 1.9])
  real = lm.LanguageModel.evaluate

  def scripted(self, params, split, k=1):
    out = real(self, params, split, k)
    if split == "valid":
      out[0]["valid_loss"] = next(script)
    return out

  monkeypatch.setattr(lm.LanguageModel, "evaluate", scripted)
  cfg = tiny_config(
      optim={
          "name": "sgd",
          "learning_rate": 0.5,
          "averaging": "nt",
          "nonmono": 1,
      }
  )
  logs = []
  train.train_and_evaluate(cfg, str(tmp_path), log=logs.append)
  started = [l for l in logs if "averaging the iterates" in l]
  assert len(started) == 1 and started[0].startswith("epoch 0.")
  valid = [r for r in records(str(tmp_path)) if "valid_loss" in r]
  assert [r["valid_loss"] for r in valid[:3]] == [3.0, 2.0, 2.5]
  assert started[0].startswith(f"epoch {valid[3]['epoch']:.2f}")
  state, record = latest_state(str(tmp_path), cfg)
  assert bool(optim.is_averaging(state.opt_state))
  assert record["valid_history"] == [r["valid_loss"] for r in valid]
  # The 'best' slot holds what was validated: the average at its step.
  best_params, _ = checkpoint.restore_params(str(tmp_path), "best")
  if checkpoint.latest_step(str(tmp_path), "best") == int(state.step):
    assert_trees_equal(
        best_params, optim.eval_params(state.params, state.opt_state)
    )


def test_nt_asgd_resumes_exactly_across_its_trigger(tmp_path, monkeypatch):
  # The rule itself is tested above; here it fires at the third validation.
  monkeypatch.setattr(
      runs_lib, "_nonmono", lambda h, v, n: n == 1 and len(h) == 2
  )
  cfg = tiny_config(
      optim={
          "name": "sgd",
          "learning_rate": 0.5,
          "averaging": "nt",
          "nonmono": 1,
      }
  )
  full, resumed = str(tmp_path / "full"), str(tmp_path / "resumed")
  train.train_and_evaluate(cfg, full, log=lambda s: None)
  stopped = config_lib.replace(cfg, train={"max_steps": 40})  # After 30.
  train.train_and_evaluate(stopped, resumed, log=lambda s: None)
  state_40, _ = checkpoint.restore(
      resumed, "latest", latest_state(full, cfg)[0]
  )
  assert bool(optim.is_averaging(state_40.opt_state))
  train.train_and_evaluate(cfg, resumed, log=lambda s: None)
  assert records(resumed) == records(full)
  a, record_a = latest_state(full, cfg)
  b, record_b = latest_state(resumed, cfg)
  assert_trees_equal(a, b)
  assert record_a["valid_history"] == record_b["valid_history"]
  assert_trees_equal(
      checkpoint.restore_params(full, "best")[0],
      checkpoint.restore_params(resumed, "best")[0],
  )


def test_early_stop_ends_training_and_a_rerun_does_not_train_on(
    tmp_path, monkeypatch
):
  monkeypatch.setattr(
      runs_lib, "_nonmono", lambda h, v, n: n == 2 and len(h) == 3
  )
  cfg = tiny_config(train={"early_stop": 2})
  logs = []
  results = train.train_and_evaluate(cfg, str(tmp_path), log=logs.append)
  assert any("training stops" in l for l in logs)
  valid_steps = [r["step"] for r in records(str(tmp_path)) if "valid_loss" in r]
  assert valid_steps == [10, 20, 30, 40]
  assert checkpoint.latest_step(str(tmp_path), "latest") == 40
  assert "test_ppl" in results
  again = train.train_and_evaluate(cfg, str(tmp_path), log=lambda s: None)
  assert again["test_ppl"] == results["test_ppl"]
  assert checkpoint.latest_step(str(tmp_path), "latest") == 40


def test_finetuning_starts_from_a_run_and_refuses_another_model(tmp_path):
  source = str(tmp_path / "source")
  cfg = tiny_config(train={"num_epochs": 1})
  train.train_and_evaluate(cfg, source, log=lambda s: None)
  best, _ = checkpoint.restore_params(source, "best")
  tuned = config_lib.replace(
      cfg,
      optim={"name": "sgd", "learning_rate": 0.0, "averaging": "always"},
      train={"init_from": source, "max_steps": 5},
  )
  work = str(tmp_path / "tuned")
  train.train_and_evaluate(tuned, work, log=lambda s: None)
  state, _ = latest_state(work, tuned)
  # Learning rate 0: the parameters, and their average, are the source's.
  assert_trees_equal(state.params, best)
  assert_trees_equal(optim.eval_params(state.params, state.opt_state), best)
  other = config_lib.replace(tuned, model={"hidden": 12})
  with pytest.raises(train.IncompatibleRun, match="do not fit"):
    train.train_and_evaluate(other, str(tmp_path / "x"), log=lambda s: None)
  missing = config_lib.replace(tuned, train={"init_from": str(tmp_path / "no")})
  with pytest.raises(train.IncompatibleRun, match="train.init_from"):
    train.train_and_evaluate(missing, str(tmp_path / "y"), log=lambda s: None)


# Variable-length BPTT.


def test_lengths_are_drawn_around_bptt_and_half_of_it():
  rng = np.random.default_rng(0)
  allowed = batching.bptt_lengths(70, 5.0, 5)
  assert allowed == tuple(range(20, 90, 5))
  lengths = batching.draw_bptt_lengths(rng, 20000, 70, 5.0, 0.05, 5)
  assert set(lengths) <= set(allowed)
  short = lengths < 55
  assert abs(short.mean() - 0.05) < 0.01
  assert abs(lengths[~short].mean() - 70) < 0.3
  assert abs(lengths[short].mean() - 35) < 1.0
  assert batching.bptt_lengths(8, 2.0, 1) == tuple(range(5, 15))
  assert batching.bptt_lengths(8, 2.0, 4) == (8, 12, 16)


def test_variable_segments_cover_the_stream_in_order():
  ids_BN = np.arange(3 * 400).reshape(3, 400)
  rng = np.random.default_rng(1)
  lengths, per_length = batching.variable_segments(ids_BN, 20, 4.0, 0.1, 2, rng)
  assert len(lengths) == batching.num_segments(ids_BN, 20)
  allowed = batching.bptt_lengths(20, 4.0, 2)
  taken = [0] * len(allowed)
  xs = []
  for length in lengths:
    k = allowed.index(length)
    x, y = per_length[k][0][taken[k]], per_length[k][1][taken[k]]
    taken[k] += 1
    np.testing.assert_array_equal(y, x + 1)  # y is x one step ahead.
    xs.append(x)
  stream = np.concatenate(xs, axis=1)
  start = stream[0, 0]
  np.testing.assert_array_equal(
      stream, ids_BN[:, start : start + stream.shape[1]]
  )


def test_an_epoch_is_a_function_of_seed_and_epoch():
  cfg = tiny_config(
      data={"variable_bptt": True, "bptt_std": 2.0, "bptt_quantum": 1}
  )
  corpus = corpus_lib.load_corpus(cfg.data)
  a = corpus_lib.train_batches(corpus, cfg.data, 1, 0)
  b = corpus_lib.train_batches(corpus, cfg.data, 1, 0)
  c = corpus_lib.train_batches(corpus, cfg.data, 2, 0)
  assert_trees_equal(a, b)
  assert not np.array_equal(a["schedule"], c["schedule"])
  fixed = corpus_lib.train_batches(
      corpus, config_lib.replace(cfg, data={"variable_bptt": False}).data, 0, 0
  )
  assert len(a["schedule"]) == len(fixed["x"])


def test_a_segment_s_learning_rate_is_scaled_by_its_length(tmp_path):
  """One SGD step equals lr * length / bptt times the clipped gradient of
  the scheduled segment's loss."""
  cfg = tiny_config(
      data={"variable_bptt": True, "bptt_std": 2.0, "bptt_quantum": 4},
      optim={"name": "sgd", "learning_rate": 0.7, "clip_norm": 0.05},
  )
  (task,) = tasks_lib.make_tasks([cfg])
  batches = jax.device_put(task.train_batches(0))
  tx, _ = optim.make_optimizer(cfg.optim, 10, 1, lr_scaled=True)
  state = steps.init_train_state(jax.random.key(0), task, tx)
  params0 = jax.tree.map(jnp.array, state.params)  # The state is donated.
  step = steps.make_train_step(task, tx)
  new_state, _ = step(state, batches)
  batch = steps.select_segment(batches, 0)
  length = task.bptt_lengths[int(batch["bucket"])]
  grads = jax.grad(
      lambda p: task.loss(p, task.init_carry(), batch, None, {"dropout": 0.0})[
          0
      ]
  )(params0)
  norm = optax.tree.norm(grads)
  factor = 0.7 * length / cfg.data.bptt * min(1.0, 0.05 / float(norm))
  expected = jax.tree.map(lambda p, g: p - factor * g, params0, grads)
  for x, y in zip(jax.tree.leaves(new_state.params), jax.tree.leaves(expected)):
    np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-7)


def test_variable_bptt_trains_compiles_once_and_resumes_exactly(tmp_path):
  cfg = tiny_config(
      data={"variable_bptt": True, "bptt_std": 2.0, "bptt_quantum": 4},
      optim={"name": "sgd", "learning_rate": 1.0, "averaging": "always"},
  )
  full, resumed = str(tmp_path / "full"), str(tmp_path / "resumed")
  logs = []
  train.train_and_evaluate(cfg, full, log=logs.append)
  assert sum("compiled the train step" in l for l in logs) == 1
  assert any("variable-length BPTT around 8" in l for l in logs)
  losses = [r["train_loss"] for r in records(full) if "train_loss" in r]
  assert losses[-1] < losses[0]
  stopped = config_lib.replace(cfg, train={"max_steps": 30})
  train.train_and_evaluate(stopped, resumed, log=lambda s: None)
  train.train_and_evaluate(cfg, resumed, log=lambda s: None)
  assert records(resumed) == records(full)
  assert_trees_equal(latest_state(full, cfg)[0], latest_state(resumed, cfg)[0])


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            {"optim": {"averaging": "nt", "schedule": "plateau"}},
            "optim.averaging",
        ),
        (
            {"data": {"variable_bptt": True, "mode": "sentence"}},
            "data.variable_bptt is for language models",
        ),
        ({"optim": {"averaging": "sometimes"}}, "optim.averaging="),
        ({"data": {"bptt_quantum": 0}}, "data.bptt_quantum must be positive"),
        ({"train": {"early_stop": -1}}, "train.early_stop must be >= 0"),
    ],
)
def test_bad_settings_are_refused_in_one_line(overrides, message):
  with pytest.raises(config_lib.ConfigError, match=message):
    tiny_config(**overrides)
