"""Memorizing Transformer (dense KV memory): goldens, invariants, errors.

Glossary of shapes: B batch (2), T segment (32), W window (16), C memory
slots (64 = 2 segments), H heads, D head dim. The invariant tests reuse
memorizing_dense_tiny's parameters.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import melodi_hk
from tests import baselines_testing as bt

_NAME = "memorizing_dense_tiny"


@pytest.fixture(scope="module")
def tiny():
  cfg, g, flat = bt.load_golden(_NAME)
  model = melodi_hk.build(cfg)
  return cfg, g, model, melodi_hk.params_from_meliad(flat, cfg)


def _run(model, params, g, segments=(1, 2, 3), memory=None):
  """Logits of the last segment and the memory after it."""
  memory = model.init_memory(2) if memory is None else memory
  for k in segments:
    logits, memory = model.apply(params, memory, *bt.segment(g, k))
  return logits, memory


def test_three_segments_match_reference():
  errors = bt.replay_errors(_NAME)
  bad = {k: e for k, e in errors.items() if not e < bt.RTOL}
  assert not bad
  # logits, losses, sum, 3 XL caches x K/V, KV memory, index, unused cache.
  assert len(errors) == 3 * (3 + 6 + 3 + 2)


def test_ring_buffer_index_and_rows_follow_the_reference(tiny):
  _, g, model, params = tiny
  memory = model.init_memory(2)
  for k, index in zip((1, 2, 3), (32, 0, 32)):
    _, memory = model.apply(params, memory, *bt.segment(g, k))
    np.testing.assert_array_equal(memory.kv.write_index, [index, index])
  # Row 0 started a document in segment 3: its old slots 32..63 are zero.
  assert not np.any(memory.kv.keys[0, 32:])
  assert np.all(np.any(memory.kv.keys[1], axis=(1, 2)))


def test_meliad_state_round_trip(tiny):
  cfg, g, _, _ = tiny
  state = {k[len("seg3/state/"):]: g[k] for k in g.files
           if k.startswith("seg3/state/")}
  memory = melodi_hk.memory_from_meliad(state, cfg)
  assert memory.kv.keys.shape == (2, 64, 2, 16)
  for path, ours in melodi_hk.memory_to_meliad(memory, cfg).items():
    np.testing.assert_array_equal(ours, state[path])


def test_single_residual_flag_changes_the_result(tiny):
  cfg, g, model, params = tiny
  single = melodi_hk.build(melodi_hk.MemorizingConfig(
      **{**vars(cfg), "single_residual": True}))
  double, _ = model.apply(params, model.init_memory(2), *bt.segment(g, 1))
  once, _ = single.apply(params, single.init_memory(2), *bt.segment(g, 1))
  assert bt.relative_error(once, double) > 1e-2


def test_rolling_the_ring_buffer_changes_no_logit(tiny):
  """Slot order is invisible to the attention (no positions in memory)."""
  _, g, model, params = tiny
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


def test_reset_row_equals_fresh_memory_other_row_untouched(tiny):
  _, g, model, params = tiny
  _, carried = _run(model, params, g, segments=(1,))
  tokens, _ = bt.segment(g, 2)
  apply = lambda memory, sos: model.apply(params, memory, tokens,
                                          jnp.array(sos))
  mixed, mixed_memory = apply(carried, [True, False])
  fresh, _ = apply(model.init_memory(2), [True, True])
  kept, kept_memory = apply(carried, [False, False])
  np.testing.assert_array_equal(mixed[0], fresh[0])
  np.testing.assert_array_equal(mixed[1], kept[1])
  # The shared index is not reset: row 0 is written at slots 32..63.
  np.testing.assert_array_equal(mixed_memory.kv.write_index, [0, 0])
  assert not np.any(mixed_memory.kv.keys[0, :32])
  np.testing.assert_array_equal(mixed_memory.kv.keys[1],
                                kept_memory.kv.keys[1])


@pytest.mark.parametrize("t", [3, 16, 25])
def test_changing_token_t_changes_no_earlier_logit(tiny, t):
  _, g, model, params = tiny
  bt.assert_causal(model, params, *bt.segment(g, 1), t)


def test_jitted_apply_traces_once_and_memory_is_constant(tiny):
  _, g, model, params = tiny
  apply = jax.jit(chex.assert_max_traces(model.apply, n=1))
  memory = model.init_memory(2)
  for k in (1, 2):
    _, memory = apply(params, memory, *bt.segment(g, k))
  tokens, sos = bt.segment(g, 3)
  loss = lambda m: melodi_hk.lm_loss(apply(params, m, tokens, sos)[0],
                                     tokens).loss
  grads = jax.grad(loss, allow_int=True)(memory)
  assert not np.any(grads.kv.keys) and not np.any(grads.caches[0].values)


@pytest.mark.parametrize("change, match", [
    ({"memory_layer": 3}, "memory_layer=3 is out of range for num_layers=3"),
    ({"memory_layer": -1}, "memory_layer=-1 is out of range"),
    ({"memory_size": 48}, "memory_size=48 must be a positive multiple of "
     "segment_length=32.*memory_size=32"),
    ({"memory_size": 16}, "memory_size=16 must be a positive multiple"),
    ({"memory_size": 0}, "must be positive integers.*memory_size"),
    ({"window_length": 20}, "segment_length=32 must be a multiple of "
     "window_length=20"),
])
def test_bad_config_is_explained(tiny, change, match):
  with pytest.raises(ValueError, match=match):
    melodi_hk.MemorizingConfig(**{**vars(tiny[0]), **change})


def test_bad_inputs_are_explained(tiny):
  cfg, g, model, params = tiny
  tokens, sos = bt.segment(g, 1)
  memory = model.init_memory(2)
  with pytest.raises(ValueError, match="T=16 but the Memorizing Transformer "
                     "writes whole segments"):
    model.apply(params, memory, tokens[:, :16], sos)
  with pytest.raises(ValueError, match="batch size 1"):
    model.apply(params, memory, tokens[:1], sos[:1])
  xl = melodi_hk.build(melodi_hk.TransformerXLConfig(
      **{k: v for k, v in vars(cfg).items()
         if k not in ("memory_layer", "memory_size", "single_residual")}))
  with pytest.raises(ValueError, match="memory has structure"):
    model.apply(params, xl.init_memory(2), tokens, sos)
  with pytest.raises(ValueError, match="meliad state lacks"):
    melodi_hk.memory_from_meliad({}, cfg)


def test_training_step_reaches_the_memory_layer(tiny):
  cfg, g, _, params = tiny
  model = melodi_hk.build(melodi_hk.MemorizingConfig(
      **{**vars(cfg), "dropout_rate": 0.1, "attention_dropout_rate": 0.1}))
  tokens, sos = bt.segment(g, 1)
  loss = lambda p: melodi_hk.lm_loss(model.apply(
      p, model.init_memory(2), tokens, sos, jax.random.PRNGKey(0),
      is_training=True)[0], tokens).loss
  grads = melodi_hk.params_to_meliad(jax.jit(jax.grad(loss))(params), cfg)
  side = "layer_stack/side_layer/tbase/_kvq/queries_layer/kernel"
  assert np.isfinite(grads[side]).all() and np.abs(grads[side]).max() > 0
