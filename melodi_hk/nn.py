"""Building blocks shared by every model: RMS norm, dense, FFN, dropout,
the token embedding with its tied output head, and the shard_map cast that
custom gradients need.

Glossary of shapes:
- B: batch.  n: tokens in the sequence at hand.  V: vocabulary.
- E: width.  F: MLP hidden dim.  K: input features.  O: output features.
- N: rows of a matmul, all leading axes flattened (e.g. B * n).

Parameters are created in float32 and cast to the input's dtype at use, so
bfloat16 compute keeps float32 master weights (melodi_hk/README.md §2).
"""

import functools
import math

import haiku as hk
import jax
from jax.extend.random import threefry_2x32
import jax.numpy as jnp

# meliad's "trunc-normal fan-in": truncated at 2 sigma, rescaled so that the
# realised std is sqrt(1 / fan_in).
fan_in_init = hk.initializers.VarianceScaling(1.0, "fan_in", "truncated_normal")

_TILE = 128  # Token-axis period of meliad's tiled dropout masks.


class RMSNorm(hk.Module):
  """`x * rsqrt(mean(x^2) + 1e-6) * scale`, in float32, no mean, no bias."""

  def __call__(self, x: jax.Array) -> jax.Array:  # [..., E] -> [..., E]
    scale = hk.get_parameter("scale", [x.shape[-1]], jnp.float32,
                             init=jnp.ones)
    return _rms_norm(*same_varying_axes(x, scale))


def _normalised(x):  # [..., E] -> float32 x / rms(x) [..., E], 1 / rms [..., 1]
  x32 = x.astype(jnp.float32)
  r = jax.lax.rsqrt(jnp.mean(x32 * x32, -1, keepdims=True) + 1e-6)
  return x32 * r, r


@jax.custom_vjp
def _rms_norm(x, scale):
  """The norm with a gradient that stores only x and 1 / rms(x).

  Autodiff also stores the float32 normalised x (for the scale's gradient),
  one more [..., E] array per norm, window and layer: six per MELODI layer.
  Recomputing it costs one multiply.
  """
  return _rms_norm_fwd(x, scale)[0]


def _rms_norm_fwd(x, scale):
  y, r = _normalised(x)
  return (y * scale).astype(x.dtype), (x, r, scale)


def _rms_norm_bwd(residuals, grad):  # grad [..., E]
  x, r, scale = residuals
  y = x.astype(jnp.float32) * r
  g = grad.astype(jnp.float32)
  gy = g * scale  # The gradient with respect to y.
  grad_x = r * (gy - y * jnp.mean(gy * y, -1, keepdims=True))
  grad_scale = jnp.sum(g * y, tuple(range(y.ndim - 1)))
  return grad_x.astype(x.dtype), grad_scale


_rms_norm.defvjp(_rms_norm_fwd, _rms_norm_bwd)


def _varying(x) -> frozenset:
  return jax.typeof(x).manual_axis_type.varying


def same_varying_axes(*xs):
  """Marks every input as varying over the axes any of them varies over.

  Under shard_map the rows vary over the device axis while parameters are
  replicated; a custom gradient must return each cotangent with its
  input's type, so the replicated inputs are cast to varying first
  (autodiff turns that cast into the psum of their gradients).
  """
  axes = frozenset().union(*(_varying(x) for x in xs if x is not None))
  return tuple(
      x if x is None or not axes - _varying(x) else
      jax.lax.pcast(x, tuple(sorted(axes - _varying(x))), to="varying")
      for x in xs)


class Dense(hk.Module):
  """`y = x @ kernel (+ bias)` with a float32 (K, O) kernel."""

  def __init__(self, output_size: int, with_bias: bool = True, name=None):
    super().__init__(name=name)
    self.output_size = output_size
    self.with_bias = with_bias

  def __call__(self, x: jax.Array, in_axes: int = 1) -> jax.Array:
    """x [..., K] -> [..., O]; with `in_axes` = 2, x [..., K1, K2] and
    K = K1 * K2 (e.g. attention heads [.., H, D] into the output)."""
    kernel = hk.get_parameter(
        "kernel", [math.prod(x.shape[-in_axes:]), self.output_size],
        jnp.float32, init=fan_in_init)
    y = matmul(*same_varying_axes(x, kernel.astype(x.dtype)), in_axes)
    if self.with_bias:
      y += hk.get_parameter("bias", [self.output_size], jnp.float32,
                            init=jnp.zeros).astype(x.dtype)
    return y


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def matmul(x: jax.Array, kernel: jax.Array, in_axes: int = 1) -> jax.Array:
  """`x @ kernel` over x's last `in_axes` axes flattened, [..., K] @ [K, O]
  -> [..., O], whose kernel gradient is one 2-D matmul over all rows.

  Autodiff's kernel gradient contracts x and the output gradient over all
  their leading axes, and XLA's CPU backend transposes both for that; as
  [N, K]^T @ [N, O] the GEMM reads them in place. Flattening x before an
  ordinary dot would do the same but store the flat copy as a residual
  beside x itself (a ReLU's output, the input that keys and values share,
  the attention output that `attend` stores), one more array per layer
  and window; this stores x as it came.
  """
  return _matmul_fwd(x, kernel, in_axes)[0]


def _matmul_fwd(x, kernel, in_axes):
  rows = x.reshape(x.shape[:x.ndim - in_axes] + (-1,))  # [..., K]
  return jnp.dot(rows, kernel), (x, kernel)


def _matmul_bwd(in_axes, residuals, grad):  # grad [..., O]
  x, kernel = residuals
  grad_kernel = jax.lax.dot_general(  # [N, K]^T @ [N, O] -> [K, O]
      x.reshape(-1, kernel.shape[0]), grad.reshape(-1, grad.shape[-1]),
      (((0,), (0,)), ((), ())))
  grad_x = jnp.dot(grad, kernel.T).reshape(x.shape)
  return grad_x, grad_kernel.astype(kernel.dtype)


matmul.defvjp(_matmul_fwd, _matmul_bwd)


class FeedForward(hk.Module):
  """Two-layer ReLU MLP `relu(x W1 + b1) W2 + b2`; biases optional."""

  def __init__(self, hidden_size: int, output_size: int,
               with_bias: bool = True, name=None):
    super().__init__(name=name)
    self.hidden = Dense(hidden_size, with_bias, name="input")
    self.out = Dense(output_size, with_bias, name="output")

  def __call__(self, x: jax.Array) -> jax.Array:  # [..., E] -> [..., E]
    return self.out(relu(self.hidden(x)))  # hidden: [..., F]


@jax.custom_vjp
def relu(x: jax.Array) -> jax.Array:
  """`max(x, 0)` with a gradient that stores only the output.

  jax.nn.relu's stores the mask x > 0 beside the output, which the next
  matmul stores anyway, and the mask is the output's h > 0: one bool [.., F]
  per FFN and window less. The gradient is the same, 0 at x = 0 included.
  """
  return jnp.maximum(x, 0)


def _relu_fwd(x):
  h = jnp.maximum(x, 0)
  return h, h


def _relu_bwd(h, grad):
  return (jnp.where(h > 0, grad, 0.0).astype(grad.dtype),)


relu.defvjp(_relu_fwd, _relu_bwd)


class TiedEmbeddingStack(hk.Module):
  """Base of every model's stack: the embedding and the tied output head.

  The parameters live in the stack's own scope, `<stack>/embedding` [V, E]
  and `<stack>/~/final_norm/scale` [E], so every model type (and meliad's
  converters) names them alike. `cfg` needs vocab_size, embed_dim, dtype
  and dropout_rate.
  """

  def __init__(self, cfg, name: str):
    super().__init__(name=name)
    self.cfg = cfg
    self.final_norm = RMSNorm(name="final_norm")

  def embed(self, tokens: jax.Array) -> jax.Array:  # int[B, n] -> [B, n, E]
    """Rows of the embedding; ids are taken modulo V, as the reference."""
    return self._embedding()[tokens % self.cfg.vocab_size]

  def head(self, x: jax.Array, is_training: bool) -> jax.Array:
    """x [B, n, E] -> float32 logits [B, n, V] (tied, divided by sqrt(E))."""
    ys = tiled_dropout(self.final_norm(x), self.cfg.dropout_rate,
                       is_training)  # [B, n, E]
    logits = jnp.einsum("bne,ve->bnv", ys, self._embedding().astype(ys.dtype),
                        preferred_element_type=jnp.float32)
    return logits / jnp.sqrt(float(self.cfg.embed_dim))

  def _embedding(self) -> jax.Array:  # [V, E] in the compute dtype
    return hk.get_parameter(
        "embedding", [self.cfg.vocab_size, self.cfg.embed_dim], jnp.float32,
        init=hk.initializers.RandomNormal(1.0)).astype(self.cfg.dtype)


def keep_mask(rate: float, shape, key: jax.Array | None = None) -> jax.Array:
  """bool[shape], True with probability 1 - rate (to 2^-16), for dropout.

  One threefry call gives 64 random bits, and each 16 of them decide one
  unit: 4x fewer calls and 4x smaller scratch buffers than
  `jax.random.bernoulli`, which spends a call per unit (the attention
  masks [H, Q, K] of a long memory are the largest draws of a step).
  `key` defaults to `hk.next_rng_key()`; the same key gives the same mask.
  """
  size = math.prod(shape)
  words = 2 * -(-size // 4)  # uint32 words, an even count (pairs per call).
  key = hk.next_rng_key() if key is None else key
  bits = threefry_2x32(key, jnp.arange(words, dtype=jnp.uint32))  # [words]
  halves = jnp.stack([bits & 0xFFFF, bits >> 16], axis=-1).reshape(-1)
  threshold = round((1.0 - rate) * 65536)
  return (halves[:size] < threshold).reshape(shape)


def tiled_dropout(x: jax.Array, rate: float, is_training: bool) -> jax.Array:
  """meliad's dropout: one (1, tile, E) mask repeated along the token axis.

  The mask is shared by the batch and repeats every `tile` tokens (128,
  halved until it divides the length, at least 8), as in the reference.

  Args:
    x: [B, n, E] activations.
    rate: drop probability.
    is_training: dropout is the identity unless True.

  Returns:
    [B, n, E], dropped entries zero and kept ones scaled by 1 / (1 - rate).
  """
  if not is_training or rate == 0.0:
    return x
  n, width = x.shape[-2], x.shape[-1]
  tile = _TILE
  while tile > 8 and n % tile:
    tile //= 2
  keep = keep_mask(rate, (1, tile, width))
  keep = jnp.tile(keep, (1, -(-n // tile), 1))[:, :n]  # [1, n, E]
  return jnp.where(keep, x / (1.0 - rate), 0).astype(x.dtype)
