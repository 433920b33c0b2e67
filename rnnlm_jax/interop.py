"""Weights and vocabularies of PyTorch's word_language_model, without torch.

A PyTorch ``RNNModel`` (Embedding -> nn.LSTM / nn.GRU / nn.RNN -> Linear)
has this state_dict, with G = gates * H (4H LSTM, 3H GRU, H Elman):

  encoder.weight         [V, E]
  rnn.weight_ih_l{k}     [G, I]   I = E for k = 0, H above
  rnn.weight_hh_l{k}     [G, H]
  rnn.bias_ih_l{k}       [G]
  rnn.bias_hh_l{k}       [G]
  decoder.weight         [V, H]   absent, or equal to encoder.weight, if tied
  decoder.bias           [V]

A plain Embedding -> nn.LSTM -> Linear model names the same tensors
``emb.weight``, ``rnn.*``, ``out.weight``, ``out.bias``; both namings are read,
as is either one behind the ``module.`` (DataParallel) or ``_orig_mod.``
(torch.compile) prefix. Files are ``.npz`` or ``.safetensors``; from torch,
``np.savez(path, **{k: v.cpu().numpy() for k, v in sd.items()})`` writes one.

The JAX layout (see models.py and cells.py) transposes the weights
(w_ih [I, G], w_hh [H, G], out w [H, V]) and keeps one bias per layer:

  LSTM, Elman:  b = b_ih + b_hh
  GRU:          b = concat(b_ih_r + b_hh_r, b_ih_z + b_hh_z, b_ih_n),
                b_hn = b_hh_n  (PyTorch applies it inside the reset product)

Gate order is PyTorch's in both layouts (LSTM i, f, g, o; GRU r, z, n).

The imported model computes PyTorch's function exactly (the same
perplexity), but not with PyTorch's parameters: its two recurrent biases
become one (the GRU's candidate bias b_hn stays apart). Training moves each
PyTorch bias by its gradient g, which is the same for both, so their sum by
2g; here the single bias moves by g (and the clipping norm counts it once).
Fine-tuning imported weights, with SGD or any other optimizer, therefore
does not follow PyTorch's path: the first SGD update already changes the
loss differently (by about 3e-4, measured), and the runs drift apart from
there. To continue training on PyTorch's path, train in PyTorch.
Exported weights carry the whole bias in bias_ih and zeros in bias_hh.

Bad input (a file that is not a state_dict, a cell that does not fit the
weights, missing or misshapen keys, a bad word list) raises InteropError,
one line naming the problem.
"""

import os

import jax.numpy as jnp
import numpy as np

from rnnlm_jax import cells as cells_lib
from rnnlm_jax.config import ModelConfig

_PREFIXES = ("module.", "_orig_mod.")
_ALIASES = {
    "emb.weight": "encoder.weight",
    "out.weight": "decoder.weight",
    "out.bias": "decoder.bias",
}
_BUFFER_SUFFIXES = ("num_batches_tracked",)
_EXTENSIONS = (".npz", ".safetensors")


class InteropError(ValueError):
  """Weights or a word list that cannot be imported; the message is one
  line naming the file or key."""


# ----------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------


def _extension(path: str) -> str:
  ext = os.path.splitext(str(path))[1].lower()
  if ext not in _EXTENSIONS:
    raise InteropError(
        f"{path}: unknown state_dict file extension {ext or '(none)'!r}; "
        f"expected one of {list(_EXTENSIONS)} (torch .pt/.pth files need "
        "converting to .npz or .safetensors first)"
    )
  return ext


def load_state_dict_arrays(path: str) -> dict[str, np.ndarray]:
  """A state_dict saved as ``.npz`` or ``.safetensors``: key -> array."""
  ext = _extension(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"state_dict file not found: {path}")
  try:
    if ext == ".npz":
      with np.load(path, allow_pickle=False) as f:
        if not isinstance(f, np.lib.npyio.NpzFile):
          raise ValueError("it holds one array, not named ones")
        return {k: f[k] for k in f.files}
    from safetensors.numpy import load_file

    return dict(load_file(path))
  except Exception as e:  # pylint: disable=broad-except
    reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
    raise InteropError(
        f"{path} is not a state_dict saved as {ext}: {reason[:200]}"
    ) from None


def save_state_dict_arrays(path: str, arrays: dict[str, np.ndarray]) -> None:
  """Writes key -> array as ``.npz`` or ``.safetensors`` (by extension)."""
  ext = _extension(path)
  arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
  if ext == ".npz":
    with open(path, "wb") as f:
      np.savez(f, **arrays)
    return
  from safetensors.numpy import save_file

  save_file(arrays, path)


# ----------------------------------------------------------------------------
# Key names
# ----------------------------------------------------------------------------


def _strip_prefixes(key: str) -> str:
  stripped = True
  while stripped:
    stripped = False
    for prefix in _PREFIXES:
      if key.startswith(prefix):
        key, stripped = key[len(prefix) :], True
  return key


def canonical_arrays(arrays) -> dict[str, np.ndarray]:
  """The arrays under word_language_model names: wrapper prefixes stripped,
  ``emb.* / out.*`` renamed to ``encoder.* / decoder.*``, buffers such as
  ``num_batches_tracked`` dropped. Two keys landing on one name is an error.
  """
  out, origin = {}, {}
  for key, value in arrays.items():
    name = _strip_prefixes(key)
    name = _ALIASES.get(name, name)
    if name.rsplit(".", 1)[-1] in _BUFFER_SUFFIXES:
      continue
    if name in out:
      raise InteropError(
          f"state_dict keys {origin[name]!r} and {key!r} both mean {name!r}"
      )
    out[name], origin[name] = np.asarray(value), key
  return out


# ----------------------------------------------------------------------------
# Config and shapes
# ----------------------------------------------------------------------------


def _torch_cell(name: str) -> cells_lib.Cell:
  cell = cells_lib.get_cell(name)
  if name == "rnn_sigmoid":
    raise InteropError(
        "cell 'rnn_sigmoid' has no PyTorch counterpart (nn.RNN offers only "
        "tanh and relu); use rnn_tanh, rnn_relu, lstm or gru"
    )
  return cell


def _require(arrays, key):
  if key not in arrays:
    raise InteropError(f"state_dict is missing key {key!r}")
  return arrays[key]


def _cells_for_multiple(multiple: int) -> str:
  names = [
      n
      for n, c in cells_lib.CELLS.items()
      if c.gates == multiple and n != "rnn_sigmoid"
  ]
  return " or ".join(names) if names else "no cell"


def _check_gate_multiple(cell: cells_lib.Cell, g: int, h: int) -> None:
  """rnn.weight_hh_l0 has G = gates * H rows for the given cell."""
  if g == cell.gates * h:
    return
  fits = (
      f"{g // h}*H, which fits {_cells_for_multiple(g // h)}"
      if g % h == 0
      else "not a multiple of H"
  )
  raise InteropError(
      f"gate multiple mismatch: rnn.weight_hh_l0 has {g} rows for hidden {h} "
      f"({fits}); cell {cell.name!r} needs {cell.gates}*H = {cell.gates * h}"
  )


def _num_layers(arrays) -> int:
  n = 0
  while f"rnn.weight_ih_l{n}" in arrays:
    n += 1
  if n == 0:
    raise InteropError("state_dict is missing key 'rnn.weight_ih_l0'")
  return n


def _is_tied(arrays) -> bool:
  dec, enc = arrays.get("decoder.weight"), arrays["encoder.weight"]
  return dec is None or (dec.shape == enc.shape and np.array_equal(dec, enc))


def infer_model_config(arrays, cell: str) -> ModelConfig:
  """The ModelConfig of a PyTorch state_dict, read from its shapes.

  vocab_size, embed_dim = encoder.weight [V, E]; hidden H from
  rnn.weight_hh_l0 [G, H]; num_layers from the rnn.weight_ih_l{k} present;
  tie_weights when decoder.weight is absent or exactly equals encoder.weight.
  ``cell`` must be given (nn.RNN does not record tanh vs relu); its gate
  multiple must match G (4H lstm, 3H gru, H rnn_*).
  """
  c = _torch_cell(cell)
  arrays = canonical_arrays(arrays)
  v, e = _require(arrays, "encoder.weight").shape
  g, h = _require(arrays, "rnn.weight_hh_l0").shape
  _check_gate_multiple(c, g, h)
  return ModelConfig(
      cell=cell,
      vocab_size=int(v),
      embed_dim=int(e),
      hidden=int(h),
      num_layers=_num_layers(arrays),
      tie_weights=_is_tied(arrays),
  )


def expected_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
  """word_language_model key -> shape for cfg (decoder.weight left out when
  tied; it may then still be present if it equals encoder.weight)."""
  g = _torch_cell(cfg.cell).gates * cfg.hidden
  v, h, e = cfg.vocab_size, cfg.hidden, cfg.embed_dim or cfg.hidden
  shapes = {"encoder.weight": (v, e)}
  for k in range(cfg.num_layers):
    shapes[f"rnn.weight_ih_l{k}"] = (g, e if k == 0 else h)
    shapes[f"rnn.weight_hh_l{k}"] = (g, h)
    shapes[f"rnn.bias_ih_l{k}"] = (g,)
    shapes[f"rnn.bias_hh_l{k}"] = (g,)
  if not cfg.tie_weights:
    shapes["decoder.weight"] = (v, h)
  shapes["decoder.bias"] = (v,)
  return shapes


def _checked(arrays, cfg: ModelConfig) -> dict[str, np.ndarray]:
  """Canonical float32 arrays, every key present with its shape, none extra."""
  arrays = canonical_arrays(arrays)
  shapes = expected_shapes(cfg)
  for key, shape in shapes.items():
    got = _require(arrays, key).shape
    if tuple(got) != shape:
      raise InteropError(
          f"state_dict key {key!r} has shape {tuple(got)}, "
          f"expected {shape} for {cfg.cell} config"
      )
  extra = sorted(set(arrays) - set(shapes) - {"decoder.weight"})
  if extra:
    raise InteropError(
        f"state_dict has unexpected key {extra[0]!r} "
        f"({len(extra)} unexpected in all)"
    )
  if cfg.tie_weights and "decoder.weight" in arrays and not _is_tied(arrays):
    raise InteropError(
        "tie_weights is set but decoder.weight differs from " "encoder.weight"
    )
  return {k: np.asarray(v, np.float32) for k, v in arrays.items()}


# ----------------------------------------------------------------------------
# Conversion
# ----------------------------------------------------------------------------


def _layer_from_torch(a, k: int, cell: str, h: int):
  """One layer: w_ih [I, G], w_hh [H, G], b [G] (+ b_hn [H] for the GRU)."""
  b_ih, b_hh = a[f"rnn.bias_ih_l{k}"], a[f"rnn.bias_hh_l{k}"]
  layer = {
      "w_ih": a[f"rnn.weight_ih_l{k}"].T,
      "w_hh": a[f"rnn.weight_hh_l{k}"].T,
  }
  if cell == "gru":
    layer["b"] = np.concatenate([b_ih[: 2 * h] + b_hh[: 2 * h], b_ih[2 * h :]])
    layer["b_hn"] = b_hh[2 * h :]
  else:
    layer["b"] = b_ih + b_hh
  return {n: jnp.asarray(x, jnp.float32) for n, x in layer.items()}


def params_from_torch(arrays, cfg: ModelConfig):
  """The JAX parameter pytree (float32) of a PyTorch state_dict.

  Every key of ``expected_shapes(cfg)`` must be present with that shape and
  no other key may be (buffers such as num_batches_tracked excepted);
  otherwise InteropError names the first offending key.
  """
  a = _checked(arrays, cfg)
  out = {"b": jnp.asarray(a["decoder.bias"])}
  if not cfg.tie_weights:
    out["w"] = jnp.asarray(a["decoder.weight"].T)
  return {
      "embed": jnp.asarray(a["encoder.weight"]),
      "layers": [
          _layer_from_torch(a, k, cfg.cell, cfg.hidden)
          for k in range(cfg.num_layers)
      ],
      "out": out,
  }


def _layer_to_torch(layer, k: int, cell: str, h: int):
  """Biases: LSTM / Elman put all of b in bias_ih and zeros in bias_hh; the
  GRU puts b in bias_ih and [0, 0, b_hn] in bias_hh."""
  b = np.asarray(layer["b"], np.float32)
  b_hh = np.zeros_like(b)
  if cell == "gru":
    b_hh[2 * h :] = np.asarray(layer["b_hn"], np.float32)
  return {
      f"rnn.weight_ih_l{k}": np.asarray(layer["w_ih"], np.float32).T,
      f"rnn.weight_hh_l{k}": np.asarray(layer["w_hh"], np.float32).T,
      f"rnn.bias_ih_l{k}": b,
      f"rnn.bias_hh_l{k}": b_hh,
  }


def params_to_torch(params, cfg: ModelConfig) -> dict[str, np.ndarray]:
  """word_language_model state_dict arrays (float32) of JAX params.

  A tied model gets decoder.weight = encoder.weight, as RNNModel stores it.
  ``params_from_torch(params_to_torch(p, cfg), cfg)`` reproduces p exactly.
  """
  _torch_cell(cfg.cell)
  embed = np.asarray(params["embed"], np.float32)
  arrays = {"encoder.weight": embed}
  for k, layer in enumerate(params["layers"]):
    arrays.update(_layer_to_torch(layer, k, cfg.cell, cfg.hidden))
  w = embed if cfg.tie_weights else np.asarray(params["out"]["w"], np.float32).T
  arrays["decoder.weight"] = np.ascontiguousarray(w)
  arrays["decoder.bias"] = np.asarray(params["out"]["b"], np.float32)
  _checked(arrays, cfg)
  return {k: np.ascontiguousarray(v) for k, v in arrays.items()}


def load_torch_lm(path: str, cell: str):
  """(params, cfg) of a state_dict file; see infer_model_config."""
  arrays = load_state_dict_arrays(path)
  cfg = infer_model_config(arrays, cell)
  return params_from_torch(arrays, cfg), cfg


# ----------------------------------------------------------------------------
# Vocabulary
# ----------------------------------------------------------------------------


def read_word_list(path: str) -> list[str]:
  """Words one per line (word_language_model's corpus.dictionary.idx2word);
  a word's id is its line index. Empty lines are an error."""
  try:
    with open(path, encoding="utf-8") as f:
      lines = f.read().split("\n")
  except UnicodeDecodeError as e:
    raise InteropError(
        f"{path}: the word list is not UTF-8 text (byte {e.start})"
    ) from None
  if lines and lines[-1] == "":
    lines.pop()
  words = [line[:-1] if line.endswith("\r") else line for line in lines]
  for i, word in enumerate(words):
    if not word:
      raise InteropError(f"{path}:{i + 1}: empty line in word list")
  return words


def vocab_from_word_list(words):
  """rnnlm_jax.vocab.Vocab with ids in the order of ``words``."""
  from rnnlm_jax.vocab import Vocab

  return Vocab(tokens=tuple(words))
