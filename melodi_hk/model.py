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
With `scan_layers`, runs of identical layers inside the step go through
one `hk.layer_stack` each (stacking.py).
"""

from typing import Callable, NamedTuple

import haiku as hk
import jax
import jax.numpy as jnp

from melodi_hk import config as config_lib
from melodi_hk import contract
from melodi_hk import layers
from melodi_hk import losses
from melodi_hk import memory as memory_lib
from melodi_hk import nn
from melodi_hk import remat as remat_lib
from melodi_hk import stacking


class WindowCarry(NamedTuple):
  # [B, M, E] per group of stacking.groups ([n, B, M, E] for a run).
  short: tuple[memory_lib.ShortTermMemory, ...]
  long: tuple[memory_lib.LongTermCache, ...]  # [B, L, ...] per long layer.


class MelodiStack(nn.TiedEmbeddingStack):
  """Embedding, summary tokens, the layers and the tied output head."""

  def __init__(self, cfg: config_lib.MelodiConfig):
    super().__init__(cfg, name="melodi")
    self.groups = stacking.groups(cfg)
    # The layers that run alone, by index (all of them unless scan_layers).
    self.layers = {g[0]: layers.MelodiLayer(cfg, g[0] in cfg.long_term_layers,
                                            name=f"layer_{g[0]}")
                   for g in self.groups if len(g) == 1}

  def begin_segment(self, memory: memory_lib.MelodiMemory,
                    is_training: bool) -> WindowCarry:
    """Projects each long memory to keys/values once per segment."""
    long_layers = [self.layers[l] for l in self.cfg.long_term_layers]
    return WindowCarry(
        stacking.stack_memory(memory.short, self.groups),
        tuple(layer.long_term_cache(m, is_training)
              for layer, m in zip(long_layers, memory.long)))

  def __call__(self, carry: WindowCarry, tokens: jax.Array,
               is_training: bool):
    """One window: tokens int32[B, W] -> (logits float32[B, W, V], carry)."""
    cfg = self.cfg
    x = self.embed(tokens)  # [B, W, E]
    summary = hk.get_parameter(
        "summary_embeddings", [cfg.summary_size, cfg.embed_dim], jnp.float32,
        init=hk.initializers.TruncatedNormal(0.25)).astype(cfg.dtype)
    u = jnp.broadcast_to(summary, (x.shape[0],) + summary.shape)  # [B, S, E]
    short, long = list(carry.short), list(carry.long)
    for g, group in enumerate(self.groups):
      if len(group) > 1:
        x, u, short[g] = _run(cfg, group, x, u, short[g], is_training)
        continue
      layer = self.layers[group[0]]
      k = cfg.long_term_layers.index(group[0]) if layer.long_term else None
      x, u, short[g], cache = layer(x, u, short[g],
                                    None if k is None else long[k],
                                    is_training)
      if k is not None:
        long[k] = cache
    # The last layer's summary output is discarded (melodi_hk/README.md §8).
    return self.head(x, is_training), WindowCarry(tuple(short), tuple(long))


def _run(cfg, group, x, u, short: memory_lib.ShortTermMemory,
         is_training: bool):
  """A run of layers without long memory, compiled once: short [n, B, M, E].

  A function, not a method: Haiku would put the method's name into the
  stacked parameters' names.

  Dropout keys are split per layer by the layer_stack, so in training
  the masks are other draws than the per-layer model's.
  """
  def one_layer(xu, tokens):  # tokens [B, M, E]: this layer's memory.
    layer = layers.MelodiLayer(cfg, False, name="layer")
    x, u, new, _ = layer(*xu, memory_lib.ShortTermMemory(tokens), None,
                         is_training)
    return (x, u), new.tokens

  (x, u), tokens = hk.layer_stack(
      len(group), with_per_layer_inputs=True,
      name=stacking.run_name(group))(one_layer)((x, u), short.tokens)
  return x, u, memory_lib.ShortTermMemory(tokens)  # [n, B, M, E]


def _transform(cfg: config_lib.MelodiConfig) -> hk.MultiTransformed:
  def template():
    stack = MelodiStack(cfg)

    def init(memory, tokens):
      return stack(stack.begin_segment(memory, False), tokens, False)

    return init, (stack.begin_segment, stack)
  return hk.multi_transform(template)


def build(cfg: config_lib.MelodiConfig) -> contract.Model:
  """MELODI's pure functions for `cfg` (see `contract.Model`)."""
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
    contract.check_apply_inputs(cfg, memory, tokens, start_of_sequence,
                                init_memory, rng, is_training)
    # No gradient crosses a segment boundary (meliad's state collection).
    memory = memory_lib.reset(jax.lax.stop_gradient(memory), start_of_sequence)
    begin_rng, step_rng = (None, None) if rng is None else jax.random.split(rng)
    carry = begin_apply(params, begin_rng, memory, is_training)

    def step(c, window, r):
      logits, c = step_apply(params, r, c, window[0], is_training)
      return window_out(logits, *window[1:]), c

    # The window step is pure (parameters bound): jax.checkpoint applies.
    out, carry = contract.unroll(remat_lib.remat(step, cfg.remat), carry,
                                 (tokens,) + inputs, cfg.window_length,
                                 step_rng, cfg.window_unroll)
    short = stacking.unstack_memory(carry.short, stacking.groups(cfg))
    long = tuple(memory_lib.LongTermMemory(c.tokens) for c in carry.long)
    return out, memory_lib.MelodiMemory(short, long)

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

  return contract.Model(init, init_memory, apply), loss
