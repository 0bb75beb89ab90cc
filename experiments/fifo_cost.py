r"""What the long memories' O(L) copies cost: the bound on a ring buffer.

Glossary of shapes:
- B: batch.  T: segment length.  W: window length.  N = T / W windows.
- L: MELODI's long memory.  I: its increment.  C: Memorizing slots.
- E: width.  H: heads.  D: head dim.

  python -m experiments.fifo_cost --rounds=16     # both sizes, ~12 min, CPU
  python -m experiments.fifo_cost --sizes=small --rounds=3 --out=/tmp/f

Decides whether a ring buffer (write I slots in place at a moving index,
O(I) per window) is worth building instead of the FIFO push (concatenate,
O(L) per window, three times: tokens, keys, values). For each size
(launch/bench's defaults, and the small size of README's step-time table)
it compiles launch/train_lib's training step (as launch/bench does) for:

- `melodi`: the real model.
- `melodi_inplace`: the same model with `memory.fifo_push` replaced by a
  write of the I new slots in place at offset 0. The semantics are wrong
  (the memory never ages) but every op of the step is the same except the
  push, which costs what a ring buffer's write would (less: no write index
  to carry, no validity to track), so 1 - its step time over `melodi`'s
  bounds what a ring buffer can save, forward and backward.
- `melodi_eval`, `melodi_eval_inplace`: the same two as evaluation forward
  passes (`apply`, no gradient, no dropout), where no backward residuals
  of the per-window memory are stored.
- `memorizing`: the Memorizing Transformer (C 2048). Its memory already is a
  ring buffer written once per segment (dynamic_update_slice); its only
  O(C) copy is concatenating [memory ; segment] keys and values for the
  attention, once per segment.
- `memorizing_inplace`: the same with C + T slots, the segment's keys and
  values written in place over the last T and attended there: the same
  attention with no concatenate (wrong semantics: the memory never ages;
  its reset also multiplies T more slots, which biases the bound down by
  at most that O(T) select).

Timings are alternating rounds in one process (every other round in
reverse order); a saving is the median of the per-round 1 - (variant step /
real step), negative when the variant is slower. Each step is timed in wall
seconds and in this process's CPU seconds; on a shared machine the wall
times swing with other jobs' load, the CPU seconds much less. Writes
fifo_cost.json, fifo_cost.md (medians and quartiles over rounds) and
fifo_cost.png to --out, with the 1-minute load average before and after.
"""

import contextlib
import dataclasses
import json
import os
import time
from unittest import mock

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import matplotlib
import melodi_hk
import numpy as np

from launch import bench_lib
from launch import train_lib
from melodi_hk import memorizing as memorizing_lib
from melodi_hk import memory as memory_lib

matplotlib.use("Agg")
from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top

_SIZES = flags.DEFINE_list("sizes", ["default", "small"], "Sizes to time.")
_OUT = flags.DEFINE_string("out", "experiments/results/fifo_cost",
                           "Results folder.")
_EVAL_STEPS = flags.DEFINE_integer(
    "eval_steps", 30, "Timed forward passes per round (each is ~1/6 of a "
    "training step).")
_ROUNDS = flags.DEFINE_integer("rounds", 16, "Alternating rounds.")
_STEPS = flags.DEFINE_integer("steps", 5, "Timed training steps per round.")
_WARMUP = flags.DEFINE_integer("warmup", 2, "Untimed steps after compiling.")

SHARED = dict(vocab_size=256, dropout_rate=0.05, attention_dropout_rate=0.05,
              dtype="float32")
# bench's defaults, and the small size of README's step-time table.
SIZES = {
    "default": dict(batch=2, num_layers=4, embed_dim=256, num_heads=4,
                    head_dim=64, mlp_dim=1024, window_length=128,
                    segment_length=512, memory=32, long_layer=2,
                    long_memory=512, increment=16),
    "small": dict(batch=8, num_layers=3, embed_dim=64, num_heads=4,
                  head_dim=16, mlp_dim=256, window_length=64,
                  segment_length=256, memory=16, long_layer=1,
                  long_memory=1024, increment=16),
}
MEMORY_SIZE = 2048  # C, as bench --compare.


def configs(size: dict):
  """(MelodiConfig, MemorizingConfig) of one size, as bench builds them."""
  dims = {k: size[k] for k in ("num_layers", "embed_dim", "num_heads",
                               "head_dim", "mlp_dim", "window_length",
                               "segment_length")}
  melodi = melodi_hk.MelodiConfig(
      **SHARED, **dims, short_term_memory_size=size["memory"],
      summary_size=size["memory"], long_term_layers=(size["long_layer"],),
      long_term_memory_size=size["long_memory"],
      long_term_memory_increment=size["increment"])
  memorizing = melodi_hk.MemorizingConfig(
      **SHARED, **dims, memory_layer=size["long_layer"],
      memory_size=MEMORY_SIZE)
  return melodi, memorizing


def push_in_place(fifo: jax.Array, new: jax.Array) -> jax.Array:
  """Writes `new` [B, I, ...] over slots 0..I-1 of `fifo` [B, L, ...]."""
  return jax.lax.dynamic_update_slice_in_dim(fifo, new.astype(fifo.dtype), 0,
                                             axis=1)


def compiled_step(cfg, batch: int, patch=None) -> bench_lib.Bench:
  """bench_lib.Bench traced afresh under `patch` (train_lib caches per
  config)."""
  train_lib.build.cache_clear()
  train_lib.jit_update.cache_clear()
  with patch or contextlib.nullcontext():
    return bench_lib.Bench(cfg, batch, compile_only=False)


class Forward:
  """MELODI's jitted `apply` (evaluation: no dropout, no gradient), the
  memory carried from step to step; the interface `timed` uses."""

  def __init__(self, cfg, batch: int, patch=None):
    model = melodi_hk.build(cfg)
    self.params = model.init(jax.random.PRNGKey(0))
    self.state = model.init_memory(batch)
    tokens = jax.random.randint(jax.random.PRNGKey(1),
                                (batch, cfg.segment_length), 1, cfg.vocab_size)
    self.batch = (tokens, jnp.zeros((batch,), bool))

    def forward(params, memory, batch):
      logits, memory = model.apply(params, memory, *batch)
      return memory, {"loss": logits[:, -1]}
    with patch or contextlib.nullcontext():
      compiled = jax.jit(forward, donate_argnums=(1,)).lower(
          self.params, self.state, self.batch).compile()
    self.step = lambda memory, batch: compiled(self.params, memory, batch)


def memory_layer_in_place(self, x, kv, is_training):
  """Memorizing's MemoryLayer over a [B, C+T] memory whose last T slots take
  the segment's keys/values in place, instead of a concatenate."""
  keys, values, queries = self.attention.keys_values_queries(x, is_training)
  c = kv.keys.shape[1] - keys.shape[1]
  put = lambda buf, new: jax.lax.dynamic_update_slice_in_dim(
      buf, new.astype(buf.dtype), c, axis=1)  # [B, C+T, H, D]
  kv = kv._replace(keys=put(kv.keys, keys), values=put(kv.values, values))
  heads = memorizing_lib._attend_windows(  # pylint: disable=protected-access
      queries, kv.keys, kv.values, self.attention.scale(), c,
      self.cfg.window_length)  # [B, T, H, D]
  return self.residual(x, heads, is_training), kv


COMPARISONS = (  # (key, variant, real, what)
    ("melodi", "melodi_inplace", "melodi",
     "MELODI training step: in-place push"),
    ("eval", "melodi_eval_inplace", "melodi_eval",
     "MELODI eval forward: in-place push"),
    ("memorizing", "memorizing_inplace", "memorizing",
     "Memorizing training step: no concat"))


def time_size(name: str, rounds: int, steps: int, eval_steps: int,
              warmup: int) -> dict:
  size = SIZES[name]
  melodi, memorizing = configs(size)
  b = size["batch"]
  in_place = lambda: mock.patch.object(memory_lib, "fifo_push",
                                       push_in_place)
  runs = {
      "melodi": compiled_step(melodi, b),
      "melodi_inplace": compiled_step(melodi, b, in_place()),
      "melodi_eval": Forward(melodi, b),
      "melodi_eval_inplace": Forward(melodi, b, in_place()),
      "memorizing": compiled_step(memorizing, b),
      "memorizing_inplace": compiled_step(
          dataclasses.replace(memorizing, memory_size=memorizing.memory_size
                              + memorizing.segment_length), b,
          mock.patch.object(memorizing_lib.MemoryLayer, "__call__",
                            memory_layer_in_place)),
  }
  for run in runs.values():
    timed(run, warmup)
  wall, cpu = ({n: [] for n in runs} for _ in range(2))
  for r in range(rounds):
    # Every other round in reverse, so no variant always runs first.
    for n, run in list(runs.items())[::1 if r % 2 == 0 else -1]:
      w, c = timed(run, eval_steps if isinstance(run, Forward) else steps)
      wall[n].append(w)
      cpu[n].append(c)
  out = dict(size=name, config=size,
             step_s={n: float(np.median(t)) for n, t in wall.items()},
             cpu_step_s={n: float(np.median(t)) for n, t in cpu.items()},
             round_step_s=wall, round_cpu_step_s=cpu)
  for key, variant, real, _ in COMPARISONS:
    for unit, t in (("wall", wall), ("cpu", cpu)):
      # What a ring buffer could save, as a fraction of the real step:
      # median and quartiles over rounds.
      saving = 1 - np.array(t[variant]) / np.array(t[real])
      out[f"{key}_bound_{unit}"] = [float(np.percentile(saving, q))
                                    for q in (50, 25, 75)]
  return out


def timed(run, num_steps: int) -> tuple[float, float]:
  """Median wall and process-CPU seconds per step over `num_steps` steps.

  CPU seconds (all of XLA's threads) count the work done and are less
  inflated than wall time when other jobs share the cores.
  """
  wall, cpu = [], []
  for _ in range(num_steps):
    start, start_cpu = time.perf_counter(), time.process_time()
    run.state, metrics = run.step(run.state, run.batch)
    metrics["loss"].block_until_ready()
    wall.append(time.perf_counter() - start)
    cpu.append(time.process_time() - start_cpu)
  return float(np.median(wall)), float(np.median(cpu))


def write_report(results: list[dict], out: str) -> None:
  os.makedirs(out, exist_ok=True)
  with open(os.path.join(out, "fifo_cost.json"), "w") as f:
    json.dump(results, f, indent=1)
  rows = ["| size | comparison | real step | variant step | saving bound, "
          "wall [quartiles] | saving bound, CPU s [quartiles] |",
          "|---|---|---|---|---|---|"]
  fmt = lambda b: f"{b[0]:+.1%} [{b[1]:+.1%}, {b[2]:+.1%}]"
  for r in results[1:]:
    for key, variant, real, what in COMPARISONS:
      rows.append(
          f"| {r['size']} | {what} | {r['step_s'][real]*1e3:.0f} ms | "
          f"{r['step_s'][variant]*1e3:.0f} ms | {fmt(r[key + '_bound_wall'])}"
          f" | {fmt(r[key + '_bound_cpu'])} |")
  load = results[0]
  rows.append(f"\nLoad average (1 min): {load['load_before']:.2f} before, "
              f"{load['load_after']:.2f} after; {load['rounds']} rounds of "
              f"{load['steps']} training steps / {load['eval_steps']} "
              f"forward passes, device {load['device']}.")
  with open(os.path.join(out, "fifo_cost.md"), "w") as f:
    f.write("\n".join(rows) + "\n")
  fig, ax = plt.subplots(figsize=(6, 3.2))
  names = [r["size"] for r in results[1:]]
  x = np.arange(len(names))
  for i, (key, _, _, label) in enumerate(COMPARISONS):
    cpu = np.array([r[key + "_bound_cpu"] for r in results[1:]]) * 100
    ax.bar(x + 0.27 * (i - 1), cpu[:, 0], 0.27, label=label,
           yerr=[cpu[:, 0] - cpu[:, 1], cpu[:, 2] - cpu[:, 0]], capsize=2)
    ax.plot(x + 0.27 * (i - 1), [100 * r[key + "_bound_wall"][0]
                                 for r in results[1:]], "k.",
            label="wall-time median" if i == 0 else None)
  ax.axhline(3, color="gray", linestyle=":", label="3% threshold")
  ax.axhline(0, color="black", linewidth=0.5)
  ax.set_xticks(x, names)
  ax.set_ylabel("saving bound, % of step\n(CPU s, quartiles)")
  ax.legend(fontsize=6)
  fig.tight_layout()
  fig.savefig(os.path.join(out, "fifo_cost.png"), dpi=120)
  plt.close(fig)


def main(argv):
  del argv
  head = dict(load_before=os.getloadavg()[0], rounds=_ROUNDS.value,
              steps=_STEPS.value, eval_steps=_EVAL_STEPS.value,
              device=jax.devices()[0].device_kind)
  results = [time_size(s, _ROUNDS.value, _STEPS.value,
                       _EVAL_STEPS.value, _WARMUP.value)
             for s in _SIZES.value]
  head["load_after"] = os.getloadavg()[0]
  write_report([head] + results, _OUT.value)
  print(open(os.path.join(_OUT.value, "fifo_cost.md")).read())


if __name__ == "__main__":
  app.run(main)
