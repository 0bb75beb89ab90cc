"""Out-of-range inputs are refused where they are concrete, for every model.

Glossary of shapes: B batch, T segment, W window, V vocabulary.

Under `jit` the ids are traced and the reference's modulo-V lookup stays
(the goldens rely on it); called eagerly, `apply` and `lm_loss` check the
actual values, and `apply` checks that its params belong to its config.
"""

import dataclasses

from absl.testing import absltest
from absl.testing import parameterized
import jax
import jax.numpy as jnp
import numpy as np

import melodi_hk
from melodi_hk import presets
from tests import melodi_testing

B, V = melodi_testing.BATCH, melodi_testing.VOCAB

_CONFIGS = {
    "melodi": melodi_testing.tiny_config(),
    "transformer_xl": dataclasses.replace(
        melodi_hk.tiny(presets.transformer_xl(2)), vocab_size=V),
    "memorizing": dataclasses.replace(melodi_hk.tiny(presets.memorizing()),
                                      vocab_size=V),
}
# One segment length every model accepts (the Memorizing Transformer takes
# exactly its own; MELODI and XL any multiple of W up to theirs).
T = min(cfg.segment_length for cfg in _CONFIGS.values())


def _inputs():
  tokens = np.random.default_rng(0).integers(1, V, (B, T)).astype(np.int32)
  return tokens, np.array([True, False])


class InputValidationTest(parameterized.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.models = {name: melodi_hk.build(cfg) for name, cfg in _CONFIGS.items()}
    cls.params = {name: model.init(jax.random.PRNGKey(0))
                  for name, model in cls.models.items()}

  def _apply(self, name, tokens, sos, params=None):
    model = self.models[name]
    return model.apply(self.params[name] if params is None else params,
                       model.init_memory(B), tokens, sos)

  @parameterized.product(name=list(_CONFIGS), bad=[V, V + 5, -1])
  def test_token_outside_the_vocabulary_is_refused(self, name, bad):
    tokens, sos = _inputs()
    tokens[1, 3] = bad
    with self.assertRaisesRegex(ValueError, rf"{bad}.*vocab_size={V}"):
      self._apply(name, tokens, sos)

  @parameterized.product(name=list(_CONFIGS),
                         sos=[np.array([0.5, 0.0]), np.array([2, 0])])
  def test_start_of_sequence_must_be_bool(self, name, sos):
    tokens, _ = _inputs()
    with self.assertRaisesRegex(ValueError, "start_of_sequence must be bool"):
      self._apply(name, tokens, sos)

  def test_traced_ids_keep_the_reference_modulo(self):
    tokens, sos = _inputs()
    model, params = self.models["melodi"], self.params["melodi"]
    apply = jax.jit(model.apply)
    wrapped, _ = apply(params, model.init_memory(B), tokens + V, sos)
    plain, _ = apply(params, model.init_memory(B), tokens, sos)
    np.testing.assert_allclose(wrapped, plain, rtol=1e-6)

  @parameterized.parameters(list(_CONFIGS))
  def test_params_of_another_config_are_named(self, name):
    other = dataclasses.replace(_CONFIGS[name], embed_dim=24)
    params = melodi_hk.build(other).init(jax.random.PRNGKey(0))
    tokens, sos = _inputs()
    with self.assertRaisesRegex(
        ValueError, r"params do not match .*embed_dim|params do not match"):
      self._apply(name, tokens, sos, params=params)

  @parameterized.parameters(V, 1000, -3)
  def test_lm_loss_refuses_targets_outside_the_logits(self, bad):
    tokens, _ = _inputs()
    tokens[0, 5] = bad
    logits = jnp.zeros((B, T, V))
    with self.assertRaisesRegex(ValueError, rf"{bad}.*\[0, {V}\)"):
      melodi_hk.lm_loss(logits, tokens)

  def test_lm_loss_under_jit_keeps_the_reference_modulo(self):
    tokens, _ = _inputs()
    logits = jax.random.normal(jax.random.PRNGKey(1), (B, T, V))
    loss = jax.jit(lambda l, t: melodi_hk.lm_loss(l, t).loss)
    np.testing.assert_allclose(loss(logits, tokens + V), loss(logits, tokens),
                               rtol=1e-6)


if __name__ == "__main__":
  absltest.main()
