"""Tests of launch/: preemption, corrupt checkpoints, divergence, bad values.

Glossary of shapes:
- P = 8 fake CPU devices.  B = 8 rows.  T = 32 tokens.

Every run here is the 6-step run of tests/launch_testing.py (log every 2
steps); `_config` adds a checkpoint every 4, so saves happen at 4 and 6.
"""

import logging
import os
import re
import signal
import subprocess
import sys

import numpy as np
import pytest

from launch import checkpoints
from launch import eval_lib
from launch import experiment
from launch import metrics
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


@pytest.fixture(name="corpus", autouse=True)
def _corpus(monkeypatch):
  launch_testing.use_small_corpus(monkeypatch)


@pytest.fixture(name="full", scope="module")
def _full(tmp_path_factory):
  """An uninterrupted 6-step run: (workdir, {step: loss})."""
  with pytest.MonkeyPatch.context() as monkeypatch:
    launch_testing.use_small_corpus(monkeypatch)
    workdir = str(tmp_path_factory.mktemp("full"))
    return workdir, trainer.train(_config(), workdir)


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


@pytest.mark.parametrize("method,call,saved", _SIGNAL_POINTS)
def test_sigterm_saves_the_step_it_names(method, call, saved, tmp_path,
                                         monkeypatch, full, caplog):
  owner, name = method
  original, calls = getattr(owner, name), []

  def signalled(*args, **kwargs):
    calls.append(None)
    if len(calls) == call:
      os.kill(os.getpid(), signal.SIGTERM)  # Handled before the call runs.
    return original(*args, **kwargs)

  monkeypatch.setattr(owner, name, signalled)
  stopped = None
  with caplog.at_level(logging.INFO, logger="absl"):
    try:
      trainer.train(_config(), str(tmp_path))
    except Exception as error:  # pylint: disable=broad-except
      stopped = error
  monkeypatch.setattr(owner, name, original)
  named = re.findall(r"after saving step (\d+) ", caplog.text)
  assert [int(step) for step in named[-1:]] == _steps(str(tmp_path))[-1:]
  assert isinstance(stopped, trainer.Preempted) and stopped.step == saved
  assert f"after saving step {saved} " in str(stopped)
  config = _config()
  _, step = eval_lib.restore_params(  # The whole state restores.
      config, experiment.model_config(config), str(tmp_path), None)
  assert step == saved
  rest = trainer.train(config, str(tmp_path))
  assert rest == {k: v for k, v in full[1].items() if k > saved}


def test_preempted_carries_the_losses_and_exit_status(tmp_path, monkeypatch):
  add = metrics.Reporter.add

  def add_and_preempt(self, step, step_metrics):
    add(self, step, step_metrics)
    if step == 2:
      os.kill(os.getpid(), signal.SIGTERM)

  monkeypatch.setattr(metrics.Reporter, "add", add_and_preempt)
  with pytest.raises(trainer.Preempted) as stopped:
    trainer.train(_config(), str(tmp_path))
  assert stopped.value.step == 2 and sorted(stopped.value.losses) == [1, 2]
  assert trainer.EXIT_PREEMPTED == 75  # sysexits.h EX_TEMPFAIL, see README.


# ---- 2. A corrupt latest checkpoint. --------------------------------------


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


@pytest.mark.parametrize("corrupt", [_truncate_arrays, _delete_metadata])
def test_corrupt_latest_checkpoint_falls_back_and_is_kept(
    corrupt, tmp_path, full, caplog):
  workdir, full_losses = full
  run = str(tmp_path / "run")
  # A copy of the full run: checkpoints 4 and 6.
  subprocess.run(["cp", "-r", workdir, run], check=True)
  step_dir = os.path.join(checkpoints.checkpoint_dir(run), "6")
  broken = corrupt(step_dir)
  with caplog.at_level(logging.WARNING):
    losses = trainer.train(_config(), run)
  assert losses == {5: full_losses[5], 6: full_losses[6]}
  messages = [r.getMessage() for r in caplog.records
              if "could not be restored" in r.getMessage()]
  assert len(messages) == 1, messages
  assert step_dir in messages[0] and os.path.basename(broken) in messages[0]
  assert os.path.isdir(step_dir + ".corrupt")  # Kept, out of orbax's way.
  assert _steps(run) == [4, 6]


# ---- 3. A finite but huge loss stops as a NaN does. -----------------------


@pytest.mark.parametrize("loss", [np.nan, np.inf, 1e6, 3e38])
def test_diverged_loss_stops_like_nan(loss):
  reporter = metrics.Reporter(None, num_steps=10, tokens_per_step=1,
                              first_step=0)
  for step, value in [(1, 2.0), (2, loss), (3, 1.0)]:
    reporter.add(step, {"loss": np.float32(value), "num_tokens": 4,
                        "learning_rate": 0.01})
  with pytest.raises(FloatingPointError, match=r"\[1, 3\] \(first at step 2\)"):
    reporter.flush()


def test_perplexity_of_huge_loss_is_inf_not_an_error():
  assert metrics.perplexity(1e6, 1) == float("inf")


# ---- 4. Bad values: one clear error before compiling or writing. ----------


@pytest.mark.parametrize("field,value,message", [
    ("checkpoint_every", 0, r"checkpoint_every=0 .*--config.checkpoint_every"),
    ("log_every", 0, r"log_every=0 .*--config.log_every"),
    ("keep_checkpoints", 0, r"keep_checkpoints=0 .*--config.keep_checkpoints"),
    ("num_steps", 0, r"num_steps=0 .*--config.num_steps="),
    ("eval_every", -1, r"eval_every=-1 .*--config.eval_every="),
])
def test_bad_value_is_refused_before_anything_runs(field, value, message,
                                                   tmp_path, monkeypatch):
  monkeypatch.setattr(trainer.train_lib, "pmap_update", None)  # Never reached.
  with pytest.raises(ValueError, match=message) as error:
    trainer.train(_config(**{field: value}), str(tmp_path))
  assert "(e.g. 0)" not in str(error.value)
  assert not os.listdir(tmp_path)


def test_missing_config_json_is_not_overwritten_by_another_model(
    tmp_path, full):
  workdir, full_losses = full
  run = str(tmp_path / "run")
  subprocess.run(["cp", "-r", workdir, run], check=True)
  os.remove(os.path.join(run, checkpoints.CONFIG_FILE))
  other = _config(num_steps=8)
  other.model.num_layers = 3
  with pytest.raises(ValueError, match=r"another model.*--config") as error:
    trainer.train(other, run)
  assert "partial_restore" not in str(error.value)
  assert not os.path.exists(os.path.join(run, checkpoints.CONFIG_FILE))
  losses = trainer.train(_config(num_steps=8), run)  # The right config runs.
  assert sorted(losses) == [7, 8]


def test_eval_with_another_model_names_the_fix(full):
  workdir, _ = full
  other = _config()
  other.model.embed_dim = 64
  with pytest.raises(ValueError, match=r"another model.*config\.json") as error:
    eval_lib.restore_params(other, experiment.model_config(other), workdir,
                            None)
  assert "partial_restore" not in str(error.value)
  assert "now (8, 8, 64)" in str(error.value)  # Memory rows of width 64.


def _launch(*flags):
  return subprocess.run(
      [sys.executable, "-m", "launch.train", *flags], cwd=_ROOT,
      capture_output=True, text=True, timeout=120, check=False)


def test_misspelt_field_and_help(tmp_path):
  bad = _launch("--config=launch/configs/tiny.py", "--config.bogus=1",
                f"--workdir={tmp_path}")
  assert bad.returncode != 0
  assert "Traceback" not in bad.stderr, bad.stderr[-2000:]
  assert "bogus" in bad.stderr and "log_every" in bad.stderr  # Valid names.
  assert not os.listdir(tmp_path)
  usage = _launch("--help")
  config = common.base_config()  # No --config: the shared defaults.
  for field, value in [("checkpoint_every", config.checkpoint_every),
                       ("optimizer.max_lr", config.optimizer.max_lr),
                       ("data.corpus", config.data.corpus)]:
    assert f"{field} = {value!r}" in usage.stdout, usage.stdout[-3000:]
  assert "Console line and TensorBoard scalars" in usage.stdout  # A comment.


# ---- 6. Extending a run: schedule and cadence may change on resume. -------


def test_schedule_and_cadence_may_change_on_resume(tmp_path, full, caplog):
  workdir, _ = full
  run = str(tmp_path / "run")
  subprocess.run(["cp", "-r", workdir, run], check=True)
  longer = _config(num_steps=8, log_every=1)
  longer.optimizer.max_lr = 0.005
  with caplog.at_level(logging.WARNING):
    losses = trainer.train(longer, run)
  assert sorted(losses) == [7, 8]
  warnings = " ".join(r.getMessage() for r in caplog.records)
  assert "num_steps: 6 -> 8" in warnings and "max_lr: 0.01 -> 0.005" in warnings
  changed = _config(num_steps=10)
  changed.seed = 1  # Changes the data order: still refused.
  with pytest.raises(ValueError, match=r"seed: 0 -> 1"):
    trainer.train(changed, run)


# ---- 5. Data the model has no embedding row for. --------------------------


def test_batch_ids_outside_the_vocabulary_are_refused():
  tokens = np.array([[1, 2, 260]], np.int32)
  with pytest.raises(ValueError, match=r"id 260, .*vocab_size=260"):
    experiment.check_batch({"tokens": tokens}, vocab_size=260)
  experiment.check_batch({"tokens": tokens - 1}, vocab_size=260)
