"""The MELODI stack as pure functions: `init`, `init_memory`, `apply`.

Glossary of shapes:
- B: batch.  T: segment length.  W: window length.  N = T / W windows.
- S: summary tokens.  M: short-term memory.  L: long-term memory.
- E: width.  H: heads.  D: head dim.  V: vocabulary.

Windows are processed window-major: window k runs through every layer
before window k+1. That equals meliad's layer-major order because layer l
at window k only needs layer l-1 at window k and its own memory after
window k-1. The window step is a Haiku-transformed RNN core
`(carry, tokens [B, W]) -> (logits [B, W, V], carry)`, unrolled by one
`jax.lax.scan` over the *transformed* function with the parameters passed in.
"""

from typing import Callable, NamedTuple

import haiku as hk
import jax
import jax.numpy as jnp

from melodi_hk import config as config_lib
from melodi_hk import layers
from melodi_hk import losses
from melodi_hk import memory as memory_lib
from melodi_hk import nn


class WindowCarry(NamedTuple):
  short: tuple[memory_lib.ShortTermMemory, ...]  # [B, M, E] per layer.
  long: tuple[memory_lib.LongTermCache, ...]  # [B, L, ...] per long layer.


class MelodiStack(hk.Module):
  """Embedding, summary tokens, the layers and the tied output head."""

  def __init__(self, cfg: config_lib.MelodiConfig):
    super().__init__(name="melodi")
    self.cfg = cfg
    self.layers = [layers.MelodiLayer(cfg, l in cfg.long_term_layers,
                                      name=f"layer_{l}")
                   for l in range(cfg.num_layers)]
    self.final_norm = nn.RMSNorm(name="final_norm")

  def begin_segment(self, memory: memory_lib.MelodiMemory,
                    is_training: bool) -> WindowCarry:
    """Projects each long memory to keys/values once per segment."""
    long_layers = [self.layers[l] for l in self.cfg.long_term_layers]
    return WindowCarry(memory.short, tuple(
        layer.long_term_cache(m, is_training)
        for layer, m in zip(long_layers, memory.long)))

  def __call__(self, carry: WindowCarry, tokens: jax.Array,
               is_training: bool):
    """One window: tokens int32[B, W] -> (logits float32[B, W, V], carry)."""
    cfg = self.cfg
    x = self._embedding()[tokens % cfg.vocab_size]  # [B, W, E]
    summary = hk.get_parameter(
        "summary_embeddings", [cfg.summary_size, cfg.embed_dim], jnp.float32,
        init=hk.initializers.TruncatedNormal(0.25)).astype(cfg.dtype)
    u = jnp.broadcast_to(summary, (x.shape[0],) + summary.shape)  # [B, S, E]
    short, long = list(carry.short), list(carry.long)
    for l, layer in enumerate(self.layers):
      k = cfg.long_term_layers.index(l) if layer.long_term else None
      x, u, short[l], cache = layer(x, u, short[l],
                                    None if k is None else long[k],
                                    is_training)
      if k is not None:
        long[k] = cache
    # The last layer's summary output is discarded (melodi_hk/README.md §8).
    ys = nn.tiled_dropout(self.final_norm(x), cfg.dropout_rate, is_training)
    logits = jnp.einsum("bwe,ve->bwv", ys, self._embedding().astype(ys.dtype),
                        preferred_element_type=jnp.float32)
    return logits / jnp.sqrt(float(cfg.embed_dim)), WindowCarry(tuple(short),
                                                                tuple(long))

  def _embedding(self) -> jax.Array:  # [V, E] in the compute dtype
    return hk.get_parameter(
        "embedding", [self.cfg.vocab_size, self.cfg.embed_dim], jnp.float32,
        init=hk.initializers.RandomNormal(1.0)).astype(self.cfg.dtype)


class Model(NamedTuple):
  """Pure functions of one model; every memory is passed in and returned."""
  init: Callable  # (rng) -> params
  init_memory: Callable  # (batch_size) -> memory
  apply: Callable  # (params, memory, tokens, sos, rng=None, is_training=False)
  #                  -> (logits float32[B, T, V], memory)


def check_inputs(tokens, start_of_sequence, window_length: int,
                 segment_length: int) -> None:
  """ValueError unless tokens are int[B, T], T = k*W <= segment; sos bool[B]."""
  shape = getattr(tokens, "shape", None)
  if shape is None or len(shape) != 2:
    raise ValueError(f"tokens must be int32[B, T]; got shape {shape}.")
  if not jnp.issubdtype(tokens.dtype, jnp.integer):
    raise ValueError(f"tokens must be an integer array; got {tokens.dtype}.")
  t = shape[1]
  if t == 0 or t % window_length or t > segment_length:
    raise ValueError(
        f"tokens have T={t} but T must be a positive multiple of "
        f"window_length={window_length} no larger than "
        f"segment_length={segment_length}.")
  sos_shape = getattr(start_of_sequence, "shape", None)
  if sos_shape != (shape[0],):
    raise ValueError(f"start_of_sequence must be bool[{shape[0]}] (one "
                     f"flag per batch row); got shape {sos_shape}.")
  if start_of_sequence.dtype != jnp.bool_:  # 0.5 or 2 would pass jnp.where.
    raise ValueError("start_of_sequence must be bool; got dtype "
                     f"{start_of_sequence.dtype}. Pass e.g. `flags > 0`.")


def checked_memory(cfg, memory, tokens, start_of_sequence, init_memory, rng,
                   is_training):
  """Validates `apply`'s inputs; returns the memory as a constant.

  Shared by every model family. The stop_gradient keeps gradients from
  crossing segment boundaries, as meliad's state collection does.

  Args:
    cfg: the model config (window_length, segment_length).
    memory: the memory given to `apply`.
    tokens: int32[B, T].
    start_of_sequence: bool[B].
    init_memory: (batch_size) -> the zero memory of this config.
    rng: the dropout key or None.
    is_training: whether dropout is on.

  Returns:
    `memory` under stop_gradient.
  """
  check_inputs(tokens, start_of_sequence, cfg.window_length,
               cfg.segment_length)
  losses.check_ids(tokens, cfg.vocab_size, "tokens")
  batch = tokens.shape[0]
  memory_lib.check_memory(memory, jax.eval_shape(lambda: init_memory(batch)),
                          batch)
  if is_training and rng is None:
    raise ValueError("is_training=True needs an rng for dropout.")
  return jax.lax.stop_gradient(memory)


def unroll(window_step: Callable, carry, tokens, window_length: int,
           rng: jax.Array | None):
  """Runs `window_step` over the windows of `tokens` with one lax.scan.

  Equivalent Python loop::

    logits = []
    for k in range(T // W):
      out, carry = window_step(carry, tokens[:, k*W:(k+1)*W], rngs[k])
      logits.append(out)
    return concatenate(logits, axis=1), carry

  `window_step` must be a transformed apply with its parameters bound:
  scanning raw Haiku code that creates parameters or draws RNG keys is
  not allowed (Haiku's `transforms` notes).

  Args:
    window_step: (carry, tokens int32[B, W], rng) -> (out [B, W, ...], carry).
    carry: any pytree.
    tokens: int32[B, T] with T a multiple of W, or a pytree of [B, T, ...]
      arrays cut into windows alike.
    window_length: W.
    rng: a key split into one key per window, or None.

  Returns:
    (out [B, T, ...], carry after the last window).
  """
  batch, length = jax.tree.leaves(tokens)[0].shape[:2]
  num_windows = length // window_length
  windows = jax.tree.map(lambda a: a.reshape(
      (batch, num_windows, window_length) + a.shape[2:]).swapaxes(0, 1),
                         tokens)  # [N, B, W, ...]
  rngs = None if rng is None else jax.random.split(rng, num_windows)

  def body(carry, inputs):
    out, carry = window_step(carry, *inputs)
    return carry, out

  carry, out = jax.lax.scan(body, carry, (windows, rngs))  # out [N, B, W, ...]
  return jax.tree.map(lambda o: o.swapaxes(0, 1).reshape(
      (batch, length) + o.shape[3:]), out), carry


def loss_from_apply(model: Model) -> Callable:
  """The training loss of any model as `apply` followed by `lm_loss`."""
  def loss(params, memory, tokens, start_of_sequence, loss_mask=None,
           rng=None, is_training=False):
    logits, memory = model.apply(params, memory, tokens, start_of_sequence,
                                 rng=rng, is_training=is_training)
    return losses.lm_loss(logits, tokens, loss_mask), memory
  return loss


def _transform(cfg: config_lib.MelodiConfig) -> hk.MultiTransformed:
  def template():
    stack = MelodiStack(cfg)

    def init(memory, tokens):
      return stack(stack.begin_segment(memory, False), tokens, False)

    return init, (stack.begin_segment, stack)
  return hk.multi_transform(template)


def build(cfg: config_lib.MelodiConfig) -> Model:
  """MELODI's pure functions for `cfg` (see `Model`)."""
  return _build(cfg)[0]


def build_loss(cfg: config_lib.MelodiConfig) -> Callable:
  """MELODI's training loss, computed a window at a time inside the scan.

  `loss(params, memory, tokens, start_of_sequence, loss_mask=None, rng=None,
  is_training=False) -> (LossOutput, memory)` equals `apply` followed by
  `lm_loss`, but never holds the float32 logits of the whole segment
  [B, T, V]: each window's logits become its per-token losses in the scan,
  and under a remat option they are recomputed rather than stored.
  """
  return _build(cfg)[1]


def _build(cfg: config_lib.MelodiConfig):
  transformed = _transform(cfg)
  begin_apply, step_apply = transformed.apply

  def init(rng: jax.Array) -> hk.Params:
    tokens = jnp.ones((1, cfg.window_length), jnp.int32)
    return transformed.init(rng, init_memory(1), tokens)

  def init_memory(batch_size: int) -> memory_lib.MelodiMemory:
    return memory_lib.init_memory(cfg, batch_size)

  def run(params, memory, tokens, start_of_sequence, rng, is_training,
          window_out, inputs):
    """Scans `window_out(logits [B, W, V], inputs' window)` over windows."""
    memory = memory_lib.reset(
        checked_memory(cfg, memory, tokens, start_of_sequence, init_memory,
                       rng, is_training), start_of_sequence)
    begin_rng, step_rng = (None, None) if rng is None else jax.random.split(rng)
    carry = begin_apply(params, begin_rng, memory, is_training)

    def step(c, window, r):
      logits, c = step_apply(params, r, c, window[0], is_training)
      return window_out(logits, *window[1:]), c

    # The window step is pure (parameters bound): jax.checkpoint applies.
    out, carry = unroll(nn.remat(step, cfg.remat), carry,
                        (tokens,) + inputs, cfg.window_length, step_rng)
    return out, memory_lib.MelodiMemory(
        carry.short, tuple(memory_lib.LongTermMemory(c.tokens)
                           for c in carry.long))

  def apply(params, memory, tokens, start_of_sequence, rng=None,
            is_training=False):
    """Runs one segment: tokens int32[B, T], sos bool[B] -> logits, memory.

    The memory passed in is a constant (no gradient across segments);
    inside the segment gradients flow through every carried memory.
    """
    return run(params, memory, tokens, start_of_sequence, rng, is_training,
               lambda logits: logits, ())

  def loss(params, memory, tokens, start_of_sequence, loss_mask=None,
           rng=None, is_training=False):
    targets, mask = losses.targets_and_mask(tokens, loss_mask)  # [B, T]
    token_losses, memory = run(
        params, memory, tokens, start_of_sequence, rng, is_training,
        losses.masked_token_losses, (targets, mask))
    return losses.summed(token_losses, mask), memory

  return Model(init, init_memory, apply), loss
