"""Memorizing Transformer (dense KV memory): goldens, invariants, errors.

Glossary of shapes: B batch (2), T segment (32), W window (16), C memory
slots (64 = 2 segments), H heads, D head dim. The invariant tests reuse
memorizing_dense_tiny's parameters; the contract shared by every model is
tested in model_contract_test.py.
"""

import functools

from absl.testing import absltest
from absl.testing import parameterized
import jax
import jax.numpy as jnp
import numpy as np

import melodi_hk
from tests import melodi_testing as mt

_NAME = "memorizing_dense_tiny"


@functools.lru_cache
def golden():
  """(config, golden arrays, model, parameters) of the golden."""
  cfg, g, flat = mt.load_golden(_NAME)
  model = melodi_hk.build(cfg)
  return cfg, g, model, melodi_hk.params_from_meliad(flat, cfg)


def _run(model, params, g, segments=(1, 2, 3), memory=None):
  """Logits of the last segment and the memory after it."""
  memory = model.init_memory(2) if memory is None else memory
  for k in segments:
    logits, memory = model.apply(params, memory, *mt.segment(g, k))
  return logits, memory


class GoldenTest(absltest.TestCase):

  def test_three_segments_match_reference(self):
    errors = mt.replay_errors(_NAME)
    self.assertEqual({k: e for k, e in errors.items() if not e < mt.RTOL}, {})
    # logits, losses, sum, 3 XL caches x K/V, KV memory, index, unused cache.
    self.assertLen(errors, 3 * (3 + 6 + 3 + 2))

  def test_ring_buffer_index_and_rows_follow_the_reference(self):
    _, g, model, params = golden()
    memory = model.init_memory(2)
    for k, index in zip((1, 2, 3), (32, 0, 32)):
      _, memory = model.apply(params, memory, *mt.segment(g, k))
      np.testing.assert_array_equal(memory.kv.write_index, [index, index])
    # Row 0 started a document in segment 3: its old slots 32..63 are zero.
    self.assertFalse(np.any(memory.kv.keys[0, 32:]))
    self.assertTrue(np.all(np.any(memory.kv.keys[1], axis=(1, 2))))

  def test_meliad_state_round_trip(self):
    cfg, g, _, _ = golden()
    state = {k[len("seg3/state/"):]: g[k] for k in g.files
             if k.startswith("seg3/state/")}
    memory = melodi_hk.memory_from_meliad(state, cfg)
    self.assertEqual(memory.kv.keys.shape, (2, 64, 2, 16))
    for path, ours in melodi_hk.memory_to_meliad(memory, cfg).items():
      np.testing.assert_array_equal(ours, state[path])


class InvariantTest(absltest.TestCase):

  def test_single_residual_flag_changes_the_result(self):
    cfg, g, model, params = golden()
    single = melodi_hk.build(melodi_hk.MemorizingConfig(
        **{**vars(cfg), "single_residual": True}))
    double, _ = model.apply(params, model.init_memory(2), *mt.segment(g, 1))
    once, _ = single.apply(params, single.init_memory(2), *mt.segment(g, 1))
    self.assertGreater(mt.relative_error(once, double), 1e-2)

  def test_rolling_the_ring_buffer_changes_no_logit(self):
    """Slot order is invisible to the attention (no positions in memory)."""
    _, g, model, params = golden()
    _, memory = _run(model, params, g, segments=(1, 2))
    roll = lambda a: jnp.roll(a, 32, axis=1)
    rolled = memory._replace(kv=melodi_hk.KVMemory(
        roll(memory.kv.keys), roll(memory.kv.values),
        (memory.kv.write_index + 32) % 64))
    logits, after = _run(model, params, g, (3,), memory)
    rolled_logits, rolled_after = _run(model, params, g, (3,), rolled)
    np.testing.assert_allclose(rolled_logits, logits, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(roll(rolled_after.kv.keys), after.kv.keys,
                               atol=1e-6)

  def test_reset_clears_rows_but_not_the_shared_write_index(self):
    _, g, model, params = golden()
    _, carried = _run(model, params, g, segments=(1,))
    tokens, _ = mt.segment(g, 2)
    apply = lambda memory, sos: model.apply(params, memory, tokens,
                                            jnp.array(sos))
    _, mixed_memory = apply(carried, [True, False])
    _, kept_memory = apply(carried, [False, False])
    # The shared index is not reset: row 0 is written at slots 32..63.
    np.testing.assert_array_equal(mixed_memory.kv.write_index, [0, 0])
    self.assertFalse(np.any(mixed_memory.kv.keys[0, :32]))
    np.testing.assert_array_equal(mixed_memory.kv.keys[1],
                                  kept_memory.kv.keys[1])

  def test_training_step_reaches_the_memory_layer(self):
    cfg, g, _, params = golden()
    model = melodi_hk.build(melodi_hk.MemorizingConfig(
        **{**vars(cfg), "dropout_rate": 0.1, "attention_dropout_rate": 0.1}))
    tokens, sos = mt.segment(g, 1)
    loss = lambda p: melodi_hk.lm_loss(model.apply(
        p, model.init_memory(2), tokens, sos, jax.random.PRNGKey(0),
        is_training=True)[0], tokens).loss
    grads = melodi_hk.params_to_meliad(jax.jit(jax.grad(loss))(params), cfg)
    side = "layer_stack/side_layer/tbase/_kvq/queries_layer/kernel"
    self.assertTrue(np.isfinite(grads[side]).all())
    self.assertGreater(np.abs(grads[side]).max(), 0)


class ErrorTest(parameterized.TestCase):

  @parameterized.parameters(
      ({"memory_layer": 3}, "memory_layer=3 is out of range for num_layers=3"),
      ({"memory_layer": -1}, "memory_layer=-1 is out of range"),
      ({"memory_size": 48}, "memory_size=48 must be a positive multiple of "
       "segment_length=32.*memory_size=32"),
      ({"memory_size": 16}, "memory_size=16 must be a positive multiple"),
      ({"memory_size": 0}, "must be positive integers.*memory_size"),
      ({"window_length": 20}, "segment_length=32 must be a multiple of "
       "window_length=20"),
  )
  def test_bad_config_is_explained(self, change, match):
    with self.assertRaisesRegex(ValueError, match):
      melodi_hk.MemorizingConfig(**{**vars(golden()[0]), **change})

  def test_a_part_of_a_segment_is_refused(self):
    _, g, model, params = golden()
    tokens, sos = mt.segment(g, 1)
    with self.assertRaisesRegex(ValueError, "T=16 but the Memorizing "
                                "Transformer writes whole segments"):
      model.apply(params, model.init_memory(2), tokens[:, :16], sos)

  def test_incomplete_meliad_state_is_named(self):
    with self.assertRaisesRegex(ValueError, "meliad state lacks"):
      melodi_hk.memory_from_meliad({}, golden()[0])


if __name__ == "__main__":
  absltest.main()
