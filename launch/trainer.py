"""The training loop: resume, update on every device, report, checkpoint, stop.

Shape letters: see launch/__init__.py (B global rows, N hosts, R = B / N
rows of this host, A devices of this host, T segment).

`train(config, workdir)` continues from the workdir's latest checkpoint
(state, every row's memory and the data stream's position) or starts
afresh, runs `config.num_steps` updates in all (under pmap, or jit +
shard_map: `config.parallelism`), and checkpoints every
`config.checkpoint_every` steps, at the end, and when SIGTERM asks it to
stop: the step is saved completely, then `Preempted` is raised, which
launch/train.py turns into exit status EXIT_PREEMPTED. With several hosts
the stop is agreed every step (one tiny all-gather), so all hosts save the
same step. Because the checkpoint holds everything a step depends on (the
dropout key is fold_in(rng, step)), a resumed run reproduces the losses of
an uninterrupted one exactly on the same hardware.
"""

import contextlib
import functools
import os
import signal
import threading
from typing import Callable

from absl import logging
import jax
from jax.experimental import multihost_utils
import melodi_hk
import ml_collections
import numpy as np

from data import pipeline
from launch import checkpoints
from launch import eval_lib
from launch import experiment
from launch import metrics
from launch import state as state_lib
from launch import train_lib


# sysexits.h EX_TEMPFAIL, "temporary failure, retry": saved and stopped on
# SIGTERM. Distinct from 0 (done), 1 (error) and 143 (killed by SIGTERM
# before the handler was installed, nothing saved).
EXIT_PREEMPTED = 75


class Preempted(Exception):
  """SIGTERM stopped training after `step` was saved completely."""

  def __init__(self, step: int, directory: str, losses: dict[int, float]):
    super().__init__(f"Stopped by SIGTERM after saving step {step} in "
                     f"{directory}; rerun the same command to resume.")
    self.step, self.losses = step, losses  # losses: {step: nats} of the call.


def train(config: ml_collections.ConfigDict, workdir: str, *,
          process_index: int = 0, process_count: int = 1) -> dict[int, float]:
  """Trains up to config.num_steps; returns {step: summed loss} of this call.

  Raises:
    Preempted: SIGTERM arrived; the step it names is saved.
    ValueError: a bad config value, before anything is compiled or written.
  """
  experiment.check_config(config)
  model_cfg = experiment.model_config(config)
  opt = experiment.optimizer_config(config)
  devices = jax.local_devices()
  rows = experiment.host_rows(config.batch_size, len(devices), process_count)
  experiment.check_vocabulary(config)
  update, layout = _step(config, model_cfg, opt, devices, process_count)
  stream = experiment.make_stream(
      config, "train", rows=rows, devices=len(devices), training=True,
      process_index=process_index, process_count=process_count)
  ckpt = checkpoints.Checkpointer(workdir, keep=config.keep_checkpoints,
                                  process_index=process_index,
                                  process_count=process_count)
  checkpoints.check_config(workdir, config, ckpt.latest_step() is not None)
  state = _initial_state(train_lib.build(model_cfg), opt, config.seed, rows,
                         ckpt, stream, process_count)
  checkpoints.store_config(workdir, config)  # Only once the state restored.
  if int(state.step) >= config.num_steps:
    logging.info("The run is already at num_steps=%d: nothing to train. "
                 "Raise --config.num_steps to continue it.", config.num_steps)
  logdir = os.path.join(workdir, "tensorboard") if process_index == 0 else None
  reporter = metrics.Reporter(
      logdir, num_steps=config.num_steps, first_step=int(state.step),
      tokens_per_step=config.batch_size * config.model.segment_length)
  held_out = (eval_lib.HeldOut(config, workdir, reporter)
              if config.get("eval_every") and process_index == 0 else None)
  with _stop_on_sigterm() as stop, pipeline.Prefetcher(stream) as batches:
    try:
      return _loop(update, layout, layout.put(state), int(state.step),
                   batches, reporter, ckpt, config,
                   functools.partial(_agreed_stop, stop, process_count),
                   held_out)
    finally:
      reporter.close()
      ckpt.close()


def _step(config, model_cfg, opt: train_lib.OptimizerConfig, devices,
          process_count: int) -> tuple[Callable, state_lib.Layout]:
  """The update of `config.parallelism` and the state layout it runs on."""
  if config.get("parallelism", "pmap") == "pmap":
    return (train_lib.pmap_update(model_cfg, opt),
            state_lib.pmap_layout(devices))
  if process_count > 1:
    raise ValueError("config.parallelism='shard_map' runs on one host so "
                     f"far, not {process_count}; use --config.parallelism="
                     "pmap for multi-host runs.")
  mesh = jax.sharding.Mesh(np.asarray(devices), (state_lib.AXIS,))
  return (train_lib.shard_map_update(model_cfg, opt, mesh),
          state_lib.global_layout(devices))


def _initial_state(model: melodi_hk.Model, opt: train_lib.OptimizerConfig,
                   seed: int, rows: int, ckpt: checkpoints.Checkpointer, stream,
                   process_count: int) -> state_lib.HostState:
  """The latest checkpoint's host state (moving `stream` on), or a fresh one."""
  init = functools.partial(train_lib.init_state, model,
                           train_lib.make_optimizer(opt), seed, rows)
  if ckpt.latest_step() is None:
    return jax.device_get(init())
  # Shapes only: orbax restores into numpy, and nothing is computed before
  # the checkpoint's arrays are checked against this config.
  target = jax.eval_shape(init)
  state, stream_state = ckpt.restore(target)
  if process_count > 1:  # Hosts must resume together from the same step.
    steps = multihost_utils.process_allgather(np.int32(state.step))
    if np.any(steps != steps.min()):  # A host fell back past a corrupt one.
      state, stream_state = ckpt.restore(target, int(steps.min()))
      ckpt.set_aside_newer(int(steps.min()))
  stream.set_state(stream_state)  # Memory was restored: rows read on.
  logging.info("Resumed from step %d in %s.", int(state.step), ckpt.directory)
  return state


def _loop(update, layout: state_lib.Layout, state, step: int, batches,
          reporter: metrics.Reporter, ckpt: checkpoints.Checkpointer,
          config: ml_collections.ConfigDict, should_stop,
          held_out=None) -> dict[int, float]:
  """Runs updates until num_steps; returns {step: summed loss}.

  `state` is in `layout`; `held_out(step, host params)`, if given, scores
  the eval slice every `config.eval_every` steps.

  Raises:
    Preempted: once `should_stop()` was True and that step was saved.
  """
  losses = {}
  while step < config.num_steps:
    batch, stream_state = next(batches)
    experiment.check_batch(batch, config.model.vocab_size)
    state, step_metrics = update(state, layout.put_batch(
        {key: batch[key] for key in train_lib.BATCH_KEYS}))
    step += 1
    reporter.add(step, step_metrics)
    # Read once: a SIGTERM during the flush or save below is acted on at
    # the next step, so the step named on stopping is always the one saved.
    stopping = should_stop()
    save = (step % config.checkpoint_every == 0 or
            step == config.num_steps or stopping)
    if save or step % config.log_every == 0:
      losses.update(reporter.flush())  # Raises on NaN before any save.
    if save:
      ckpt.save(layout.get(state), stream_state)
    if stopping and step < config.num_steps:  # Else the run is done.
      preempted = Preempted(step, ckpt.directory, losses)
      logging.warning("%s", preempted)
      raise preempted
    if held_out and step % config.eval_every == 0:
      held_out(step, layout.get_params(state.params))
  return losses


def _agreed_stop(stop: threading.Event, process_count: int) -> bool:
  """Whether any host got SIGTERM; every host gets the same answer."""
  if process_count == 1:
    return stop.is_set()
  flags = multihost_utils.process_allgather(np.int32(stop.is_set()))
  return bool(np.any(flags))


@contextlib.contextmanager
def _stop_on_sigterm():
  """An Event that SIGTERM sets, so the loop can save before it exits."""
  stop = threading.Event()
  if threading.current_thread() is not threading.main_thread():
    yield stop  # Signal handlers can only be installed in the main thread.
    return
  previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
  try:
    yield stop
  finally:
    signal.signal(signal.SIGTERM, previous)
