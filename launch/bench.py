r"""Times one jitted MELODI training step and prints one JSON line.

Glossary of shapes: B batch, T segment, W window, S summary, M short memory,
L long memory, I increment, E width, H heads, D head dim, F MLP, V vocab.

The step is what training runs: forward over a segment, the summed loss,
its gradient and an optax Adafactor update. Defaults are the CPU config of
README.md's side-by-side comparison with meliad (4 layers, E 256, 4x64
heads, F 1024, W 128, T 512, M = S = 32, long layer 2 with L 512, I 16,
batch 2, float32, dropout 0.05):

  python -m launch.bench
  python -m launch.bench --num_layers=12 --embed_dim=1024 --num_heads=8 \
    --head_dim=128 --mlp_dim=4096 --window_length=512 --segment_length=4096 \
    --memory=128 --long_layer=6 --long_memory=8192 --increment=64 \
    --dtype=bfloat16 --batch=1 --vocab_size=32128     # paper scale, GPU/TPU

FLOPs are counted analytically (matmuls and attention, x3 for training);
the fraction is of a dense matmul's throughput measured in this process.
"""

import json
import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np
import optax

import melodi_hk

_LAYERS = flags.DEFINE_integer("num_layers", 4, "Layers.")
_EMBED = flags.DEFINE_integer("embed_dim", 256, "E.")
_HEADS = flags.DEFINE_integer("num_heads", 4, "H.")
_HEAD_DIM = flags.DEFINE_integer("head_dim", 64, "D.")
_MLP = flags.DEFINE_integer("mlp_dim", 1024, "F.")
_VOCAB = flags.DEFINE_integer("vocab_size", 256, "V.")
_WINDOW = flags.DEFINE_integer("window_length", 128, "W.")
_SEGMENT = flags.DEFINE_integer("segment_length", 512, "T.")
_MEMORY = flags.DEFINE_integer("memory", 32, "M = S.")
_LONG_LAYER = flags.DEFINE_integer("long_layer", 2, "Long layer; -1: none.")
_LONG_MEMORY = flags.DEFINE_integer("long_memory", 512, "L.")
_INCREMENT = flags.DEFINE_integer("increment", 16, "I.")
_DTYPE = flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"],
                           "Compute dtype.")
_BATCH = flags.DEFINE_integer("batch", 2, "B.")
_DROPOUT = flags.DEFINE_float("dropout", 0.05, "Both dropout rates.")
_STEPS = flags.DEFINE_integer("steps", 10, "Timed steps.")
_WARMUP = flags.DEFINE_integer("warmup", 2, "Untimed steps after compiling.")


def config_from_flags() -> melodi_hk.MelodiConfig:
  long_term = _LONG_LAYER.value >= 0
  return melodi_hk.MelodiConfig(
      vocab_size=_VOCAB.value, num_layers=_LAYERS.value,
      embed_dim=_EMBED.value, num_heads=_HEADS.value,
      head_dim=_HEAD_DIM.value, mlp_dim=_MLP.value,
      window_length=_WINDOW.value, segment_length=_SEGMENT.value,
      short_term_memory_size=_MEMORY.value, summary_size=_MEMORY.value,
      long_term_layers=(_LONG_LAYER.value,) if long_term else (),
      long_term_memory_size=_LONG_MEMORY.value if long_term else 0,
      long_term_memory_increment=_INCREMENT.value if long_term else 0,
      dropout_rate=_DROPOUT.value, attention_dropout_rate=_DROPOUT.value,
      dtype=_DTYPE.value)


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


def make_step(model, optimizer):
  """The jitted training step: (params, opt_state, memory, batch, rng)."""
  def loss_fn(params, memory, tokens, sos, rng):
    logits, memory = model.apply(params, memory, tokens, sos, rng=rng,
                                 is_training=True)
    return melodi_hk.lm_loss(logits, tokens).loss, memory

  def step(params, opt_state, memory, tokens, sos, rng):
    (loss, memory), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        params, memory, tokens, sos, rng)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, memory, loss

  return jax.jit(step, donate_argnums=(0, 1, 2))


def time_steps(step, state, tokens, sos, num_steps):
  """Runs `num_steps` steps; returns (per-step seconds, final state)."""
  times = []
  for i in range(num_steps):
    start = time.perf_counter()
    *state, loss = step(*state, tokens, sos, jax.random.PRNGKey(i))
    loss.block_until_ready()
    times.append(time.perf_counter() - start)
  return times, state


def main(argv):
  del argv
  cfg, batch = config_from_flags(), _BATCH.value
  model = melodi_hk.build(cfg)
  optimizer = optax.adafactor(1e-3, decay_rate=0.8, momentum=0.9,
                              multiply_by_parameter_scale=True)
  params = model.init(jax.random.PRNGKey(0))
  state = (params, optimizer.init(params), model.init_memory(batch))
  tokens = jax.random.randint(jax.random.PRNGKey(1),
                              (batch, cfg.segment_length), 1, cfg.vocab_size)
  sos = jnp.zeros((batch,), bool)
  step = make_step(model, optimizer)
  compile_times, state = time_steps(step, state, tokens, sos, 1)
  _, state = time_steps(step, state, tokens, sos, _WARMUP.value)
  times, _ = time_steps(step, state, tokens, sos, _STEPS.value)
  median, flops = float(np.median(times)), training_flops(cfg, batch)
  peak = matmul_peak(cfg.dtype)
  print(json.dumps(dict(
      device=jax.devices()[0].device_kind, config=vars(cfg), batch=batch,
      compile_s=round(compile_times[0] - median, 3), step_s=median,
      tokens_per_s=batch * cfg.segment_length / median, flops_per_step=flops,
      flops_per_s=flops / median, matmul_peak_flops_per_s=peak,
      flop_utilisation=flops / median / peak)))


if __name__ == "__main__":
  app.run(main)
