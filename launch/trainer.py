"""The training loop: resume, update on every device, report, checkpoint, stop.

Glossary of shapes:
- B: global batch rows.  R: this host's rows.  D: local devices.
- T: segment length.

`train(config, workdir)` continues from the workdir's latest checkpoint
(state, every row's memory and the data stream's position) or starts
afresh, runs `config.num_steps` pmapped updates in all, and checkpoints
every `config.checkpoint_every` steps, at the end, and when SIGTERM asks it
to stop. Because the checkpoint holds everything a step depends on (the
dropout key is fold_in(rng, step)), a resumed run reproduces the losses of
an uninterrupted one exactly on the same hardware.
"""

import contextlib
import os
import signal
import threading

from absl import logging
import jax
import melodi_hk
import ml_collections

from data import pipeline
from launch import checkpoints
from launch import eval_lib
from launch import experiment
from launch import metrics
from launch import train_lib


def train(config: ml_collections.ConfigDict, workdir: str, *,
          process_index: int = 0, process_count: int = 1) -> dict[int, float]:
  """Trains up to config.num_steps; returns {step: summed loss} of this call."""
  model_cfg = experiment.model_config(config)
  opt = experiment.optimizer_config(config)
  devices = jax.local_devices()
  rows = experiment.host_rows(config.batch_size, len(devices), process_count)
  experiment.check_vocabulary(config)
  stream = experiment.make_stream(
      config, "train", rows=rows, devices=len(devices), training=True,
      process_index=process_index, process_count=process_count)
  ckpt = checkpoints.Checkpointer(workdir, keep=config.keep_checkpoints,
                                  process_index=process_index,
                                  process_count=process_count)
  checkpoints.check_and_store_config(workdir, config,
                                     ckpt.latest_step() is not None)
  state = _initial_state(model_cfg, opt, config.seed, rows, ckpt, stream)
  logdir = os.path.join(workdir, "tensorboard") if process_index == 0 else None
  reporter = metrics.Reporter(
      logdir, num_steps=config.num_steps, first_step=int(state.step),
      tokens_per_step=config.batch_size * config.model.segment_length)
  held_out = (eval_lib.HeldOut(config, workdir, reporter)
              if config.get("eval_every") and process_index == 0 else None)
  with _stop_on_sigterm() as stop, pipeline.Prefetcher(stream) as batches:
    try:
      return _loop(train_lib.pmap_update(model_cfg, opt),
                   train_lib.to_devices(state, devices), int(state.step),
                   batches, reporter, ckpt, config, stop, held_out)
    finally:
      reporter.close()
      ckpt.close()


def _initial_state(model_cfg, opt: train_lib.OptimizerConfig, seed: int,
                   rows: int, ckpt: checkpoints.Checkpointer,
                   stream) -> train_lib.TrainingState:
  """The latest checkpoint's host state (moving `stream` on), or a fresh one."""
  fresh = jax.device_get(train_lib.init_state(
      melodi_hk.build(model_cfg), train_lib.make_optimizer(opt), seed, rows))
  if ckpt.latest_step() is None:
    return fresh
  state, stream_state = ckpt.restore(fresh)
  stream.set_state(stream_state)  # Memory was restored: rows read on.
  logging.info("Resumed from step %d in %s.", int(state.step), ckpt.directory)
  return state


def _loop(update, state, step: int, batches, reporter: metrics.Reporter,
          ckpt: checkpoints.Checkpointer, config: ml_collections.ConfigDict,
          stop: threading.Event, held_out=None) -> dict[int, float]:
  """Runs updates until num_steps or SIGTERM; returns {step: summed loss}."""
  losses, devices = {}, len(jax.local_devices())
  while step < config.num_steps:
    batch, stream_state = next(batches)
    batch = pipeline.shard_for_pmap(
        {key: batch[key] for key in train_lib.BATCH_KEYS}, devices)
    state, step_metrics = update(state, batch)
    step += 1
    reporter.add(step, step_metrics)
    save = (step % config.checkpoint_every == 0 or
            step == config.num_steps or stop.is_set())
    if save or step % config.log_every == 0:
      losses.update(reporter.flush())  # Raises on NaN before any save.
    if save:
      ckpt.save(train_lib.to_host(state), stream_state)
    if held_out and step % config.eval_every == 0:
      held_out(step, state.params)
    if stop.is_set():
      logging.info("Stopped by SIGTERM after saving step %d in %s.", step,
                   ckpt.directory)
      break
  return losses


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
