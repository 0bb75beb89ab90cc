"""Paper presets: the sizes they promise, tiny twins that run, clear errors.

Glossary of shapes: B batch (1), T segment, W window, V vocabulary; "S<s>+L<l>"
as in melodi_hk.presets.
"""

from absl.testing import absltest
from absl.testing import parameterized
import jax
import jax.numpy as jnp
import numpy as np

import melodi_hk
from melodi_hk import presets


def _segment(cfg):
  """A batch-1 segment: tokens int32[1, T] and start_of_sequence [1]."""
  tokens = jnp.arange(cfg.segment_length, dtype=jnp.int32)[None] % 7 + 1
  return tokens, jnp.array([True])


class PresetTest(parameterized.TestCase):

  @parameterized.parameters(("S64+L32", 64, 32), ("S128+L64", 128, 64),
                            ("S192+L96", 192, 96))
  def test_melodi_sizes_follow_the_paper(self, size, short, increment):
    cfg = presets.melodi(size, num_layers=13)
    self.assertEqual((cfg.short_term_memory_size, cfg.summary_size),
                     (short, short))
    self.assertEqual(cfg.long_term_memory_increment, increment)
    self.assertEqual(cfg.long_term_memory_size, 128 * increment)
    self.assertEqual((cfg.num_layers, cfg.long_term_layers), (13, (6,)))
    self.assertEqual((cfg.embed_dim, cfg.window_length, cfg.segment_length),
                     (1024, 512, 4096))

  def test_ablations_and_baselines(self):
    self.assertEqual(presets.short_term_only(128).long_term_layers, ())
    self.assertEqual(presets.melodi("S128+L64", 12).long_term_layers, (6,))
    self.assertEqual(
        presets.PRESETS["melodi_long_term_low"]().long_term_layers, (3,))
    mt = presets.memorizing()
    self.assertEqual((mt.num_layers, mt.memory_layer, mt.memory_size),
                     (12, 6, 65536))
    self.assertFalse(mt.single_residual)
    windowed = presets.windowed_transformer()
    self.assertFalse(windowed.xl_cache)
    self.assertEqual(windowed.segment_length, 512)
    self.assertEqual(presets.melodi("S128+L64", dtype="float32").dtype,
                     "float32")

  @parameterized.parameters(
      (lambda: presets.melodi("S0"), "positive integers.*summary_size"),
      (lambda: presets.melodi("S64+L32", short_term_memory_size=0),
       "short_term_memory_size=0: the reference cannot run"),
      (lambda: presets.melodi("128+64"), "size='128\\+64' is not of the form"),
      (lambda: presets.melodi("S128", long_term_layer=3),
       "long_term_layer=3 but size='S128' has no long-term memory"),
      (lambda: presets.melodi("S128+L64", 12, long_term_layer=12),
       r"long_term_layers=\(12,\): \[12\] out of range"),
      (lambda: presets.memorizing(memory_layer=12), "memory_layer=12 is out"),
  )
  def test_impossible_presets_are_explained(self, call, match):
    with self.assertRaisesRegex(ValueError, match):
      call()


class TinyTest(parameterized.TestCase):

  def test_tiny_keeps_the_structure(self):
    small = melodi_hk.tiny(presets.melodi("S128+L64", 13))
    self.assertEqual((small.short_term_memory_size,
                      small.long_term_memory_increment,
                      small.long_term_memory_size), (4, 2, 256))
    self.assertEqual(small.long_term_layers, (1,))
    mt = melodi_hk.tiny(presets.memorizing())
    self.assertEqual((mt.memory_layer, mt.memory_size, mt.segment_length),
                     (1, 512, 32))
    self.assertEqual(
        melodi_hk.tiny(presets.windowed_transformer()).segment_length, 16)

  @parameterized.parameters(*sorted(presets.PRESETS))
  def test_every_tiny_preset_builds_and_traces(self, name):
    # Tracing (not compiling) keeps this cheap; one preset runs below.
    cfg = melodi_hk.tiny(presets.PRESETS[name]())
    self.assertIs(type(cfg), type(presets.PRESETS[name]()))
    model = melodi_hk.build(cfg)
    params = jax.eval_shape(model.init, jax.random.PRNGKey(0))
    memory = jax.eval_shape(lambda: model.init_memory(1))
    logits, new_memory = jax.eval_shape(model.apply, params, memory,
                                        *_segment(cfg))
    self.assertEqual(logits.shape, (1, cfg.segment_length, cfg.vocab_size))
    self.assertEqual(jax.tree.structure(new_memory),
                     jax.tree.structure(memory))
    self.assertEqual(jax.tree.map(jnp.shape, new_memory),
                     jax.tree.map(jnp.shape, memory))

  def test_tiny_memorizing_64k_runs(self):
    cfg = melodi_hk.tiny(presets.memorizing())
    model = melodi_hk.build(cfg)
    params = jax.jit(model.init)(jax.random.PRNGKey(0))
    logits, _ = jax.jit(model.apply)(params, model.init_memory(1),
                                     *_segment(cfg))
    self.assertTrue(np.isfinite(logits).all())

  def test_not_a_config_is_a_type_error(self):
    with self.assertRaisesRegex(TypeError, "dict is not a model config"):
      melodi_hk.tiny({})


if __name__ == "__main__":
  absltest.main()
