"""Training state, Adafactor (or Adam) with the paper's schedule, the update.

Glossary of shapes:
- B: global batch rows.  P: data-parallel devices.  R = B / P rows per device.
- T: segment length.  V: vocabulary.

`update` is one plain per-device function of (state, batch) that takes the
name of the device axis: `pmap_update` runs it under `jax.pmap`,
`shard_map_update` under `jax.jit` + `shard_map`, and `axis_name=None` makes
it the single-device step. Gradients of each device's summed loss
(melodi_hk/README.md §11) are averaged over the device axis, as meliad.
That gradient is 1/P of the
single-device gradient of the whole batch, and Adafactor divides by the
root of the gradient's second moment, so both take the same step up to
float rounding (tested).
"""

import dataclasses
import functools
from typing import Any, Callable, NamedTuple

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import optax

import melodi_hk

AXIS = "devices"  # Name of the data-parallel axis under pmap and shard_map.
BATCH_KEYS = ("tokens", "start_of_sequence", "loss_mask")  # Read by `update`.


class TrainingState(NamedTuple):
  params: hk.Params  # float32 weights; the same on every device.
  opt_state: optax.OptState  # Optimiser moments; the same on every device.
  memory: Any  # The model memory of this device's R rows; leaves [R, ...].
  rng: jax.Array  # Base key, never advanced: step k folds in k.
  step: jax.Array  # int32[] updates applied so far.


OPTIMIZERS = ("adafactor", "adam")  # Values of OptimizerConfig.name.


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
  """The optimiser and its learning-rate schedule (melodi_hk/README.md §15).

  "adafactor" (the paper's) reads decay_rate and momentum; "adam" reads b1,
  b2 and eps. Both follow `learning_rate`'s warm-up + cosine schedule.
  """
  num_steps: int  # Steps the cosine decays over: the length of the run.
  warmup_steps: int = 1000  # Linear warm-up from 0 over these steps.
  max_lr: float = 0.01  # Cosine start.
  min_lr: float = 0.001  # Cosine end, reached at num_steps.
  decay_rate: float = 0.8  # Adafactor second-moment decay exponent.
  momentum: float = 0.9  # First-moment EMA (meliad's beta1).
  name: str = "adafactor"  # One of OPTIMIZERS.
  b1: float = 0.9  # Adam first-moment decay.
  b2: float = 0.999  # Adam second-moment decay.
  eps: float = 1e-8  # Adam denominator floor.

  def __post_init__(self):
    if self.num_steps < 1:
      raise ValueError(f"num_steps={self.num_steps} must be at least 1; set "
                       "--config.num_steps=<updates in the run>.")
    if not 0 <= self.warmup_steps < self.num_steps:
      raise ValueError(
          f"warmup_steps={self.warmup_steps} must lie in [0, num_steps="
          f"{self.num_steps}); the cosine would be over before the warm-up "
          "ends. Set --config.optimizer.warmup_steps lower (e.g. "
          f"{self.num_steps // 10}).")
    if self.name not in OPTIMIZERS:
      raise ValueError(f"optimizer.name={self.name!r} is not one of "
                       f"{OPTIMIZERS}; set e.g. --config.optimizer.name=adam.")
    for field in ("b1", "b2"):
      if not 0 <= getattr(self, field) < 1:
        raise ValueError(
            f"optimizer.{field}={getattr(self, field)!r} must lie in [0, 1) "
            f"(a moment's decay); set e.g. --config.optimizer.{field}="
            f"{getattr(OptimizerConfig, field)}.")
    if not self.eps > 0:
      raise ValueError(f"optimizer.eps={self.eps!r} must be > 0; set e.g. "
                       "--config.optimizer.eps=1e-8.")


def learning_rate(step, opt: OptimizerConfig) -> jax.Array:
  """meliad's rate: cosine(max(step, warmup)) * min(step, warmup) / warmup.

  cosine(s) = min_lr + (max_lr - min_lr) * (1 + cos(pi * s / num_steps)) / 2
  until num_steps, then min_lr halving every num_steps. So the rate is 0 at
  step 0 (the first update only fills Adafactor's moments), at step
  `warmup_steps` it is cosine(warmup_steps), i.e. 0.0099999 for 1000 of
  500k steps (max_lr exactly only if warmup_steps = 0), and min_lr at
  num_steps. As meliad, the cosine is held at its warm-up-end value during
  the warm-up rather than decaying underneath the ramp.
  """
  step = jnp.asarray(step, jnp.float32)
  ramp = 1.0
  if opt.warmup_steps > 0:
    ramp = jnp.minimum(step, opt.warmup_steps) / opt.warmup_steps
    step = jnp.maximum(step, opt.warmup_steps)
  progress = jnp.minimum(step, opt.num_steps) / opt.num_steps
  cosine = opt.min_lr + (opt.max_lr - opt.min_lr) * 0.5 * (
      1 + jnp.cos(jnp.pi * progress))
  tail = opt.min_lr * 0.5 ** (step / opt.num_steps - 1)
  return ramp * jnp.where(step < opt.num_steps, cosine, tail)


def make_optimizer(opt: OptimizerConfig) -> optax.GradientTransformation:
  """optax Adafactor as meliad's (parameter-scaled, momentum, no decay), or
  optax Adam on the same schedule."""
  schedule = functools.partial(learning_rate, opt=opt)
  if opt.name == "adam":
    return optax.adam(schedule, b1=opt.b1, b2=opt.b2, eps=opt.eps)
  return optax.adafactor(
      learning_rate=schedule, decay_rate=opt.decay_rate,
      momentum=opt.momentum, multiply_by_parameter_scale=True,
      weight_decay_rate=None)


def init_state(model: melodi_hk.Model, optimizer: optax.GradientTransformation,
               seed: int, rows: int) -> TrainingState:
  """A fresh state with zero memory for `rows` rows (meliad's key split)."""
  rng, init_rng = jax.random.split(jax.random.PRNGKey(seed))
  params = jax.jit(model.init)(init_rng)
  return TrainingState(params, optimizer.init(params), model.init_memory(rows),
                       rng, jnp.zeros([], jnp.int32))


def update(state: TrainingState, batch: dict[str, jax.Array], *,
           model: melodi_hk.Model, optimizer: optax.GradientTransformation,
           schedule: Callable, axis_name: str | None = None,
           loss: Callable | None = None):
  """One training step on this device's rows.

  Args:
    state: this device's TrainingState (memory leaves [R, ...]).
    batch: tokens int32[R, T], start_of_sequence bool[R], loss_mask
      bool[R, T]; rows with start_of_sequence get fresh memory.
    model: the model's pure functions.
    optimizer: from `make_optimizer`.
    schedule: step -> learning rate, only reported.
    axis_name: the device axis to average gradients over, or None.
    loss: the model's training loss (`melodi_hk.build_loss`); None: `apply`
      followed by `lm_loss`, the same value.

  Returns:
    (new state, metrics): loss (summed nats) and num_tokens summed over
    devices, learning_rate of this step.
  """
  # A fresh dropout key per step and per device, reproducible on resume.
  rng = jax.random.fold_in(state.rng, state.step)
  if axis_name is not None:
    rng = jax.random.fold_in(rng, jax.lax.axis_index(axis_name))

  loss = loss or melodi_hk.loss_from_apply(model)

  def loss_fn(params):
    out, memory = loss(params, state.memory, batch["tokens"],
                       batch["start_of_sequence"], batch["loss_mask"],
                       rng=rng, is_training=True)
    return out.loss, (out.num_tokens, memory)

  (loss, (num_tokens, memory)), grads = jax.value_and_grad(
      loss_fn, has_aux=True)(state.params)
  if axis_name is not None:
    grads = jax.lax.pmean(grads, axis_name)
    loss, num_tokens = jax.lax.psum((loss, num_tokens), axis_name)
  updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  metrics = {"loss": loss, "num_tokens": num_tokens,
             "learning_rate": schedule(state.step)}
  return TrainingState(params, opt_state, memory, state.rng,
                       state.step + 1), metrics


def _update_fn(model_cfg, opt: OptimizerConfig, axis_name: str | None):
  return functools.partial(
      update, model=melodi_hk.build(model_cfg),
      loss=melodi_hk.build_loss(model_cfg), optimizer=make_optimizer(opt),
      schedule=functools.partial(learning_rate, opt=opt), axis_name=axis_name)


@functools.cache  # One compilation per (model, optimiser) in a process.
def pmap_update(model_cfg, opt: OptimizerConfig) -> Callable:
  """`update` over all local devices; state and batch lead with [P, ...]."""
  return jax.pmap(_update_fn(model_cfg, opt, AXIS), axis_name=AXIS,
                  donate_argnums=(0,))


@functools.cache
def jit_update(model_cfg, opt: OptimizerConfig) -> Callable:
  """The single-device `update` (no device axis)."""
  return jax.jit(_update_fn(model_cfg, opt, None), donate_argnums=(0,))


def shard_map_update(model_cfg, opt: OptimizerConfig,
                     mesh: jax.sharding.Mesh) -> Callable:
  """`update` under jit + shard_map on `mesh` (one axis named AXIS).

  The state is global: params replicated, memory leaves [B, ...] split by
  rows; the batch is split by rows as well.
  """
  rows, same = jax.P(AXIS), jax.P()
  state_spec = TrainingState(same, same, rows, same, same)
  fn = jax.shard_map(_update_fn(model_cfg, opt, AXIS), mesh=mesh,
                     in_specs=(state_spec, rows), out_specs=(state_spec, same))
  return jax.jit(fn, donate_argnums=(0,))


def to_devices(state: TrainingState, devices) -> TrainingState:
  """Host state (memory [B, ...]) -> pmap state (every leaf [P, ...])."""
  return TrainingState(
      replicate(state.params, devices), replicate(state.opt_state, devices),
      split_rows(state.memory, devices), replicate(state.rng, devices),
      replicate(state.step, devices))


def replicate(tree, devices):
  """Host arrays -> [P, ...] arrays holding one copy per device."""
  stack = lambda x: np.broadcast_to(x, (len(devices),) + np.shape(x))
  return jax.device_put(jax.tree.map(stack, tree), _pmap_sharding(devices))


def split_rows(tree, devices):
  """Host [B, ...] arrays -> [P, B/P, ...]; row r goes to device r // (B/P)."""
  split = lambda x: np.reshape(x, (len(devices), -1) + np.shape(x)[1:])
  return jax.device_put(jax.tree.map(split, tree), _pmap_sharding(devices))


def _pmap_sharding(devices) -> jax.sharding.Sharding:
  mesh = jax.sharding.Mesh(np.asarray(devices), (AXIS,))
  return jax.sharding.NamedSharding(mesh, jax.P(AXIS))


def to_host(state: TrainingState) -> TrainingState:
  """pmap state -> numpy host state: device 0's copy, memory [B, ...]."""
  first = lambda x: np.asarray(_local_shards(x)[0])[0]
  rows = lambda m: np.concatenate(
      [np.asarray(shard)[0] for shard in _local_shards(m)])
  return TrainingState(jax.tree.map(first, state.params),
                       jax.tree.map(first, state.opt_state),
                       jax.tree.map(rows, state.memory), first(state.rng),
                       first(state.step))


def _local_shards(x: jax.Array) -> list[jax.Array]:
  """This host's [1, ...] pieces of a [P, ...] pmap array, in device order."""
  # Read shards directly: indexing `x[0]` would compile a gather per shape.
  shards = sorted(x.addressable_shards, key=lambda s: s.index[0].start or 0)
  return [shard.data for shard in shards]
