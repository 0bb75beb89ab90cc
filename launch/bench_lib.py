r"""launch/bench.py's library: the compiled step, FLOPs, peaks, memory, batch.

Glossary of shapes: B batch, T segment, W window, S summary, M short memory,
L long memory, I increment, C Memorizing slots, E width, H heads, D head dim,
F MLP, V vocab.

Model-FLOP utilisation (MFU) is the analytic training FLOPs of one step
(the counts below: the model's matmuls and attention, x3 for forward and
backward, no recompute counted) per second, over the device's peak rate
from the vendor's datasheet, as in PaLM's appendix B. Remat makes the
device do more than these FLOPs, so MFU falls under remat by design.
"""

import os
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

import melodi_hk
from launch import train_lib

TERA = 1e12

# Dense (no structured sparsity) peak FLOP/s per device, keyed by
# `jax.Device.device_kind`: (bfloat16, float32). float32 is the rate XLA
# runs float32 matmuls at by default, which is not true float32: TF32 on
# NVIDIA tensor cores, one bfloat16 pass on TPU (docs.jax.dev, "Matmul
# precision"). Vendors quote sparse tensor rates; halved here.
_PEAKS = (
    # NVIDIA H100 datasheet (2023): SXM5 BF16 1979 / TF32 989 sparse.
    (("NVIDIA H100 80GB HBM3",), 989.4 * TERA, 494.7 * TERA),
    # Same datasheet, PCIe: BF16 1513 / TF32 756 sparse.
    (("NVIDIA H100 PCIe",), 756.5 * TERA, 378.0 * TERA),
    # NVIDIA H200 datasheet (2024): SXM BF16 1979 / TF32 989 sparse.
    (("NVIDIA H200",), 989.4 * TERA, 494.7 * TERA),
    # NVIDIA A100 datasheet (2021): BF16 312 / TF32 156 dense, all forms.
    (("NVIDIA A100-SXM4-40GB", "NVIDIA A100-SXM4-80GB",
      "NVIDIA A100-PCIE-40GB", "NVIDIA A100 80GB PCIe"),
     312.0 * TERA, 156.0 * TERA),
    # Google Cloud TPU system architecture pages, per chip: v4 275 TFLOP/s,
    # v5e 197, v5p 459, v6e (Trillium) 918, bf16.
    (("TPU v4",), 275.0 * TERA, 275.0 * TERA),
    (("TPU v5 lite",), 197.0 * TERA, 197.0 * TERA),  # v5e.
    (("TPU v5", "TPU v5p"), 459.0 * TERA, 459.0 * TERA),
    (("TPU v6 lite",), 918.0 * TERA, 918.0 * TERA),  # v6e.
)


def peak_flops(device_kind: str, dtype: str) -> float | None:
  """The datasheet's dense peak FLOP/s for `dtype`; None for unknown cards."""
  if dtype not in ("bfloat16", "float32"):
    raise ValueError(f"dtype={dtype!r}: peaks are known for bfloat16 and "
                     "float32 only.")
  for names, bf16, f32 in _PEAKS:
    if device_kind in names:
      return bf16 if dtype == "bfloat16" else f32
  return None


def utilisation(flops_per_step: float, step_s: float,
                peak: float | None) -> float | None:
  """Model-FLOP utilisation: achieved analytic FLOP/s over `peak`."""
  if peak is None:
    return None
  return flops_per_step / step_s / peak


def training_flops(cfg: melodi_hk.MelodiConfig, batch: int) -> float:
  """Matmul + attention FLOPs of forward and backward over one segment."""
  e, hd, w = cfg.embed_dim, cfg.num_heads * cfg.head_dim, cfg.window_length
  m, s, f = cfg.short_term_memory_size, cfg.summary_size, cfg.mlp_dim
  q, k = w + s, m + w + s  # Queries and keys per window.
  layer = (2 * k * e * 2 * hd + 2 * q * e * hd  # K, V of all keys; Q.
           + 4 * q * k * hd + 2 * q * hd * e  # Scores, weighted sum, output.
           + 4 * q * e * f + 2 * q * (s + m) * e)  # FFN, token mixings.
  long_layer = (4 * q * cfg.long_term_memory_size * hd
                + 2 * q * cfg.long_term_memory_increment * e
                + 4 * cfg.long_term_memory_increment * e * hd)
  per_window = (cfg.num_layers * layer + len(cfg.long_term_layers) * long_layer
                + 2 * w * e * cfg.vocab_size)
  per_segment = (cfg.windows_per_segment * per_window + len(
      cfg.long_term_layers) * 4 * cfg.long_term_memory_size * e * hd)
  return 3.0 * batch * per_segment


def baseline_training_flops(cfg, batch: int) -> float:
  """The same count for Transformer-XL (keys: 2W per query window, masked
  half included) and the Memorizing Transformer (plus its memory layer,
  whose queries score all C + T keys)."""
  e, hd, t = cfg.embed_dim, cfg.num_heads * cfg.head_dim, cfg.segment_length
  dense = 2 * t * e * 4 * hd + 4 * t * e * cfg.mlp_dim  # Q, K, V, out, FFN.
  layer = dense + 4 * t * 2 * cfg.window_length * hd
  total = cfg.num_layers * layer + 2 * t * e * cfg.vocab_size
  if isinstance(cfg, melodi_hk.MemorizingConfig):
    total += dense + 4 * t * (cfg.memory_size + t) * hd
  return 3.0 * batch * total


def model_flops(cfg, batch: int) -> float:
  """`training_flops` for MELODI, `baseline_training_flops` otherwise."""
  if isinstance(cfg, melodi_hk.MelodiConfig):
    return training_flops(cfg, batch)
  return baseline_training_flops(cfg, batch)


def matmul_peak(dtype: str) -> float:
  """Achieved FLOP/s of a large square matmul on the default device."""
  n = 4096 if jax.default_backend() != "cpu" else 1024
  # Random, not constant: tensor cores run zeros or ones faster than data.
  a = jax.random.normal(jax.random.PRNGKey(0), (n, n), dtype)
  mm = jax.jit(lambda x: x @ x)
  mm(a).block_until_ready()
  times = []
  for _ in range(5):
    start = time.perf_counter()
    mm(a).block_until_ready()
    times.append(time.perf_counter() - start)
  return 2.0 * n ** 3 / float(np.median(times))


def device_memory(device: jax.Device) -> dict:
  """The allocator's peak bytes in use and its limit; None where the
  backend keeps no statistics (CPU)."""
  stats = device.memory_stats() or {}
  return dict(peak_bytes_in_use=stats.get("peak_bytes_in_use"),
              bytes_limit=stats.get("bytes_limit"))


def memory_budget(device: jax.Device, override: int = 0) -> int:
  """`override` if set, else 95% of the allocator's limit: the rest is
  headroom for library workspaces and the buffers outside the step."""
  if override:
    return override
  limit = device_memory(device)["bytes_limit"]
  if limit is None:
    raise ValueError(f"Device {device.device_kind!r} reports no memory "
                     "limit; pass --max_batch_bytes=<bytes the step may "
                     "hold>.")
  return int(0.95 * limit)


def step_bytes(memory: dict) -> int:
  """Device bytes one compiled step holds at once, from XLA's analysis:
  its arguments, its outputs less those written into donated arguments,
  and its temporaries."""
  return (memory["argument_bytes"] + memory["output_bytes"]
          - memory["alias_bytes"] + memory["temp_bytes"])


def linear_guess(bytes_1: int, bytes_2: int, budget: int) -> int:
  """The batch a line through the bytes at B = 1 and B = 2 puts at
  `budget` (at least 1): parameters and optimiser state are fixed, and
  activations, memory and tokens grow by one row's worth per row."""
  per_row = max(bytes_2 - bytes_1, 1)
  return max(1, (budget - (bytes_1 - per_row)) // per_row)


def largest_batch(fits: Callable[[int], bool], guess: int, limit: int,
                  seconds: float, clock: Callable[[], float] = time.monotonic
                  ) -> tuple[int, list[tuple[int, bool]], bool]:
  """The largest B in [1, limit] with `fits(B)`, for `fits` true up to
  some B and false beyond.

  Gallops up from `guess` by 1, 2, 4, ... while it fits (plain doubling
  from guess 1), or halves down while it does not; then bisects between
  the largest fit and the smallest failure. Each probe is a compile, so
  a good guess saves most of them. Stops after `seconds` with the largest
  fit found so far. Returns (B, probes as (B, fits), whether it stopped
  early); B = 0 when not even 1 fits.
  """
  if not 1 <= guess <= limit:
    raise ValueError(f"guess={guess} must lie in [1, limit={limit}].")
  deadline = clock() + seconds
  lo, hi, step, probe = 0, limit + 1, 1, guess  # fits(lo), not fits(hi).
  probes = []
  while hi - lo > 1:
    if clock() > deadline:
      return lo, probes, True
    ok = fits(probe)
    probes.append((probe, ok))
    lo, hi = (probe, hi) if ok else (lo, probe)
    if hi == limit + 1:
      probe, step = min(limit, lo + step), step * 2
    elif lo == 0:
      probe = max(1, hi // 2)
    else:
      probe = (lo + hi) // 2
  return lo, probes, False


def fixed_batch(cfg, batch: int) -> dict:
  """The batch every step is timed on: random tokens [B, T], no document
  starts (memory carried), every token scored."""
  tokens = jax.random.randint(jax.random.PRNGKey(1),
                              (batch, cfg.segment_length), 1, cfg.vocab_size)
  return {"tokens": tokens, "start_of_sequence": jnp.zeros((batch,), bool),
          "loss_mask": jnp.ones_like(tokens, bool)}


def timed_compile(lowered) -> tuple:
  """(compiled, wall seconds, CPU seconds) of `lowered.compile()`. CPU
  seconds of this process are less sensitive than wall time to other jobs
  on a shared machine."""
  start, cpu = time.perf_counter(), time.process_time()
  compiled = lowered.compile()
  return compiled, time.perf_counter() - start, time.process_time() - cpu


def alternate(benches: dict, rounds: int, steps: int,
              warmup: int) -> tuple[dict, list[float]]:
  """Times every bench in turn, round after round, so all share the
  machine's load: ({name: median step seconds per round}, the 1-minute
  load average after each round)."""
  for bench in benches.values():
    bench.time(warmup)
  times, loads = {n: [] for n in benches}, []
  for _ in range(rounds):
    for n, bench in benches.items():
      times[n].append(float(np.median(bench.time(steps))))
    loads.append(os.getloadavg()[0])
  return times, loads


def round_ratio(times: dict, name: str, base: str) -> float:
  """Median over rounds of `name`'s step time over `base`'s in that round."""
  return float(np.median(np.array(times[name]) / np.array(times[base])))


class Bench:
  """One model's compiled `train_lib.update`, its state and a fixed batch."""

  def __init__(self, cfg, batch: int, compile_only: bool):
    self.cfg = cfg
    opt = train_lib.OptimizerConfig(num_steps=1000, warmup_steps=10)
    model = train_lib.build(cfg)  # The model `jit_update` builds.
    self._make_state = lambda: train_lib.init_state(
        model, train_lib.make_optimizer(opt), 0, batch)
    state = (jax.eval_shape(self._make_state) if compile_only
             else self._make_state())
    self.batch = fixed_batch(cfg, batch)
    self.step, self.compile_s, self.compile_cpu_s = timed_compile(
        train_lib.jit_update(cfg, opt).lower(state, self.batch))
    self.state = None if compile_only else state

  def allocate(self):
    """Makes the real state for a step compiled with `compile_only`."""
    self.state = self._make_state()

  def memory(self) -> dict:
    """XLA's memory analysis of the compiled step, in bytes."""
    m = self.step.memory_analysis()
    return dict(temp_bytes=m.temp_size_in_bytes,
                argument_bytes=m.argument_size_in_bytes,
                output_bytes=m.output_size_in_bytes,
                alias_bytes=m.alias_size_in_bytes)

  def time(self, num_steps: int) -> list[float]:
    """Runs `num_steps` steps (state carried); returns seconds per step."""
    times = []
    for _ in range(num_steps):
      start = time.perf_counter()
      self.state, metrics = self.step(self.state, self.batch)
      metrics["loss"].block_until_ready()
      times.append(time.perf_counter() - start)
    return times
