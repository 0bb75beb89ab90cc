"""One MELODI layer applied to one window: the RNN core of the stack.

Glossary of shapes:
- B: batch.  W: window length.  S: summary tokens.  M: short-term memory.
- L: long-term memory.  I: long-term increment.  O: mixed output tokens.
- E: width.  H: heads.  D: head dim.  F: MLP hidden dim.

A layer maps (context x [B, W, E], summary u [B, S, E], its memories) to
(x', u', new memories) for one window (melodi_hk/README.md §4). Attention keys
are [short memory ; context ; summary] with a strictly-causal mask; a long
layer also cross-attends to its long memory and blends both with a sigmoid
gate.
"""

import haiku as hk
import jax
import jax.numpy as jnp

from melodi_hk import attention
from melodi_hk import config as config_lib
from melodi_hk import memory as memory_lib
from melodi_hk import nn


class TokenMixing(hk.Module):
  """Mixes the tokens of [context ; summary] (melodi_hk/README.md §6).

  With `with_norm`, the inputs are RMS-normed first and the summary is added
  back as a residual (so O must equal S).
  """

  def __init__(self, num_outputs: int, with_norm: bool, name=None):
    super().__init__(name=name)
    self.num_outputs, self.with_norm = num_outputs, with_norm
    if with_norm:
      self.context_norm = nn.RMSNorm(name="context_norm")
      self.summary_norm = nn.RMSNorm(name="summary_norm")

  def __call__(self, context: jax.Array, summary: jax.Array) -> jax.Array:
    if self.with_norm:
      context, summary_in = self.context_norm(context), self.summary_norm(
          summary)
    else:
      summary_in = summary
    z = jnp.concatenate([context, summary_in], axis=1)  # [B, W+S, E]
    kernel = hk.get_parameter("kernel", [z.shape[1], self.num_outputs],
                              jnp.float32, init=nn.fan_in_init)
    bias = hk.get_parameter("bias", [self.num_outputs], jnp.float32,
                            init=jnp.zeros)
    mixed = jnp.einsum("bte,to->boe", z, kernel.astype(z.dtype))  # [B, O, E]
    mixed += bias.astype(z.dtype)[None, :, None]
    return mixed + summary if self.with_norm else mixed


class MelodiLayer(hk.Module):
  """A short-term layer, or (with `long_term=True`) the long-term layer."""

  def __init__(self, cfg: config_lib.MelodiConfig, long_term: bool,
               name=None):
    super().__init__(name=name)
    self.cfg, self.long_term = cfg, long_term
    self.attention = attention.Attention(cfg.num_heads, cfg.head_dim,
                                         cfg.embed_dim, cfg.dropout_rate)
    self.position_bias = attention.RelativePositionBias(cfg.num_heads)
    self.pre_ffn_norm = nn.RMSNorm(name="pre_ffn_norm")
    self.ffn = nn.FeedForward(cfg.mlp_dim, cfg.embed_dim, name="ffn")
    m, s = cfg.short_term_memory_size, cfg.summary_size
    self.short_mixing = TokenMixing(m, with_norm=m == s, name="short_mixing")
    self.summary_mixing = TokenMixing(s, with_norm=True, name="summary_mixing")
    if long_term:
      self.increment_mixing = TokenMixing(cfg.long_term_memory_increment,
                                          with_norm=False,
                                          name="increment_mixing")

  def long_term_cache(self, long: memory_lib.LongTermMemory,
                      is_training: bool) -> memory_lib.LongTermCache:
    """Projects a long memory once per segment: [B, L, E] -> [B, L, H, D]."""
    keys, values = self.attention.keys_values(long.tokens, is_training)
    return memory_lib.LongTermCache(long.tokens, keys, values)

  def __call__(self, x, u, short: memory_lib.ShortTermMemory,
               long: memory_lib.LongTermCache | None, is_training: bool):
    """One window: x [B, W, E], u [B, S, E] -> (x', u', short', long')."""
    queries, att = self._self_attention(x, u, short, is_training)
    if self.long_term:
      att = self._gate(att, self._cross_attention(queries, long, is_training))
    r = jnp.concatenate([x, u], axis=1)  # [B, W+S, E]
    y = r + self.attention.output(att)
    ffn = self.ffn(self.pre_ffn_norm(y))
    z = y + nn.tiled_dropout(ffn, self.cfg.dropout_rate, is_training)
    xo, uo = z[:, :x.shape[1]], z[:, x.shape[1]:]  # [B, W, E], [B, S, E]
    if self.long_term:
      increment = self.increment_mixing(xo, uo)  # [B, I, E]; uo pre-mixing.
      long = self._push(long, increment, is_training)
    short = memory_lib.ShortTermMemory(self.short_mixing(xo, uo))  # [B, M, E]
    return xo, self.summary_mixing(xo, uo), short, long

  def _self_attention(self, x, u, short, is_training):
    """Raw queries [B, W+S, H, D] and their attention over [short ; x ; u].

    Queries and keys are normalised inside `attend`, whose gradient then
    stores only the raw ones.
    """
    # One projection (and, in training, one tiled dropout mask) covers the
    # memory and the window; meliad draws separate masks, which only changes
    # which random units are dropped.
    seq = jnp.concatenate([short.tokens, x, u], axis=1)  # [B, M+W+S, E]
    num_memory = short.tokens.shape[1]
    keys, values, queries = self.attention.keys_values_queries(
        seq, is_training, first_query=num_memory,
        normalized=False)  # queries [B, W+S, H, D]
    distance, mask = attention.causal_layout(num_memory,
                                             seq.shape[1] - num_memory)
    return queries, attention.attend(
        queries, keys, values, self.attention.scale(),
        bias=self.position_bias(distance), mask=mask,
        dropout_rate=self.cfg.attention_dropout_rate, is_training=is_training,
        normalize_queries=True, normalize_keys=True)

  def _cross_attention(self, queries, long, is_training):
    # No position bias and, as in the reference, no mask: never-written
    # (zero) slots take part with score 0 (melodi_hk/README.md §13.2)
    # unless the config asks to hide them; an all-hidden row then outputs 0,
    # as the reference does for an empty memory.
    mask = None
    if self.cfg.mask_unwritten_long_memory:
      written = jnp.any(long.tokens != 0, axis=-1)  # [B, L]
      mask = jnp.broadcast_to(written[:, None, :], (
          written.shape[0], queries.shape[1], written.shape[1]))  # [B, W+S, L]
    return attention.attend(  # The cache's keys are unit-norm already.
        queries, long.keys, long.values, self.long_scale(), mask=mask,
        dropout_rate=self.cfg.attention_dropout_rate, is_training=is_training,
        normalize_queries=True)

  def long_scale(self) -> jax.Array:  # [H]
    """The cross-attention's temperature: the layer's own unless the config
    gives the long memory its own (a meliad quirk shares it)."""
    if not self.cfg.long_memory_scale:
      return self.attention.scale()
    return attention.temperature("long_scale", self.cfg.num_heads)

  def _gate(self, self_att, cross_att):  # [B, W+S, H, D] each
    gate = hk.get_parameter(
        "attn_gate", [self.cfg.num_heads, self.cfg.head_dim], jnp.float32,
        init=hk.initializers.TruncatedNormal(0.25))
    alpha = jax.nn.sigmoid(gate).astype(self_att.dtype)  # [H, D]
    return alpha * self_att + (1 - alpha) * cross_att

  def _push(self, long, increment, is_training):
    keys, values = self.attention.keys_values(increment, is_training)
    return memory_lib.LongTermCache(
        memory_lib.fifo_push(long.tokens, increment),
        memory_lib.fifo_push(long.keys, keys),
        memory_lib.fifo_push(long.values, values))
