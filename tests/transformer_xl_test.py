"""Transformer-XL baseline: goldens, invariants and clear errors.

Glossary of shapes: B batch (2), T segment (32), W window (16), V vocab,
H heads, D head dim. The invariant tests reuse txl_tiny's parameters.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import melodi_hk
from tests import baselines_testing as bt

_NAMES = ("txl_tiny", "txl_tiny_base_transformer")


@pytest.fixture(scope="module")
def tiny():
  cfg, g, flat = bt.load_golden("txl_tiny")
  model = melodi_hk.build(cfg)
  return cfg, g, model, melodi_hk.params_from_meliad(flat, cfg)


@pytest.mark.parametrize("name", _NAMES)
def test_three_segments_match_reference(name):
  errors = bt.replay_errors(name)
  bad = {k: e for k, e in errors.items() if not e < bt.RTOL}
  assert not bad
  assert len(errors) == 3 * (3 + 6)  # logits, losses, sum, 3 layers x K/V.


@pytest.mark.parametrize("name", _NAMES)
def test_meliad_names_round_trip(name):
  cfg, g, flat = bt.load_golden(name)
  params = melodi_hk.params_from_meliad(flat, cfg)
  back = melodi_hk.params_to_meliad(params, cfg)
  assert set(back) == set(flat)
  state = {k[len("seg1/state/"):]: g[k] for k in g.files
           if k.startswith("seg1/state/")}
  memory = melodi_hk.memory_from_meliad(state, cfg)
  for path, ours in melodi_hk.memory_to_meliad(memory, cfg).items():
    np.testing.assert_array_equal(ours, state[path])


def test_bias_free_ffn_checkpoint_needs_ffn_bias_false():
  cfg, _, flat = bt.load_golden("txl_tiny_base_transformer")
  with pytest.raises(ValueError, match="missing.*mlp_layer"):
    melodi_hk.params_from_meliad(
        flat, melodi_hk.TransformerXLConfig(**{**vars(cfg), "ffn_bias": True}))


def test_two_half_segments_equal_one_call(tiny):
  _, g, model, params = tiny
  memory = model.init_memory(2)
  tokens, sos = bt.segment(g, 1)
  whole, whole_memory = model.apply(params, memory, tokens, sos)
  first, half_memory = model.apply(params, memory, tokens[:, :16], sos)
  second, half_memory = model.apply(params, half_memory, tokens[:, 16:],
                                    jnp.zeros_like(sos))
  # Equal up to float rounding: the windows are batched differently.
  np.testing.assert_allclose(jnp.concatenate([first, second], 1), whole,
                             rtol=1e-5, atol=1e-5)
  chex.assert_trees_all_close(half_memory, whole_memory, rtol=1e-5,
                              atol=1e-5)


def test_reset_row_equals_fresh_memory_other_row_untouched(tiny):
  _, g, model, params = tiny
  _, carried = model.apply(params, model.init_memory(2), *bt.segment(g, 1))
  tokens, _ = bt.segment(g, 2)
  mixed, mixed_memory = model.apply(params, carried, tokens,
                                    jnp.array([True, False]))
  fresh, fresh_memory = model.apply(params, carried, tokens,
                                    jnp.array([True, True]))
  kept, kept_memory = model.apply(params, carried, tokens,
                                  jnp.array([False, False]))
  np.testing.assert_array_equal(mixed[0], fresh[0])
  np.testing.assert_array_equal(mixed[1], kept[1])
  for ours, reset, cont in zip(jax.tree.leaves(mixed_memory),
                               jax.tree.leaves(fresh_memory),
                               jax.tree.leaves(kept_memory)):
    np.testing.assert_array_equal(ours[0], reset[0])
    np.testing.assert_array_equal(ours[1], cont[1])


@pytest.mark.parametrize("t", [5, 16, 20])  # inside / at / past a window edge
def test_changing_token_t_changes_no_earlier_logit(tiny, t):
  _, g, model, params = tiny
  bt.assert_causal(model, params, *bt.segment(g, 1), t)


def test_jitted_apply_traces_once_over_segments(tiny):
  _, g, model, params = tiny
  apply = jax.jit(chex.assert_max_traces(model.apply, n=1))
  memory = model.init_memory(2)
  for k in (1, 2, 3):
    _, memory = apply(params, memory, *bt.segment(g, k))


def test_no_gradient_reaches_the_memory_passed_in(tiny):
  _, g, model, params = tiny
  _, carried = model.apply(params, model.init_memory(2), *bt.segment(g, 1))
  tokens, sos = bt.segment(g, 2)
  loss = lambda m: melodi_hk.lm_loss(
      model.apply(params, m, tokens, sos)[0], tokens).loss
  grads = jax.grad(loss)(carried)
  assert all(not np.any(leaf) for leaf in jax.tree.leaves(grads))


def test_dropout_needs_rng_and_changes_training_logits(tiny):
  cfg, g, _, params = tiny
  model = melodi_hk.build(melodi_hk.TransformerXLConfig(
      **{**vars(cfg), "dropout_rate": 0.1, "attention_dropout_rate": 0.1}))
  tokens, sos = bt.segment(g, 1)
  memory = model.init_memory(2)
  with pytest.raises(ValueError, match="needs an rng"):
    model.apply(params, memory, tokens, sos, is_training=True)
  train, _ = model.apply(params, memory, tokens, sos, jax.random.PRNGKey(0),
                         is_training=True)
  test, _ = model.apply(params, memory, tokens, sos)
  assert np.abs(train - test).max() > 1e-3


def test_windowed_transformer_carries_nothing(tiny):
  cfg, g, _, params = tiny
  model = melodi_hk.build(melodi_hk.TransformerXLConfig(
      **{**vars(cfg), "segment_length": 16, "xl_cache": False}))
  assert model.init_memory(2) == melodi_hk.XLMemory(())
  tokens, sos = bt.segment(g, 1)
  first, memory = model.apply(params, model.init_memory(2), tokens[:, :16],
                              sos)
  assert memory == melodi_hk.XLMemory(())
  # A continuing row sees nothing of the previous call.
  again, _ = model.apply(params, memory, tokens[:, :16], jnp.zeros_like(sos))
  np.testing.assert_array_equal(again, first)


@pytest.mark.parametrize("change, match", [
    ({"segment_length": 40}, "segment_length=40 must be a multiple of"),
    ({"num_heads": 0}, "must be positive integers.*num_heads"),
    ({"dropout_rate": 1.0}, r"dropout_rate=1.0 must lie in \[0, 1\)"),
    ({"dtype": "float16"}, "dtype='float16' is not one of"),
    ({"xl_cache": False}, "xl_cache=False with segment_length=32"),
])
def test_bad_config_is_explained(tiny, change, match):
  with pytest.raises(ValueError, match=match):
    melodi_hk.TransformerXLConfig(**{**vars(tiny[0]), **change})


def test_bad_inputs_are_explained(tiny):
  _, g, model, params = tiny
  tokens, sos = bt.segment(g, 1)
  memory = model.init_memory(2)
  with pytest.raises(ValueError, match="batch size 1"):
    model.apply(params, memory, tokens[:1], sos[:1])
  with pytest.raises(ValueError, match="T=24 but T must be a positive "
                     "multiple of window_length=16"):
    model.apply(params, memory, tokens[:, :24], sos)
  with pytest.raises(ValueError, match=r"tokens must be int32\[B, T\]"):
    model.apply(params, memory, tokens[0], sos)
  with pytest.raises(ValueError, match=r"start_of_sequence must be bool\[2\]"):
    model.apply(params, memory, tokens, sos[:1])
  with pytest.raises(ValueError, match="memory has structure"):
    model.apply(params, memory.caches[:2], tokens, sos)
