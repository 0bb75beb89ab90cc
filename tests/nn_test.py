"""Shared building blocks (melodi_hk/nn.py): the RMS norm's and the ReLU's
custom gradients."""

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
    saved = melodi_testing.saved_residuals(lambda p, x: jnp.sum(ffn.apply(p, x)), params, x)
    self.assertNotIn("bool", "\n".join(saved))
    self.assertLen([s for s in saved if s.startswith("f32[2,3,16]")], 1)


if __name__ == "__main__":
  absltest.main()
