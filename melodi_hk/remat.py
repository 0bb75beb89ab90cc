"""Remat options: what a training step's backward pass recomputes instead of
storing (config.MELODI_REMAT, config.BASELINE_REMAT; melodi_hk/README.md
§12.5).

Glossary of shapes: B batch, T segment, W window, E width.

MELODI wraps its window step, a pure function run by the window scan, in
`jax.checkpoint`: the forward and backward passes are separate loops, so
the recompute can only run in the backward loop, one window at a time.

The baselines wrap each layer, which runs over the whole segment outside
any loop. There `jax.checkpoint` saved nothing on XLA's CPU backend: the
compiler merged the recompute with the forward pass's identical
computation (common-subexpression elimination; no trace of the
optimization barrier jax puts in its way is left in the optimised
program), so every layer's activations stayed alive until its backward
pass (Transformer-XL at the paper size: 6.83 GB of temp memory with
"layer" and with "none"). `haiku_tied_remat` is `hk.remat` whose recompute
is computed from the layer's output gradient (x + 0 * g), which the forward
pass does not have: the same values, but nothing to merge, and it cannot
run before the gradient arrives.
"""

import functools

from haiku._src import stateful  # hk.remat's own state threading.
import jax
import jax.numpy as jnp


def remat(fn, option: str, transform=jax.checkpoint):
  """`fn` under `transform` (jax.checkpoint or a Haiku remat) as `option`
  asks.

  "none": `fn` itself. "window" / "layer": store only its inputs and
  recompute the rest in the backward pass. "dots": also store the outputs
  of matmuls without batch dimensions (weight matmuls: projections, FFN,
  token mixing, vocabulary head), so the backward pass recomputes only
  attention, norms, dropout masks and element-wise ops.
  """
  if option == "none":
    return fn
  if option == "dots":
    return transform(
        fn, policy=jax.checkpoint_policies.dots_with_no_batch_dims_saveable)
  return transform(fn)


def _is_float(x) -> bool:
  return jnp.issubdtype(jnp.result_type(x), jnp.floating)


def tie(grad, tree):
  """`tree` unchanged (x + 0 is x), but computed from `grad`.

  A backward pass that recomputes from tied inputs cannot start before its
  gradient arrives, nor be merged with the forward pass (which has no
  gradient); `optimization_barrier` on the inputs and gradient did neither
  on XLA's CPU backend (none is left in its optimised program). Used by the
  attention's backward pass and the baselines' remat. The zero is 0 * the
  first element of every float leaf of `grad`, so a leaf whose gradient is
  a constant zero (a carried cache's) cannot untie it. A NaN or infinite
  first element makes the tree NaN.
  """
  firsts = [g[(0,) * g.ndim] for g in jax.tree.leaves(grad) if _is_float(g)]
  zero = 0.0 * sum(f.astype(jnp.float32) for f in firsts)  # []
  return jax.tree.map(
      lambda x: x + zero.astype(x.dtype) if _is_float(x) else x, tree)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _tied(checkpointed, inputs):
  return checkpointed(*inputs)


def _tied_fwd(checkpointed, inputs):
  return jax.vjp(checkpointed, *inputs)  # The vjp's residuals: its inputs.


def _tied_bwd(checkpointed, vjp, grad):
  del checkpointed
  return (tie(grad, vjp)(grad),)  # Recomputes from tied residuals.


_tied.defvjp(_tied_fwd, _tied_bwd)


def _tied_checkpoint(fun, static_argnums=(), policy=None):
  """jax.checkpoint(fun, policy=policy) whose recompute waits for the
  gradient. `fun` takes Haiku's state as the keyword `hk_state`."""
  def wrapped(*args, hk_state):
    static = {i: args[i] for i in static_argnums}

    def call(dynamic, state):
      it = iter(dynamic)
      full = [static[i] if i in static else next(it) for i in range(len(args))]
      return fun(*full, hk_state=state)

    dynamic = tuple(a for i, a in enumerate(args) if i not in static)
    # A function of explicit inputs only, so the backward pass needs no
    # Haiku frame: values it closed over become `consts`.
    pure, consts = jax.closure_convert(call, dynamic, hk_state)
    return _tied(jax.checkpoint(pure, policy=policy),
                 (dynamic, hk_state, *consts))
  return wrapped


# Like hk.remat(fun, static_argnums=..., policy=...): Haiku's parameters and
# random keys go in and out explicitly.
haiku_tied_remat = stateful.thread_hk_state_in_kwargs(_tied_checkpoint)
