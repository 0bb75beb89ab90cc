"""Tests of launch/trainer.py: exact resume after SIGTERM, and bad input.

Glossary of shapes:
- P = 8 fake CPU devices.  B = 8 rows.  T = 32 tokens.
"""

import os
import signal

import chex
import numpy as np
import pytest

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
  assert step == config.num_steps
  return params


def _files(directory):
  """{path: (size, mtime)} of every file under `directory`."""
  stat = lambda path: (os.stat(path).st_size, os.stat(path).st_mtime_ns)
  return {path: stat(path) for path in (
      os.path.join(root, name)
      for root, _, names in os.walk(directory) for name in names)}


@pytest.fixture(name="uninterrupted", scope="module")
def _uninterrupted(tmp_path_factory):
  """A 6-step run: (config, workdir, losses)."""
  with pytest.MonkeyPatch.context() as monkeypatch:
    launch_testing.use_small_corpus(monkeypatch)
    config = launch_testing.small_config()
    workdir = str(tmp_path_factory.mktemp("uninterrupted"))
    return config, workdir, trainer.train(config, workdir)


def test_sigterm_then_resume_reproduces_the_uninterrupted_run(
    uninterrupted, tmp_path, monkeypatch):
  config, full_dir, full_losses = uninterrupted
  launch_testing.use_small_corpus(monkeypatch)
  add = metrics.Reporter.add

  def add_and_preempt(self, step, step_metrics):
    add(self, step, step_metrics)
    if step == 3:  # As a scheduler would, in the middle of the run.
      os.kill(os.getpid(), signal.SIGTERM)

  with monkeypatch.context() as preempt:
    preempt.setattr(metrics.Reporter, "add", add_and_preempt)
    with pytest.raises(trainer.Preempted) as stopped:
      trainer.train(config, str(tmp_path))
  first = stopped.value.losses
  assert sorted(first) == [1, 2, 3]
  assert _latest_step(str(tmp_path)) == 3
  second = trainer.train(config, str(tmp_path))
  assert sorted(second) == [4, 5, 6]
  assert {**first, **second} == full_losses  # Bit-identical losses.
  chex.assert_trees_all_equal(_final_params(config, str(tmp_path)),
                              _final_params(config, full_dir))


def test_incompatible_config_is_refused_and_checkpoint_kept(
    uninterrupted, monkeypatch):
  config, workdir, _ = uninterrupted
  launch_testing.use_small_corpus(monkeypatch)
  before = _files(workdir)
  changed = launch_testing.small_config()
  changed.model.num_layers = 3
  changed.num_steps = 8
  with pytest.raises(ValueError, match=r"model\.num_layers: 2 -> 3"):
    trainer.train(changed, workdir)
  assert _files(workdir) == before


def test_batch_not_divisible_by_devices_is_refused(tmp_path, monkeypatch):
  launch_testing.use_small_corpus(monkeypatch)
  config = launch_testing.small_config()
  config.batch_size = 12
  with pytest.raises(ValueError, match="batch_size=12 .* multiple of 8"):
    trainer.train(config, str(tmp_path))
  assert not os.listdir(tmp_path)


def test_missing_data_is_refused(tmp_path):
  config = launch_testing.small_config()
  config.data.corpus = "pg19"
  config.data.data_dir = str(tmp_path / "nowhere")
  with pytest.raises(ValueError, match="No prepared 'pg19'.*data.prepare"):
    trainer.train(config, str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()


def test_non_finite_loss_names_the_step_range():
  reporter = metrics.Reporter(None, num_steps=10, tokens_per_step=1,
                              first_step=0)
  for step, loss in [(1, 2.0), (2, np.nan), (3, 1.0)]:
    reporter.add(step, {"loss": np.float32(loss), "num_tokens": 4,
                        "learning_rate": 0.01})
  with pytest.raises(FloatingPointError, match=r"\[1, 3\] \(first at step 2\)"):
    reporter.flush()
