"""Streaming decoding: prefill a prompt, then one token per call, exactly.

Glossary of shapes:
- B: batch.  T: segment length.  W: window length.
- K: tokens of a block, the unit after which the memory changes: W for
  MELODI and Transformer-XL, T for the Memorizing Transformer (its KV
  memory is written once per segment and its memory layer attends to the
  whole segment so far).
- M: short-term memory.  L: long-term memory.  C: Memorizing memory slots.
- P: prefix slots of a layer's key buffer.  E: width.  H: heads.
- D: head dim.  V: vocabulary.

`decoder(cfg)` gives pure functions on the contract of `build`: the decode
state is a value passed in and returned. It holds the model memory as
`apply` returns it at the start of the current block, the block's tokens
so far and, per layer, their keys/values. When a block fills, the memory
is advanced by the model's own `apply` on that block, so short memories,
the long FIFO, XL caches and the ring buffer change exactly as in
training; a document reset is `apply`'s reset, given to `start`/`prefill`
at a block boundary. Only the per-token attention lives here
(decode_layers.py). The state's size does not depend on how many tokens
were read.
"""

import functools
from typing import Any, Callable, NamedTuple

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from melodi_hk import config as config_lib
from melodi_hk import decode_layers
from melodi_hk import losses
from melodi_hk import memorizing
from melodi_hk import memory as memory_lib
from melodi_hk import model as model_lib
from melodi_hk import registry
from melodi_hk import transformer_xl

LayerKV = decode_layers.LayerKV


class DecodeState(NamedTuple):
  memory: Any  # The model memory at the start of the current block.
  tokens: jax.Array  # int32[B, K] the block's tokens so far, then zeros.
  position: jax.Array  # int32[] tokens of the block read so far (< K).
  layers: tuple[LayerKV, ...]  # [B, P+K, H, D] per layer (Memorizing: the
  #                              XL layers, then the memory layer).
  long: tuple  # MELODI: each long memory's LongTermCache; else ().


class Decoder(NamedTuple):
  """Pure decoding functions of one config (see `decoder`)."""
  start: Callable  # (params, memory, sos bool[B]) -> state at a block start
  prefill: Callable  # (params, memory, tokens [B, T'], sos, progress=None)
  #                    -> (logits float32[B, V] of the last token, state)
  decode_step: Callable  # (params, state, token int32[B]) -> (logits, state)
  step: Callable  # decode_step unchecked and unjitted, for use inside jit.
  check_state: Callable  # (state, batch_size) -> None or ValueError.
  block_length: int  # K.
  vocab_size: int  # V.


def _melodi(cfg):
  def template():
    stack = model_lib.MelodiStack(cfg)

    def begin(memory):
      layers = []
      for layer, short in zip(stack.layers.values(), memory.short):
        keys, values = layer.attention.keys_values(short.tokens, False)
        layers.append(LayerKV(decode_layers.pad_block(keys, cfg.window_length),
                              decode_layers.pad_block(values,
                                                      cfg.window_length)))
      return tuple(layers), stack.begin_segment(memory, False).long

    def token(memory, layers, long, tokens, position):
      del memory  # Everything needed is projected in `layers` and `long`.
      x = stack.embed(tokens[:, None])  # [B, 1, E]
      new = []
      for l, layer in stack.layers.items():
        cache = (long[cfg.long_term_layers.index(l)] if layer.long_term
                 else None)
        x, kv = decode_layers.melodi_layer(
            layer, x, layers[l], cache, cfg.short_term_memory_size + position)
        new.append(kv)
      return stack.head(x, False)[:, 0], tuple(new)

    return begin, (begin, token)
  return hk.multi_transform(template), memory_lib.reset


def _xl_begin(cfg, memory, batch: int, block: int):
  """LayerKV per XL layer from its cache (+ an empty memory-layer buffer)."""
  caches = memory.caches
  if caches:
    layers = [LayerKV(decode_layers.pad_block(c.keys, block),
                      decode_layers.pad_block(c.values, block))
              for c in caches]
  else:  # xl_cache=False: each window only sees itself.
    shape = (batch, block, cfg.num_heads, cfg.head_dim)
    layers = [LayerKV(jnp.zeros(shape, cfg.dtype), jnp.zeros(shape, cfg.dtype))
              for _ in range(cfg.num_layers)]
  if isinstance(cfg, config_lib.MemorizingConfig):
    empty = jnp.zeros_like(memory.kv.keys[:, :block])  # [B, T, H, D]
    layers.append(LayerKV(empty, empty))
  return tuple(layers), ()


def _transformer_xl(cfg):
  def template():
    stack = transformer_xl.XLStack(cfg)

    def token(memory, layers, long, tokens, position):
      del memory, long
      x = stack.embed(tokens[:, None])  # [B, 1, E]
      new = []
      for l, layer in enumerate(stack.layers):
        x, kv = decode_layers.xl_layer(layer, x, layers[l], position,
                                       cfg.window_length, cfg.xl_cache)
        new.append(kv)
      return stack.head(x, False)[:, 0], tuple(new)

    return token, (token,)
  return hk.multi_transform(template), memory_lib.reset


def _memorizing(cfg):
  def template():
    stack = transformer_xl.XLStack(cfg, name=memorizing.STACK_NAME)
    side = memorizing.MemoryLayer(cfg, name=memorizing.MEMORY_LAYER_NAME)

    def token(memory, layers, long, tokens, position):
      del long
      x = stack.embed(tokens[:, None])  # [B, 1, E]
      new = list(layers)
      for l, layer in enumerate(stack.layers):
        x, new[l] = decode_layers.xl_layer(layer, x, layers[l], position,
                                           cfg.window_length, True)
        if l == cfg.memory_layer:
          z, new[-1] = decode_layers.memory_layer(side, x, layers[-1],
                                                  memory.kv, position)
          x = z if cfg.single_residual else x + z  # The reference's double.
      return stack.head(x, False)[:, 0], tuple(new)

    return token, (token,)
  return hk.multi_transform(template), memorizing.reset


_FAMILIES = {config_lib.MelodiConfig: _melodi,
             config_lib.TransformerXLConfig: _transformer_xl,
             config_lib.MemorizingConfig: _memorizing}


@functools.cache  # One set of compiled functions per config.
def decoder(cfg) -> Decoder:
  """The decoding functions of `cfg` (any of the three model configs)."""
  if getattr(cfg, "scan_layers", False):
    # The per-token path runs layer by layer; converting the params on
    # every call would copy them per token.
    raise ValueError(
        "decoder: scan_layers=True is not supported; decode with "
        "dataclasses.replace(cfg, scan_layers=False) and the params of "
        "melodi_hk.unstack_layers(params, cfg), converted once (the memory "
        "is the same in both).")
  model = registry.build(cfg)
  transformed, reset = _FAMILIES[type(cfg)](cfg)
  is_melodi = isinstance(cfg, config_lib.MelodiConfig)
  block = (cfg.segment_length if isinstance(cfg, config_lib.MemorizingConfig)
           else cfg.window_length)

  def begin(params, memory, batch: int) -> DecodeState:
    if is_melodi:
      layers, long = transformed.apply[0](params, None, memory)
    else:
      layers, long = _xl_begin(cfg, memory, batch, block)
    return DecodeState(memory, jnp.zeros((batch, block), jnp.int32),
                       jnp.zeros((), jnp.int32), layers, long)

  def step(params, state: DecodeState, token):
    logits, layers = transformed.apply[-1](
        params, None, state.memory, state.layers, state.long, token,
        state.position)  # [B, V]
    state = state._replace(
        tokens=jax.lax.dynamic_update_slice_in_dim(
            state.tokens, token[:, None].astype(jnp.int32), state.position, 1),
        position=state.position + 1, layers=layers)

    def next_block(s):  # The model's own update of its memory.
      sos = jnp.zeros((s.tokens.shape[0],), bool)
      return begin(params, model.apply(params, s.memory, s.tokens, sos)[1],
                   sos.shape[0])

    state = jax.lax.cond(state.position == block, next_block, lambda s: s,
                         state)
    return logits, state

  return _checked(cfg, model, begin, step, reset, block)


def _checked(cfg, model, begin, step, reset, block) -> Decoder:
  """Wraps the pure functions with jit and input checks."""
  start_pure = lambda p, m, sos: begin(p, reset(m, sos), sos.shape[0])
  start_jit = jax.jit(start_pure)
  begin_jit = jax.jit(begin, static_argnums=2)
  step_jit = jax.jit(step)
  apply_jit = jax.jit(model.apply)
  reset_jit = jax.jit(reset)

  @functools.cache
  def expected_state(batch: int):
    params = jax.eval_shape(model.init, jax.random.PRNGKey(0))
    return jax.eval_shape(start_pure, params, model.init_memory(batch),
                          jax.ShapeDtypeStruct((batch,), bool))

  @jax.jit
  def feed(params, state, tokens, count):  # tokens [B, K]; reads `count`.
    def body(i, carry):
      return step(params, carry[1], tokens[:, i])
    logits = jnp.zeros((tokens.shape[0], cfg.vocab_size), jnp.float32)
    return jax.lax.fori_loop(0, count, body, (logits, state))

  def start(params, memory, start_of_sequence) -> DecodeState:
    sos = _check_memory(model, memory, start_of_sequence)
    return start_jit(params, memory, sos)

  def prefill(params, memory, tokens, start_of_sequence, progress=None):
    """Reads a prompt: whole blocks through `apply`, the rest token by token.

    Args:
      params: the model's params.
      memory: the memory to continue (as `apply` takes it).
      tokens: int[B, T'] prompt, T' >= 1, ids in [0, V).
      start_of_sequence: bool[B]; True rows start a new document.
      progress: optional callable(tokens_read, T') called after each call.

    Returns:
      (logits float32[B, V] after the last prompt token, DecodeState).
    """
    tokens = check_tokens(tokens, cfg.vocab_size)
    sos = _check_memory(model, memory, start_of_sequence)
    if sos.shape[0] != tokens.shape[0]:
      raise ValueError(f"start_of_sequence has {sos.shape[0]} rows but the "
                       f"prompt has {tokens.shape[0]}.")
    memory = reset_jit(memory, sos)
    total, done, logits = tokens.shape[1], 0, None
    full = total // block * block
    no_reset = np.zeros_like(sos)
    while done < full:  # Segments while they fit, then single blocks.
      size = cfg.segment_length if full - done >= cfg.segment_length else block
      out, memory = apply_jit(params, memory, tokens[:, done:done + size],
                              no_reset)
      logits, done = out[:, -1], done + size
      if progress:
        progress(done, total)
    state = begin_jit(params, memory, tokens.shape[0])
    if done < total:
      rest = np.zeros((tokens.shape[0], block), np.int32)
      rest[:, :total - done] = tokens[:, done:]
      logits, state = feed(params, state, rest, total - done)
      if progress:
        progress(total, total)
    return logits, state

  def checker(state, batch: int) -> None:
    check_state(state, expected_state(batch), batch)

  def decode_step(params, state, token):
    token = check_tokens(token, cfg.vocab_size, rank=1)
    checker(state, token.shape[0])
    return step_jit(params, state, token)

  return Decoder(start, prefill, decode_step, step, checker, block,
                 cfg.vocab_size)


def _check_memory(model, memory, start_of_sequence) -> np.ndarray:
  """ValueError unless `memory` fits this config; returns sos as bool[B]."""
  sos = np.asarray(start_of_sequence)
  if sos.ndim != 1 or sos.dtype != bool:
    raise ValueError(f"start_of_sequence must be bool[B] (one flag per "
                     f"row); got {sos.dtype}{list(sos.shape)}.")
  batch = sos.shape[0]
  memory_lib.check_memory(
      memory, jax.eval_shape(lambda: model.init_memory(batch)), batch)
  return sos


def check_tokens(tokens, vocab_size: int, rank: int = 2) -> np.ndarray:
  """int32 numpy tokens of `rank` with ids in [0, V), else ValueError."""
  tokens = np.asarray(tokens)
  what = "int[B, T'] prompt" if rank == 2 else "int[B] token"
  if tokens.ndim != rank or not np.issubdtype(tokens.dtype, np.integer):
    raise ValueError(f"tokens must be an {what}; got {tokens.dtype}"
                     f"{list(tokens.shape)}.")
  if tokens.shape[-1] == 0:
    raise ValueError("the prompt is empty; give at least one token.")
  losses.check_ids(tokens, vocab_size, fix="Check that the tokenizer "
                   "matches the model's vocab_size.")
  return tokens.astype(np.int32)


def check_state(state, expected, batch: int) -> None:
  """ValueError unless `state` has the structure and shapes of `expected`."""
  if not isinstance(state, DecodeState):
    raise ValueError(f"state must be a DecodeState from this decoder's "
                     f"start/prefill; got {type(state).__name__}.")
  try:
    memory_lib.check_memory(state, expected, batch)
  except ValueError as e:
    raise ValueError(
        f"the decode state does not fit this config and a batch of {batch} "
        f"tokens ({e}); make it with this config's decoder start/prefill."
    ) from None
