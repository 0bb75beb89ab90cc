r"""Where a training step's time goes: XLA's ops, grouped by model source.

Glossary of shapes: B batch, T segment, W window, S summary, M short memory,
L long memory, I increment, E width, H heads, D head dim, F MLP, V vocab.

Compiles `launch/bench.py`'s step (same size flags), traces `--steps` steps
with `jax.profiler`, and sums each XLA instruction's time from the trace.
Every instruction carries the `op_name` of the JAX operation it came from
(`jit(update)/jvp()/.../melodi/layer_2/_self_attention/.../dot_general`);
the groups are those names with the autodiff and loop wrappers dropped and
layer indices folded (`layer_*`), split into forward and backward
(`transpose(...)`, autodiff's backward pass; the custom attention gradient's
recompute counts as backward too). On CPU the times are thread times
summed over XLA's worker threads, so they add up to more than the wall
step time; shares are of their sum. On a GPU they are the device's "XLA
Ops" times.

  python -m experiments.step_profile --top=20              # bench default
  python -m experiments.step_profile --model=transformer_xl --out=/tmp/p.md
  python -m experiments.step_profile --leading_sum=2,4,160,192

--leading_sum times, instead, the sum over the leading axis of an array of
that shape two ways: `jnp.sum(x, 0)` and the halving adds the attention's
bias gradient uses (`attention._sum_rows`), as a ratio.
"""

import collections
import glob
import json
import re
import tempfile
import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

from launch import bench
from launch import bench_lib
from melodi_hk import attention

_TOP = flags.DEFINE_integer("top", 25, "Groups to print.")
_OUT = flags.DEFINE_string("out", None, "Also write the table here (.md).")
_LEADING = flags.DEFINE_list(
    "leading_sum", None, "A shape: time jnp.sum over its leading axis "
    "against attention._sum_rows instead of profiling a step.")

# op_name components that wrap the model's own path without naming it.
_WRAPPERS = re.compile(r"^(jit\(update\)|jvp\(.*\)|transpose\(.*\)|"
                       r"closed_call|while|body|cond|checkpoint(\(.*\))?|"
                       r"remat.*)$")


def op_names(hlo_text: str) -> dict[str, str]:
  """{instruction name: op_name} from a compiled module's text."""
  found = re.finditer(r"^\s*(?:ROOT )?%?([\w.\-]+) = [^\n]*?"
                      r'metadata=\{[^}]*?op_name="([^"]*)"', hlo_text,
                      re.MULTILINE)
  return {m.group(1): m.group(2) for m in found}


def group_of(op_name: str) -> str:
  """'forward|backward: path' with wrappers dropped, layers folded."""
  parts = [p for p in op_name.split("/") if not _WRAPPERS.match(p)]
  path = re.sub(r"layer_\d+", "layer_*", "/".join(parts))
  path = re.sub(r"(layer_\*/[^/]+)/layer_\*", r"\1", path)
  return (("backward" if "transpose(" in op_name else "forward") + ": " +
          (path or "(no model path: the scan's buffers, copies)"))


def instruction_ms(xplane: str, names: set[str], steps: int) -> dict:
  """{instruction: milliseconds per step} of the trace's events named after
  one of the module's instructions: the host threads' (CPU thunks) and, on
  an accelerator, the device planes' "XLA Ops" lines (their other lines name
  kernels and streams, which would count the same time twice)."""
  totals = collections.Counter()
  for plane in jax.profiler.ProfileData.from_file(xplane).planes:
    for line in plane.lines:
      if plane.name.startswith("/device:") and line.name != "XLA Ops":
        continue
      for event in line.events:
        if event.name in names:
          totals[event.name] += event.duration_ns / 1e6 / steps
  return totals


def profile(step: bench_lib.Bench, steps: int) -> tuple[dict, float]:
  """({group: ms per step}, wall seconds per step) of `steps` traced steps."""
  sources = op_names(step.step.as_text())
  step.time(2)
  with tempfile.TemporaryDirectory() as logdir:
    jax.profiler.start_trace(logdir)
    wall = float(np.median(step.time(steps)))
    jax.profiler.stop_trace()
    xplane = glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True)[0]
    per_op = instruction_ms(xplane, set(sources), steps)
  groups = collections.Counter()
  for name, ms in per_op.items():
    groups[group_of(sources[name])] += ms
  return groups, wall


def table(groups: dict, wall_s: float, top: int) -> list[str]:
  total = sum(groups.values())
  lines = [f"Median step {wall_s * 1e3:.1f} ms; XLA op time {total:.1f} ms "
           "per step (CPU: summed over threads).", "",
           "| ms / step | share | group |", "|---|---|---|"]
  for group, ms in sorted(groups.items(), key=lambda kv: -kv[1])[:top]:
    lines.append(f"| {ms:.2f} | {ms / total:.1%} | `{group}` |")
  return lines


def leading_sum(shape: tuple[int, ...], repeats: int = 100) -> dict:
  """Seconds per call of jnp.sum(x, 0) and of attention._sum_rows(x)."""
  x = jax.random.normal(jax.random.PRNGKey(0), shape)
  out = {}
  for name, fn in (("jnp_sum", lambda x: jnp.sum(x, 0)),
                   ("sum_rows", attention._sum_rows)):  # pylint: disable=protected-access
    fn = jax.jit(fn)
    fn(x).block_until_ready()
    start = time.perf_counter()
    for _ in range(repeats):
      y = fn(x)
    y.block_until_ready()
    out[name] = (time.perf_counter() - start) / repeats
  return dict(mode="leading_sum", shape=list(shape), seconds=out,
              jnp_sum_over_sum_rows=out["jnp_sum"] / out["sum_rows"])


def main(argv):
  del argv
  if _LEADING.value:
    print(json.dumps(leading_sum(tuple(int(n) for n in _LEADING.value))))
    return
  model = bench._MODEL.value  # pylint: disable=protected-access
  step = bench_lib.Bench(bench.config_from_flags(model, bench._REMAT.value),  # pylint: disable=protected-access
                         bench._BATCH.value, False)  # pylint: disable=protected-access
  groups, wall = profile(step, bench._STEPS.value)  # pylint: disable=protected-access
  lines = table(groups, wall, _TOP.value)
  print("\n".join(lines))
  if _OUT.value:
    with open(_OUT.value, "w") as f:
      f.write(f"# Step profile: {model}\n\n" + "\n".join(lines) + "\n")
  print(json.dumps(dict(mode="profile", model=model, step_s=wall,
                        op_ms=sum(groups.values()),
                        top_groups_ms=dict(groups.most_common(_TOP.value)))))


if __name__ == "__main__":
  app.run(main)
