"""experiments/fifo_cost's throwaway variants compute what they claim.

Glossary of shapes: B batch (3, unlike H), T segment (2 windows of W = 4),
L long memory, I increment, C Memorizing slots (2 segments), E width,
H heads, D head dim.

The bound is only meaningful if each variant changes nothing but the copy:
the in-place push writes exactly the I new slots, and the Memorizing
variant, given the same C slots, attends exactly as the real memory layer.
"""

from unittest import mock

from absl.testing import absltest
import jax
import jax.numpy as jnp
import numpy as np

import melodi_hk
from experiments import fifo_cost
from melodi_hk import memorizing


class FifoCostTest(absltest.TestCase):

  def test_push_in_place_writes_only_the_first_increment(self):
    fifo = jax.random.normal(jax.random.PRNGKey(0), (3, 8, 5))  # [B, L, E]
    new = jax.random.normal(jax.random.PRNGKey(1), (3, 2, 5))  # [B, I, E]
    out = np.asarray(fifo_cost.push_in_place(fifo, new))
    np.testing.assert_array_equal(out[:, :2], new)
    np.testing.assert_array_equal(out[:, 2:], fifo[:, 2:])

  def test_memorizing_in_place_attends_as_the_real_layer(self):
    cfg = melodi_hk.MemorizingConfig(
        vocab_size=32, num_layers=2, embed_dim=16, num_heads=2, head_dim=8,
        mlp_dim=32, window_length=4, segment_length=8, memory_layer=0,
        memory_size=16, dtype="float32")
    big = cfg.__class__(**{**vars(cfg), "memory_size": 24})  # C + T slots.
    model = melodi_hk.build(cfg)
    params = model.init(jax.random.PRNGKey(0))
    tokens = jax.random.randint(jax.random.PRNGKey(1), (3, 8), 1, 32)
    sos = jnp.zeros((3,), bool)
    memory = model.init_memory(3)
    keys = jax.random.normal(jax.random.PRNGKey(2), memory.kv.keys.shape)
    keys /= jnp.linalg.norm(keys, axis=-1, keepdims=True)  # [B, C, H, D]
    values = jax.random.normal(jax.random.PRNGKey(3), keys.shape)
    memory = memory._replace(kv=memory.kv._replace(keys=keys, values=values))
    want, real = model.apply(params, memory, tokens, sos)

    pad = lambda x: jnp.concatenate([x, jnp.ones((3, 8, 2, 8))], axis=1)
    padded = memory._replace(kv=memory.kv._replace(
        keys=pad(keys), values=pad(values)))  # Last T slots: overwritten.
    with mock.patch.object(memorizing.MemoryLayer, "__call__",
                           fifo_cost.memory_layer_in_place):
      got, variant = melodi_hk.build(big).apply(params, padded, tokens, sos)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # The segment's keys land in the last T slots; the real layer writes
    # them at write index 0.
    np.testing.assert_allclose(variant.kv.keys[:, 16:], real.kv.keys[:, :8],
                               rtol=1e-6, atol=1e-6)


if __name__ == "__main__":
  absltest.main()
