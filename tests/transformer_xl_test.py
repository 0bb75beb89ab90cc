"""Transformer-XL baseline: goldens, invariants and clear errors.

Glossary of shapes: B batch (2), T segment (32), W window (16), V vocab,
H heads, D head dim. The invariant tests reuse txl_tiny's parameters; the
contract shared by every model is tested in model_contract_test.py.
"""

import functools

from absl.testing import absltest
from absl.testing import parameterized
import chex
import jax
import jax.numpy as jnp
import numpy as np

import melodi_hk
from tests import melodi_testing as mt

_NAMES = ("txl_tiny", "txl_tiny_base_transformer")


@functools.lru_cache
def golden():
  """(config, golden arrays, model, parameters) of txl_tiny."""
  cfg, g, flat = mt.load_golden("txl_tiny")
  model = melodi_hk.build(cfg)
  return cfg, g, model, melodi_hk.params_from_meliad(flat, cfg)


class GoldenTest(parameterized.TestCase):

  @parameterized.parameters(*_NAMES)
  def test_three_segments_match_reference(self, name):
    errors = mt.replay_errors(name)
    self.assertEqual({k: e for k, e in errors.items() if not e < mt.RTOL}, {})
    # logits, losses, sum, 3 layers x K/V.
    self.assertLen(errors, 3 * (3 + 6))

  @parameterized.parameters(*_NAMES)
  def test_meliad_names_round_trip(self, name):
    cfg, g, flat = mt.load_golden(name)
    params = melodi_hk.params_from_meliad(flat, cfg)
    back = melodi_hk.params_to_meliad(params, cfg)
    self.assertEqual(set(back), set(flat))
    state = {k[len("seg1/state/"):]: g[k] for k in g.files
             if k.startswith("seg1/state/")}
    memory = melodi_hk.memory_from_meliad(state, cfg)
    for path, ours in melodi_hk.memory_to_meliad(memory, cfg).items():
      np.testing.assert_array_equal(ours, state[path])

  def test_bias_free_ffn_checkpoint_needs_ffn_bias_false(self):
    cfg, _, flat = mt.load_golden("txl_tiny_base_transformer")
    with self.assertRaisesRegex(ValueError, "missing.*mlp_layer"):
      melodi_hk.params_from_meliad(flat, melodi_hk.TransformerXLConfig(
          **{**vars(cfg), "ffn_bias": True}))


class InvariantTest(absltest.TestCase):

  def test_two_half_segments_equal_one_call(self):
    _, g, model, params = golden()
    memory = model.init_memory(2)
    tokens, sos = mt.segment(g, 1)
    whole, whole_memory = model.apply(params, memory, tokens, sos)
    first, half_memory = model.apply(params, memory, tokens[:, :16], sos)
    second, half_memory = model.apply(params, half_memory, tokens[:, 16:],
                                      jnp.zeros_like(sos))
    # Equal up to float rounding: the windows are batched differently.
    np.testing.assert_allclose(jnp.concatenate([first, second], 1), whole,
                               rtol=1e-5, atol=1e-5)
    chex.assert_trees_all_close(half_memory, whole_memory, rtol=1e-5,
                                atol=1e-5)

  def test_dropout_changes_training_logits(self):
    cfg, g, _, params = golden()
    model = melodi_hk.build(melodi_hk.TransformerXLConfig(
        **{**vars(cfg), "dropout_rate": 0.1, "attention_dropout_rate": 0.1}))
    tokens, sos = mt.segment(g, 1)
    memory = model.init_memory(2)
    train, _ = model.apply(params, memory, tokens, sos,
                           jax.random.PRNGKey(0), is_training=True)
    test, _ = model.apply(params, memory, tokens, sos)
    self.assertGreater(np.abs(train - test).max(), 1e-3)

  def test_training_loss_stores_no_normalised_copies(self):
    # Queries and keys are normalised inside the attention's custom
    # gradient; `unit` outside would store a float32 copy of each.
    cfg, g, _, params = golden()
    model = melodi_hk.build(melodi_hk.TransformerXLConfig(
        **{**vars(cfg), "dtype": "bfloat16"}))
    loss = melodi_hk.loss_from_apply(model)
    tokens, sos = mt.segment(g, 1)
    saved = mt.saved_residuals(lambda p: loss(
        p, model.init_memory(2), tokens, sos)[0].loss, params)
    self.assertNotEmpty(saved)
    self.assertEqual([s for s in saved if "(unit)" in s], [])

  def test_windowed_transformer_carries_nothing(self):
    cfg, g, _, params = golden()
    model = melodi_hk.build(melodi_hk.TransformerXLConfig(
        **{**vars(cfg), "segment_length": 16, "xl_cache": False}))
    self.assertEqual(model.init_memory(2), melodi_hk.XLMemory(()))
    tokens, sos = mt.segment(g, 1)
    first, memory = model.apply(params, model.init_memory(2), tokens[:, :16],
                                sos)
    self.assertEqual(memory, melodi_hk.XLMemory(()))
    # A continuing row sees nothing of the previous call.
    again, _ = model.apply(params, memory, tokens[:, :16],
                           jnp.zeros_like(sos))
    np.testing.assert_array_equal(again, first)


class ConfigErrorTest(parameterized.TestCase):

  @parameterized.parameters(
      ({"segment_length": 40}, "segment_length=40 must be a multiple of"),
      ({"num_heads": 0}, "must be positive integers.*num_heads"),
      ({"dropout_rate": 1.0}, r"dropout_rate=1.0 must lie in \[0, 1\)"),
      ({"dtype": "float16"}, "dtype='float16' is not one of"),
      ({"xl_cache": False}, "xl_cache=False with segment_length=32"),
  )
  def test_bad_config_is_explained(self, change, match):
    with self.assertRaisesRegex(ValueError, match):
      melodi_hk.TransformerXLConfig(**{**vars(golden()[0]), **change})


if __name__ == "__main__":
  absltest.main()
