"""Tests of launch/trainer.py: exact resume after SIGTERM, and bad input.

Shape letters (launch/__init__.py): A = 8 fake CPU devices, B = 8 rows,
T = 32 tokens.
"""

import os
import shutil
import signal
import tempfile
from unittest import mock

from absl.testing import absltest
import chex
import numpy as np

from launch import checkpoints
from launch import eval_lib
from launch import experiment
from launch import metrics
from launch import trainer
from tests import launch_testing


def _latest_step(workdir):
  ckpt = checkpoints.Checkpointer(workdir, read_only=True)
  step = ckpt.latest_step()
  ckpt.close()
  return step


def _final_params(config, workdir):
  params, step = eval_lib.restore_params(
      config, experiment.model_config(config), workdir, None)
  if step != config.num_steps:
    raise AssertionError(f"{workdir} ends at step {step}, not "
                         f"{config.num_steps}.")
  return params


def _files(directory):
  """{path: (size, mtime)} of every file under `directory`."""
  stat = lambda path: (os.stat(path).st_size, os.stat(path).st_mtime_ns)
  return {path: stat(path) for path in (
      os.path.join(root, name)
      for root, _, names in os.walk(directory) for name in names)}


class ResumeTest(absltest.TestCase):
  """Against one uninterrupted 6-step run."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.enterClassContext(launch_testing.small_corpus())
    cls.config = launch_testing.small_config()
    cls.full_dir = cls.enterClassContext(tempfile.TemporaryDirectory())
    cls.full_losses = trainer.train(cls.config, cls.full_dir)

  def test_sigterm_then_resume_reproduces_the_uninterrupted_run(self):
    config = self.config
    workdir = self.enter_context(tempfile.TemporaryDirectory())
    add = metrics.Reporter.add

    def add_and_preempt(reporter, step, step_metrics):
      add(reporter, step, step_metrics)
      if step == 3:  # As a scheduler would, in the middle of the run.
        os.kill(os.getpid(), signal.SIGTERM)

    with mock.patch.object(metrics.Reporter, "add", add_and_preempt):
      with self.assertRaises(trainer.Preempted) as stopped:
        trainer.train(config, workdir)
    first = stopped.exception.losses
    self.assertEqual(sorted(first), [1, 2, 3])
    self.assertEqual(_latest_step(workdir), 3)
    second = trainer.train(config, workdir)
    self.assertEqual(sorted(second), [4, 5, 6])
    self.assertEqual({**first, **second}, self.full_losses)  # Bit-identical.
    chex.assert_trees_all_equal(_final_params(config, workdir),
                                _final_params(config, self.full_dir))

  def test_incompatible_config_is_refused_and_checkpoint_kept(self):
    before = _files(self.full_dir)
    changed = launch_testing.small_config()
    changed.model.num_layers = 3
    changed.num_steps = 8
    with self.assertRaisesRegex(ValueError, r"model\.num_layers: 2 -> 3"):
      trainer.train(changed, self.full_dir)
    self.assertEqual(_files(self.full_dir), before)

  def test_a_finished_run_says_how_to_continue_and_saves_nothing(self):
    run = os.path.join(self.enter_context(tempfile.TemporaryDirectory()),
                       "run")
    shutil.copytree(self.full_dir, run)
    before = _files(os.path.join(run, "checkpoints"))
    with self.assertLogs(level="INFO") as logs:
      self.assertEqual(trainer.train(self.config, run), {})
    self.assertIn("Raise --config.num_steps to continue",
                  "\n".join(logs.output))
    self.assertEqual(_files(os.path.join(run, "checkpoints")), before)

  def test_shard_map_trains_the_same_losses_as_pmap(self):
    config = launch_testing.small_config()  # Dropout on: rows must keep
    config.parallelism = "shard_map"  # their device, as under pmap.
    losses = trainer.train(
        config, self.enter_context(tempfile.TemporaryDirectory()))
    self.assertEqual(sorted(losses), sorted(self.full_losses))
    np.testing.assert_allclose(list(losses.values()),
                               list(self.full_losses.values()), rtol=1e-6)


class BadInputTest(absltest.TestCase):

  def test_batch_not_divisible_by_devices_is_refused(self):
    self.enter_context(launch_testing.small_corpus())
    workdir = self.enter_context(tempfile.TemporaryDirectory())
    config = launch_testing.small_config()
    config.batch_size = 12
    with self.assertRaisesRegex(ValueError, "batch_size=12 .* multiple of 8"):
      trainer.train(config, workdir)
    self.assertEmpty(os.listdir(workdir))

  def test_shard_map_on_several_hosts_is_refused(self):
    self.enter_context(launch_testing.small_corpus())
    workdir = self.enter_context(tempfile.TemporaryDirectory())
    config = launch_testing.small_config()
    config.parallelism, config.batch_size = "shard_map", 16
    with self.assertRaisesRegex(ValueError, "parallelism='shard_map' runs "
                                "on one host.*--config.parallelism=pmap"):
      trainer.train(config, workdir, process_count=2)
    self.assertEmpty(os.listdir(workdir))

  def test_missing_data_is_refused(self):
    workdir = self.enter_context(tempfile.TemporaryDirectory())
    config = launch_testing.small_config()
    config.data.corpus = "pg19"
    config.data.data_dir = os.path.join(workdir, "nowhere")
    with self.assertRaisesRegex(ValueError,
                                "No prepared 'pg19'.*data.prepare"):
      trainer.train(config, os.path.join(workdir, "run"))
    self.assertFalse(os.path.exists(os.path.join(workdir, "run")))

  def test_non_finite_loss_names_the_step_range(self):
    reporter = metrics.Reporter(None, num_steps=10, tokens_per_step=1,
                                first_step=0)
    for step, loss in [(1, 2.0), (2, np.nan), (3, 1.0)]:
      reporter.add(step, {"loss": np.float32(loss), "num_tokens": 4,
                          "learning_rate": 0.01})
    with self.assertRaisesRegex(FloatingPointError,
                                r"\[1, 3\] \(first at step 2\)"):
      reporter.flush()


if __name__ == "__main__":
  absltest.main()
