"""Orbax checkpoints of a training run: its state, data position and config.

Shape letters: see launch/__init__.py (R: this host's rows; memory leaves
are [R, ...] in the host layout of launch/state.py).

A workdir holds `config.json`, the run's config, and
`checkpoints/<step>/` with two items: `state`, the host TrainingState
(params, Adafactor state, every row's memory, rng, step), and `data`, the
JSON state of the segment stream right after the last batch that state has
seen. Restoring both continues the run exactly where it stopped. With
several hosts each keeps its own rows in `checkpoints/host_<i>/`; params
are then stored once per host, which is simple and avoids cross-host
barriers; launch/eval.py reads the params from `host_0/`.

Atomicity is orbax's: a step is written to a temporary directory and
renamed when complete, so a step that `all_steps` lists was finished. Its
contents are not checksummed, so a checkpoint damaged later (a truncated
array file, a deleted `_METADATA`) shows up only when it fails to restore:
`restore` then reports it once, renames it `<step>.corrupt` (orbax skips
that name; nothing is deleted) and falls back to the next newest step.
"""

import dataclasses
import json
import os

from absl import logging
from etils import epath
import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from launch import experiment
from launch import orbax_workarounds
from launch import state as state_lib

CONFIG_FILE = "config.json"
# Config fields a resumed run may change, with a warning: the schedule
# (length, rates, warm-up), cadences, eval-only settings and the device
# layout (checkpoints hold the host layout). Nothing here changes the shape
# of the state or which data a step reads; any other change is refused.
RESTART_FREE = ("num_steps", "optimizer.warmup_steps", "optimizer.max_lr",
                "optimizer.min_lr", "log_every", "checkpoint_every",
                "keep_checkpoints", "eval_batch_size", "data.eval_split",
                "eval_every", "eval_batches", "parallelism",
                "model.window_unroll")
# Config fields added after runs were written, with the value that behaves
# as the older code did: a saved config without the field resumes when the
# current value is that one (an unset override, None, always is). A model
# field behaves as before at its dataclass default (new model behaviour is
# opt-in, off by default).
ADDED_FIELDS = {"parallelism": "pmap", "data.curriculum.steps": 0,
                "optimizer.name": "adafactor", "optimizer.b1": 0.9,
                "optimizer.b2": 0.999, "optimizer.eps": 1e-8}
CORRUPT_SUFFIX = ".corrupt"


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
    self._read_only = read_only
    self._manager = ocp.CheckpointManager(
        self.directory, options=options, item_handlers={
            "state": ocp.StandardCheckpointHandler(
                multiprocessing_options=hosts),
            "data": ocp.JsonCheckpointHandler(multiprocessing_options=hosts)})

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def save(self, state: state_lib.HostState, stream_state: dict) -> None:
    """Saves a host state (see state.to_host) under its step."""
    with orbax_workarounds.numpy_written_by_every_host():
      self._manager.save(int(state.step), args=ocp.args.Composite(
          state=ocp.args.StandardSave(state._asdict()),
          data=ocp.args.JsonSave(stream_state)), force=True)
      self._manager.wait_until_finished()

  def restore(self, target: state_lib.HostState, step: int | None = None
              ) -> tuple[state_lib.HostState, dict]:
    """The state and stream state of `step` like `target` (arrays or shapes).

    With `step=None`, the newest step that restores: corrupt newer ones are
    reported and (unless read-only) renamed `<step>.corrupt`. If no step
    restores, nothing is renamed.

    Raises:
      ValueError: no checkpoint; `step` is corrupt; or the checkpoint holds
        another model (names the differing arrays, before reading any).
    """
    steps = self.all_steps()[::-1] if step is None else [step]
    if not steps:
      raise ValueError(f"No checkpoint in {self.directory}; train first "
                       "or pass the --workdir of a run that saved one.")
    failed = []  # (path, problem) of newer steps that did not restore.
    for candidate in steps:
      path = os.path.join(self.directory, str(candidate))
      try:
        self._check_structure(candidate, target)
        restored = self._manager.restore(candidate, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(target._asdict()),
            data=ocp.args.JsonRestore()))
      except _Mismatch:
        raise
      except _Corrupt as error:
        failed.append((path, error.args[0]))
      except Exception as error:  # pylint: disable=broad-except
        orbax_workarounds.quiet_closed_event_loops()
        failed.append((path, _first_line(error)))  # tensorstore names the file.
      else:
        for bad_path, problem in failed:
          self._report_corrupt(bad_path, problem)
        return state_lib.TrainingState(**restored.state), restored.data
    # Nothing restores: more likely a systematic problem than corruption,
    # so nothing is renamed.
    raise ValueError(f"No checkpoint in {self.directory} could be restored: "
                     + "; ".join(f"{p}: {problem}" for p, problem in failed)
                     + ". Pass a --workdir whose checkpoints are intact.")

  def _check_structure(self, step: int, target: state_lib.HostState):
    """ValueError if the saved arrays are not `target`'s (another model)."""
    index = epath.Path(self.directory) / str(step) / "state" / "_METADATA"
    metadata = index.exists() and self._manager.item_metadata(step)["state"]
    if not metadata:
      raise _Corrupt(f"its file {index} is missing or unreadable")
    saved = _shapes(metadata.tree if hasattr(metadata, "tree") else metadata)
    wanted = _shapes(target._asdict())
    if saved != wanted:
      diffs = [f"{key}: saved {saved.get(key, 'absent')}, now "
               f"{wanted.get(key, 'absent')}"
               for key in sorted(set(saved) | set(wanted))
               if saved.get(key) != wanted.get(key)]
      raise _Mismatch(
          f"Checkpoint {self.directory}/{step} holds another model than this "
          f"config builds ({len(diffs)} arrays differ, e.g. "
          f"{'; '.join(diffs[:3])}). Use the --config the run was trained "
          "with (its config.json), or a new --workdir.")

  def set_aside_newer(self, step: int) -> None:
    """Renames steps after `step` `<n>.superseded`, so `step` resumes.

    For hosts that agreed to resume from an older step than their own
    newest (another host's newest was corrupt); nothing is deleted.
    """
    for newer in [s for s in self.all_steps() if s > step]:
      path = os.path.join(self.directory, str(newer))
      os.rename(path, path + ".superseded")
      logging.warning("Resuming all hosts from step %d: renamed %s to %s.",
                      step, path, path + ".superseded")
    self._manager.reload()

  def _report_corrupt(self, path: str, problem: str):
    if not self._read_only:
      os.rename(path, path + CORRUPT_SUFFIX)
      self._manager.reload()  # Forget the renamed step.
      path_note = f"renamed it {path}{CORRUPT_SUFFIX} (kept for inspection)"
    else:
      path_note = "left it in place"
    logging.warning("Checkpoint %s could not be restored: %s. Falling back "
                    "to the previous checkpoint; %s.", path, problem, path_note)

  def close(self) -> None:
    self._manager.close()


class _Corrupt(Exception):
  """A checkpoint that exists but cannot be read."""


class _Mismatch(ValueError):
  """A readable checkpoint of another model: the config is wrong, not it."""


def _first_line(error: Exception) -> str:
  lines = [line for line in str(error).splitlines() if line.strip()]
  first = lines[0].split(" [tensorstore_spec=")[0] if lines else ""
  return f"{type(error).__name__}: {first}"


def _shapes(tree) -> dict[str, tuple[int, ...]]:
  """{'params/...': shape} of every array leaf (saved metadata or arrays)."""
  flat = jax.tree_util.tree_flatten_with_path(
      tree, is_leaf=lambda x: hasattr(x, "shape"))[0]
  name = lambda k: str(next(getattr(k, a) for a in ("key", "name", "idx")
                            if hasattr(k, a)))  # NamedTuples save as dicts.
  return {"/".join(name(k) for k in path): tuple(np.shape(leaf))
          for path, leaf in flat}


def checkpoint_dir(workdir: str, process_index: int = 0,
                   process_count: int = 1) -> str:
  directory = os.path.join(os.fspath(workdir), "checkpoints")
  if process_count > 1:
    directory = os.path.join(directory, f"host_{process_index}")
  return directory


def saved_hosts(workdir: str) -> int:
  """How many hosts wrote the workdir's checkpoints (`host_<i>/` folders)."""
  directory = epath.Path(checkpoint_dir(workdir))
  if not directory.exists():
    return 1
  return max(1, len([p for p in directory.iterdir()
                     if p.name.startswith("host_")]))


def check_config(workdir: str, config: ml_collections.ConfigDict,
                 has_checkpoint: bool) -> None:
  """Refuses a config the workdir's checkpoints were not trained with.

  Changes to RESTART_FREE fields are allowed and logged. Writes nothing:
  `store_config` does, once the checkpoint has restored.

  Raises:
    ValueError: naming every changed field outside RESTART_FREE.
  """
  path = epath.Path(workdir) / CONFIG_FILE
  if not has_checkpoint:
    return
  if not path.exists():
    logging.warning("%s is missing; the checkpoint's arrays are still checked "
                    "against this config before anything is written.", path)
    return
  changes = _differences(json.loads(path.read_text()),
                         json.loads(config.to_json_best_effort()),
                         _added_fields(config))
  refused = [c for key, c in changes if key not in RESTART_FREE]
  if refused:
    raise ValueError(
        f"Workdir {workdir} holds checkpoints of another config; changed "
        f"fields (saved -> now): {'; '.join(refused)}. Use a new "
        f"--workdir, or rerun with the config in {path}. Only "
        f"{', '.join(RESTART_FREE)} may change on resume.")
  if changes:
    logging.warning(
        "Resuming %s with changed schedule/cadence fields (saved -> now): "
        "%s. The learning rate follows the new schedule from the restored "
        "step on.", workdir, "; ".join(c for _, c in changes))


def run_config(workdir: str) -> ml_collections.ConfigDict:
  """The config the run in `workdir` was trained with (its config.json)."""
  path = epath.Path(workdir) / CONFIG_FILE
  if not path.exists():
    raise ValueError(f"No {CONFIG_FILE} in {workdir}: not a training workdir "
                     "(python -m launch.train writes one); check --workdir.")
  return ml_collections.ConfigDict(json.loads(path.read_text()))


def data_changes(workdir: str, config: ml_collections.ConfigDict) -> list[str]:
  """'data.<field>: trained -> now' for every data field of `config` that
  differs from the run's config.json (none if the run has none)."""
  path = epath.Path(workdir) / CONFIG_FILE
  if not path.exists():
    return []
  saved = json.loads(path.read_text()).get("data", {})
  current = json.loads(config.to_json_best_effort()).get("data", {})
  return [change for _, change in
          _differences(saved, current, _added_fields(config), "data.")]


def store_config(workdir: str, config: ml_collections.ConfigDict) -> None:
  path = epath.Path(workdir) / CONFIG_FILE
  path.parent.mkdir(parents=True, exist_ok=True)
  current = json.loads(config.to_json_best_effort(sort_keys=True))
  path.write_text(json.dumps(current, indent=2, sort_keys=True))


def _added_fields(config: ml_collections.ConfigDict) -> dict[str, object]:
  """ADDED_FIELDS and "model.<field>": default of the run's model class."""
  added = dict(ADDED_FIELDS)
  model_class = experiment.MODEL_CLASSES.get(config.get("model_name"))
  for field in dataclasses.fields(model_class) if model_class else ():
    if field.default is not dataclasses.MISSING:  # As JSON stores it.
      added[f"model.{field.name}"] = json.loads(json.dumps(field.default))
  return added


def _differences(saved: dict, current: dict, added: dict[str, object],
                 prefix: str = "") -> list[tuple[str, str]]:
  """(key, 'key: saved -> now') for every leaf that differs."""
  changes = []
  for key in sorted(set(saved) | set(current)):
    old, new = saved.get(key, "<absent>"), current.get(key, "<absent>")
    if old == "<absent>" and isinstance(new, dict):
      old = {}  # Compare the new subtree leaf by leaf.
    if isinstance(old, dict) and isinstance(new, dict):
      changes += _differences(old, new, added, f"{prefix}{key}.")
    elif old == "<absent>" and (new is None or
                                added.get(f"{prefix}{key}", old) == new):
      continue  # A field added since, at the value that behaves as before.
    elif old != new:
      changes.append((f"{prefix}{key}", f"{prefix}{key}: {old!r} -> {new!r}"))
  return changes
