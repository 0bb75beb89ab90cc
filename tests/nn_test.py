"""Shared building blocks (melodi_hk/nn.py): the RMS norm's, the ReLU's and
the dense matmul's custom gradients."""

import math

from absl.testing import absltest
from absl.testing import parameterized
import chex
import haiku as hk
import jax
import jax.numpy as jnp

from melodi_hk import nn
from tests import melodi_testing


def _autodiff_norm(x, scale):  # The norm as written before its custom VJP.
  x32 = x.astype(jnp.float32)
  y = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, -1, keepdims=True) + 1e-6)
  return (y * scale).astype(x.dtype)


class RMSNormTest(parameterized.TestCase):

  @parameterized.parameters(jnp.float32, jnp.bfloat16)
  def test_custom_gradient_equals_autodiff(self, dtype):
    x, g = (jax.random.normal(jax.random.PRNGKey(i), (2, 5, 8)).astype(dtype)
            for i in range(2))
    x = x.at[0, 0].set(0.0)  # A zero row: 1 / rms is 1000 there.
    scale = jax.random.normal(jax.random.PRNGKey(2), (8,))
    norm = hk.without_apply_rng(hk.transform(lambda x: nn.RMSNorm()(x)))
    ours = lambda x, s: norm.apply({"rms_norm": {"scale": s}}, x)
    loss = lambda f: lambda x, s: jnp.sum((f(x, s) * g).astype(jnp.float32))
    grads = jax.grad(loss(ours), (0, 1))(x, scale)
    autodiff = jax.grad(loss(_autodiff_norm), (0, 1))(x, scale)
    chex.assert_trees_all_equal(ours(x, scale), _autodiff_norm(x, scale))
    tol = 1e-5 if dtype == jnp.float32 else 2e-2
    chex.assert_trees_all_close(grads, autodiff, rtol=tol, atol=tol)
    chex.assert_trees_all_equal_dtypes(grads, autodiff)


class ReluTest(absltest.TestCase):

  def test_gradient_equals_jax_relu_zero_included(self):
    x = jnp.array([-2.0, -0.0, 0.0, 1e-30, 3.0])
    g = jnp.array([5.0, 6.0, 7.0, 8.0, 9.0])
    ours = jax.vjp(nn.relu, x)
    theirs = jax.vjp(jax.nn.relu, x)
    chex.assert_trees_all_equal(ours[0], theirs[0])
    chex.assert_trees_all_equal(ours[1](g), theirs[1](g))

  def test_ffn_stores_no_mask(self):
    ffn = hk.without_apply_rng(hk.transform(lambda x: nn.FeedForward(16, 4)(
        x)))
    x = jnp.ones((2, 3, 4))
    params = ffn.init(jax.random.PRNGKey(0), x)
    saved = melodi_testing.saved_residuals(
        lambda p, x: jnp.sum(ffn.apply(p, x)), params, x)
    self.assertNotIn("bool", "\n".join(saved))
    self.assertLen([s for s in saved if s.startswith("f32[2,3,16]")], 1)
    self.assertEmpty([s for s in saved if s.startswith("f32[6,")])


class MatmulTest(parameterized.TestCase):

  @parameterized.product(dtype=(jnp.float32, jnp.bfloat16), in_axes=(1, 2))
  def test_equals_autodiff_of_the_flat_dot(self, dtype, in_axes):
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 3, 4, 5)).astype(dtype)
    k = jax.random.normal(jax.random.PRNGKey(1), (
        math.prod(x.shape[4 - in_axes:]), 6)).astype(dtype)
    g = jax.random.normal(jax.random.PRNGKey(2), x.shape[:4 - in_axes] + (
        6,)).astype(dtype)
    flat = lambda x, k: jnp.dot(x.reshape(x.shape[:4 - in_axes] + (-1,)), k)
    ours, ours_vjp = jax.vjp(lambda x, k: nn.matmul(x, k, in_axes), x, k)
    theirs, theirs_vjp = jax.vjp(flat, x, k)
    tol = 1e-5 if dtype == jnp.float32 else 2e-2
    chex.assert_trees_all_close(ours, theirs, rtol=tol, atol=tol)
    chex.assert_trees_all_equal_shapes_and_dtypes(ours_vjp(g), theirs_vjp(g))
    chex.assert_trees_all_close(ours_vjp(g), theirs_vjp(g), rtol=tol,
                                atol=tol)

  def test_stores_its_input_as_it_came(self):
    # The attention output's case: heads [B, n, H, D] into an [H*D, E]
    # kernel. A flattened [B, n, H*D] residual would be a second copy of
    # the heads, which `attend` already stores.
    x = jnp.ones((2, 3, 4, 5))
    k = jnp.ones((20, 6))
    saved = melodi_testing.saved_residuals(
        lambda x, k: jnp.sum(nn.matmul(x, k, 2)), x, k)
    self.assertLen(saved, 2, saved)
    self.assertTrue(saved[0].startswith("f32[2,3,4,5] from the argument x"),
                    saved)
    self.assertTrue(saved[1].startswith("f32[20,6] from the argument k"),
                    saved)

  def test_dense_kernel_covers_the_flattened_axes(self):
    dense = hk.without_apply_rng(hk.transform(
        lambda x: nn.Dense(6, with_bias=False, name="output")(x, in_axes=2)))
    x = jnp.ones((2, 3, 4, 5))
    params = dense.init(jax.random.PRNGKey(0), x)
    self.assertEqual(params["output"]["kernel"].shape, (20, 6))
    self.assertEqual(dense.apply(params, x).shape, (2, 3, 6))


if __name__ == "__main__":
  absltest.main()
