"""Tests of launch/: preemption, corrupt checkpoints, divergence, bad values.

Shape letters (launch/__init__.py): A = 8 fake CPU devices, B = 8 rows,
T = 32 tokens.

Every run here is the 6-step run of tests/launch_testing.py (log every 2
steps); `_config` adds a checkpoint every 4, so saves happen at 4 and 6.
"""

import json
import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
from unittest import mock

from absl.testing import absltest
from absl.testing import parameterized
import numpy as np

from launch import checkpoints
from launch import eval_lib
from launch import experiment
from launch import metrics
from launch import train_lib
from launch import trainer
from launch.configs import common
from tests import launch_testing

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _config(**changes):
  config = launch_testing.small_config()
  config.checkpoint_every = 4
  config.update(changes)
  return config


def _steps(workdir):
  """Committed steps on disk (orbax renames a step's folder when complete)."""
  directory = checkpoints.checkpoint_dir(workdir)
  names = os.listdir(directory) if os.path.isdir(directory) else []
  return sorted(int(name) for name in names if name.isdigit())


# ---- 1. SIGTERM: the step the message names is on disk, complete. --------

# (method, its n-th call during which SIGTERM arrives, step saved last).
# Reporter.add runs once a step; flush at steps 2, 4, 6; save at 4 and 6.
_SIGNAL_POINTS = [
    ((metrics.Reporter, "add"), 1, 1),
    ((metrics.Reporter, "add"), 3, 3),
    ((metrics.Reporter, "flush"), 1, 3),  # During the step-2 flush.
    ((metrics.Reporter, "flush"), 2, 5),  # During the flush before a save.
    ((checkpoints.Checkpointer, "save"), 1, 5),  # During the step-4 save.
]


def _truncate_arrays(step_dir):
  """Halves every array data file of the checkpoint's state item."""
  data = os.path.join(step_dir, "state", "d")
  for name in os.listdir(data):
    path = os.path.join(data, name)
    os.truncate(path, os.path.getsize(path) // 2)
  return data


def _delete_metadata(step_dir):
  path = os.path.join(step_dir, "state", "_METADATA")
  os.remove(path)
  return path


def _launch(*flags):
  return subprocess.run(
      [sys.executable, "-m", "launch.train", *flags], cwd=_ROOT,
      capture_output=True, text=True, timeout=120, check=False)


class ReliabilityTest(parameterized.TestCase):
  """Runs share one uninterrupted 6-step run, `full_dir`/`full_losses`."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.enterClassContext(launch_testing.small_corpus())
    cls.full_dir = cls.enterClassContext(tempfile.TemporaryDirectory())
    cls.full_losses = trainer.train(_config(), cls.full_dir)

  def setUp(self):
    super().setUp()
    self.workdir = self.enter_context(tempfile.TemporaryDirectory())

  def _copy_of_full(self):
    """A copy of the full run (checkpoints 4 and 6) to change freely."""
    run = os.path.join(self.workdir, "run")
    subprocess.run(["cp", "-r", self.full_dir, run], check=True)
    return run

  @parameterized.parameters(*_SIGNAL_POINTS)
  def test_sigterm_saves_the_step_it_names(self, method, call, saved):
    owner, name = method
    original, calls = getattr(owner, name), []

    def signalled(*args, **kwargs):
      calls.append(None)
      if len(calls) == call:
        os.kill(os.getpid(), signal.SIGTERM)  # Handled before the call runs.
      return original(*args, **kwargs)

    stopped = None
    with mock.patch.object(owner, name, signalled), self.assertLogs(
        "absl", logging.INFO) as logs:
      try:
        trainer.train(_config(), self.workdir)
      except Exception as error:  # pylint: disable=broad-except
        stopped = error
    named = re.findall(r"after saving step (\d+) ", "\n".join(logs.output))
    self.assertEqual([int(step) for step in named[-1:]],
                     _steps(self.workdir)[-1:])
    self.assertIsInstance(stopped, trainer.Preempted)
    self.assertEqual(stopped.step, saved)
    self.assertIn(f"after saving step {saved} ", str(stopped))
    config = _config()
    _, step = eval_lib.restore_params(  # The whole state restores.
        config, experiment.model_config(config), self.workdir, None)
    self.assertEqual(step, saved)
    rest = trainer.train(config, self.workdir)
    self.assertEqual(rest, {k: v for k, v in self.full_losses.items()
                            if k > saved})

  def test_preempted_carries_the_losses_and_exit_status(self):
    add = metrics.Reporter.add

    def add_and_preempt(reporter, step, step_metrics):
      add(reporter, step, step_metrics)
      if step == 2:
        os.kill(os.getpid(), signal.SIGTERM)

    self.enter_context(mock.patch.object(metrics.Reporter, "add",
                                         add_and_preempt))
    with self.assertRaises(trainer.Preempted) as stopped:
      trainer.train(_config(), self.workdir)
    self.assertEqual(stopped.exception.step, 2)
    self.assertEqual(sorted(stopped.exception.losses), [1, 2])
    self.assertEqual(trainer.EXIT_PREEMPTED, 75)  # EX_TEMPFAIL, see README.

  # ---- 2. A corrupt latest checkpoint. ------------------------------------

  @parameterized.parameters(_truncate_arrays, _delete_metadata)
  def test_corrupt_latest_checkpoint_falls_back_and_is_kept(self, corrupt):
    run = self._copy_of_full()
    step_dir = os.path.join(checkpoints.checkpoint_dir(run), "6")
    broken = corrupt(step_dir)
    with self.assertLogs(level=logging.WARNING) as logs:
      losses = trainer.train(_config(), run)
    self.assertEqual(losses, {5: self.full_losses[5],
                              6: self.full_losses[6]})
    messages = [r.getMessage() for r in logs.records
                if "could not be restored" in r.getMessage()]
    self.assertLen(messages, 1, messages)
    self.assertIn(step_dir, messages[0])
    self.assertIn(os.path.basename(broken), messages[0])
    self.assertTrue(os.path.isdir(step_dir + ".corrupt"))  # Out of the way.
    self.assertEqual(_steps(run), [4, 6])

  # ---- 3. A finite but huge loss stops as a NaN does. ---------------------

  @parameterized.parameters(np.nan, np.inf, 1e6, 3e38)
  def test_diverged_loss_stops_like_nan(self, loss):
    reporter = metrics.Reporter(None, num_steps=10, tokens_per_step=1,
                                first_step=0)
    for step, value in [(1, 2.0), (2, loss), (3, 1.0)]:
      reporter.add(step, {"loss": np.float32(value), "num_tokens": 4,
                          "learning_rate": 0.01})
    with self.assertRaisesRegex(FloatingPointError,
                                r"\[1, 3\] \(first at step 2\)"):
      reporter.flush()

  def test_perplexity_of_huge_loss_is_inf_not_an_error(self):
    self.assertEqual(metrics.perplexity(1e6, 1), float("inf"))

  # ---- 4. Bad values: one clear error before compiling or writing. --------

  @parameterized.parameters(
      ("checkpoint_every", 0,
       r"checkpoint_every=0 .*--config.checkpoint_every"),
      ("log_every", 0, r"log_every=0 .*--config.log_every"),
      ("keep_checkpoints", 0,
       r"keep_checkpoints=0 .*--config.keep_checkpoints"),
      ("num_steps", 0, r"num_steps=0 .*--config.num_steps="),
      ("eval_every", -1, r"eval_every=-1 .*--config.eval_every="),
      ("parallelism", "gspmd", r"parallelism='gspmd' .*--config.parallelism="),
  )
  def test_bad_value_is_refused_before_anything_runs(self, field, value,
                                                     message):
    self.enter_context(  # Never reached.
        mock.patch.object(train_lib, "pmap_update", None))
    with self.assertRaisesRegex(ValueError, message) as error:
      trainer.train(_config(**{field: value}), self.workdir)
    self.assertNotIn("(e.g. 0)", str(error.exception))
    self.assertEmpty(os.listdir(self.workdir))

  def test_missing_config_json_is_not_overwritten_by_another_model(self):
    run = self._copy_of_full()
    os.remove(os.path.join(run, checkpoints.CONFIG_FILE))
    other = _config(num_steps=8)
    other.model.num_layers = 3
    with self.assertRaisesRegex(ValueError,
                                r"another model.*--config") as error:
      trainer.train(other, run)
    self.assertNotIn("partial_restore", str(error.exception))
    self.assertFalse(os.path.exists(os.path.join(run,
                                                 checkpoints.CONFIG_FILE)))
    losses = trainer.train(_config(num_steps=8), run)  # The right config.
    self.assertEqual(sorted(losses), [7, 8])

  def test_eval_with_another_model_names_the_fix(self):
    other = _config()
    other.model.embed_dim = 64
    with self.assertRaisesRegex(ValueError,
                                r"another model.*config\.json") as error:
      eval_lib.restore_params(other, experiment.model_config(other),
                              self.full_dir, None)
    self.assertNotIn("partial_restore", str(error.exception))
    self.assertIn("now (8, 8, 64)", str(error.exception))  # Rows of width 64.

  def test_misspelt_field_and_help(self):
    bad = _launch("--config=launch/configs/tiny.py", "--config.bogus=1",
                  f"--workdir={self.workdir}")
    self.assertNotEqual(bad.returncode, 0)
    self.assertNotIn("Traceback", bad.stderr, bad.stderr[-2000:])
    self.assertIn("bogus", bad.stderr)
    self.assertIn("log_every", bad.stderr)  # The valid names.
    self.assertEmpty(os.listdir(self.workdir))
    usage = _launch("--help")
    self.assertEqual(usage.returncode, 0, usage.stderr[-2000:])
    config = common.base_config()  # No --config: the shared defaults.
    for field, value in [("checkpoint_every", config.checkpoint_every),
                         ("optimizer.max_lr", config.optimizer.max_lr),
                         ("data.corpus", config.data.corpus)]:
      self.assertIn(f"{field} = {value!r}", usage.stdout,
                    usage.stdout[-3000:])
    self.assertIn("Console line and TensorBoard scalars",  # A comment.
                  usage.stdout)

  # ---- 6. Extending a run: schedule and cadence may change on resume. -----

  def test_schedule_and_cadence_may_change_on_resume(self):
    run = self._copy_of_full()
    longer = _config(num_steps=8, log_every=1)
    longer.optimizer.max_lr = 0.005
    with self.assertLogs(level=logging.WARNING) as logs:
      losses = trainer.train(longer, run)
    self.assertEqual(sorted(losses), [7, 8])
    warnings = " ".join(r.getMessage() for r in logs.records)
    self.assertIn("num_steps: 6 -> 8", warnings)
    self.assertIn("max_lr: 0.01 -> 0.005", warnings)
    changed = _config(num_steps=10)
    changed.seed = 1  # Changes the data order: still refused.
    with self.assertRaisesRegex(ValueError, r"seed: 0 -> 1"):
      trainer.train(changed, run)

  def test_config_saved_before_a_field_existed_resumes_unless_it_is_used(self):
    workdir = self.enter_context(tempfile.TemporaryDirectory())
    config = _config()
    checkpoints.store_config(workdir, config)
    path = os.path.join(workdir, checkpoints.CONFIG_FILE)
    saved = json.loads(open(path).read())
    del saved["data"]["curriculum"], saved["parallelism"]  # An older run.
    for field in ("name", "b1", "b2", "eps"):
      del saved["optimizer"][field]
    del saved["model"]["remat"], saved["model"]["scan_layers"]
    with open(path, "w") as f:
      json.dump(saved, f)
    checkpoints.check_config(workdir, config, has_checkpoint=True)
    config.model.scan_layers = True
    with self.assertRaisesRegex(ValueError, r"scan_layers: '<absent>' -> "
                                "True"):
      checkpoints.check_config(workdir, config, has_checkpoint=True)
    config.model.scan_layers = False
    config.data.curriculum.steps = 2
    config.data.curriculum.synthetic.min_recall_gap = 24
    with self.assertRaisesRegex(ValueError, r"data.curriculum.steps: "
                                r"'<absent>' -> 2.*min_recall_gap"):
      checkpoints.check_config(workdir, config, has_checkpoint=True)

  # ---- 5. Data the model has no embedding row for. ------------------------

  def test_batch_ids_outside_the_vocabulary_are_refused(self):
    tokens = np.array([[1, 2, 260]], np.int32)
    with self.assertRaisesRegex(ValueError, r"id 260, .*vocab_size=260"):
      experiment.check_batch({"tokens": tokens}, vocab_size=260)
    experiment.check_batch({"tokens": tokens - 1}, vocab_size=260)


if __name__ == "__main__":
  absltest.main()
