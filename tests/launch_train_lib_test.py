"""Tests of launch/train_lib.py and launch/experiment.py on 8 fake CPU devices.

Glossary of shapes:
- P = 8 devices.  B = 8 rows, R = 1 row per device.  T = 32 tokens.
"""

import importlib

import chex
import jax
import melodi_hk
import numpy as np
import pytest

from launch import experiment
from launch import train_lib
from tests import launch_testing

_TOL = dict(rtol=1e-5, atol=1e-6)


def _setup():
  """Config pieces, a fresh host state and two batches, dropout off."""
  config = launch_testing.small_config(dropout=0.0)
  model_cfg = experiment.model_config(config)
  opt = experiment.optimizer_config(config)
  state = jax.device_get(train_lib.init_state(
      melodi_hk.build(model_cfg), train_lib.make_optimizer(opt), 0, 8))
  rng = np.random.default_rng(0)
  tokens = rng.integers(1, 200, (2, 8, 32)).astype(np.int32)  # [2, B, T]
  starts = [np.ones(8, bool), np.arange(8) % 3 == 0]  # Then rows 0, 3, 6 reset.
  batches = [{"tokens": t, "start_of_sequence": s, "loss_mask": t > 0}
             for t, s in zip(tokens, starts)]
  return model_cfg, opt, state, batches


def _pmap_steps(model_cfg, opt, state, batches):
  update, devices = train_lib.pmap_update(model_cfg, opt), jax.devices()
  state = train_lib.to_devices(state, devices)
  for batch in batches:
    state, metrics = update(state, {k: v.reshape(8, 1, -1) if v.ndim == 2
                                    else v.reshape(8, 1)
                                    for k, v in batch.items()})
  return train_lib.to_host(state), jax.device_get(metrics)


def test_learning_rate_hits_paper_values():
  opt = train_lib.OptimizerConfig(num_steps=500_000)
  lr = lambda step: float(train_lib.learning_rate(step, opt))
  assert lr(0) == 0.0
  assert lr(500) == pytest.approx(0.5 * lr(1000))  # Linear warm-up.
  cosine_at_1000 = 0.001 + 0.009 * 0.5 * (1 + np.cos(np.pi * 1000 / 500_000))
  assert lr(1000) == pytest.approx(cosine_at_1000, rel=1e-6)  # 0.0099999.
  assert lr(250_000) == pytest.approx(0.0055, rel=1e-6)  # Cosine midpoint.
  assert lr(500_000) == pytest.approx(0.001, rel=1e-6)
  assert lr(1_000_000) == pytest.approx(0.0005, rel=1e-6)  # meliad's tail.


def test_pmap_step_equals_single_device_step():
  model_cfg, opt, state, batches = _setup()
  single, single_metrics = train_lib.jit_update(model_cfg, opt)(
      jax.device_put(state), batches[0])
  pmapped, pmap_metrics = _pmap_steps(model_cfg, opt, state, batches[:1])
  assert not np.allclose(state.params["melodi"]["embedding"],
                         pmapped.params["melodi"]["embedding"])
  chex.assert_trees_all_close(pmapped.params, jax.device_get(single.params),
                              **_TOL)
  chex.assert_trees_all_close(pmapped.memory, jax.device_get(single.memory),
                              **_TOL)
  np.testing.assert_allclose(pmap_metrics["loss"][0], single_metrics["loss"],
                             rtol=1e-5)


def test_shard_map_step_equals_pmap_step():
  model_cfg, opt, state, batches = _setup()
  mesh = jax.sharding.Mesh(np.asarray(jax.devices()), (train_lib.AXIS,))
  sharded, metrics = train_lib.shard_map_update(model_cfg, opt, mesh)(
      jax.device_put(state), batches[0])
  pmapped, pmap_metrics = _pmap_steps(model_cfg, opt, state, batches[:1])
  chex.assert_trees_all_close(jax.device_get(sharded.params), pmapped.params,
                              **_TOL)
  np.testing.assert_allclose(metrics["loss"], pmap_metrics["loss"][0],
                             rtol=1e-6)


def test_memory_stays_with_its_row_and_resets_on_start():
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
    carried_logits, carried = apply(after_one.params, rows(after_one.memory, r),
                                    tokens, no)
    fresh_logits, reset = apply(after_one.params, fresh, tokens, no)
    want = reset if batches[1]["start_of_sequence"][r] else carried
    chex.assert_trees_all_close(rows(after_two.memory, r), want, **_TOL)
    assert not np.allclose(carried_logits, fresh_logits, atol=1e-4)


def test_unknown_model_field_is_named_with_the_valid_ones():
  config = launch_testing.small_config()
  config.model.num_layer = 3
  with pytest.raises(ValueError, match=r"\['num_layer'\].*num_layers"):
    experiment.model_config(config)


def test_batch_not_divisible_by_devices():
  with pytest.raises(ValueError, match="batch_size=12 .* multiple of 8"):
    experiment.host_rows(12, 8, 1)


@pytest.mark.parametrize("name, variant", [
    ("tiny", None), ("melodi_pg19", "s64_l32"), ("melodi_pg19", "s128_l64"),
    ("melodi_pg19", "s192_l32"), ("melodi_pg19", "s192_l96"),
    ("transformer_xl_pg19", None), ("memorizing_pg19", None)])
def test_every_config_file_makes_its_model_and_optimiser(name, variant):
  module = importlib.import_module(f"launch.configs.{name}")
  config = module.get_config(*([variant] if variant else []))
  model_cfg = experiment.model_config(config)
  assert isinstance(model_cfg, experiment.MODEL_CLASSES[config.model_name])
  assert experiment.optimizer_config(config).num_steps == config.num_steps
