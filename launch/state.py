"""The training state and the three layouts it lives in.

Shape letters: see launch/__init__.py (B global rows, N hosts, R = B / N
rows of this host, A devices of this host).

A `TrainingState` is one value in one of three layouts; which one a
function takes is in its signature:

- `HostState`: numpy on this host, unreplicated. params and opt_state as
  the model makes them; memory leaves [R, ...], this host's rows in order.
  What checkpoints hold and what `init_state` makes (after `device_get`).
- `PmapState`: every leaf [A, ...], one slice per local device, for
  `jax.pmap`. params, opt_state, rng and step are copies; memory leaves are
  [A, R/A, ...], row r on device r // (R/A) (`placement.rows_to_devices`
  in data/, the rule that also places row r's batch, so a row's memory
  stays with it).
- `GlobalState`: jax.Arrays over a one-axis mesh of this host's devices,
  for `jit` + `shard_map` (one host, so B = R): params, opt_state, rng and
  step replicated; memory leaves [R, ...] whose rows are placed by the
  same `placement.rows_to_devices` as the pmap layout's, row for row.

A `Layout` bundles the moves of one device layout, so the training loop
is the same for both: `pmap_layout` and `global_layout`.
"""

from typing import Any, Callable, NamedTuple

import haiku as hk
import jax
import numpy as np
import optax

from data import placement

AXIS = "devices"  # Name of the data-parallel axis under pmap and shard_map.


class TrainingState(NamedTuple):
  params: hk.Params  # float32 weights; the same on every device.
  opt_state: optax.OptState  # Optimiser moments; the same on every device.
  memory: Any  # The model's memory of every row (layout: module docstring).
  rng: jax.Array  # Base key, never advanced: step k folds in k.
  step: jax.Array  # int32[] updates applied so far.


HostState = TrainingState  # numpy; memory leaves [R, ...].
PmapState = TrainingState  # Every leaf [A, ...]; memory [A, R/A, ...].
GlobalState = TrainingState  # On the mesh; memory [R, ...] split by rows.


class Layout(NamedTuple):
  """Moves between the host layout and one device layout."""
  put: Callable  # HostState -> the device layout's state.
  put_batch: Callable  # {key: [R, ...] numpy} -> that layout's batch.
  get: Callable  # The device layout's state -> HostState.
  get_params: Callable  # Its params -> host numpy params.


def pmap_layout(devices) -> Layout:
  """The pmap layout on `devices`, this host's."""
  return Layout(
      put=lambda state: to_devices(state, devices),
      put_batch=lambda batch: placement.shard_for_pmap(batch, len(devices)),
      get=to_host, get_params=first_replica)


def global_layout(devices) -> Layout:
  """The global layout on a mesh of `devices`, this host's (one host)."""
  mesh = jax.sharding.Mesh(np.asarray(devices), (AXIS,))
  same = jax.sharding.NamedSharding(mesh, jax.P())
  split = lambda tree: jax.tree.map(
      lambda x: _split_rows_global(x, mesh), tree)
  return Layout(
      put=lambda state: TrainingState(
          *jax.device_put((state.params, state.opt_state), same),
          split(state.memory), *jax.device_put((state.rng, state.step),
                                               same)),
      put_batch=split, get=jax.device_get, get_params=jax.device_get)


def _split_rows_global(x, mesh: jax.sharding.Mesh) -> jax.Array:
  """Host [R, ...] -> one [R, ...] array, row r's piece on device r // (R/A).

  The pieces come from `placement.rows_to_devices`, so both layouts put the
  same rows on each device (tested with their batches).
  """
  devices = mesh.devices.tolist()
  pieces = placement.rows_to_devices(np.asarray(x), len(devices))
  return jax.make_array_from_single_device_arrays(
      np.shape(x), jax.sharding.NamedSharding(mesh, jax.P(AXIS)),
      [jax.device_put(piece, device) for piece, device in zip(pieces, devices)])


def to_devices(state: HostState, devices) -> PmapState:
  """The host state on `devices` for pmap."""
  return TrainingState(
      replicate(state.params, devices), replicate(state.opt_state, devices),
      split_rows(state.memory, devices), replicate(state.rng, devices),
      replicate(state.step, devices))


def replicate(tree, devices):
  """Host arrays -> [A, ...] arrays holding one copy per device."""
  stack = lambda x: np.broadcast_to(x, (len(devices),) + np.shape(x))
  return jax.device_put(jax.tree.map(stack, tree), _pmap_sharding(devices))


def split_rows(tree, devices):
  """Host [R, ...] arrays -> [A, R/A, ...], as the batch rows are split."""
  split = lambda x: placement.rows_to_devices(np.asarray(x), len(devices))
  return jax.device_put(jax.tree.map(split, tree), _pmap_sharding(devices))


def _pmap_sharding(devices) -> jax.sharding.Sharding:
  mesh = jax.sharding.Mesh(np.asarray(devices), (AXIS,))
  return jax.sharding.NamedSharding(mesh, jax.P(AXIS))


def to_host(state: PmapState) -> HostState:
  """Device 0's copy of params, opt_state, rng and step; every row's memory."""
  rows = lambda m: np.concatenate(
      [np.asarray(shard)[0] for shard in _local_shards(m)])
  return TrainingState(first_replica(state.params),
                       first_replica(state.opt_state),
                       jax.tree.map(rows, state.memory),
                       first_replica(state.rng), first_replica(state.step))


def first_replica(tree):
  """Host numpy copy of the first device's slice of [A, ...] pmap arrays."""
  return jax.tree.map(lambda x: np.asarray(_local_shards(x)[0])[0], tree)


def _local_shards(x: jax.Array) -> list[jax.Array]:
  """This host's [1, ...] pieces of a [A, ...] pmap array, in device order."""
  # Read shards directly: indexing `x[0]` would compile a gather per shape.
  shards = sorted(x.addressable_shards, key=lambda s: s.index[0].start or 0)
  return [shard.data for shard in shards]
