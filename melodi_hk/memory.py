"""MELODI's memories as typed values: what one segment hands the next.

Glossary of shapes:
- B: batch.  M: short-term memory tokens.  L: long-term memory tokens.
- I: long-term increment per window.  E: width.  H: heads.  D: head dim.

Every layer keeps a `ShortTermMemory`; each layer in
`MelodiConfig.long_term_layers` also keeps a `LongTermMemory`, a FIFO of
embeddings (oldest first, never-written slots zero at the front). Inside a
segment the long memory also carries its keys and values (`LongTermCache`),
so they are projected once per segment and once per increment, as meliad.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from melodi_hk import config as config_lib


class ShortTermMemory(NamedTuple):
  tokens: jax.Array  # [B, M, E] token-mixed context+summary of last window.


class LongTermMemory(NamedTuple):
  tokens: jax.Array  # [B, L, E] FIFO of increments; newest at the end.


class MelodiMemory(NamedTuple):
  short: tuple[ShortTermMemory, ...]  # One per layer.
  long: tuple[LongTermMemory, ...]  # One per entry of long_term_layers.


class LongTermCache(NamedTuple):
  tokens: jax.Array  # [B, L, E] as in LongTermMemory.
  keys: jax.Array  # [B, L, H, D] unit-norm keys of `tokens`.
  values: jax.Array  # [B, L, H, D] values of `tokens`.


def check_batch_size(batch_size) -> None:
  if not isinstance(batch_size, int) or batch_size <= 0:
    raise ValueError(f"batch_size={batch_size} must be a positive integer.")


def init_memory(cfg: config_lib.MelodiConfig, batch_size: int) -> MelodiMemory:
  """The zero memory every document starts from (compute dtype)."""
  check_batch_size(batch_size)
  zeros = lambda n: jnp.zeros((batch_size, n, cfg.embed_dim), cfg.dtype)
  return MelodiMemory(
      short=tuple(ShortTermMemory(zeros(cfg.short_term_memory_size))
                  for _ in range(cfg.num_layers)),
      long=tuple(LongTermMemory(zeros(cfg.long_term_memory_size))
                 for _ in cfg.long_term_layers))


def reset(memory, start_of_sequence: jax.Array):
  """Rows b with `start_of_sequence[b]` get the zero memory (a select).

  Works for any memory pytree whose leaves lead with the batch axis.
  """
  def select(m):
    row = start_of_sequence.reshape((-1,) + (1,) * (m.ndim - 1))
    return jnp.where(row, jnp.zeros_like(m), m)
  return jax.tree.map(select, memory)


def fifo_push(fifo: jax.Array, new: jax.Array) -> jax.Array:
  """Drops the oldest I slots and appends `new` at the end.

  Args:
    fifo: [B, L, ...].
    new: [B, I, ...].

  Returns:
    [B, L, ...].
  """
  return jnp.concatenate([fifo[:, new.shape[1]:], new], axis=1)


def check_memory(memory, expected, batch_size: int) -> None:
  """Raises ValueError unless `memory` has the structure/shapes of `expected`.

  Args:
    memory: the memory given by the caller.
    expected: `jax.eval_shape` of the model's `init_memory(batch_size)`.
    batch_size: B of the tokens, for the message.
  """
  got_tree, want_tree = (jax.tree.structure(memory),
                         jax.tree.structure(expected))
  if got_tree != want_tree:
    raise ValueError(f"memory has structure {got_tree} but this config "
                     f"needs {want_tree}; create it with "
                     "model.init_memory(batch_size).")
  bad = [f"{jax.tree_util.keystr(path)}: {m.shape} {m.dtype}"
         f" (want {e.shape} {e.dtype})"
         for (path, m), e in zip(jax.tree_util.tree_leaves_with_path(memory),
                                 jax.tree.leaves(expected))
         if m.shape != e.shape or m.dtype != e.dtype]
  if bad:
    raise ValueError(f"memory does not match tokens of batch size "
                     f"{batch_size} and this config: {'; '.join(bad)}. "
                     "Create it with model.init_memory(batch_size).")
