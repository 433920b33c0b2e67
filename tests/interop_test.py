"""PyTorch word_language_model weights against an independent NumPy reference.

The PyTorch-layout arrays are built by hand; the reference runs PyTorch's
documented nn.LSTM / nn.GRU / nn.RNN equations on them directly, so the JAX
model is checked against the equations, not against its own conversion.
"""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnnlm_jax import interop
from rnnlm_jax import losses
from rnnlm_jax import models
from rnnlm_jax.config import ModelConfig

V, L, B, T = 11, 2, 3, 7
GATES = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}
TORCH_CELLS = sorted(GATES)


def torch_arrays(cell, e, h, tied, seed=0):
  """A word_language_model state_dict of random float32 arrays."""
  rng = np.random.default_rng(seed)
  u = lambda *shape: rng.uniform(-0.5, 0.5, shape).astype(np.float32)
  g = GATES[cell] * h
  a = {"encoder.weight": u(V, e)}
  for k in range(L):
    a[f"rnn.weight_ih_l{k}"] = u(g, e if k == 0 else h)
    a[f"rnn.weight_hh_l{k}"] = u(g, h)
    a[f"rnn.bias_ih_l{k}"] = u(g)
    a[f"rnn.bias_hh_l{k}"] = u(g)
  a["decoder.weight"] = a["encoder.weight"].copy() if tied else u(V, h)
  a["decoder.bias"] = u(V)
  return a


def sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


def reference_step(cell, w_ih, w_hh, b_ih, b_hh, x, h, c):
  """One step of PyTorch's documented equations; rows are gate blocks."""
  gi = x @ w_ih.T + b_ih
  gh = h @ w_hh.T + b_hh
  if cell == "lstm":
    i, f, g, o = (
        gi_k + gh_k
        for gi_k, gh_k in zip(np.split(gi, 4, -1), np.split(gh, 4, -1))
    )
    c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
    return sigmoid(o) * np.tanh(c), c
  if cell == "gru":
    i_r, i_z, i_n = np.split(gi, 3, -1)
    h_r, h_z, h_n = np.split(gh, 3, -1)
    r, z = sigmoid(i_r + h_r), sigmoid(i_z + h_z)
    n = np.tanh(i_n + r * h_n)
    return (1 - z) * n + z * h, c
  act = np.tanh if cell == "rnn_tanh" else (lambda a: np.maximum(a, 0.0))
  return act(gi + gh), c


def reference_lm(cell, a, x_BT):
  """(logits_BTV, [(h, c) per layer]) in float64 from zero state."""
  a = {k: np.asarray(v, np.float64) for k, v in a.items()}
  layer_in = a["encoder.weight"][x_BT]  # [B, T, E]
  finals = []
  for k in range(L):
    w = [
        a[f"rnn.{n}_l{k}"]
        for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    ]
    h_dim = w[1].shape[1]
    h = np.zeros((x_BT.shape[0], h_dim))
    c = np.zeros_like(h)
    outs = []
    for t in range(x_BT.shape[1]):
      h, c = reference_step(cell, *w, layer_in[:, t], h, c)
      outs.append(h)
    layer_in = np.stack(outs, axis=1)
    finals.append((h, c))
  logits = layer_in @ a["decoder.weight"].T + a["decoder.bias"]
  return logits, finals


def tokens(seed=1, length=T + 1):
  return np.random.default_rng(seed).integers(0, V, (B, length))


def reference_ppl(logits_BTV, y_BT):
  m = logits_BTV.max(-1, keepdims=True)
  logp = logits_BTV - m - np.log(np.exp(logits_BTV - m).sum(-1, keepdims=True))
  nll = -np.take_along_axis(logp, y_BT[..., None], -1)
  return math.exp(nll.mean())


# (embed, hidden, tied, extension)
SETUPS = [(5, 6, False, ".npz"), (6, 6, True, ".safetensors")]


@pytest.fixture(
    params=[(c, s) for c in TORCH_CELLS for s in SETUPS],
    ids=lambda p: f"{p[0]}-{'tied' if p[1][2] else 'untied'}" f"{p[1][3]}",
)
def imported(request, tmp_path):
  cell, (e, h, tied, ext) = request.param
  arrays = torch_arrays(cell, e, h, tied)
  path = str(tmp_path / f"model{ext}")
  interop.save_state_dict_arrays(path, arrays)
  params, cfg = interop.load_torch_lm(path, cell)
  return cell, arrays, params, cfg, (e, h, tied)


def run_jax(params, cfg, x_BT):
  return models.apply_lm(
      params, cfg, models.init_carry(cfg, B), jnp.asarray(x_BT)
  )


def test_inferred_config(imported):
  cell, _, _, cfg, (e, h, tied) = imported
  assert cfg == ModelConfig(
      cell=cell,
      vocab_size=V,
      embed_dim=e,
      hidden=h,
      num_layers=L,
      tie_weights=tied,
  )


def test_logits_and_carry_match_torch_equations(imported):
  cell, arrays, params, cfg, _ = imported
  x_BT = tokens()[:, :T]
  logits, carry = run_jax(params, cfg, x_BT)
  ref_logits, ref_finals = reference_lm(cell, arrays, x_BT)
  assert logits.shape == (B, T, V) and logits.dtype == jnp.float32
  np.testing.assert_allclose(logits, ref_logits, atol=1e-5, rtol=0)
  assert len(carry) == L
  for layer_carry, (h, c) in zip(carry, ref_finals):
    np.testing.assert_allclose(layer_carry[0], h, atol=1e-5, rtol=0)
    if cell == "lstm":
      np.testing.assert_allclose(layer_carry[1], c, atol=1e-5, rtol=0)
    else:
      assert len(layer_carry) == 1


def test_perplexity_matches_reference(imported):
  cell, arrays, params, cfg, _ = imported
  seq = tokens(seed=2)
  x_BT, y_BT = seq[:, :-1], seq[:, 1:]
  logits, _ = run_jax(params, cfg, x_BT)
  jax_ppl = math.exp(float(losses.token_nll(logits, jnp.asarray(y_BT)).mean()))
  ref_ppl = reference_ppl(reference_lm(cell, arrays, x_BT)[0], y_BT)
  assert jax_ppl == pytest.approx(ref_ppl, rel=1e-5)
  assert 1.0 < ref_ppl < 10 * V


def test_round_trip_is_exact(imported, tmp_path):
  _, _, params, cfg, (_, _, tied) = imported
  path = str(tmp_path / "again.safetensors")
  interop.save_state_dict_arrays(path, interop.params_to_torch(params, cfg))
  again = interop.load_state_dict_arrays(path)
  assert interop.infer_model_config(again, cfg.cell) == cfg
  back = interop.params_from_torch(again, cfg)
  assert jax.tree.structure(back) == jax.tree.structure(params)
  for x, y in zip(jax.tree.leaves(back), jax.tree.leaves(params)):
    assert x.dtype == y.dtype == jnp.float32
    np.testing.assert_array_equal(x, y)
  assert ("w" not in back["out"]) == tied


def test_sgd_on_imported_weights_moves_the_merged_bias_half_as_far():
  """What interop's docstring warns of: PyTorch's SGD moves b_ih and b_hh by
  the same gradient g, so their sum (the imported bias) by 2g; the imported
  model's one bias moves by g. Everything else takes the same step."""
  lr = 0.5
  arrays = torch_arrays("lstm", 5, 6, tied=False)
  cfg = interop.infer_model_config(arrays, "lstm")
  seq = tokens(seed=3)
  x_BT, y_BT = jnp.asarray(seq[:, :-1]), jnp.asarray(seq[:, 1:])

  def loss(params):
    logits, _ = models.apply_lm(params, cfg, models.init_carry(cfg, B), x_BT)
    return losses.token_nll(logits, y_BT).mean()

  def torch_loss(a):  # The loss as a function of PyTorch's own parameters.
    layers = [
        {
            "w_ih": a[f"rnn.weight_ih_l{k}"].T,
            "w_hh": a[f"rnn.weight_hh_l{k}"].T,
            "b": a[f"rnn.bias_ih_l{k}"] + a[f"rnn.bias_hh_l{k}"],
        }
        for k in range(L)
    ]
    out = {"w": a["decoder.weight"].T, "b": a["decoder.bias"]}
    return loss({"embed": a["encoder.weight"], "layers": layers, "out": out})

  ours = interop.params_from_torch(arrays, cfg)
  grads = jax.jit(jax.grad(loss))(ours)
  stepped = jax.tree.map(lambda p, g: p - lr * g, ours, grads)
  a = {k: jnp.asarray(v) for k, v in arrays.items()}
  torch_grads = jax.jit(jax.grad(torch_loss))(a)
  np.testing.assert_allclose(
      torch_grads["rnn.bias_ih_l0"], torch_grads["rnn.bias_hh_l0"], rtol=1e-6
  )
  torch_stepped = interop.params_from_torch(
      {k: np.asarray(a[k] - lr * torch_grads[k]) for k in a}, cfg
  )
  for k in range(L):
    p, t, b = (
        stepped["layers"][k],
        torch_stepped["layers"][k],
        ours["layers"][k],
    )
    np.testing.assert_allclose(p["w_hh"], t["w_hh"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        t["b"] - b["b"], 2 * (p["b"] - b["b"]), rtol=1e-4, atol=1e-7
    )
  assert abs(float(loss(stepped)) - float(loss(torch_stepped))) > 1e-6


@pytest.mark.parametrize("cell", ["lstm", "rnn_relu"])
def test_bias_split_puts_everything_in_bias_ih(cell):
  cfg = ModelConfig(cell=cell, vocab_size=V, hidden=6, num_layers=L)
  params = models.init_lm(jax.random.PRNGKey(0), cfg)
  a = interop.params_to_torch(params, cfg)
  np.testing.assert_array_equal(a["rnn.bias_ih_l0"], params["layers"][0]["b"])
  assert not a["rnn.bias_hh_l0"].any()


def test_gru_bias_split():
  h = 6
  cfg = ModelConfig(cell="gru", vocab_size=V, hidden=h, num_layers=L)
  params = models.init_lm(jax.random.PRNGKey(0), cfg)
  a = interop.params_to_torch(params, cfg)
  np.testing.assert_array_equal(a["rnn.bias_ih_l1"], params["layers"][1]["b"])
  assert not a["rnn.bias_hh_l1"][: 2 * h].any()
  np.testing.assert_array_equal(
      a["rnn.bias_hh_l1"][2 * h :], params["layers"][1]["b_hn"]
  )


def test_benchmark_names_with_prefixes(tmp_path):
  a = torch_arrays("lstm", 5, 6, tied=False)
  renamed = {
      "encoder.weight": "emb.weight",
      "decoder.weight": "out.weight",
      "decoder.bias": "out.bias",
  }
  wrapped = {"module._orig_mod." + renamed.get(k, k): v for k, v in a.items()}
  wrapped["module._orig_mod.bn.num_batches_tracked"] = np.array(3)
  path = str(tmp_path / "bench.safetensors")
  interop.save_state_dict_arrays(path, wrapped)
  params, cfg = interop.load_torch_lm(path, "lstm")
  assert not cfg.tie_weights and cfg.embed_dim == 5
  np.testing.assert_array_equal(params["out"]["w"], a["decoder.weight"].T)
  np.testing.assert_array_equal(params["embed"], a["encoder.weight"])


def test_tied_when_decoder_weight_absent():
  a = torch_arrays("gru", 6, 6, tied=False)
  del a["decoder.weight"]
  cfg = interop.infer_model_config(
      {"_orig_mod." + k: v for k, v in a.items()}, "gru"
  )
  assert cfg.tie_weights and cfg.hidden == 6
  params = interop.params_from_torch(a, cfg)
  assert "w" not in params["out"]


def test_untied_when_decoder_weight_differs():
  assert not interop.infer_model_config(
      torch_arrays("lstm", 6, 6, tied=False), "lstm"
  ).tie_weights


def test_word_list(tmp_path):
  path = tmp_path / "idx2word.txt"
  path.write_text("<unk>\nthe\r\ncat\n<eos>\n", encoding="utf-8")
  words = interop.read_word_list(str(path))
  assert words == ["<unk>", "the", "cat", "<eos>"]
  vocab = interop.vocab_from_word_list(words)
  assert vocab.tokens == tuple(words)
  path.write_text("a\n\nb\n", encoding="utf-8")
  with pytest.raises(ValueError, match="empty line"):
    interop.read_word_list(str(path))


# ---------------------------------------------------------------- errors ----

CFG = ModelConfig(
    cell="lstm", vocab_size=V, embed_dim=5, hidden=6, num_layers=L
)


def test_missing_key():
  a = torch_arrays("lstm", 5, 6, tied=False)
  del a["rnn.bias_hh_l1"]
  with pytest.raises(ValueError, match="missing key 'rnn.bias_hh_l1'"):
    interop.params_from_torch(a, CFG)


def test_missing_decoder_weight_when_untied():
  a = torch_arrays("lstm", 5, 6, tied=False)
  del a["decoder.weight"]
  with pytest.raises(ValueError, match="missing key 'decoder.weight'"):
    interop.params_from_torch(a, CFG)


def test_wrong_shape():
  a = torch_arrays("lstm", 5, 6, tied=False)
  a["rnn.weight_ih_l1"] = a["rnn.weight_ih_l1"][:, :5]
  with pytest.raises(
      ValueError, match=r"'rnn.weight_ih_l1' has shape \(24, 5\)"
  ):
    interop.params_from_torch(a, CFG)


def test_extra_key():
  a = torch_arrays("lstm", 5, 6, tied=False)
  a["rnn.weight_ih_l0_reverse"] = a["rnn.weight_ih_l0"]
  with pytest.raises(
      ValueError, match="unexpected key 'rnn.weight_ih_l0_reverse'"
  ):
    interop.params_from_torch(a, CFG)


def test_extra_layer():
  a = torch_arrays("lstm", 5, 6, tied=False)
  with pytest.raises(ValueError, match="unexpected key 'rnn.bias_hh_l1'"):
    interop.params_from_torch(a, dataclasses.replace(CFG, num_layers=1))


def test_duplicate_names():
  a = torch_arrays("lstm", 5, 6, tied=False)
  a["emb.weight"] = a["encoder.weight"]
  with pytest.raises(ValueError, match="both mean 'encoder.weight'"):
    interop.infer_model_config(a, "lstm")


def test_tied_config_with_different_decoder():
  a = torch_arrays("lstm", 6, 6, tied=False)
  cfg = ModelConfig(
      cell="lstm", vocab_size=V, hidden=6, num_layers=L, tie_weights=True
  )
  with pytest.raises(ValueError, match="differs from encoder.weight"):
    interop.params_from_torch(a, cfg)


@pytest.mark.parametrize(
    "cell,given,phrase",
    [
        ("lstm", "gru", r"4\*H, which fits lstm.*'gru' needs 3\*H"),
        ("gru", "rnn_tanh", r"3\*H, which fits gru"),
        ("rnn_relu", "lstm", r"1\*H, which fits rnn_tanh or rnn_relu"),
    ],
)
def test_wrong_cell_for_gate_multiple(cell, given, phrase):
  with pytest.raises(ValueError, match="gate multiple mismatch: .*" + phrase):
    interop.infer_model_config(torch_arrays(cell, 5, 6, tied=False), given)


def test_rnn_sigmoid_rejected():
  a = torch_arrays("rnn_tanh", 5, 6, tied=False)
  with pytest.raises(
      ValueError, match="'rnn_sigmoid' has no PyTorch counterpart"
  ):
    interop.infer_model_config(a, "rnn_sigmoid")
  cfg = ModelConfig(cell="rnn_sigmoid", vocab_size=V, hidden=6)
  with pytest.raises(ValueError, match="no PyTorch counterpart"):
    interop.params_to_torch(models.init_lm(jax.random.PRNGKey(0), cfg), cfg)


def test_unknown_cell():
  with pytest.raises(ValueError, match="unknown cell 'lstmm'"):
    interop.infer_model_config(torch_arrays("lstm", 5, 6, False), "lstmm")


@pytest.mark.parametrize("name", ["model.pt", "model.pth", "model"])
def test_unknown_extension(tmp_path, name):
  with pytest.raises(ValueError, match="unknown state_dict file extension"):
    interop.load_state_dict_arrays(str(tmp_path / name))
  with pytest.raises(ValueError, match="unknown state_dict file extension"):
    interop.save_state_dict_arrays(str(tmp_path / name), {})


def test_missing_file(tmp_path):
  with pytest.raises(FileNotFoundError, match="state_dict file not found"):
    interop.load_state_dict_arrays(str(tmp_path / "absent.npz"))
