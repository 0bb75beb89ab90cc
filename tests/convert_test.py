"""Bringing meliad checkpoints in: exact renames, strict checks."""

from absl.testing import absltest
import jax
import jax.numpy as jnp
import numpy as np

import melodi_hk
from tests import melodi_testing


def golden_params():
  return melodi_testing.load_golden("melodi_b_sandwich")


class ParamsFromMeliadTest(absltest.TestCase):

  def test_round_trip_is_exact(self):
    cfg, _, flat = golden_params()
    back = melodi_hk.params_to_meliad(melodi_hk.params_from_meliad(flat, cfg),
                                      cfg)
    self.assertEqual(sorted(back), sorted(flat))
    for name, value in flat.items():
      np.testing.assert_array_equal(back[name], value, err_msg=name)

  def test_structure_equals_init(self):
    cfg, _, flat = golden_params()
    ours = melodi_hk.params_from_meliad(flat, cfg)
    init = melodi_hk.build(cfg).init(jax.random.PRNGKey(0))
    self.assertEqual(jax.tree.structure(ours), jax.tree.structure(init))
    self.assertEqual(jax.tree.map(jnp.shape, ours),
                     jax.tree.map(jnp.shape, init))

  def test_bfloat16_entries_become_float32(self):
    cfg, _, flat = golden_params()
    flat = dict(flat)
    name = "layer_stack/summary_embeddings"
    flat[name] = flat[name].astype(jnp.bfloat16)
    params = melodi_hk.params_from_meliad(flat, cfg)
    self.assertEqual(params["melodi"]["summary_embeddings"].dtype, jnp.float32)

  def test_every_mismatch_is_listed(self):
    cfg, _, flat = golden_params()
    flat = dict(flat)
    gate = "layer_stack/melodi_layers_1/melodi_layer/attn_gate"
    del flat[gate]
    flat["layer_stack/melodi_layers_9/melodi_layer/attn_gate"] = np.zeros(3)
    flat["embed/embedding"] = np.zeros((65, 32))
    with self.assertRaises(ValueError) as raised:
      melodi_hk.params_from_meliad(flat, cfg)
    message = str(raised.exception)
    self.assertIn(f"missing: ['{gate}']", message)
    self.assertIn("unexpected: ['layer_stack/melodi_layers_9", message)
    self.assertIn("embed/embedding: (65, 32) (want (64, 32))", message)

  def test_checkpoint_of_another_config_is_rejected(self):
    cfg, _, flat = golden_params()
    short_only = melodi_hk.MelodiConfig(
        **(vars(cfg) | dict(long_term_layers=(), long_term_memory_size=0,
                            long_term_memory_increment=0)))
    with self.assertRaisesRegex(ValueError, "unexpected: .*attn_gate"):
      melodi_hk.params_from_meliad(flat, short_only)


class MemoryFromMeliadTest(absltest.TestCase):

  def test_missing_state_is_named(self):
    cfg, g, _ = golden_params()
    state = {k[len("seg1/state/"):]: g[k] for k in g.files
             if k.startswith("seg1/state/") and "long_memory" not in k}
    with self.assertRaisesRegex(ValueError, "melodi_layers_1/long_memory"):
      melodi_hk.memory_from_meliad(state, cfg)


if __name__ == "__main__":
  absltest.main()
