"""Memorizing Transformer, dense key/value memory (melodi_hk/README.md §12.2).

Glossary of shapes:
- B: batch.  T: segment length.  W: window length.  N = T / W windows.
- C: memory slots (a multiple of T).  E: width.  H: heads.  D: head dim.
- V: vocabulary.

The stack is Transformer-XL's with one extra memory layer (own weights, no
position bias, no XL cache) after layer `memory_layer`. Its queries attend,
in one softmax, to all C memory slots (no mask, zero slots included) and to
the strictly-earlier keys of the whole current segment. After the segment
its T keys/values are written into a ring buffer at `write_index`, which is
never reset. meliad keeps one index for the batch; we keep one per row
(int32[B], equal in every row since all rows advance together) so that
every memory leaf leads with the batch axis and splits across devices.
As in meliad, the stack adds the memory layer's input a second time
(`x + layer(x)`, melodi_hk/README.md §13.14) unless `single_residual`.

Unlike Transformer-XL, two half-segment calls do not equal one call: the
memory is written once per segment and the in-segment attention spans the
whole segment. What holds instead (tested): the attention ignores the slot
order, so rolling the ring buffer (slots and index together) changes no
logit.
"""

from typing import NamedTuple

import haiku as hk
import jax
import jax.numpy as jnp

from melodi_hk import attention
from melodi_hk import config as config_lib
from melodi_hk import contract
from melodi_hk import memory as memory_lib
from melodi_hk import transformer_xl

STACK_NAME = "memorizing_transformer"
MEMORY_LAYER_NAME = "memory_layer"


class KVMemory(NamedTuple):
  keys: jax.Array  # [B, C, H, D] unit-norm keys of the latest C/T segments.
  values: jax.Array  # [B, C, H, D] their values.
  write_index: jax.Array  # int32[B] next slot to write (same in all rows).


class MemorizingMemory(NamedTuple):
  caches: tuple[transformer_xl.XLCache, ...]  # [B, W, H, D] per XL layer.
  kv: KVMemory  # The memory layer's ring buffer.


def init_memory(cfg: config_lib.MemorizingConfig,
                batch_size: int) -> MemorizingMemory:
  """Zero caches and memory, write index 0 (compute dtype)."""
  caches = transformer_xl.init_caches(cfg, batch_size, cfg.num_layers)
  shape = (batch_size, cfg.memory_size, cfg.num_heads, cfg.head_dim)
  return MemorizingMemory(caches, KVMemory(
      jnp.zeros(shape, cfg.dtype), jnp.zeros(shape, cfg.dtype),
      jnp.zeros((batch_size,), jnp.int32)))


def reset(memory: MemorizingMemory, start_of_sequence: jax.Array):
  """Rows starting a document: XL caches selected to 0, KV rows times 0.

  The KV rows are multiplied, as meliad does (equal to a select on finite
  values). The write index is not touched: meliad never resets it.
  """
  keep = 1 - start_of_sequence.astype(memory.kv.keys.dtype)  # [B]
  keep = keep[:, None, None, None]
  kv = memory.kv._replace(keys=memory.kv.keys * keep,
                          values=memory.kv.values * keep)
  return MemorizingMemory(memory_lib.reset(memory.caches, start_of_sequence),
                          kv)


def write(kv: KVMemory, keys: jax.Array, values: jax.Array) -> KVMemory:
  """Writes one segment's keys/values [B, T, H, D] at the write index."""
  row_put = lambda buf, new, start: jax.lax.dynamic_update_slice_in_dim(
      buf, new.astype(buf.dtype), start, axis=0)  # [C, H, D] <- [T, H, D]
  put = lambda buf, new: jax.vmap(row_put)(buf, new, kv.write_index)
  index = (kv.write_index + keys.shape[1]) % kv.keys.shape[1]  # [B]
  return KVMemory(put(kv.keys, keys), put(kv.values, values),
                  index.astype(jnp.int32))


def _attend_windows(queries, keys, values, scale, num_memory: int,
                    window: int) -> jax.Array:
  """Memory + strictly-earlier segment attention, one query window at a time.

  Args:
    queries: [B, T, H, D] raw; `attend` normalises them inside its gradient.
    keys: [B, C+T, H, D] unit-norm, memory slots first, then the segment.
    values: [B, C+T, H, D].
    scale: [H].
    num_memory: C.
    window: W; looping over windows bounds the scores to [B, H, W, C+T].

  Returns:
    [B, T, H, D].
  """
  b, t, h, d = queries.shape
  # Segment position of every key; memory slots are "before" position 0.
  key_pos = jnp.arange(keys.shape[1]) - num_memory  # [C+T]

  def one_window(inputs):
    k, q = inputs  # window index, [B, W, H, D]
    query_pos = k * window + jnp.arange(window)  # [W]
    mask = key_pos[None, :] < query_pos[:, None]  # [W, C+T]
    return attention.attend(q, keys, values, scale, mask=mask,
                            normalize_queries=True)

  q_windows = queries.reshape(b, t // window, window, h, d).swapaxes(
      0, 1)  # [N, B, W, H, D]
  out = jax.lax.map(one_window, (jnp.arange(t // window), q_windows))
  return out.swapaxes(0, 1).reshape(b, t, h, d)  # from [N, B, W, H, D]


class MemoryLayer(transformer_xl.PreNormBlock):
  """meliad's RecurrentMemoryLayer with DenseKVMemory; includes its residual."""

  def __call__(self, x: jax.Array, kv: KVMemory, is_training: bool):
    """x [B, T, E] -> (z [B, T, E], memory after writing this segment)."""
    keys, values, queries = self.attention.keys_values_queries(
        x, is_training, normalized=False)
    keys = attention.unit(keys)  # The memory stores unit-norm keys.
    heads = _attend_windows(
        queries, jnp.concatenate([kv.keys, keys], axis=1),
        jnp.concatenate([kv.values, values], axis=1), self.attention.scale(),
        kv.keys.shape[1], self.cfg.window_length)  # [B, T, H, D]
    # Written after reading: a segment never sees itself through the memory.
    return self.residual(x, heads, is_training), write(kv, keys, values)


def _forward(cfg, tokens, memory: MemorizingMemory, is_training: bool):
  """tokens int[B, T] -> (logits float32[B, T, V], new memory)."""
  stack = transformer_xl.XLStack(cfg, name=STACK_NAME)
  memory_layer = MemoryLayer(cfg, name=MEMORY_LAYER_NAME)
  x = stack.embed(tokens)  # [B, T, E]
  caches = list(memory.caches)
  for l, layer in enumerate(stack.layers):
    x, caches[l] = stack.remat(layer)(x, caches[l], is_training)
    if l == cfg.memory_layer:
      z, kv = stack.remat(memory_layer)(x, memory.kv, is_training)
      x = z if cfg.single_residual else x + z
  return stack.head(x, is_training), MemorizingMemory(tuple(caches), kv)


def build(cfg: config_lib.MemorizingConfig) -> contract.Model:
  """The Memorizing Transformer's pure functions (see `contract.Model`)."""
  transformed = hk.transform(lambda *args: _forward(cfg, *args))
  memory_fn = lambda batch_size: init_memory(cfg, batch_size)

  def init(rng: jax.Array) -> hk.Params:
    # One window suffices to create every parameter, at any memory size.
    tokens = jnp.ones((1, cfg.window_length), jnp.int32)
    return transformed.init(rng, tokens, memory_fn(1), False)

  def apply(params, memory, tokens, start_of_sequence, rng=None,
            is_training=False):
    """One segment: tokens int32[B, T], sos bool[B] -> logits [B, T, V], memory.

    T must equal segment_length: the ring buffer holds whole segments.
    """
    contract.check_apply_inputs(cfg, memory, tokens, start_of_sequence,
                                memory_fn, rng, is_training)
    if tokens.shape[1] != cfg.segment_length:
      raise ValueError(
          f"tokens have T={tokens.shape[1]} but the Memorizing Transformer "
          f"writes whole segments; pass T = segment_length="
          f"{cfg.segment_length}.")
    # No gradient crosses a segment boundary (meliad's state collection).
    memory = reset(jax.lax.stop_gradient(memory), start_of_sequence)
    return transformed.apply(params, rng, tokens, memory, is_training)

  return contract.Model(init, memory_fn, apply)
