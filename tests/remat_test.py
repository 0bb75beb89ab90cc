"""Every remat option computes what `remat="none"` computes, for all models;
so does every `window_unroll` (MELODI) what one window per iteration does.

Glossary of shapes: B batch, T segment, W window, V vocabulary.

Remat only changes what the backward pass stores, so the loss and every
gradient must match `none` to float rounding, with dropout on (the
recomputed masks must be the very same draws) and a non-zero memory.
The baselines' goldens are also replayed under each option.
"""

import dataclasses

from absl.testing import absltest
from absl.testing import parameterized
import chex
import jax
import jax.numpy as jnp

import melodi_hk
from melodi_hk import config as config_lib
from tests import melodi_testing


def _melodi(**extra):  # Two layers keep the compiles short.
  return melodi_testing.tiny_config(num_layers=2, long_term_layers=(1,),
                                    **extra)


def _baseline(cls, **extra):
  return cls(vocab_size=50, num_layers=2, embed_dim=16, num_heads=2,
             head_dim=8, mlp_dim=32, window_length=8, segment_length=32,
             dropout_rate=0.1, attention_dropout_rate=0.1, dtype="float32",
             **extra)


_CASES = (
    ("melodi", _melodi, config_lib.MELODI_REMAT),
    ("transformer_xl", lambda: _baseline(melodi_hk.TransformerXLConfig),
     config_lib.BASELINE_REMAT),
    ("memorizing", lambda: _baseline(melodi_hk.MemorizingConfig,
                                     memory_layer=0, memory_size=64),
     config_lib.BASELINE_REMAT),
)


def loss_and_grads(cfg, seed=0, in_scan=True):
  """Summed training loss and its gradients on one random segment.

  in_scan: MELODI's window-by-window `build_loss`; False: apply + lm_loss.
  """
  model = melodi_hk.build(cfg)
  training_loss = (melodi_hk.build_loss(cfg) if in_scan else
                   melodi_hk.loss_from_apply(model))
  params = model.init(jax.random.PRNGKey(seed))
  tokens = jax.random.randint(jax.random.PRNGKey(seed + 1),
                              (2, cfg.segment_length), 1, cfg.vocab_size)
  sos = jnp.array([True, False])
  memory = jax.tree.map(lambda m: (m + 0.5).astype(m.dtype),
                        model.init_memory(2))

  loss_mask = jax.random.bernoulli(jax.random.PRNGKey(seed + 3), 0.8,
                                   tokens.shape)

  def loss(params):
    out, memory_out = training_loss(params, memory, tokens, sos, loss_mask,
                                    rng=jax.random.PRNGKey(seed + 2),
                                    is_training=True)
    return out.loss, (out, memory_out)

  return jax.jit(jax.value_and_grad(loss, has_aux=True))(params)


class RematTest(parameterized.TestCase):

  @parameterized.named_parameters(*[(name, make, options[1:])
                                     for name, make, options in _CASES])
  def test_same_loss_and_gradients_as_none(self, make, options):
    cfg = make()
    want, want_grads = loss_and_grads(cfg)
    for remat in options:
      with self.subTest(remat=remat):
        got, grads = loss_and_grads(dataclasses.replace(cfg, remat=remat))
        chex.assert_trees_all_close(got, want, rtol=1e-5, atol=1e-6)
        chex.assert_trees_all_close(grads, want_grads, rtol=1e-4, atol=1e-6)

  @parameterized.parameters("none", "window")
  def test_window_unroll_changes_nothing(self, remat):
    # 4 windows: 2 divides them, 3 leaves a remainder, 4 unrolls all.
    cfg = dataclasses.replace(_melodi(), remat=remat)
    self.assertEqual(cfg.windows_per_segment, 4)
    want, want_grads = loss_and_grads(cfg)
    for unroll in (2, 3, 4):
      with self.subTest(window_unroll=unroll):
        got, grads = loss_and_grads(
            dataclasses.replace(cfg, window_unroll=unroll))
        chex.assert_trees_all_close(got, want, rtol=1e-5, atol=1e-6)
        chex.assert_trees_all_close(grads, want_grads, rtol=1e-4, atol=1e-6)

  @parameterized.parameters(0, -1, True, 1.5)
  def test_bad_window_unroll_is_named(self, unroll):
    with self.assertRaisesRegex(ValueError, "window_unroll"):
      dataclasses.replace(_melodi(), window_unroll=unroll)

  def test_loss_in_scan_equals_apply_then_lm_loss(self):
    # With the test above (in-scan loss under each option equals "none"),
    # this covers the in-scan loss under every option.
    cfg = _melodi()
    want, want_grads = loss_and_grads(cfg, in_scan=False)
    got, grads = loss_and_grads(cfg, in_scan=True)
    chex.assert_trees_all_close(got, want, rtol=1e-5, atol=1e-6)
    chex.assert_trees_all_close(grads, want_grads, rtol=1e-4, atol=1e-6)

  @parameterized.product(name=("txl_tiny", "memorizing_dense_tiny"),
                         remat=config_lib.BASELINE_REMAT[1:])
  def test_baseline_goldens_hold(self, name, remat):
    errors = melodi_testing.replay_errors(name, remat)
    bad = {k: e for k, e in errors.items() if not e < melodi_testing.RTOL}
    self.assertEmpty(bad)

  @parameterized.parameters(
      (_melodi, "layer"),
      (lambda: _baseline(melodi_hk.TransformerXLConfig), "window"),
      (lambda: _baseline(melodi_hk.MemorizingConfig, memory_layer=0,
                         memory_size=64), "everything"))
  def test_unknown_option_is_named(self, make, remat):
    with self.assertRaisesRegex(ValueError, f"remat='{remat}'"):
      dataclasses.replace(make(), remat=remat)


if __name__ == "__main__":
  absltest.main()
