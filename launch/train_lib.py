"""The training step: Adafactor (or Adam) with the paper's schedule, state,
update.

Shape letters: see launch/__init__.py (B global rows, R = B / N rows of
this host, A devices of this host, T segment, V vocabulary); the state's
layouts (host, pmap, global) are in launch/state.py.

`update` is one plain per-device function of (state, batch) that takes the
name of the device axis: `pmap_update` runs it under `jax.pmap`,
`shard_map_update` under `jax.jit` + `shard_map`, and `axis_name=None` makes
it the single-device step. Gradients of each device's summed loss
(melodi_hk/README.md §11) are averaged over the device axis, as meliad.
That gradient is 1/A of the single-device gradient of the whole batch, and
Adafactor divides by the root of the gradient's second moment, so both take
the same step up to float rounding (tested).
"""

import dataclasses
import functools
from typing import Callable

import jax
import jax.numpy as jnp
import optax

import melodi_hk

from launch import state as state_lib

BATCH_KEYS = ("tokens", "start_of_sequence", "loss_mask")  # Read by `update`.


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


@functools.cache  # One model per config in a process, shared by every step.
def build(model_cfg) -> melodi_hk.Model:
  """The model's pure functions (`melodi_hk.build`), built once per config."""
  return melodi_hk.build(model_cfg)


def init_state(model: melodi_hk.Model, optimizer: optax.GradientTransformation,
               seed: int, rows: int) -> state_lib.TrainingState:
  """A fresh state with zero memory for `rows` rows (meliad's key split).

  On the default device; `jax.device_get` makes it a `state.HostState`.
  """
  rng, init_rng = jax.random.split(jax.random.PRNGKey(seed))
  params = jax.jit(model.init)(init_rng)
  return state_lib.TrainingState(params, optimizer.init(params),
                                 model.init_memory(rows), rng,
                                 jnp.zeros([], jnp.int32))


def update(state: state_lib.TrainingState, batch: dict[str, jax.Array], *,
           model: melodi_hk.Model, optimizer: optax.GradientTransformation,
           schedule: Callable, axis_name: str | None = None,
           loss: Callable | None = None):
  """One training step on this device's rows.

  Args:
    state: this device's TrainingState (memory leaves [R/A, ...]).
    batch: tokens int32[R/A, T], start_of_sequence bool[R/A], loss_mask
      bool[R/A, T]; rows with start_of_sequence get fresh memory.
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
  return state_lib.TrainingState(params, opt_state, memory, state.rng,
                                 state.step + 1), metrics


def _update_fn(model_cfg, opt: OptimizerConfig, axis_name: str | None):
  return functools.partial(
      update, model=build(model_cfg),
      loss=melodi_hk.build_loss(model_cfg), optimizer=make_optimizer(opt),
      schedule=functools.partial(learning_rate, opt=opt), axis_name=axis_name)


@functools.cache  # One compilation per (model, optimiser) in a process.
def pmap_update(model_cfg, opt: OptimizerConfig) -> Callable:
  """`update` over all local devices on a `state.PmapState` and [A, R/A, ...]
  batches."""
  return jax.pmap(_update_fn(model_cfg, opt, state_lib.AXIS),
                  axis_name=state_lib.AXIS, donate_argnums=(0,))


@functools.cache
def jit_update(model_cfg, opt: OptimizerConfig) -> Callable:
  """The single-device `update` (no device axis)."""
  return jax.jit(_update_fn(model_cfg, opt, None), donate_argnums=(0,))


@functools.cache
def shard_map_update(model_cfg, opt: OptimizerConfig,
                     mesh: jax.sharding.Mesh) -> Callable:
  """`update` under jit + shard_map on `mesh` (one axis named state.AXIS).

  On a `state.GlobalState` (memory leaves split by rows) and batches split
  by rows the same way.
  """
  rows, same = jax.P(state_lib.AXIS), jax.P()
  state_spec = state_lib.TrainingState(same, same, rows, same, same)
  fn = jax.shard_map(_update_fn(model_cfg, opt, state_lib.AXIS), mesh=mesh,
                     in_specs=(state_spec, rows), out_specs=(state_spec, same))
  return jax.jit(fn, donate_argnums=(0,))
