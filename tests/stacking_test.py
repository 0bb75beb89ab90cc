"""scan_layers computes what the per-layer model computes, on converted params.

Glossary of shapes: B batch (2), T segment, W window, V vocabulary,
M short memory, E width.

With `scan_layers`, runs of layers without long memory run under one
`hk.layer_stack`; `stack_layers` moves per-layer params into that layout.
Logits, loss, the returned memory and every gradient must match the
per-layer model to float rounding, for long layers anywhere (runs of
length 0, 1 and more), under remat and under jit. Dropout is off (rate 0)
in training mode: the layer_stack splits dropout keys per layer, so with
dropout the masks are other draws.
"""

import dataclasses
import tempfile

from absl.testing import absltest
from absl.testing import parameterized
import chex
import haiku as hk
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

import melodi_hk
from melodi_hk import stacking
from tests import melodi_testing


def _config(num_layers, long_layers, **extra):
  return melodi_testing.tiny_config(
      num_layers=num_layers, long_term_layers=long_layers, dropout_rate=0.0,
      attention_dropout_rate=0.0, **(({} if long_layers else dict(
          long_term_memory_size=0, long_term_memory_increment=0)) | extra))


# (name, num_layers, long layers, the groups scan_layers runs).
_LAYOUTS = (
    ("long_middle", 5, (2,), ((0, 1), (2,), (3, 4))),
    ("long_first", 4, (0,), ((0,), (1, 2, 3))),
    ("long_last", 4, (3,), ((0, 1, 2), (3,))),
    ("run_of_one", 4, (1,), ((0,), (1,), (2, 3))),
    ("no_long", 3, (), ((0, 1, 2),)),
)


def _results(cfg, params, memory, tokens, sos):
  """Jitted logits and memory of `apply`; loss, memory and grads in training."""
  model, loss_fn = melodi_hk.build(cfg), melodi_hk.build_loss(cfg)
  logits, memory_out = jax.jit(model.apply)(params, memory, tokens, sos)

  def loss(p):
    out, m = loss_fn(p, memory, tokens, sos, rng=jax.random.PRNGKey(5),
                     is_training=True)
    return out.loss, m

  (value, train_memory), grads = jax.jit(
      jax.value_and_grad(loss, has_aux=True))(params)
  return logits, memory_out, value, train_memory, grads


def _inputs(cfg):
  off = dataclasses.replace(cfg, scan_layers=False)
  model = melodi_hk.build(off)
  params = model.init(jax.random.PRNGKey(0))
  memory = jax.tree.map(lambda m: m + 0.5, model.init_memory(2))
  tokens = jax.random.randint(jax.random.PRNGKey(1), (2, cfg.segment_length),
                              1, cfg.vocab_size)
  return params, memory, tokens, jnp.array([True, False])


class ScanLayersTest(parameterized.TestCase):

  @parameterized.named_parameters(*_LAYOUTS)
  def test_groups(self, num_layers, long_layers, want):
    cfg = _config(num_layers, long_layers, scan_layers=True)
    self.assertEqual(stacking.groups(cfg), want)
    self.assertEqual(stacking.groups(dataclasses.replace(
        cfg, scan_layers=False)), tuple((l,) for l in range(num_layers)))

  @parameterized.named_parameters(
      *[(n, l, ll, "none") for n, l, ll, _ in _LAYOUTS],
      ("long_middle_remat_window", 5, (2,), "window"),
      ("long_middle_remat_dots", 5, (2,), "dots"))
  def test_same_results_as_per_layer(self, num_layers, long_layers, remat):
    off = _config(num_layers, long_layers, remat=remat)
    on = dataclasses.replace(off, scan_layers=True)
    params, memory, tokens, sos = _inputs(off)
    want = _results(off, params, memory, tokens, sos)
    got = _results(on, melodi_hk.stack_layers(params, on), memory, tokens,
                   sos)
    # The memory keeps its per-layer layout; gradients come stacked.
    want = want[:4] + (melodi_hk.stack_layers(want[4], on),)
    chex.assert_trees_all_close(got, want, rtol=1e-5, atol=1e-5)
    chex.assert_trees_all_equal_structs(got[1], memory)

  def test_check_jax_usage(self):
    on = _config(4, (3,), scan_layers=True)
    params, memory, tokens, sos = _inputs(on)
    model = melodi_hk.build(on)
    # Raises if the layer_stack's Haiku code used a raw JAX transform.
    previous = hk.experimental.check_jax_usage(True)
    try:
      logits, _ = model.apply(melodi_hk.stack_layers(params, on), memory,
                              tokens, sos)
    finally:
      hk.experimental.check_jax_usage(previous)
    self.assertTrue(np.isfinite(logits).all())

  def test_round_trip_and_init_layout(self):
    on = _config(5, (2,), scan_layers=True)
    params = _inputs(on)[0]
    stacked = melodi_hk.stack_layers(params, on)
    shapes = lambda t: jax.tree.map(jnp.shape, t)
    self.assertEqual(shapes(stacked), shapes(
        melodi_hk.build(on).init(jax.random.PRNGKey(3))))
    self.assertEqual(
        shapes(stacked["melodi/layers_3_4/layer/~/ffn/~/input"]),
        {"kernel": (2,) + params["melodi/~/layer_3/~/ffn/~/input"][
            "kernel"].shape, "bias": (2, on.mlp_dim)})
    chex.assert_trees_all_equal(melodi_hk.unstack_layers(stacked, on),
                                params)

  def test_wrong_layout_errors(self):
    on = _config(5, (2,), scan_layers=True)
    params, memory, tokens, sos = _inputs(on)
    stacked = melodi_hk.stack_layers(params, on)
    with self.assertRaisesRegex(ValueError, "already stacked"):
      melodi_hk.stack_layers(stacked, on)
    with self.assertRaisesRegex(ValueError, "already per-layer"):
      melodi_hk.unstack_layers(params, on)
    with self.assertRaisesRegex(ValueError, r"melodi_hk.stack_layers"):
      melodi_hk.build(on).apply(params, memory, tokens, sos)
    off = dataclasses.replace(on, scan_layers=False)
    with self.assertRaisesRegex(ValueError, r"melodi_hk.unstack_layers"):
      melodi_hk.build(off).apply(stacked, memory, tokens, sos)

  def test_config_and_decoder_errors(self):
    with self.assertRaisesRegex(ValueError, "scan_layers='yes'"):
      _config(3, (1,), scan_layers="yes")
    with self.assertRaisesRegex(ValueError, "unstack_layers"):
      melodi_hk.decoder(_config(3, (1,), scan_layers=True))

  def test_meliad_conversion_round_trip(self):
    on = _config(5, (2,), scan_layers=True)
    off = dataclasses.replace(on, scan_layers=False)
    flat = melodi_hk.params_to_meliad(_inputs(on)[0], off)
    stacked = melodi_hk.params_from_meliad(flat, on)
    chex.assert_trees_all_equal(
        stacked, melodi_hk.stack_layers(melodi_hk.params_from_meliad(
            flat, off), on))
    chex.assert_trees_all_equal(melodi_hk.params_to_meliad(stacked, on), flat)

  def test_resume_refuses_changed_scan_layers(self):
    from launch import checkpoints  # pylint: disable=g-import-not-at-top
    model = lambda scan: ml_collections.ConfigDict(dict(
        model=dataclasses.asdict(_config(3, (1,), scan_layers=scan))))
    with tempfile.TemporaryDirectory() as workdir:
      with open(f"{workdir}/{checkpoints.CONFIG_FILE}", "w") as f:
        f.write(model(False).to_json_best_effort())
      checkpoints.check_config(workdir, model(False), has_checkpoint=True)
      with self.assertRaisesRegex(ValueError, "scan_layers: False -> True"):
        checkpoints.check_config(workdir, model(True), has_checkpoint=True)
    self.assertNotIn("model.scan_layers", checkpoints.RESTART_FREE)


if __name__ == "__main__":
  absltest.main()
