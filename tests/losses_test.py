"""The loss follows meliad's conventions (melodi_hk/README.md §11)."""

from absl.testing import absltest
import chex
import jax
import jax.numpy as jnp
import numpy as np

import melodi_hk
from melodi_hk import losses


class LossTest(absltest.TestCase):

  def test_targets_and_mask_shift_within_the_segment(self):
    tokens = jnp.array([[5, 6, 7, 0], [0, 3, 4, 2]])
    targets, mask = losses.targets_and_mask(tokens)
    np.testing.assert_array_equal(targets, [[6, 7, 0, 0], [3, 4, 2, 0]])
    np.testing.assert_array_equal(mask, [[1, 1, 0, 0], [0, 1, 1, 0]])

  def test_data_loss_mask_is_shifted_like_the_targets(self):
    tokens = jnp.array([[5, 6, 7, 8]])
    _, mask = losses.targets_and_mask(tokens, jnp.array([[1, 1, 0, 1]]))
    np.testing.assert_array_equal(mask, [[1, 0, 1, 0]])

  def test_sum_of_masked_cross_entropies(self):
    logits = jax.random.normal(jax.random.PRNGKey(0), (2, 4, 9))
    tokens = jnp.array([[5, 6, 7, 0], [1, 3, 4, 2]])
    out = melodi_hk.lm_loss(logits, tokens)
    log_probs = np.asarray(jax.nn.log_softmax(logits))
    pairs = [(0, 0, 6), (0, 1, 7), (1, 0, 3), (1, 1, 4), (1, 2, 2)]
    expected = -sum(log_probs[b, t, y] for b, t, y in pairs)
    chex.assert_trees_all_close(out.loss, expected, rtol=1e-6)
    self.assertEqual(int(out.num_tokens), 5)
    chex.assert_trees_all_close(out.nats_per_token, expected / 5, rtol=1e-6)

  def test_mismatched_shapes_are_an_error(self):
    with self.assertRaisesRegex(ValueError, r"\(2, 3, 9\) do not match"):
      melodi_hk.lm_loss(jnp.zeros((2, 3, 9)), jnp.zeros((2, 4), jnp.int32))


if __name__ == "__main__":
  absltest.main()
