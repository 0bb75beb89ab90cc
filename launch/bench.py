r"""Compiles and times the real training step; prints one JSON line per run.

Glossary of shapes: B batch, T segment, W window, S summary, M short memory,
L long memory, I increment, C Memorizing slots, E width, H heads, D head dim,
F MLP, V vocab.

The step is launch/train_lib.py's `update` (forward over a segment, summed
loss, gradient, Adafactor), jitted as training jits it. Each JSON line gives
compile time, XLA's memory analysis of the compiled step (temp, argument,
output bytes), and unless --compile_only the median step time. Defaults are
the CPU comparison config (4 layers, E 256, 4x64 heads, F 1024, W 128,
T 512, M = S = 32, long layer 2 with L 512 / I 16, batch 2, float32):

  python -m launch.bench                              # MELODI, defaults
  python -m launch.bench --compare                    # MELODI & Memorizing / XL
  python -m launch.bench --remat_costs --model=transformer_xl  # each option
  python -m launch.bench --compile_only --remat=window --num_layers=13 \
    --embed_dim=1024 --num_heads=8 --head_dim=128 --mlp_dim=4096 \
    --window_length=512 --segment_length=4096 --memory=128 --long_layer=6 \
    --long_memory=8192 --increment=64 --dtype=bfloat16 --batch=1 \
    --vocab_size=32128                                # paper size, analysed
  bash experiments/compile_scan.sh /tmp/compile_scan  # compile, --scan_layers

FLOPs are counted analytically (launch/bench_lib.py: matmuls and attention,
x3 for training); `flop_utilisation` is their rate over a dense matmul's
measured in-process, `mfu` over the card's datasheet peak (None for cards
bench_lib does not know). `peak_bytes_in_use` / `bytes_limit` are the
device allocator's (None on CPU). --max_batch times the largest batch
whose compiled step fits the device; experiments/gpu_paper_size.sh runs the
paper's size on one GPU.
"""

import json
import time

from absl import app
from absl import flags
import jax
import numpy as np

import melodi_hk
from launch import bench_lib
from launch import train_lib

_MODEL = flags.DEFINE_enum("model", "melodi",
                           ["melodi", "transformer_xl", "memorizing"],
                           "Model family.")
_LAYERS = flags.DEFINE_integer("num_layers", 4, "Layers.")
_EMBED = flags.DEFINE_integer("embed_dim", 256, "E.")
_HEADS = flags.DEFINE_integer("num_heads", 4, "H.")
_HEAD_DIM = flags.DEFINE_integer("head_dim", 64, "D.")
_MLP = flags.DEFINE_integer("mlp_dim", 1024, "F.")
_VOCAB = flags.DEFINE_integer("vocab_size", 256, "V.")
_WINDOW = flags.DEFINE_integer("window_length", 128, "W.")
_SEGMENT = flags.DEFINE_integer("segment_length", 512, "T.")
_MEMORY = flags.DEFINE_integer("memory", 32, "M = S.")
_LONG_LAYER = flags.DEFINE_integer(
    "long_layer", 2, "MELODI's long layer (-1: none); Memorizing's memory "
    "layer.")
_LONG_MEMORY = flags.DEFINE_integer("long_memory", 512, "L.")
_INCREMENT = flags.DEFINE_integer("increment", 16, "I.")
_SLOTS = flags.DEFINE_integer("memory_size", 2048, "C (Memorizing).")
_DTYPE = flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"],
                           "Compute dtype.")
_BATCH = flags.DEFINE_integer("batch", 2, "B.")
_DROPOUT = flags.DEFINE_float("dropout", 0.05, "Both dropout rates.")
_REMAT = flags.DEFINE_string(
    "remat", "none", "Remat policy: none | window | dots (MELODI); "
    "none | layer | dots (baselines).")
_SCAN = flags.DEFINE_bool(
    "scan_layers", False, "MELODI: runs of layers without long memory under "
    "one hk.layer_stack (compiled once).")
_UNROLL = flags.DEFINE_integer(
    "window_unroll", 1, "MELODI: windows per iteration of the window scan.")
_COMPILE_ONLY = flags.DEFINE_bool(
    "compile_only", False, "Compile and analyse memory; do not run.")
_COMPARE = flags.DEFINE_bool(
    "compare", False, "Time MELODI, Transformer-XL and Memorizing in "
    "alternating rounds; print their step-time ratios to XL.")
_REMAT_COSTS = flags.DEFINE_bool(
    "remat_costs", False, "Time every remat option of --model in "
    "alternating rounds; print each one's step-time ratio to none and its "
    "temp memory.")
_ROUNDS = flags.DEFINE_integer(
    "rounds", 3, "Alternating rounds (--compare, --remat_costs).")
_STEPS = flags.DEFINE_integer("steps", 10, "Timed steps (per round).")
_WARMUP = flags.DEFINE_integer("warmup", 2, "Untimed steps after compiling.")
_MAX_BATCH = flags.DEFINE_bool(
    "max_batch", False, "Find the largest batch (instead of --batch) whose "
    "compiled step fits the device's memory, then time it.")
_MAX_BYTES = flags.DEFINE_integer(
    "max_batch_bytes", 0, "--max_batch: device bytes the step may hold; 0: "
    "95% of the device allocator's limit (give it on CPU, which has none).")
_MAX_LIMIT = flags.DEFINE_integer("max_batch_limit", 256,
                                  "--max_batch: largest batch tried.")
_MAX_SECONDS = flags.DEFINE_float(
    "max_batch_seconds", 240.0, "--max_batch: compile probes stop after "
    "this long, with the largest batch found to fit so far.")

_BASELINE_REMAT = {"window": "layer"}  # --compare maps MELODI's names.


def config_from_flags(model: str, remat: str):
  """The model config of the size flags for one family."""
  shared = dict(
      vocab_size=_VOCAB.value, num_layers=_LAYERS.value,
      embed_dim=_EMBED.value, num_heads=_HEADS.value,
      head_dim=_HEAD_DIM.value, mlp_dim=_MLP.value,
      window_length=_WINDOW.value, segment_length=_SEGMENT.value,
      dropout_rate=_DROPOUT.value, attention_dropout_rate=_DROPOUT.value,
      dtype=_DTYPE.value, remat=remat)
  if model == "transformer_xl":
    return melodi_hk.TransformerXLConfig(**shared)
  if model == "memorizing":
    return melodi_hk.MemorizingConfig(
        **shared, memory_layer=max(_LONG_LAYER.value, 0),
        memory_size=_SLOTS.value)
  long_term = _LONG_LAYER.value >= 0
  return melodi_hk.MelodiConfig(
      **shared, short_term_memory_size=_MEMORY.value,
      summary_size=_MEMORY.value,
      long_term_layers=(_LONG_LAYER.value,) if long_term else (),
      long_term_memory_size=_LONG_MEMORY.value if long_term else 0,
      long_term_memory_increment=_INCREMENT.value if long_term else 0,
      scan_layers=_SCAN.value, window_unroll=_UNROLL.value)


def measure(bench: bench_lib.Bench) -> dict:
  """Times `bench` (its state allocated) and adds FLOPs, MFU and memory."""
  cfg, batch = bench.cfg, bench.batch["tokens"].shape[0]
  bench.time(_WARMUP.value)
  median = float(np.median(bench.time(_STEPS.value)))
  device = jax.devices()[0]
  flops = bench_lib.model_flops(cfg, batch)
  matmul = bench_lib.matmul_peak(cfg.dtype)
  peak = bench_lib.peak_flops(device.device_kind, cfg.dtype)
  return dict(step_s=median, tokens_per_s=batch * cfg.segment_length / median,
              flops_per_step=flops, flops_per_s=flops / median,
              matmul_peak_flops_per_s=matmul,
              flop_utilisation=flops / median / matmul,
              datasheet_peak_flops_per_s=peak,
              mfu=bench_lib.utilisation(flops, median, peak),
              **bench_lib.device_memory(device))


def describe(bench: bench_lib.Bench, model: str) -> dict:
  """The JSON fields of a compiled step: device, config, compile, memory."""
  return dict(device=jax.devices()[0].device_kind, model=model,
              config=vars(bench.cfg), batch=bench.batch["tokens"].shape[0],
              compile_s=round(bench.compile_s, 2),
              compile_cpu_s=round(bench.compile_cpu_s, 2),
              **(memory := bench.memory()),
              step_bytes=bench_lib.step_bytes(memory))


def run_one(model: str) -> dict:
  bench = bench_lib.Bench(config_from_flags(model, _REMAT.value),
                          _BATCH.value, _COMPILE_ONLY.value)
  out = describe(bench, model)
  if not _COMPILE_ONLY.value:
    out.update(measure(bench))
  return out


def run_max_batch(model: str) -> dict:
  """Times the largest batch whose compiled step fits `memory_budget`.

  Fit is judged from XLA's memory analysis of each compiled step, not by
  running until out of memory: XLA's GPU buffer assignment packs a step's
  temporaries into one allocation of the analysed size, so the analysis is
  what the allocator is asked for, less library workspaces (hence the 5%
  headroom); a probe costs a compile and no run, and leaves no fragments.
  B = 1, 2 place a line whose crossing of the budget is the first guess.
  Should the chosen batch still run out of memory, 90% of it is timed.
  """
  cfg, start = config_from_flags(model, _REMAT.value), time.monotonic()
  budget = bench_lib.memory_budget(jax.devices()[0], _MAX_BYTES.value)
  compiled = {}

  def step_bytes(batch: int) -> int:
    if batch not in compiled:
      compiled[batch] = bench_lib.Bench(cfg, batch, compile_only=True)
    return bench_lib.step_bytes(compiled[batch].memory())

  guess = min(_MAX_LIMIT.value, bench_lib.linear_guess(
      step_bytes(1), step_bytes(min(2, _MAX_LIMIT.value)), budget))
  batch, _, cut = bench_lib.largest_batch(
      lambda b: step_bytes(b) <= budget, guess, _MAX_LIMIT.value,
      _MAX_SECONDS.value - (time.monotonic() - start))
  search = dict(budget_bytes=budget, guess=guess, stopped_early=cut,
                search_s=round(time.monotonic() - start, 1),
                probes=[(b, step_bytes(b), step_bytes(b) <= budget)
                        for b in compiled])  # B = 1, 2 and the search's.
  if batch == 0:
    raise ValueError(f"Batch 1 needs {step_bytes(1)} bytes, over the budget "
                     f"of {budget}; try --remat=window or a smaller size.")
  bench = compiled.pop(batch)
  try:
    bench.allocate()
    return dict(describe(bench, model), max_batch=search, **measure(bench))
  except jax.errors.JaxRuntimeError as error:
    if "RESOURCE_EXHAUSTED" not in str(error):
      raise
  del bench  # Frees its state before the smaller one is made.
  search["out_of_memory_at"] = batch
  bench = bench_lib.Bench(cfg, max(1, batch * 9 // 10), compile_only=False)
  return dict(describe(bench, model), max_batch=search, **measure(bench))


def compare() -> dict:
  """MELODI and Memorizing step times over XL's, from alternating rounds."""
  remat = _REMAT.value
  names = ("melodi", "transformer_xl", "memorizing")
  benches = {n: bench_lib.Bench(config_from_flags(
      n, remat if n == "melodi" else _BASELINE_REMAT.get(remat, remat)),
                                _BATCH.value, False) for n in names}
  times, _ = bench_lib.alternate(benches, _ROUNDS.value, _STEPS.value,
                                _WARMUP.value)
  step = {n: float(np.median(t)) for n, t in times.items()}
  ratio = lambda n: bench_lib.round_ratio(times, n, "transformer_xl")
  flops = {n: bench_lib.model_flops(b.cfg, _BATCH.value)
           for n, b in benches.items()}
  return dict(mode="compare", remat=remat, batch=_BATCH.value,
              config=vars(benches["melodi"].cfg), step_s=step,
              compile_s={n: round(b.compile_s, 2) for n, b in benches.items()},
              melodi_over_xl=ratio("melodi"),
              memorizing_over_xl=ratio("memorizing"),
              # What the arithmetic alone would predict.
              melodi_over_xl_flops=flops["melodi"] / flops["transformer_xl"],
              memorizing_over_xl_flops=(flops["memorizing"] /
                                        flops["transformer_xl"]))


def remat_costs(model: str) -> dict:
  """Each remat option's step time over `none`'s, from alternating rounds,
  and its temp memory."""
  options = type(config_from_flags(model, "none")).REMAT_CHOICES
  benches = {r: bench_lib.Bench(config_from_flags(model, r), _BATCH.value,
                                False) for r in options}
  times, loads = bench_lib.alternate(benches, _ROUNDS.value, _STEPS.value,
                                     _WARMUP.value)
  return dict(mode="remat_costs", model=model, batch=_BATCH.value,
              config=vars(benches["none"].cfg), load=loads,
              step_s={r: float(np.median(t)) for r, t in times.items()},
              over_none={r: bench_lib.round_ratio(times, r, "none")
                         for r in options},
              temp_bytes={r: b.memory()["temp_bytes"]
                          for r, b in benches.items()})


def main(argv):
  del argv
  if _COMPARE.value:
    out = compare()
  elif _REMAT_COSTS.value:
    out = remat_costs(_MODEL.value)
  elif _MAX_BATCH.value:
    out = run_max_batch(_MODEL.value)
  else:
    out = run_one(_MODEL.value)
  print(json.dumps(out))


if __name__ == "__main__":
  app.run(main)
