"""Attention primitives against the reference (melodi_hk/README.md §3)."""

import json
import re

from absl.testing import absltest
from absl.testing import parameterized
import chex
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from melodi_hk import attention
from melodi_hk import nn
from tests import melodi_testing


class T5BucketTest(absltest.TestCase):

  def test_buckets_equal_the_reference_table(self):
    sidecar = json.loads(
        (melodi_testing.TESTDATA / "melodi_b_sandwich.json").read_text())
    reference = sidecar["t5_bucket_of_distance_n_0_to_300"]
    np.testing.assert_array_equal(attention.t5_buckets(np.arange(301)),
                                  reference)

  def test_negative_distances_share_bucket_zero(self):
    np.testing.assert_array_equal(attention.t5_buckets(np.array([-5, -1])),
                                  [0, 0])


class CausalLayoutTest(absltest.TestCase):

  def test_queries_see_memory_and_strictly_earlier_tokens(self):
    distance, mask = attention.causal_layout(num_memory=2, num_queries=3)
    np.testing.assert_array_equal(mask, [[1, 1, 0, 0, 0],
                                         [1, 1, 1, 0, 0],
                                         [1, 1, 1, 1, 0]])
    np.testing.assert_array_equal(distance[0], [2, 1, 0, -1, -2])

  def test_layout_compiles_to_iotas_not_constants(self):
    # A [Q, K] layout baked in as constants, once per layer, made up 64 of
    # the paper-size step's 68 MB of StableHLO.
    text = jax.jit(lambda: attention.causal_layout(96, 160)).lower().as_text()
    self.assertIn("iota", text)
    self.assertNotRegex(text, r"constant dense<[^>]*> : tensor<160x256")


class RelativePositionBiasTest(absltest.TestCase):

  def test_traced_distances_index_the_bucket_table(self):
    distance = np.arange(-5, 400)  # Past MAX_DISTANCE, where buckets end.
    bias = hk.transform(lambda d: attention.RelativePositionBias(2)(d))
    params = bias.init(jax.random.PRNGKey(0), distance)
    table = params["relative_positions"]["embedding"]  # [H, 32]
    expected = np.asarray(table)[:, attention.t5_buckets(distance)]
    traced = jax.jit(bias.apply)(params, None, distance)
    np.testing.assert_array_equal(traced, expected)
    np.testing.assert_array_equal(bias.apply(params, None, distance),
                                  expected)


class AttendTest(absltest.TestCase):

  def test_row_with_every_key_masked_outputs_zero(self):
    q = k = v = jnp.ones((1, 2, 1, 4))
    out = attention.attend(q, k, v, jnp.ones(1),
                           mask=np.array([[False, False], [True, False]]))
    chex.assert_trees_all_close(out[0, 0], jnp.zeros((1, 4)))
    chex.assert_trees_all_close(out[0, 1], jnp.ones((1, 4)))

  def test_bias_is_added_before_the_scale(self):
    keys = jnp.array([[[[1.0]], [[0.0]]]])  # [B=1, K=2, H=1, D=1]
    values = jnp.array([[[[1.0]], [[0.0]]]])
    query = jnp.ones((1, 1, 1, 1))
    bias = jnp.array([[[0.0, 1.0]]])  # [H, Q, K]
    out = attention.attend(query, keys, values, jnp.array([3.0]), bias=bias)
    # Scores (1 + 0) * 3 and (0 + 1) * 3 tie: the weight of key 0 is 1/2.
    chex.assert_trees_all_close(out[0, 0, 0, 0], 0.5, atol=1e-6)

  def test_safe_softmax_matches_softmax_on_normal_rows(self):
    scores = jax.random.normal(jax.random.PRNGKey(0), (3, 7))
    chex.assert_trees_all_close(attention.safe_softmax(scores),
                                jax.nn.softmax(scores), atol=1e-6)


class MixGradientTest(parameterized.TestCase):

  # Batch sizes 1, even and odd: the bias gradient sums rows by halving.
  @parameterized.parameters(1, 2, 3, 5)
  def test_custom_gradient_equals_autodiff(self, b):
    # A fully masked row (all weights 0), a bias, a learned scale, dropout.
    q, k, v, g = (jax.random.normal(jax.random.PRNGKey(i), shape) for i, shape
                  in enumerate([(b, 5, 3, 4), (b, 7, 3, 4), (b, 7, 3, 4),
                                (b, 5, 3, 4)]))
    bias = jax.random.normal(jax.random.PRNGKey(5), (3, 5, 7))
    scale = jnp.array([0.5, 2.0, 3.0])
    mask = np.ones((5, 7), bool)
    mask[0] = False
    key = jax.random.PRNGKey(6)  # The dropout mask's, drawn again below.
    keep = nn.keep_mask(0.3, (3, 5, 7), key)

    def plain(q, k, v, scale, bias):
      scores = (jnp.einsum("bqhd,bkhd->bhqk", q, k) + bias) * scale[:, None,
                                                                   None]
      weights = attention.safe_softmax(jnp.where(mask, scores, -1e6))
      weights = jnp.where(keep, weights / 0.7, 0.0)
      return jnp.einsum("bhqk,bkhd->bqhd", weights, v)

    def custom(q, k, v, scale, bias):
      return attention._attend(q, k, v, scale, bias, mask, key, 0.3)

    args = (q, k, v, scale, bias)
    want, want_vjp = jax.vjp(plain, *args)
    got, got_vjp = jax.vjp(custom, *args)
    chex.assert_trees_all_close(got, want, rtol=1e-5, atol=1e-6)
    chex.assert_trees_all_close(got_vjp(g), want_vjp(g), rtol=1e-4,
                                atol=1e-5)


class DroppedWeightsTest(absltest.TestCase):

  def test_equal_to_dropout_with_constant_zeros(self):
    weights = jax.nn.softmax(jax.random.normal(jax.random.PRNGKey(0),
                                               (2, 3, 5, 7)))
    keep = jax.random.bernoulli(jax.random.PRNGKey(1), 0.7, (3, 5, 7))
    np.testing.assert_array_equal(
        attention._dropped(weights, keep, 0.3),
        jnp.where(keep, weights / 0.7, 0.0))

  def test_mask_is_drawn_again_not_stored(self):
    q, k, v = (jax.random.normal(jax.random.PRNGKey(i), (2, 5, 3, 4))
               for i in range(3))
    attend = hk.transform(lambda q, k, v: attention.attend(
        q, k, v, jnp.ones(3), dropout_rate=0.3, is_training=True))
    loss = lambda q, k, v: jnp.sum(attend.apply({}, jax.random.PRNGKey(7),
                                                q, k, v)**2)
    saved = melodi_testing.saved_residuals(loss, q, k, v)
    self.assertEmpty([s for s in saved if s.startswith("bool")])
    self.assertLen([s for s in saved if s.startswith("u32[2]")], 1)

  def test_scan_does_not_materialise_a_constant_per_score(self):
    # The dropped weights' zeros once came from a constant, whose [B, H, Q,
    # K] broadcast XLA lifted out of the window scan as a kernel of its own
    # (fusion(%constant)) that every window then read.
    b, q, k, h, d = 3, 5, 64, 2, 4

    def loss(queries, keys, values):
      def window(total, x):  # x: [B, Q, H, D]
        key = jax.random.fold_in(jax.random.PRNGKey(0), total.astype(int))
        out = attention._attend(x, keys, values, jnp.ones(h), None, None,
                                key, 0.3)
        return total + jnp.sum(out**2), None
      return jax.lax.scan(window, 0.0, queries)[0]

    args = (jnp.ones((6, b, q, h, d)), jnp.ones((b, k, h, d)),
            jnp.ones((b, k, h, d)))
    text = jax.jit(jax.grad(loss, (0, 1, 2))).lower(*args).compile().as_text()
    self.assertIn("while", text)
    materialised = re.findall(
        rf"f32\[{b},{h},{q},{k}\]\{{[^}}]*\}} fusion\(%constant[.\d]*\)",
        text)
    self.assertEqual(materialised, [])


class RecomputeTest(absltest.TestCase):

  def test_unrolled_layers_keep_no_forward_scores(self):
    # Outside a loop XLA would merge the backward pass's recompute with
    # the forward pass (CSE) and keep every layer's float32 scores until
    # its backward: about two [B, H, Q, K] arrays per layer.
    b, h, n, d = 1, 2, 256, 8

    def temp_bytes(layers):
      def loss(x):
        for _ in range(layers):
          x = x + attention._attend(x, x, x, jnp.ones(h), None, None, None,
                                    0.0)
        return jnp.sum(x**2)
      step = jax.jit(jax.grad(loss)).lower(jnp.ones((b, n, h, d))).compile()
      return step.memory_analysis().temp_size_in_bytes

    scores = b * h * n * n * 4
    self.assertLess(temp_bytes(4) - temp_bytes(1), scores)


class NormalizeInsideTest(parameterized.TestCase):

  @parameterized.product(dtype=(jnp.float32, jnp.bfloat16),
                         flags=((True, True), (True, False), (False, True)))
  def test_equals_unit_then_attend(self, dtype, flags):
    normalize_queries, normalize_keys = flags
    q, k, v, g = (jax.random.normal(jax.random.PRNGKey(i), shape).astype(
        dtype) for i, shape in enumerate([(2, 5, 3, 4), (2, 7, 3, 4),
                                          (2, 7, 3, 4), (2, 5, 3, 4)]))
    q = q.at[0, 0, 0].set(0.0)  # A zero query head: 1 / norm is 1000.
    bias = jax.random.normal(jax.random.PRNGKey(5), (3, 5, 7))
    scale = jnp.array([0.5, 2.0, 3.0])
    key = jax.random.PRNGKey(6)
    mask = np.tri(5, 7, 1, dtype=bool)

    def outside(q, k, v, scale, bias):  # unit, then autodiff through it.
      q = attention.unit(q) if normalize_queries else q
      k = attention.unit(k) if normalize_keys else k
      return attention._attend(q, k, v, scale, bias, mask, key, 0.3)

    def inside(q, k, v, scale, bias):
      return attention._attend(q, k, v, scale, bias, mask, key, 0.3,
                               normalize_queries, normalize_keys)

    args = (q, k, v, scale, bias)
    want, want_vjp = jax.vjp(outside, *args)
    got, got_vjp = jax.vjp(inside, *args)
    chex.assert_trees_all_equal(got, want)
    tol = 1e-5 if dtype == jnp.float32 else 3e-2
    chex.assert_trees_all_close(got_vjp(g), want_vjp(g), rtol=tol, atol=tol)
    chex.assert_trees_all_equal_dtypes(got_vjp(g), want_vjp(g))

  def test_stores_only_the_raw_queries_and_keys(self):
    q, k, v = (jnp.ones((2, 5, 3, 4), jnp.bfloat16) for _ in range(3))
    loss = lambda q, k, v: jnp.sum(attention.attend(
        q, k, v, jnp.ones(3), normalize_queries=True,
        normalize_keys=True).astype(jnp.float32))
    saved = melodi_testing.saved_residuals(loss, q, k, v)
    # q, k and v as given, and the output (for the softmax gradient's row
    # sums); `unit` outside also stored a float32 copy and its bfloat16
    # output of q and k.
    self.assertLen([s for s in saved if s.startswith("bf16[2,5,3,4]")], 4)
    self.assertEmpty([s for s in saved if s.startswith("f32[2,5,3")])


class KeepMaskTest(absltest.TestCase):

  def test_keep_rate_and_fresh_draws(self):
    draw = hk.transform(lambda: nn.keep_mask(0.25, (4, 100, 101)))
    first = draw.apply({}, jax.random.PRNGKey(0))
    second = draw.apply({}, jax.random.PRNGKey(1))
    self.assertEqual(first.shape, (4, 100, 101))
    # 40400 units: the keep rate is 0.75 within 5 standard deviations.
    self.assertAlmostEqual(float(first.mean()), 0.75, delta=0.011)
    # Independent draws agree on 0.75^2 + 0.25^2 of the units.
    self.assertAlmostEqual(float((first == second).mean()), 0.625,
                           delta=0.013)


if __name__ == "__main__":
  absltest.main()
