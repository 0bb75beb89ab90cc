"""Orbax checkpoints of a training run: its state, data position and config.

Glossary of shapes:
- R: the batch rows of this host; memory leaves are [R, ...] on the host.

A workdir holds `config.json`, the run's config, and
`checkpoints/<step>/` with two items: `state`, the host TrainingState
(params, Adafactor state, every row's memory, rng, step), and `data`, the
JSON state of the segment stream right after the last batch that state has
seen. Restoring both continues the run exactly where it stopped. With
several hosts each keeps its own rows in `checkpoints/host_<i>/`; params
are then stored once per host, which is simple and avoids cross-host
barriers (untested on real multi-host hardware).
"""

import json
import os

from etils import epath
import ml_collections
import orbax.checkpoint as ocp

from launch import train_lib

CONFIG_FILE = "config.json"
# Config fields a restarted run may change; any other change is an error.
RESTART_FREE = ("log_every", "checkpoint_every", "keep_checkpoints")


class Checkpointer:
  """Saves and restores (TrainingState on the host, stream state)."""

  def __init__(self, workdir: str, *, keep: int = 3, process_index: int = 0,
               process_count: int = 1, read_only: bool = False):
    self.directory = checkpoint_dir(workdir, process_index, process_count)
    if read_only and not epath.Path(self.directory).exists():
      raise ValueError(f"No checkpoints in {self.directory}; train first "
                       "or pass the --workdir of a run that saved one.")
    # Every host is its own primary, so no host waits on another's save.
    hosts = ocp.options.MultiprocessingOptions(
        primary_host=process_index, active_processes={process_index})
    if not read_only:
      epath.Path(self.directory).mkdir(parents=True, exist_ok=True)
    options = ocp.CheckpointManagerOptions(
        max_to_keep=None if read_only else keep, create=False,
        save_interval_steps=0 if read_only else 1, read_only=read_only,
        enable_async_checkpointing=False, multiprocessing_options=hosts)
    self._manager = ocp.CheckpointManager(self.directory, options=options,
                                          item_names=("state", "data"))

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(self, state: train_lib.TrainingState, stream_state: dict) -> None:
    """Saves a host state (see train_lib.to_host) under its step."""
    self._manager.save(int(state.step), args=ocp.args.Composite(
        state=ocp.args.StandardSave(state._asdict()),
        data=ocp.args.JsonSave(stream_state)), force=True)
    self._manager.wait_until_finished()

  def restore(self, target: train_lib.TrainingState, step: int | None = None
              ) -> tuple[train_lib.TrainingState, dict]:
    """The state and stream state of `step` (default latest) like `target`."""
    step = self.latest_step() if step is None else step
    if step is None:
      raise ValueError(f"No checkpoint in {self.directory}; train first "
                       "or pass the --workdir of a run that saved one.")
    restored = self._manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(target._asdict()),
        data=ocp.args.JsonRestore()))
    return train_lib.TrainingState(**restored.state), restored.data

  def close(self) -> None:
    self._manager.close()


def checkpoint_dir(workdir: str, process_index: int = 0,
                   process_count: int = 1) -> str:
  directory = os.path.join(os.fspath(workdir), "checkpoints")
  if process_count > 1:
    directory = os.path.join(directory, f"host_{process_index}")
  return directory


def check_and_store_config(workdir: str, config: ml_collections.ConfigDict,
                           has_checkpoint: bool) -> None:
  """Writes `config.json`, unless the workdir's checkpoints used another config.

  Raises:
    ValueError: naming every changed field, if `has_checkpoint` and the
      stored config differs outside RESTART_FREE. Nothing is written then.
  """
  path = epath.Path(workdir) / CONFIG_FILE
  current = json.loads(config.to_json_best_effort(sort_keys=True))
  if has_checkpoint and path.exists():
    changes = _differences(json.loads(path.read_text()), current)
    if changes:
      raise ValueError(
          f"Workdir {workdir} holds checkpoints of another config; changed "
          f"fields (saved -> now): {'; '.join(changes)}. Use a new "
          f"--workdir, or rerun with the config in {path}.")
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(json.dumps(current, indent=2, sort_keys=True))


def _differences(saved: dict, current: dict, prefix: str = "") -> list[str]:
  """'key: saved -> now' for every leaf that differs, except RESTART_FREE."""
  changes = []
  for key in sorted(set(saved) | set(current)):
    if not prefix and key in RESTART_FREE:
      continue
    old, new = saved.get(key, "<absent>"), current.get(key, "<absent>")
    if isinstance(old, dict) and isinstance(new, dict):
      changes += _differences(old, new, f"{prefix}{key}.")
    elif old != new:
      changes.append(f"{prefix}{key}: {old!r} -> {new!r}")
  return changes
