"""Memory values: zero init, row resets, FIFO order, structure checks."""

from absl.testing import absltest
import chex
import jax
import jax.numpy as jnp
import numpy as np

from melodi_hk import memory as memory_lib
from tests import melodi_testing


class MemoryTest(absltest.TestCase):

  def test_init_memory_shapes_and_dtype(self):
    cfg = melodi_testing.tiny_config(dtype="bfloat16")
    memory = memory_lib.init_memory(cfg, 3)
    self.assertLen(memory.short, cfg.num_layers)
    self.assertLen(memory.long, 1)
    chex.assert_shape(memory.short[0].tokens,
                      (3, cfg.short_term_memory_size, cfg.embed_dim))
    chex.assert_shape(memory.long[0].tokens,
                      (3, cfg.long_term_memory_size, cfg.embed_dim))
    chex.assert_type(memory.long[0].tokens, jnp.bfloat16)
    chex.assert_trees_all_equal(memory, jax.tree.map(jnp.zeros_like, memory))

  def test_reset_selects_zero_rows_only(self):
    cfg = melodi_testing.tiny_config()
    memory = jax.tree.map(lambda m: m + 2.0, memory_lib.init_memory(cfg, 2))
    out = memory_lib.reset(memory, jnp.array([False, True]))
    for leaf in jax.tree.leaves(out):
      np.testing.assert_array_equal(leaf[0], 2.0)
      np.testing.assert_array_equal(leaf[1], 0.0)

  def test_reset_replaces_non_finite_rows(self):
    # A select, not a multiply: a NaN row from an earlier document is gone.
    bad = jnp.full((2, 3, 4), jnp.nan)
    out = memory_lib.reset(bad, jnp.array([True, False]))
    np.testing.assert_array_equal(out[0], 0.0)

  def test_fifo_drops_oldest_and_appends_newest(self):
    fifo = jnp.arange(6.0).reshape(1, 6, 1)
    out = memory_lib.fifo_push(fifo, jnp.array([[[10.0], [11.0]]]))
    np.testing.assert_array_equal(out[0, :, 0], [2, 3, 4, 5, 10, 11])


if __name__ == "__main__":
  absltest.main()
