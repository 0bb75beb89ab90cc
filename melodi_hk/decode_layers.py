"""One new token through every layer of each model: the per-token path.

Glossary of shapes:
- B: batch.  K: tokens of a block (see decode.py).  W: window length.
- T: segment length.  M: short-term memory.  C: Memorizing memory slots.
- P: slots before the block in a layer's key buffer (M, W or 0).
- E: width.  H: heads.  D: head dim.  V: vocabulary.

Each function here is Haiku code that must run inside a transform that
builds the model's own modules (same names, so `apply`'s params fit). A
layer keeps a `LayerKV` buffer [prefix ; block]: the prefix is what the
block attends to before its first token (MELODI's short memory, an XL
cache), the block slots hold the keys/values of the block's tokens so far.
The new token at block position p writes its key/value at slot P + p and
attends exactly to the keys `apply` would let it see, with the same bias.
Keys `apply` masks contribute exp(-1e6 - max) = 0 to its softmax, so
leaving them out (Transformer-XL's sliding window) changes nothing.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from melodi_hk import attention


class LayerKV(NamedTuple):
  keys: jax.Array  # [B, P+K, H, D] unit-norm keys: prefix, then the block.
  values: jax.Array  # [B, P+K, H, D]


def pad_block(prefix: jax.Array, block: int) -> jax.Array:
  """[B, P, H, D] -> [B, P+K, H, D], block slots zero."""
  zeros = jnp.zeros((prefix.shape[0], block) + prefix.shape[2:], prefix.dtype)
  return jnp.concatenate([prefix, zeros], axis=1)


def _write(kv: LayerKV, keys, values, slot) -> LayerKV:
  """Stores one token's keys/values [B, 1, H, D] at `slot` (traced)."""
  put = lambda buf, new: jax.lax.dynamic_update_slice_in_dim(
      buf, new.astype(buf.dtype), slot, axis=1)
  return LayerKV(put(kv.keys, keys), put(kv.values, values))


def melodi_layer(layer, x, kv: LayerKV, long, query_slot):
  """A MELODI layer for one context token x [B, 1, E] at slot M + p.

  Context tokens attend to the short memory and the strictly earlier
  context of their window, never to the summary; so the summary stream is
  not needed here (it only shapes the memory, which `apply` updates).
  """
  keys, values, queries = layer.attention.keys_values_queries(x, False)
  kv = _write(kv, keys, values, query_slot)
  distance = query_slot - jnp.arange(kv.keys.shape[1])  # [M+W]
  att = attention.attend(  # [B, 1, H, D]
      queries, kv.keys, kv.values, layer.attention.scale(),
      bias=layer.position_bias(distance[None]), mask=(distance > 0)[None])
  if layer.long_term:
    # pylint: disable-next=protected-access
    att = layer._gate(att, layer._cross_attention(queries, long, False))
  y = x + layer.attention.output(att)  # [B, 1, E]
  return y + layer.ffn(layer.pre_ffn_norm(y)), kv


def xl_layer(layer, x, kv: LayerKV, position, window: int, has_cache: bool):
  """A Transformer-XL layer for one token x [B, 1, E] at block position p.

  With a cache the buffer is [cache (W) ; block]: the token sees exactly
  the W slots before its own, p .. p+W-1, at distances W .. 1. Without a
  cache (T == W) it sees the earlier tokens of its window only.
  """
  keys, values, queries = layer.attention.keys_values_queries(x, False)
  kv = _write(kv, keys, values, position + (window if has_cache else 0))
  if has_cache:
    seen = lambda buf: jax.lax.dynamic_slice_in_dim(buf, position, window, 1)
    seen_keys, seen_values = seen(kv.keys), seen(kv.values)  # [B, W, H, D]
    bias = layer.position_bias((window - np.arange(window))[None])  # [H,1,W]
    mask = None
  else:
    seen_keys, seen_values = kv.keys, kv.values
    distance = position - jnp.arange(window)  # [W]
    bias, mask = layer.position_bias(distance[None]), (distance > 0)[None]
  heads = attention.attend(queries, seen_keys, seen_values,
                           layer.attention.scale(), bias=bias, mask=mask)
  return layer.residual(x, heads, False), kv


def memory_layer(layer, x, kv: LayerKV, memory_kv, position):
  """The Memorizing memory layer for one token x [B, 1, E].

  One softmax over all C memory slots and the strictly earlier tokens of
  the current segment (the buffer holds the segment, no prefix). Scores of
  the two parts are computed apart and joined, so the C memory keys and
  values are read in place rather than copied next to the segment's.
  """
  keys, values, queries = layer.attention.keys_values_queries(x, False)
  kv = _write(kv, keys, values, position)
  scale = layer.attention.scale()[:, None, None]  # [H, 1, 1]
  score = lambda k: jnp.einsum("bqhd,bkhd->bhqk", queries, k,
                               preferred_element_type=jnp.float32) * scale
  seen = jnp.arange(kv.keys.shape[1]) < position  # [T]
  masked = attention._MASKED  # pylint: disable=protected-access
  scores = jnp.concatenate([  # [B, H, 1, C+T]
      score(memory_kv.keys), jnp.where(seen, score(kv.keys), masked)], -1)
  weights = attention.safe_softmax(scores)
  slots = memory_kv.keys.shape[1]
  mix = lambda w, v: jnp.einsum("bhqk,bkhd->bqhd", w.astype(v.dtype), v)
  heads = (mix(weights[..., :slots], memory_kv.values) +
           mix(weights[..., slots:], kv.values))  # [B, 1, H, D]
  return layer.residual(x, heads, False), kv
