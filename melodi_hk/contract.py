"""The contract every model type keeps: pure `init`, `init_memory`, `apply`.

Glossary of shapes:
- B: batch.  T: tokens of one `apply` call (a segment).  W: window length.
- V: vocabulary.

MELODI (`model.py`), Transformer-XL (`transformer_xl.py`) and the
Memorizing Transformer (`memorizing.py`) each build a `Model`; all three
validate their inputs with `check_apply_inputs`, cut the gradient at the
segment boundary in their own `apply` (the carried memory is a constant,
as meliad's state collection is), and MELODI unrolls its window step with
`unroll`.
"""

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from melodi_hk import losses
from melodi_hk import memory as memory_lib


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


def check_apply_inputs(cfg, memory, tokens, start_of_sequence, init_memory,
                       rng, is_training) -> None:
  """ValueError naming the bad value unless `apply`'s inputs fit `cfg`.

  Shared by every model type; it only checks (the caller cuts gradients).

  Args:
    cfg: the model config (window_length, segment_length).
    memory: the memory given to `apply`.
    tokens: int32[B, T].
    start_of_sequence: bool[B].
    init_memory: (batch_size) -> the zero memory of this config.
    rng: the dropout key or None.
    is_training: whether dropout is on.
  """
  check_inputs(tokens, start_of_sequence, cfg.window_length,
               cfg.segment_length)
  losses.check_ids(tokens, cfg.vocab_size)
  batch = tokens.shape[0]
  memory_lib.check_memory(memory, jax.eval_shape(lambda: init_memory(batch)),
                          batch)
  if is_training and rng is None:
    raise ValueError("is_training=True needs an rng for dropout.")
  check_rng(rng)


def check_rng(rng) -> None:
  """ValueError unless `rng` is None or one raw key, uint32[2]."""
  if rng is None:
    return
  rng = jnp.asarray(rng)
  if jax.dtypes.issubdtype(rng.dtype, jax.dtypes.prng_key):
    raise ValueError(
        f"rng is a typed key ({rng.dtype}); the dropout draws need a raw "
        "uint32[2] key: pass jax.random.key_data(rng) for a threefry key, "
        "or jax.random.PRNGKey(seed).")
  if rng.shape != (2,) or rng.dtype != jnp.uint32:
    raise ValueError(
        f"rng must be one raw key, uint32[2] as jax.random.PRNGKey(seed) "
        f"makes; got {rng.dtype}{list(rng.shape)}.")


def unroll(window_step: Callable, carry, tokens, window_length: int,
           rng: jax.Array | None, windows_per_iteration: int = 1):
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
    windows_per_iteration: lax.scan's `unroll` (same results).

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

  carry, out = jax.lax.scan(body, carry, (windows, rngs),
                            unroll=windows_per_iteration)  # out [N, B, W, ...]
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
