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
  python -m launch.bench --compile_only --remat=window --num_layers=13 \
    --embed_dim=1024 --num_heads=8 --head_dim=128 --mlp_dim=4096 \
    --window_length=512 --segment_length=4096 --memory=128 --long_layer=6 \
    --long_memory=8192 --increment=64 --dtype=bfloat16 --batch=1 \
    --vocab_size=32128                                # paper size, analysed
  bash experiments/compile_scan.sh /tmp/compile_scan  # compile, --scan_layers

FLOPs are counted analytically for MELODI (matmuls and attention, x3 for
training); the fraction is of a dense matmul's rate measured in-process.
"""

import json
import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

import melodi_hk
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
_COMPILE_ONLY = flags.DEFINE_bool(
    "compile_only", False, "Compile and analyse memory; do not run.")
_COMPARE = flags.DEFINE_bool(
    "compare", False, "Time MELODI, Transformer-XL and Memorizing in "
    "alternating rounds; print their step-time ratios to XL.")
_ROUNDS = flags.DEFINE_integer("rounds", 3, "Alternating rounds (--compare).")
_STEPS = flags.DEFINE_integer("steps", 10, "Timed steps (per round).")
_WARMUP = flags.DEFINE_integer("warmup", 2, "Untimed steps after compiling.")

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
      scan_layers=_SCAN.value)


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


def matmul_peak(dtype: str) -> float:
  """Achieved FLOP/s of a large square matmul on the default device."""
  n = 4096 if jax.default_backend() != "cpu" else 1024
  a = jnp.ones((n, n), dtype)
  mm = jax.jit(lambda x: x @ x)
  mm(a).block_until_ready()
  times = []
  for _ in range(5):
    start = time.perf_counter()
    mm(a).block_until_ready()
    times.append(time.perf_counter() - start)
  return 2.0 * n ** 3 / float(np.median(times))


class Bench:
  """One model's compiled `train_lib.update`, its state and a fixed batch."""

  def __init__(self, cfg, batch: int, compile_only: bool):
    self.cfg = cfg
    opt = train_lib.OptimizerConfig(num_steps=1000, warmup_steps=10)
    model = train_lib.build(cfg)  # The model `jit_update` builds.
    make_state = lambda: train_lib.init_state(
        model, train_lib.make_optimizer(opt), 0, batch)
    state = jax.eval_shape(make_state) if compile_only else make_state()
    tokens = jax.random.randint(jax.random.PRNGKey(1),
                                (batch, cfg.segment_length), 1, cfg.vocab_size)
    self.batch = {"tokens": tokens,
                  "start_of_sequence": jnp.zeros((batch,), bool),
                  "loss_mask": jnp.ones_like(tokens, bool)}
    start, cpu = time.perf_counter(), time.process_time()
    self.step = train_lib.jit_update(cfg, opt).lower(
        state, self.batch).compile()
    self.compile_s = time.perf_counter() - start
    # CPU seconds of this process: less sensitive than wall time to other
    # jobs on a shared machine.
    self.compile_cpu_s = time.process_time() - cpu
    self.state = None if compile_only else state

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


def run_one(model: str) -> dict:
  cfg, batch = config_from_flags(model, _REMAT.value), _BATCH.value
  bench = Bench(cfg, batch, _COMPILE_ONLY.value)
  out = dict(device=jax.devices()[0].device_kind, model=model,
             config=vars(cfg), batch=batch, compile_s=round(bench.compile_s, 2),
             compile_cpu_s=round(bench.compile_cpu_s, 2),
             **bench.memory())
  if _COMPILE_ONLY.value:
    return out
  bench.time(_WARMUP.value)
  median = float(np.median(bench.time(_STEPS.value)))
  out.update(step_s=median, tokens_per_s=batch * cfg.segment_length / median)
  if model == "melodi":
    flops, peak = training_flops(cfg, batch), matmul_peak(cfg.dtype)
    out.update(flops_per_step=flops, flops_per_s=flops / median,
               matmul_peak_flops_per_s=peak,
               flop_utilisation=flops / median / peak)
  return out


def compare() -> dict:
  """MELODI and Memorizing step times over XL's, from alternating rounds."""
  remat = _REMAT.value
  names = ("melodi", "transformer_xl", "memorizing")
  benches = {n: Bench(config_from_flags(
      n, remat if n == "melodi" else _BASELINE_REMAT.get(remat, remat)),
                      _BATCH.value, False) for n in names}
  for bench in benches.values():
    bench.time(_WARMUP.value)
  times = {n: [] for n in names}
  for _ in range(_ROUNDS.value):
    for n in names:
      times[n].append(float(np.median(benches[n].time(_STEPS.value))))
  step = {n: float(np.median(t)) for n, t in times.items()}
  # Ratio per round, then the median: rounds share the machine's load.
  ratio = lambda n: float(np.median(np.array(times[n]) /
                                    np.array(times["transformer_xl"])))
  flops = {n: (training_flops if n == "melodi" else baseline_training_flops)(
      b.cfg, _BATCH.value) for n, b in benches.items()}
  return dict(mode="compare", remat=remat, batch=_BATCH.value,
              config=vars(benches["melodi"].cfg), step_s=step,
              compile_s={n: round(b.compile_s, 2) for n, b in benches.items()},
              melodi_over_xl=ratio("melodi"),
              memorizing_over_xl=ratio("memorizing"),
              # What the arithmetic alone would predict.
              melodi_over_xl_flops=flops["melodi"] / flops["transformer_xl"],
              memorizing_over_xl_flops=(flops["memorizing"] /
                                        flops["transformer_xl"]))


def main(argv):
  del argv
  print(json.dumps(compare() if _COMPARE.value else run_one(_MODEL.value)))


if __name__ == "__main__":
  app.run(main)
