"""Tests of launch/train_lib.py, launch/state.py and launch/experiment.py.

Shape letters (launch/__init__.py): A = 8 fake CPU devices, B = R = 8 rows
(16 in the layout test), R/A = 1 row per device, T = 32 tokens.
"""

import importlib

from absl.testing import absltest
from absl.testing import parameterized
import chex
import jax
import melodi_hk
import numpy as np

from data import pipeline
from launch import experiment
from launch import state as state_lib
from launch import train_lib
from tests import launch_testing

_TOL = dict(rtol=1e-5, atol=1e-6)


def _setup():
  """Config pieces, a fresh host state and two batches, dropout off."""
  config = launch_testing.small_config(dropout=0.0)
  model_cfg = experiment.model_config(config)
  opt = experiment.optimizer_config(config)
  state = jax.device_get(train_lib.init_state(
      train_lib.build(model_cfg), train_lib.make_optimizer(opt), 0, 8))
  rng = np.random.default_rng(0)
  tokens = rng.integers(1, 200, (2, 8, 32)).astype(np.int32)  # [2, B, T]
  starts = [np.ones(8, bool), np.arange(8) % 3 == 0]  # Then rows 0, 3, 6 reset.
  batches = [{"tokens": t, "start_of_sequence": s, "loss_mask": t > 0}
             for t, s in zip(tokens, starts)]
  return model_cfg, opt, state, batches


def _pmap_steps(model_cfg, opt, state, batches):
  update, devices = train_lib.pmap_update(model_cfg, opt), jax.devices()
  state = state_lib.to_devices(state, devices)
  for batch in batches:
    state, metrics = update(state, pipeline.shard_for_pmap(batch, 8))
  return state_lib.to_host(state), jax.device_get(metrics)


def _first_value_per_row(shard: jax.Array, rows: int) -> np.ndarray:
  """[rows] first value of each row in one device's piece of an array."""
  return np.asarray(shard).reshape(rows, -1)[:, 0]


class TrainLibTest(parameterized.TestCase):

  def test_learning_rate_hits_paper_values(self):
    opt = train_lib.OptimizerConfig(num_steps=500_000)
    lr = lambda step: float(train_lib.learning_rate(step, opt))
    self.assertEqual(lr(0), 0.0)
    np.testing.assert_allclose(lr(500), 0.5 * lr(1000), rtol=1e-6)  # Ramp.
    cosine_at_1000 = 0.001 + 0.009 * 0.5 * (
        1 + np.cos(np.pi * 1000 / 500_000))
    np.testing.assert_allclose(lr(1000), cosine_at_1000, rtol=1e-6)  # 0.0099999
    np.testing.assert_allclose(lr(250_000), 0.0055, rtol=1e-6)  # Midpoint.
    np.testing.assert_allclose(lr(500_000), 0.001, rtol=1e-6)
    np.testing.assert_allclose(lr(1_000_000), 0.0005, rtol=1e-6)  # Tail.

  def test_pmap_step_equals_single_device_step(self):
    model_cfg, opt, state, batches = _setup()
    single, single_metrics = train_lib.jit_update(model_cfg, opt)(
        jax.device_put(state), batches[0])
    pmapped, pmap_metrics = _pmap_steps(model_cfg, opt, state, batches[:1])
    self.assertFalse(np.allclose(state.params["melodi"]["embedding"],
                                 pmapped.params["melodi"]["embedding"]))
    chex.assert_trees_all_close(pmapped.params, jax.device_get(single.params),
                                **_TOL)
    chex.assert_trees_all_close(pmapped.memory, jax.device_get(single.memory),
                                **_TOL)
    np.testing.assert_allclose(pmap_metrics["loss"][0],
                               single_metrics["loss"], rtol=1e-5)

  def test_shard_map_step_equals_pmap_step(self):
    model_cfg, opt, state, batches = _setup()
    mesh = jax.sharding.Mesh(np.asarray(jax.devices()), (state_lib.AXIS,))
    layout = state_lib.global_layout(jax.devices())
    sharded, metrics = train_lib.shard_map_update(model_cfg, opt, mesh)(
        layout.put(state), layout.put_batch(batches[0]))
    pmapped, pmap_metrics = _pmap_steps(model_cfg, opt, state, batches[:1])
    chex.assert_trees_all_close(layout.get(sharded).params, pmapped.params,
                                **_TOL)
    np.testing.assert_allclose(metrics["loss"], pmap_metrics["loss"][0],
                               rtol=1e-6)

  @parameterized.parameters("pmap", "global")
  def test_a_rows_batch_and_memory_share_a_device_slot(self, name):
    devices = jax.devices()  # A = 8 devices, 16 rows: R/A = 2.
    rows, per_device = 16, 2
    model_cfg = experiment.model_config(launch_testing.small_config())
    label = lambda x: np.broadcast_to(  # Row r's values all equal r.
        np.arange(rows).reshape((rows,) + (1,) * (x.ndim - 1)),
        x.shape).astype(x.dtype)
    memory = jax.tree.map(label, jax.device_get(
        train_lib.build(model_cfg).init_memory(rows)))
    state = state_lib.TrainingState({}, (), memory, np.zeros(2, np.uint32),
                                    np.int32(0))
    layout = getattr(state_lib, f"{name}_layout")(devices)
    placed = layout.put(state)
    tokens = layout.put_batch({"tokens": label(np.zeros((rows, 4), np.int32))})
    # What each device's step sees: its memory rows minus its batch rows.
    gap = lambda memory, batch: jax.tree.map(
        lambda m: m.reshape(len(m), -1)[:, 0] - batch["tokens"][:, 0], memory)
    if name == "pmap":
      gap = jax.pmap(gap, axis_name=state_lib.AXIS)
    else:
      mesh = jax.sharding.Mesh(np.asarray(devices), (state_lib.AXIS,))
      gap = jax.jit(jax.shard_map(gap, mesh=mesh, in_specs=jax.P(
          state_lib.AXIS), out_specs=jax.P(state_lib.AXIS)))
    for leaf in jax.tree.leaves(gap(placed.memory, tokens)):
      np.testing.assert_array_equal(leaf, np.zeros_like(leaf))
    for leaf in jax.tree.leaves(placed.memory):  # Row r on device r // (R/A).
      for shard in leaf.addressable_shards:
        np.testing.assert_array_equal(
            _first_value_per_row(shard.data, per_device),
            np.arange(per_device) + devices.index(shard.device) * per_device)
    chex.assert_trees_all_equal(layout.get(placed).memory, memory)

  def test_memory_stays_with_its_row_and_resets_on_start(self):
    model_cfg, opt, state, batches = _setup()
    after_one, _ = _pmap_steps(model_cfg, opt, state, batches[:1])
    after_two, _ = _pmap_steps(model_cfg, opt, state, batches)
    model = melodi_hk.build(model_cfg)
    apply = jax.jit(model.apply)
    rows = lambda tree, r: jax.tree.map(lambda m: m[r:r + 1], tree)
    fresh = model.init_memory(1)
    for r in range(8):  # Row r ran on device r.
      tokens = batches[1]["tokens"][r:r + 1]
      no = np.zeros(1, bool)
      carried_logits, carried = apply(
          after_one.params, rows(after_one.memory, r), tokens, no)
      fresh_logits, reset = apply(after_one.params, fresh, tokens, no)
      want = reset if batches[1]["start_of_sequence"][r] else carried
      chex.assert_trees_all_close(rows(after_two.memory, r), want, **_TOL)
      self.assertFalse(np.allclose(carried_logits, fresh_logits, atol=1e-4))

  def test_unknown_model_field_is_named_with_the_valid_ones(self):
    config = launch_testing.small_config()
    config.model.num_layer = 3
    with self.assertRaisesRegex(ValueError, r"\['num_layer'\].*num_layers"):
      experiment.model_config(config)

  def test_batch_not_divisible_by_devices(self):
    with self.assertRaisesRegex(ValueError, "batch_size=12 .* multiple of 8"):
      experiment.host_rows(12, 8, 1)

  @parameterized.parameters(
      ("tiny", None), ("melodi_pg19", "s64_l32"), ("melodi_pg19", "s128_l64"),
      ("melodi_pg19", "s192_l32"), ("melodi_pg19", "s192_l96"),
      ("transformer_xl_pg19", None), ("memorizing_pg19", None))
  def test_every_config_file_makes_its_model_and_optimiser(self, name,
                                                           variant):
    module = importlib.import_module(f"launch.configs.{name}")
    config = module.get_config(*([variant] if variant else []))
    model_cfg = experiment.model_config(config)
    self.assertIsInstance(model_cfg,
                          experiment.MODEL_CLASSES[config.model_name])
    self.assertEqual(experiment.optimizer_config(config).num_steps,
                     config.num_steps)


if __name__ == "__main__":
  absltest.main()
