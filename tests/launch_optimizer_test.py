"""Tests of the optimiser choice (`config.optimizer.name`: adafactor | adam).

Glossary of shapes:
- B = 8 rows.  T = 32 tokens (tests/launch_testing.py's small config).
- P: a toy parameter tree of one [3, 2] matrix.
"""

import shutil
import tempfile

from absl.testing import absltest
from absl.testing import parameterized
import chex
import jax
import jax.numpy as jnp
import melodi_hk
import numpy as np

from launch import checkpoints
from launch import experiment
from launch import train_lib
from tests import launch_testing


def _adam_by_hand(grads, lrs, b1=0.9, b2=0.999, eps=1e-8):
  """Textbook Adam (bias-corrected) in numpy: the updates of each step."""
  m = v = np.zeros_like(grads[0])
  out = []
  for t, (g, lr) in enumerate(zip(grads, lrs), start=1):
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    out.append(-lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps))
  return out


class OptimizerChoiceTest(parameterized.TestCase):

  def test_default_is_adafactor(self):
    config = launch_testing.small_config()
    opt = experiment.optimizer_config(config)
    self.assertEqual(opt.name, "adafactor")
    state = train_lib.make_optimizer(opt).init({"w": jnp.zeros([128, 130])})
    # Adafactor factors the second moment of a matrix with both sides >= 128
    # into a row [128] and a column [130]; Adam would keep [128, 130] twice.
    shapes = [x.shape for x in jax.tree.leaves(state)]
    self.assertIn((128,), shapes)
    self.assertIn((130,), shapes)

  def test_adam_follows_the_schedule(self):
    opt = train_lib.OptimizerConfig(num_steps=10, warmup_steps=2,
                                    max_lr=0.1, min_lr=0.01, name="adam",
                                    b1=0.8, b2=0.99, eps=1e-6)
    optimizer = train_lib.make_optimizer(opt)
    rng = np.random.default_rng(0)
    grads = [rng.normal(size=(3, 2)).astype(np.float32) for _ in range(4)]
    lrs = [float(train_lib.learning_rate(k, opt)) for k in range(4)]
    self.assertEqual(lrs[0], 0.0)  # Warm-up from 0, as Adafactor's.
    want = _adam_by_hand(grads, lrs, b1=0.8, b2=0.99, eps=1e-6)
    state = optimizer.init({"w": jnp.zeros([3, 2])})
    for g, w in zip(grads, want):
      updates, state = optimizer.update({"w": jnp.asarray(g)}, state)
      np.testing.assert_allclose(updates["w"], w, rtol=1e-5, atol=1e-7)

  def test_adam_training_step(self):
    config = launch_testing.small_config(dropout=0.0)
    config.optimizer.name = "adam"
    config.optimizer.max_lr = 1e-3
    model_cfg = experiment.model_config(config)
    opt = experiment.optimizer_config(config)
    state = train_lib.init_state(melodi_hk.build(model_cfg),
                                 train_lib.make_optimizer(opt), 0, 8)
    before = jax.device_get(state.params)
    tokens = np.random.default_rng(0).integers(1, 200, (8, 32), np.int32)
    batch = {"tokens": tokens, "start_of_sequence": np.ones(8, bool),
             "loss_mask": tokens > 0}
    loss = melodi_hk.build_loss(model_cfg)
    grads = jax.device_get(jax.grad(lambda p: loss(
        p, state.memory, tokens, batch["start_of_sequence"],
        batch["loss_mask"])[0].loss)(state.params))
    state, metrics = train_lib.jit_update(model_cfg, opt)(state, batch)
    self.assertTrue(np.isfinite(metrics["loss"]))
    # warmup_steps = 0, so step 1 runs at max_lr, and Adam's bias-corrected
    # first step is -lr * g / (|g| + eps): +-lr wherever g != 0.
    want = jax.tree.map(lambda w, g: w - 1e-3 * g / (np.abs(g) + 1e-8),
                        before, grads)
    chex.assert_trees_all_close(jax.device_get(state.params), want,
                                atol=2e-6)


  @parameterized.parameters(
      ("name", "sgd", r"optimizer.name='sgd' is not one of .*adam"),
      ("b1", 1.0, r"optimizer.b1=1.0 must lie in \[0, 1\)"),
      ("b2", -0.1, r"optimizer.b2=-0.1 must lie in \[0, 1\)"),
      ("eps", 0.0, r"optimizer.eps=0.0 must be > 0"))
  def test_bad_value_is_named(self, field, value, message):
    config = launch_testing.small_config()
    config.optimizer[field] = value
    with self.assertRaisesRegex(ValueError, message):
      experiment.check_config(config)

  def test_unknown_field_is_named_with_the_valid_ones(self):
    config = launch_testing.small_config()
    config.optimizer.beta1 = 0.9
    with self.assertRaisesRegex(ValueError, r"\['beta1'\].*'b1'"):
      experiment.optimizer_config(config)

  def test_saved_config_without_name_is_adafactor(self):
    config = launch_testing.small_config()
    for field in ("name", "b1", "b2", "eps"):
      del config.optimizer[field]
    self.assertEqual(experiment.optimizer_config(config).name, "adafactor")

  def test_changing_the_optimizer_on_resume_is_refused(self):
    workdir = tempfile.mkdtemp()
    self.addCleanup(shutil.rmtree, workdir)
    checkpoints.store_config(workdir, launch_testing.small_config())
    config = launch_testing.small_config()
    config.optimizer.name = "adam"  # Another optimiser state: refused.
    with self.assertRaisesRegex(ValueError,
                                r"optimizer.name: 'adafactor' -> 'adam'"):
      checkpoints.check_config(workdir, config, has_checkpoint=True)
    config = launch_testing.small_config()
    config.optimizer.max_lr = 0.005  # The schedule: allowed.
    checkpoints.check_config(workdir, config, has_checkpoint=True)


if __name__ == "__main__":
  absltest.main()
