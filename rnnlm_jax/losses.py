"""Token-level losses with masks."""

import jax.numpy as jnp
import optax


def token_nll(logits_BTV, y_BT):
  """Negative log-likelihood of every target token, [B, T], computed in at
  least float32 (bf16 logits are upcast)."""
  dtype = jnp.promote_types(logits_BTV.dtype, jnp.float32)
  return optax.softmax_cross_entropy_with_integer_labels(
      logits_BTV.astype(dtype), y_BT
  )


def masked_sums(nll_BT, mask_BT=None):
  """(sum of nll over unmasked tokens, number of unmasked tokens)."""
  if mask_BT is None:
    return nll_BT.sum(), jnp.asarray(nll_BT.size, jnp.float32)
  mask_BT = mask_BT.astype(nll_BT.dtype)
  return (nll_BT * mask_BT).sum(), mask_BT.sum()


def training_loss(nll_BT, mask_BT, reduction: str):
  """The objective that is differentiated.

  'mean' averages over tokens; 'sum_time' sums over time and averages over
  the batch (the convention Zaremba et al.'s lr 1 and clip 5 were tuned for).
  """
  total, count = masked_sums(nll_BT, mask_BT)
  if reduction == "mean":
    return total / jnp.maximum(count, 1.0)
  if reduction == "sum_time":
    return total / nll_BT.shape[0]
  raise ValueError(f"unknown loss reduction {reduction!r}")
