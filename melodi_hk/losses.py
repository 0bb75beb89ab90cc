"""The reference's language-modelling loss (melodi_hk/README.md §11).

Glossary of shapes:
- B: batch.  T: segment length.  V: vocabulary.

The model at position t predicts token t+1 *of the same segment*; the last
position predicts nothing and token id 0 is padding, so
`mask = (tokens > 0) & (targets > 0)` (and an optional data loss mask,
shifted the same way). The training loss is a sum, not a mean.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class LossOutput(NamedTuple):
  loss: jax.Array  # [] summed masked cross-entropy (what meliad trains).
  token_losses: jax.Array  # [B, T] masked per-token cross-entropy.
  num_tokens: jax.Array  # [] number of predicted tokens.
  nats_per_token: jax.Array  # [] loss / num_tokens (0 when nothing counts).


def check_ids(ids, vocab_size: int, name: str = "token",
              vocab_name: str = "vocab_size",
              fix: str = "Fix the tokenizer or data, or raise vocab_size."
              ) -> None:
  """ValueError naming the first id of concrete `ids` outside [0, V).

  The one token-id check of the model, the decoder and the training loop.
  Traced ids (under jit, pmap, grad) are not checked and keep the
  reference's modulo-V lookup; eager callers get the error instead of a
  silently wrapped id. Valid ids cost a min and a max (the training loop
  checks every batch on the host); only bad ones are searched for.

  Args:
    ids: integer ids of any shape.
    vocab_size: V, the embedding rows.
    name: what the ids are, for the message (e.g. "token").
    vocab_name: the setting that holds V (e.g. "config.model.vocab_size").
    fix: what the caller should do about it.
  """
  if isinstance(ids, jax.core.Tracer):
    return
  ids = np.asarray(ids)
  if not ids.size or (ids.min() >= 0 and ids.max() < vocab_size):
    return
  first = np.argwhere((ids < 0) | (ids >= vocab_size))[0]
  where = tuple(int(i) for i in first)
  bad = int(ids[where])
  raise ValueError(
      f"{name} {bad} at index {where} is outside the vocabulary "
      f"[0, {vocab_size}): the embedding has no row for id {bad}, and a "
      f"traced lookup would silently take it modulo {vocab_name}="
      f"{vocab_size}. {fix}")


def shift_left(x: jax.Array) -> jax.Array:  # [B, T] -> [B, T], last = 0
  return jnp.pad(x[:, 1:], ((0, 0), (0, 1)))


def targets_and_mask(tokens: jax.Array, loss_mask: jax.Array | None = None):
  """Targets int32[B, T] and mask bool[B, T] for a segment of `tokens`."""
  targets = shift_left(tokens)
  mask = (tokens > 0) & (targets > 0)
  if loss_mask is not None:
    mask &= shift_left(loss_mask.astype(jnp.int32)) > 0
  return targets, mask


def lm_loss(logits: jax.Array, tokens: jax.Array,
            loss_mask: jax.Array | None = None) -> LossOutput:
  """Sum of masked next-token cross-entropies of one segment.

  Args:
    logits: float32[B, T, V] from `apply` on `tokens`.
    tokens: int32[B, T] the segment given to `apply`.
    loss_mask: optional bool[B, T] from the data pipeline (True = predict
      the token at this position).

  Returns:
    LossOutput.
  """
  if logits.shape[:2] != tokens.shape:
    raise ValueError(f"logits {logits.shape} do not match tokens "
                     f"{tokens.shape}: expected [B, T, V] for [B, T].")
  check_ids(tokens, logits.shape[-1], "token (and so target)")
  targets, mask = targets_and_mask(tokens, loss_mask)
  return summed(masked_token_losses(logits, targets, mask), mask)


def masked_token_losses(logits: jax.Array, targets: jax.Array,
                        mask: jax.Array) -> jax.Array:
  """Cross-entropies float32[B, n] of logits [B, n, V]; 0 where not `mask`.

  Any span of positions works (a window at a time gives the same numbers as
  the whole segment), given that span's targets and mask.
  """
  log_probs = jax.nn.log_softmax(logits.astype(jnp.float32))
  ce = -jnp.take_along_axis(log_probs, (targets % logits.shape[-1])[..., None],
                            axis=-1)[..., 0]  # [B, n]
  return jnp.where(mask, ce, 0.0)


def summed(token_losses: jax.Array, mask: jax.Array) -> LossOutput:
  """The LossOutput of per-token losses [B, T] and their mask [B, T]."""
  loss = jnp.sum(token_losses)
  num_tokens = jnp.sum(mask)
  return LossOutput(loss, token_losses, num_tokens,
                    loss / jnp.maximum(num_tokens, 1))
