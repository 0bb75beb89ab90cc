"""Attention as meliad computes it: unit-norm keys/queries, |scale|, T5 bias.

Glossary of shapes:
- B: batch.  Q: query tokens.  K: key tokens.  n: tokens projected.
- E: width.  H: heads.  D: head dim.

Scores are `(q . k + bias) * |scale_h|` (the bias is added *before* the
learned temperature, melodi_hk/README.md §3), masked entries get -1e6 and the
softmax is meliad's "safe" one, which gives a row with every key masked
weight 0.
"""

import functools

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from melodi_hk import nn
from melodi_hk import remat as remat_lib

NUM_BUCKETS = 32  # T5 relative-position buckets.
MAX_DISTANCE = 128  # Distances beyond this share the last bucket.
_MASKED = -1e6  # Score of a disallowed key (meliad's constant).
_FLOOR = -1000.0  # Floor of the softmax max; makes all-masked rows zero.


def t5_buckets(distance: np.ndarray) -> np.ndarray:
  """Causal T5 bucket of `query_pos - key_pos` (negative counts as 0)."""
  n = np.maximum(np.asarray(distance), 0)
  exact = NUM_BUCKETS // 2
  eps = np.finfo(np.float32).eps
  log_ratio = (np.log(n.astype(np.float32) / exact + eps) /
               np.log(MAX_DISTANCE / exact))
  large = exact + (log_ratio * (NUM_BUCKETS - exact)).astype(np.int32)
  large = np.minimum(large, NUM_BUCKETS - 1)
  return np.where(n < exact, n, large).astype(np.int32)


class RelativePositionBias(hk.Module):
  """A per-layer (H, 32) T5 table looked up by query-key distances."""

  def __init__(self, num_heads: int, name: str = "relative_positions"):
    super().__init__(name=name)
    self.num_heads = num_heads

  def __call__(self, distance) -> jax.Array:  # int[...] -> [H, ...]
    """The bias of integer distances, numpy or traced (negatives count 0).

    Every distance from MAX_DISTANCE on has the last bucket, so a static
    [H, MAX_DISTANCE + 1] table of biases covers all of them and the
    distances only index it: no bucket is computed from a tracer, and a
    traced [Q, K] layout stays an iota in the compiled step instead of a
    constant of Q x K integers per layer.
    """
    table = hk.get_parameter(
        "embedding", [self.num_heads, NUM_BUCKETS], jnp.float32,
        init=hk.initializers.RandomNormal(NUM_BUCKETS ** -0.5))
    by_distance = jnp.take(table, t5_buckets(np.arange(MAX_DISTANCE + 1)),
                           axis=1)  # [H, MAX_DISTANCE + 1]
    return jnp.take(by_distance, jnp.clip(distance, 0, MAX_DISTANCE), axis=1)


def causal_layout(num_memory: int, num_queries: int):
  """Distances and strict mask for queries that follow `num_memory` keys.

  Keys sit at positions 0..num_memory+num_queries-1 and the queries are the
  last `num_queries` of them; a key is visible iff strictly earlier.

  Returns:
    distance int32[Q, K] and mask bool[Q, K], built from iotas: under jit
    they compile to a few fused integer ops rather than [Q, K] constants
    (at the paper's size these were 26 constants and 64 MB of the step's
    StableHLO).
  """
  shape = (num_queries, num_memory + num_queries)
  q_pos = jax.lax.broadcasted_iota(jnp.int32, shape, 0) + num_memory
  k_pos = jax.lax.broadcasted_iota(jnp.int32, shape, 1)
  return q_pos - k_pos, k_pos < q_pos


def safe_softmax(scores: jax.Array) -> jax.Array:  # [..., K] -> [..., K]
  top = jnp.maximum(jnp.max(scores, -1, keepdims=True), _FLOOR)
  e = jnp.exp(scores - top)
  return e / (jnp.sum(e, -1, keepdims=True) + jnp.exp(_FLOOR - top))


def attend(queries, keys, values, scale, *, bias=None, mask=None,
           dropout_rate=0.0, is_training=False, normalize_queries=False,
           normalize_keys=False) -> jax.Array:
  """Scaled, optionally biased and masked attention (melodi_hk/README.md §3).

  Args:
    queries: [B, Q, H, D] unit-norm queries, or raw ones with
      `normalize_queries`.
    keys: [B, K, H, D] unit-norm keys, or raw ones with `normalize_keys`.
    values: [B, K, H, D].
    scale: [H] non-negative temperatures (already |s|).
    bias: optional [H, Q, K] position bias, added before scaling.
    mask: optional bool[Q, K] or [B, Q, K]; False hides a key.
    dropout_rate: attention-weight dropout, one [H, Q, K] mask per call
      shared by the batch (as meliad), drawn from a key that the backward
      pass reuses to draw it again rather than storing it.
    is_training: enables dropout.
    normalize_queries: L2-normalise the queries per head here (`unit`).
    normalize_keys: the same for the keys. Normalising inside the custom
      gradient stores only the raw arrays for the backward pass, where
      `unit` outside would also store its float32 input and its output.

  Returns:
    [B, Q, H, D] in the values' dtype.
  """
  if mask is not None:
    mask = mask[:, None] if mask.ndim == 3 else mask  # [B, 1, Q, K] / [Q, K]
  key = hk.next_rng_key() if is_training and dropout_rate > 0.0 else None
  return _attend(*nn.same_varying_axes(queries, keys, values, scale, bias),
                 mask, key, dropout_rate, normalize_queries, normalize_keys)


def _scores(queries, keys, scale, bias, mask):
  """float32 scores [B, H, Q, K]: (q.k + bias) * scale, masked."""
  raw = jnp.einsum("bqhd,bkhd->bhqk", queries, keys,
                   preferred_element_type=jnp.float32)  # [B, H, Q, K]
  if bias is not None:
    raw += bias
  scores = raw * scale[:, None, None]
  if mask is not None:
    scores = jnp.where(mask, scores, _MASKED)
  return scores


def _keep(key, rate: float, queries, keys):  # bool[H, Q, K] or None
  if key is None:
    return None
  return nn.keep_mask(rate, keys.shape[2:3] + queries.shape[1:2] +
                      keys.shape[1:2], key)


def _dropped(weights, keep, rate: float):  # [B, H, Q, K], mask [H, Q, K]
  if keep is None:
    return weights
  # `weights * 0`, not the constant 0 (the same +0, as weights are finite
  # and >= 0): XLA's CPU loop-invariant code motion lifts a constant's
  # broadcast out of the window scan and materialises it [B, H, Q, K], and
  # every window then reads it. That was about 3% of the small size's step
  # (L = 1024; experiments/results/step_time/dropout_zeros).
  return jnp.where(keep, weights / (1.0 - rate), weights * 0.0)


@functools.partial(jax.custom_vjp, nondiff_argnums=(7, 8, 9))
def _attend(queries, keys, values, scale, bias, mask, key, rate: float,
            unit_q: bool = False, unit_k: bool = False):
  """`attend` after the dropout key is drawn (None: no dropout).

  A custom gradient that stores only the inputs and the output, and
  recomputes the scores and weights in the backward pass (bit for bit the
  forward's), as FlashAttention does. Autodiff would store the float32
  scores, unscaled scores (for the learned scale's gradient), weights and
  dropped weights, [B, H, Q, K] each: the largest activations of a
  window. The price is one more q.k matmul and softmax per attention in
  the backward pass. The dropout mask [H, Q, K] is drawn again from its
  key there too (as FlashAttention does): stored, the masks took 0.38 of
  the paper-size step's 10.5 GB of activations. With `unit_q` / `unit_k`
  it also applies `unit` to the queries / keys and recomputes that in the
  backward pass.
  """
  return _attend_fwd(queries, keys, values, scale, bias, mask, key, rate,
                     unit_q, unit_k)[0]


def _weights(raw_q, raw_k, scale, bias, mask, key, rate, unit_q, unit_k):
  """What the forward pass computes and the backward pass again: queries
  [B, Q, H, D], keys [B, K, H, D], weights [B, H, Q, K], keep [H, Q, K]."""
  queries = unit(raw_q) if unit_q else raw_q
  keys = unit(raw_k) if unit_k else raw_k
  weights = safe_softmax(_scores(queries, keys, scale, bias, mask))
  return queries, keys, weights, _keep(key, rate, queries, keys)


def _attend_fwd(raw_q, raw_k, values, scale, bias, mask, key, rate,
                unit_q=False, unit_k=False):
  _, _, weights, keep = _weights(raw_q, raw_k, scale, bias, mask, key, rate,
                                 unit_q, unit_k)
  out = jnp.einsum("bhqk,bkhd->bqhd",
                   _dropped(weights, keep, rate).astype(values.dtype), values)
  return out, (raw_q, raw_k, values, scale, bias, mask, key, out)


def _attend_bwd(rate, unit_q, unit_k, residuals, grad):  # grad [B, Q, H, D]
  raw_q, raw_k, values, scale, bias, mask, key, out = residuals
  # Tied to the gradient, the recompute cannot run early: XLA had merged it
  # with the forward pass outside loops (the baselines), keeping every
  # layer's float32 scores alive until its backward pass, and in MELODI's
  # backward window scan ran all layers' recomputes first (3.5 and 0.8 GB
  # at the paper size).
  raw_q, raw_k = remat_lib.tie(grad, (raw_q, raw_k))
  queries, keys, weights, keep = _weights(raw_q, raw_k, scale, bias, mask,
                                          key, rate, unit_q, unit_k)
  dropped = _dropped(weights, keep, rate).astype(values.dtype)
  grad_values = jnp.einsum("bhqk,bqhd->bkhd", dropped, grad.astype(
      values.dtype))
  grad_weights = _dropped(jnp.einsum("bqhd,bkhd->bhqk", grad, values,
                                     preferred_element_type=jnp.float32),
                          keep, rate)
  # The softmax Jacobian; safe_softmax's max shift and floor term cancel
  # out of it exactly. Masked keys have weight 0, hence gradient 0.
  grad_scores = weights * (grad_weights - _row_dots(grad, out))  # [B, H, Q, K]
  grad_low = grad_scores.astype(queries.dtype)
  # d/dq of sum(g * (q.k + bias)) is sum_k g k; the scale's gradient
  # sum(g * (q.k + bias)) reuses it instead of storing q.k + bias.
  grad_q = jnp.einsum("bhqk,bkhd->bqhd", grad_low, keys,
                      preferred_element_type=jnp.float32)
  grad_scale = jnp.einsum("bqhd,bqhd->h", grad_q,
                          queries.astype(jnp.float32))
  grad_bias = None
  if bias is not None:
    summed = _sum_rows(grad_scores)  # [H, Q, K]
    grad_bias = summed * scale[:, None, None]
    grad_scale += jnp.sum(summed * bias, (1, 2))
  grad_k = jnp.einsum("bhqk,bqhd->bkhd", grad_low, queries,
                      preferred_element_type=jnp.float32)
  h = scale[None, None, :, None]
  grad_q, grad_k = grad_q * h, grad_k * h  # float32
  if unit_q:
    grad_q = _unit_grad(raw_q, grad_q)
  if unit_k:
    grad_k = _unit_grad(raw_k, grad_k)
  return (grad_q.astype(raw_q.dtype), grad_k.astype(raw_k.dtype),
          grad_values.astype(values.dtype), grad_scale, grad_bias, None, None)


_attend.defvjp(_attend_fwd, _attend_bwd)


def _row_dots(grad, out):  # [B, Q, H, D] twice -> float32 [B, H, Q, 1]
  """sum_k weights * grad_weights per query, as FlashAttention computes it.

  out_q = sum_k dropped_qk v_k, so sum_k weights_qk grad_weights_qk =
  sum_k dropped_qk (grad_q . v_k) = grad_q . out_q: a pass over [Q, H, D]
  instead of over the [H, Q, K] weights and their gradient.
  """
  dots = jnp.einsum("bqhd,bqhd->bhq", grad.astype(jnp.float32),
                    out.astype(jnp.float32))
  return dots[..., None]


def _sum_rows(x: jax.Array) -> jax.Array:  # [B, ...] -> [...]
  """The sum over the leading axis, by halving it: log2(B) fused adds.

  XLA's CPU backend (jax 0.10) hands a reduction over a short leading axis
  into a large output to YNNPACK, which is many times slower than these
  adds; as `jnp.sum` or an einsum, the bias gradient's batch sum was 5-9%
  of a training step's op time (`experiments/step_profile.sh`).
  """
  while x.shape[0] > 1:
    half = x.shape[0] // 2
    pairs = x[:half] + x[half:2 * half]
    x = jnp.concatenate([pairs, x[2 * half:]]) if x.shape[0] % 2 else pairs
  return x[0]


def unit(x: jax.Array) -> jax.Array:  # [..., D] -> [..., D]
  """x / sqrt(|x|^2 + 1e-6) over the last axis (per head), in float32."""
  x32 = x.astype(jnp.float32)
  return (x32 * _inverse_norm(x32)).astype(x.dtype)


def _inverse_norm(x32: jax.Array) -> jax.Array:  # [..., D] -> [..., 1]
  return jax.lax.rsqrt(jnp.sum(x32 * x32, -1, keepdims=True) + 1e-6)


def _unit_grad(x: jax.Array, grad: jax.Array) -> jax.Array:
  """float32 d/dx of sum(grad * unit(x)): r (g - y sum(g y)), y = x r."""
  x32 = x.astype(jnp.float32)
  r = _inverse_norm(x32)
  y = x32 * r
  return r * (grad - y * jnp.sum(grad * y, -1, keepdims=True))


class Attention(hk.Module):
  """Pre-norm Q/K/V projections, per-head |scale| and output projection."""

  def __init__(self, num_heads: int, head_dim: int, embed_dim: int,
               dropout_rate: float, name: str = "attention"):
    super().__init__(name=name)
    self.num_heads, self.head_dim = num_heads, head_dim
    self.dropout_rate = dropout_rate
    self.norm = nn.RMSNorm(name="pre_attn_norm")
    width = num_heads * head_dim
    self.query = nn.Dense(width, with_bias=False, name="query")
    self.key = nn.Dense(width, with_bias=False, name="key")
    self.value = nn.Dense(width, with_bias=False, name="value")
    self.out = nn.Dense(embed_dim, with_bias=False, name="output")

  def _heads(self, x):  # [B, n, H*D] -> [B, n, H, D]
    return x.reshape(x.shape[:-1] + (self.num_heads, self.head_dim))

  def _normed(self, z, is_training):
    return nn.tiled_dropout(self.norm(z), self.dropout_rate, is_training)

  def keys_values(self, z: jax.Array, is_training: bool):
    """[B, n, E] -> unit-norm keys and raw values, each [B, n, H, D]."""
    zn = self._normed(z, is_training)
    return unit(self._heads(self.key(zn))), self._heads(self.value(zn))

  def keys_values_queries(self, z: jax.Array, is_training: bool,
                          first_query: int = 0, normalized: bool = True):
    """[B, n, E] -> keys, values [B, n, H, D], queries [B, n-first_query, H, D].

    Tokens before `first_query` (e.g. memory slots) only serve as keys and
    values, so their queries are not computed. Keys and queries are
    unit-norm unless `normalized=False`, which leaves that to `attend`'s
    normalize_keys / normalize_queries.
    """
    zn = self._normed(z, is_training)
    # Key, value, query: the order in which `init` draws their kernels.
    keys, values = self._heads(self.key(zn)), self._heads(self.value(zn))
    queries = self._heads(self.query(zn[:, first_query:]))
    if normalized:
      keys, queries = unit(keys), unit(queries)
    return keys, values, queries

  def scale(self) -> jax.Array:  # [H]
    return temperature("scale", self.num_heads)

  def output(self, heads: jax.Array) -> jax.Array:  # [B, n, H, D] -> [B, n, E]
    # Heads as they are, not reshaped to [B, n, H*D]: the projection's
    # gradient then stores the very array `attend` stores, not a copy.
    return self.out(heads, in_axes=2)


def temperature(name: str, num_heads: int) -> jax.Array:  # [H]
  """A learned per-head attention temperature |s|, starting at 1."""
  return jnp.abs(hk.get_parameter(name, [num_heads], jnp.float32,
                                  init=jnp.ones))
