"""Every remat option computes what `remat="none"` computes, for all models;
so does every `window_unroll` (MELODI) what one window per iteration does.

Glossary of shapes: B batch, T segment, W window, V vocabulary.

Remat only changes what the backward pass stores, so the loss and every
gradient must match `none` to float rounding, with dropout on (the
recomputed masks must be the very same draws) and a non-zero memory.
The baselines' goldens are also replayed under each option, their custom
gradient (melodi_hk/remat.py) runs under shard_map, and their options
must store less than "none".
"""

import dataclasses

from absl.testing import absltest
from absl.testing import parameterized
import chex
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

import melodi_hk
from melodi_hk import config as config_lib
from melodi_hk import remat as remat_lib
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


def loss_and_grads(cfg, seed=0, in_scan=True, devices=None):
  """Summed training loss and its gradients on one random segment.

  in_scan: MELODI's window-by-window `build_loss`; False: apply + lm_loss.
  devices: run under shard_map, one batch row per device, as training's
  `parallelism="shard_map"` does.
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

  def loss(params, memory, tokens, sos, loss_mask):
    out, memory_out = training_loss(params, memory, tokens, sos, loss_mask,
                                    rng=jax.random.PRNGKey(seed + 2),
                                    is_training=True)
    return out.loss, (out, memory_out)

  step = jax.value_and_grad(loss, has_aux=True)
  if devices is not None:
    def sharded(*args, per_device=step):  # -> (summed loss, gradients)
      (value, _), grads = per_device(*args)  # Gradients come back summed.
      return jax.lax.psum(value, "rows"), grads

    rows = jax.P("rows")
    step = jax.shard_map(
        sharded, mesh=jax.sharding.Mesh(np.asarray(devices), ("rows",)),
        in_specs=(jax.P(), rows, rows, rows, rows), out_specs=jax.P())
  return jax.jit(step)(params, memory, tokens, sos, loss_mask)


def step_temp_bytes(cfg) -> int:
  """XLA's temp memory of the compiled loss gradient, batch 2."""
  model, training_loss = melodi_hk.build(cfg), melodi_hk.build_loss(cfg)
  params = jax.eval_shape(model.init, jax.random.PRNGKey(0))
  tokens = jax.ShapeDtypeStruct((2, cfg.segment_length), jnp.int32)
  sos, mask = jax.ShapeDtypeStruct((2,), bool), tokens.update(dtype=bool)
  grad = jax.jit(jax.grad(lambda *a: training_loss(
      *a, rng=jax.random.PRNGKey(0), is_training=True)[0].loss))
  compiled = grad.lower(params, model.init_memory(2), tokens, sos,
                        mask).compile()
  return compiled.memory_analysis().temp_size_in_bytes


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

  @parameterized.named_parameters(*[(name, make, options[1:])
                                     for name, make, options in _CASES[1:]])
  def test_same_under_shard_map(self, make, options):
    # A custom gradient must return replicated parameters' cotangents
    # summed over the rows, as autodiff does.
    cfg, devices = make(), jax.devices()[:2]
    want, want_grads = loss_and_grads(cfg, devices=devices)
    for remat in options:
      with self.subTest(remat=remat):
        got, grads = loss_and_grads(dataclasses.replace(cfg, remat=remat),
                                    devices=devices)
        np.testing.assert_allclose(got, want, rtol=1e-5)
        chex.assert_trees_all_close(grads, want_grads, rtol=1e-4, atol=1e-6)

  @parameterized.named_parameters(
      ("transformer_xl", melodi_hk.TransformerXLConfig, {}),
      ("memorizing", melodi_hk.MemorizingConfig,
       dict(memory_layer=1, memory_size=1024)))
  def test_baseline_remat_stores_less(self, cls, extra):
    # Outside a loop XLA's CPU compiler merged jax.checkpoint's recompute
    # with the forward pass: "layer" and "dots" stored what "none" stores.
    # Measured with the tie: 0.46-0.50x and 0.72-0.75x.
    cfg = cls(vocab_size=64, num_layers=4, embed_dim=64, num_heads=2,
              head_dim=32, mlp_dim=256, window_length=64, segment_length=512,
              dtype="float32", **extra)
    none = step_temp_bytes(cfg)
    for remat, most in (("layer", 0.6), ("dots", 0.85)):
      with self.subTest(remat=remat):
        got = step_temp_bytes(dataclasses.replace(cfg, remat=remat))
        self.assertLess(got, most * none, f"{got} vs none's {none} bytes")

  def test_baseline_remat_uses_haiku_state_as_haiku_allows(self):
    # Raises if the tied remat ran Haiku code under a raw JAX transform.
    cfg = dataclasses.replace(_CASES[1][1](), remat="layer")
    previous = hk.experimental.check_jax_usage(True)
    try:
      (value, _), grads = loss_and_grads(cfg)
    finally:
      hk.experimental.check_jax_usage(previous)
    self.assertTrue(np.isfinite(value))
    chex.assert_tree_all_finite(grads)

  def test_tie_keeps_values_and_waits_for_the_gradient(self):
    tree = {"x": jnp.arange(6.0).reshape(2, 3), "bits": jnp.arange(3)}
    grad = (jnp.zeros(4), jnp.full((2, 2), 7.0, jnp.bfloat16))
    tied = jax.jit(remat_lib.tie)(grad, tree)
    chex.assert_trees_all_equal(tied, tree)  # Bit for bit, dtypes kept.
    nan = remat_lib.tie((jnp.zeros(4), jnp.array([jnp.nan])), tree)
    self.assertTrue(np.isnan(nan["x"]).all())  # Each gradient counts.
    np.testing.assert_array_equal(nan["bits"], tree["bits"])

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
