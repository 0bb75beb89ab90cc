"""Transformer-XL, meliad's baseline (melodi_hk/README.md §12.1).

Glossary of shapes:
- B: batch.  T: segment length.  W: window length.  N = T / W windows.
- E: width.  H: heads.  D: head dim.  F: MLP hidden dim.  V: vocabulary.

Every token attends to exactly the W tokens strictly before it, crossing
window and segment boundaries: window k's keys are [window k-1 ; window k],
and window 0's "previous window" is a per-layer cache of the last window's
keys and values from the previous segment (`XLCache`), the explicit memory.
Windows are independent given their keys, so they run in parallel with the
windows folded into the batch axis, as meliad's vmap; this also makes the
attention-dropout mask shared by the batch and all windows, as meliad's.
"""

import functools
from typing import NamedTuple

import haiku as hk
import jax
import jax.numpy as jnp

from melodi_hk import attention
from melodi_hk import config as config_lib
from melodi_hk import contract
from melodi_hk import memory as memory_lib
from melodi_hk import nn
from melodi_hk import remat as remat_lib

STACK_NAME = "transformer_xl"  # Our module path of the stack.


class XLCache(NamedTuple):
  keys: jax.Array  # [B, W, H, D] unit-norm keys of the last window.
  values: jax.Array  # [B, W, H, D] values of the last window.


class XLMemory(NamedTuple):
  caches: tuple[XLCache, ...]  # One per layer; () when xl_cache=False.


def init_caches(cfg, batch_size: int,
                num_caches: int) -> tuple[XLCache, ...]:
  """`num_caches` zero caches, each [B, W, H, D] in the compute dtype."""
  memory_lib.check_batch_size(batch_size)
  shape = (batch_size, cfg.window_length, cfg.num_heads, cfg.head_dim)
  return tuple(XLCache(jnp.zeros(shape, cfg.dtype), jnp.zeros(shape, cfg.dtype))
               for _ in range(num_caches))


class PreNormBlock(hk.Module):
  """Q/K/V attention module and the residual FFN shared by both baselines."""

  def __init__(self, cfg, name=None):
    super().__init__(name=name)
    self.cfg = cfg
    self.attention = attention.Attention(cfg.num_heads, cfg.head_dim,
                                         cfg.embed_dim, cfg.dropout_rate)
    self.pre_ffn_norm = nn.RMSNorm(name="pre_ffn_norm")
    self.ffn = nn.FeedForward(cfg.mlp_dim, cfg.embed_dim, cfg.ffn_bias,
                              name="ffn")

  def residual(self, x: jax.Array, heads: jax.Array,
               is_training: bool) -> jax.Array:
    """x [B, T, E] plus attention heads of its B*T tokens (e.g. [B*N, W, H,
    D], in x's token order), then the FFN block."""
    y = x + self.attention.output(heads).reshape(x.shape)  # [B, T, E]
    ffn = self.ffn(self.pre_ffn_norm(y))  # [B, T, E]
    return y + nn.tiled_dropout(ffn, self.cfg.dropout_rate, is_training)


def _windows(x: jax.Array, window: int) -> jax.Array:
  """[B, T, ...] -> [B, N, W, ...]."""
  return x.reshape((x.shape[0], -1, window) + x.shape[2:])


def _with_previous(blocks: jax.Array, previous: jax.Array) -> jax.Array:
  """Prepends to each window the one before it.

  Args:
    blocks: [B, N, W, ...] windows of one segment.
    previous: [B, W, ...] what stands before window 0 (the cache).

  Returns:
    [B, N, 2W, ...].
  """
  shifted = jnp.concatenate([previous[:, None], blocks[:, :-1]], axis=1)
  return jnp.concatenate([shifted, blocks], axis=2)


class XLLayer(PreNormBlock):
  """One pre-norm layer with sliding-window attention and a T5 bias."""

  def __init__(self, cfg, name=None):
    super().__init__(cfg, name=name)
    self.position_bias = attention.RelativePositionBias(cfg.num_heads)

  def __call__(self, x: jax.Array, cache: XLCache | None, is_training: bool):
    """x [B, T, E] and the cache -> (z [B, T, E], new cache or None)."""
    w = self.cfg.window_length
    # keys, values, queries: [B, T, H, D] each, raw: `attend` normalises
    # them inside its gradient, which then stores only these.
    keys, values, queries = self.attention.keys_values_queries(
        x, is_training, normalized=False)
    k_win, v_win = _windows(keys, w), _windows(values, w)  # [B, N, W, H, D]
    if cache is None:  # One window attending within itself (T == W).
      distance, mask = attention.causal_layout(0, w)
    else:
      k_win = _with_previous(k_win, cache.keys)  # [B, N, 2W, H, D]
      v_win = _with_previous(v_win, cache.values)
      distance, mask = attention.causal_layout(w, w)  # query i at W + i
      mask &= distance <= w  # exactly the W strictly-earlier tokens
    fold = lambda a: a.reshape((-1,) + a.shape[2:])  # [B*N, ...]
    heads = attention.attend(  # [B*N, W, H, D]
        fold(_windows(queries, w)), fold(k_win), fold(v_win),
        self.attention.scale(), bias=self.position_bias(distance), mask=mask,
        dropout_rate=self.cfg.attention_dropout_rate, is_training=is_training,
        # The cache's unit-norm keys are normalised again, which changes
        # them by float rounding only.
        normalize_queries=True, normalize_keys=True)
    z = self.residual(x, heads, is_training)  # heads as `attend` stores them
    new_cache = None if cache is None else XLCache(
        attention.unit(keys[:, -w:]), values[:, -w:])
    return z, new_cache


class XLStack(nn.TiedEmbeddingStack):
  """Embedding, XL layers and the tied head (melodi_hk/README.md §12.1)."""

  def __init__(self, cfg, name: str = STACK_NAME):
    super().__init__(cfg, name=name)
    self.layers = [XLLayer(cfg, name=f"layer_{l}")
                   for l in range(cfg.num_layers)]

  def __call__(self, tokens, caches: tuple[XLCache, ...], is_training: bool):
    """tokens int[B, T] -> (logits [B, T, V], new caches)."""
    x = self.embed(tokens)  # [B, T, E]
    new_caches = []
    for l, layer in enumerate(self.layers):
      x, cache = self.remat(layer)(x, caches[l] if caches else None,
                                   is_training)
      new_caches.append(cache)
    return self.head(x, is_training), tuple(new_caches) if caches else ()

  def remat(self, layer: hk.Module):
    """`layer(x, cache, is_training)` under the config's remat option."""
    return remat_lib.remat(layer, self.cfg.remat, functools.partial(
        remat_lib.haiku_tied_remat, static_argnums=(2,)))


def build(cfg: config_lib.TransformerXLConfig) -> contract.Model:
  """Transformer-XL's pure functions for `cfg` (see `contract.Model`)."""
  # (tokens, caches, is_training) -> (logits, caches)
  transformed = hk.transform(lambda *args: XLStack(cfg)(*args))

  def init_memory(batch_size: int) -> XLMemory:
    # xl_cache=False (T = W) is the windowed transformer: nothing carried.
    num_caches = cfg.num_layers if cfg.xl_cache else 0
    return XLMemory(init_caches(cfg, batch_size, num_caches))

  def init(rng: jax.Array) -> hk.Params:
    tokens = jnp.ones((1, cfg.window_length), jnp.int32)
    return transformed.init(rng, tokens, init_memory(1).caches, False)

  def apply(params, memory, tokens, start_of_sequence, rng=None,
            is_training=False):
    """One segment: tokens int32[B, T], sos bool[B] -> logits [B, T, V], memory.

    T may be any multiple of W up to segment_length; the memory passed in
    is a constant (no gradient across segments).
    """
    contract.check_apply_inputs(cfg, memory, tokens, start_of_sequence,
                                init_memory, rng, is_training)
    # No gradient crosses a segment boundary (meliad's state collection).
    memory = memory_lib.reset(jax.lax.stop_gradient(memory), start_of_sequence)
    logits, caches = transformed.apply(params, rng, tokens, memory.caches,
                                       is_training)
    return logits, XLMemory(caches)

  return contract.Model(init, init_memory, apply)
