"""Paper presets: the sizes they promise, tiny twins that run, clear errors.

Glossary of shapes: B batch (1), T segment, W window, V vocabulary; "S<s>+L<l>"
as in melodi_hk.presets.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import melodi_hk
from melodi_hk import presets


@pytest.mark.parametrize("size, short, increment", [
    ("S64+L32", 64, 32), ("S128+L64", 128, 64), ("S192+L96", 192, 96)])
def test_melodi_sizes_follow_the_paper(size, short, increment):
  cfg = presets.melodi(size, num_layers=13)
  assert (cfg.short_term_memory_size, cfg.summary_size) == (short, short)
  assert cfg.long_term_memory_increment == increment
  assert cfg.long_term_memory_size == 128 * increment
  assert (cfg.num_layers, cfg.long_term_layers) == (13, (6,))
  assert (cfg.embed_dim, cfg.window_length, cfg.segment_length) == (
      1024, 512, 4096)


def test_ablations_and_baselines():
  assert presets.short_term_only(128).long_term_layers == ()
  assert presets.melodi("S128+L64", 12).long_term_layers == (6,)
  assert presets.PRESETS["melodi_long_term_low"]().long_term_layers == (3,)
  mt = presets.memorizing()
  assert (mt.num_layers, mt.memory_layer, mt.memory_size) == (12, 6, 65536)
  assert not mt.single_residual
  windowed = presets.windowed_transformer()
  assert not windowed.xl_cache and windowed.segment_length == 512
  assert presets.melodi("S128+L64", dtype="float32").dtype == "float32"


@pytest.mark.parametrize("call, match", [
    (lambda: presets.melodi("S0"), "positive integers.*summary_size"),
    (lambda: presets.melodi("S64+L32", short_term_memory_size=0),
     "short_term_memory_size=0: the reference cannot run"),
    (lambda: presets.melodi("128+64"), "size='128\\+64' is not of the form"),
    (lambda: presets.melodi("S128", long_term_layer=3),
     "long_term_layer=3 but size='S128' has no long-term memory"),
    (lambda: presets.melodi("S128+L64", 12, long_term_layer=12),
     r"long_term_layers=\(12,\): \[12\] out of range"),
    (lambda: presets.memorizing(memory_layer=12), "memory_layer=12 is out"),
])
def test_impossible_presets_are_explained(call, match):
  with pytest.raises(ValueError, match=match):
    call()


def test_tiny_keeps_the_structure():
  small = presets.tiny(presets.melodi("S128+L64", 13))
  assert (small.short_term_memory_size, small.long_term_memory_increment,
          small.long_term_memory_size) == (4, 2, 256)
  assert small.long_term_layers == (1,)
  mt = presets.tiny(presets.memorizing())
  assert (mt.memory_layer, mt.memory_size, mt.segment_length) == (1, 512, 32)
  assert presets.tiny(presets.windowed_transformer()).segment_length == 16


def _segment(cfg):
  """A batch-1 segment: tokens int32[1, T] and start_of_sequence [1]."""
  tokens = jnp.arange(cfg.segment_length, dtype=jnp.int32)[None] % 7 + 1
  return tokens, jnp.array([True])


@pytest.mark.parametrize("name", sorted(presets.PRESETS))
def test_every_tiny_preset_builds_and_traces(name):
  # Tracing (not compiling) keeps this cheap; one preset runs below.
  cfg = presets.tiny(presets.PRESETS[name]())
  assert type(cfg) is type(presets.PRESETS[name]())
  model = melodi_hk.build(cfg)
  params = jax.eval_shape(model.init, jax.random.PRNGKey(0))
  memory = jax.eval_shape(lambda: model.init_memory(1))
  logits, new_memory = jax.eval_shape(model.apply, params, memory,
                                      *_segment(cfg))
  assert logits.shape == (1, cfg.segment_length, cfg.vocab_size)
  assert jax.tree.structure(new_memory) == jax.tree.structure(memory)
  assert jax.tree.map(jnp.shape, new_memory) == jax.tree.map(jnp.shape,
                                                             memory)


def test_tiny_memorizing_64k_runs():
  cfg = presets.tiny(presets.memorizing())
  model = melodi_hk.build(cfg)
  params = jax.jit(model.init)(jax.random.PRNGKey(0))
  logits, _ = jax.jit(model.apply)(params, model.init_memory(1),
                                   *_segment(cfg))
  assert np.isfinite(logits).all()
