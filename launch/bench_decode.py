r"""Decoding cost after long prompts: tokens/s and decode-state bytes.

Glossary of shapes: B batch (1), T segment, W window, M short memory = S
summary, L long memory, I increment, C Memorizing memory slots, E width,
H heads, D head dim, F MLP, V vocab.

For MELODI and the Memorizing Transformer (same widths), each prompt of
1K, 16K, 128K and 1M random tokens is prefilled (timed, after compiling on
one segment), then --decode_tokens greedy tokens are generated --repeats
times (after one untimed warm-up chunk, so compilation is excluded); the
median and the best rate are reported. A prompt is skipped when the
previous prompt's prefill rate predicts more than --max_prefill_s.

  nice -n 10 python -m launch.bench_decode --output_dir=/tmp/bench_decode

writes results.json, results.md (the table) and decode.png.
"""

import json
import os
import time

from absl import app
from absl import flags
import jax
import matplotlib
import melodi_hk
import numpy as np

matplotlib.use("Agg")
from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top

_PROMPTS = flags.DEFINE_list("prompts", ["1024", "16384", "131072", "1048576"],
                             "Prompt lengths in tokens.")
_MODELS = flags.DEFINE_list("models", ["melodi", "memorizing"], "Models.")
_DECODE = flags.DEFINE_integer("decode_tokens", 256, "Timed tokens.")
_MAX_PREFILL = flags.DEFINE_float("max_prefill_s", 300.0,
                                  "Skip prompts predicted to take longer.")
_MEMORY_SLOTS = flags.DEFINE_integer("memory_size", 4096,
                                     "C of the Memorizing Transformer.")
_OUTPUT = flags.DEFINE_string("output_dir", "/tmp/bench_decode",
                              "Where results.json/.md and decode.png go.")
_REPEATS = flags.DEFINE_integer(
    "repeats", 5, "Timed decodes per prompt; the median and the best are "
    "reported (on a shared machine the best is the least disturbed).")
_CHUNK = 64  # Tokens per compiled generate call.
_COMMON = dict(vocab_size=256, num_layers=2, embed_dim=128, num_heads=2,
               head_dim=64, mlp_dim=512, window_length=64, segment_length=256,
               dropout_rate=0.0, attention_dropout_rate=0.0, dtype="float32")


def model_config(name: str, memory_size: int):
  if name == "melodi":
    return melodi_hk.MelodiConfig(
        short_term_memory_size=32, summary_size=32, long_term_layers=(1,),
        long_term_memory_size=256, long_term_memory_increment=16, **_COMMON)
  if name == "memorizing":
    return melodi_hk.MemorizingConfig(memory_layer=0, memory_size=memory_size,
                                      **_COMMON)
  raise ValueError(f"--models: unknown model {name!r}; use melodi, "
                   "memorizing.")


def _nbytes(tree) -> int:
  return sum(leaf.size * leaf.dtype.itemsize for leaf in jax.tree.leaves(tree))


def _decode_rate(dec, params, state, logits, tokens: int) -> float:
  greedy = melodi_hk.SamplingConfig(temperature=0.0)
  for chunk in melodi_hk.generate(dec, params, state, logits, _CHUNK, greedy,
                                  chunk_size=_CHUNK):  # Compiles; untimed.
    state, logits = chunk.state, chunk.logits
  rates = []
  for _ in range(_REPEATS.value):
    begin = time.perf_counter()
    for _ in melodi_hk.generate(dec, params, state, logits, tokens, greedy,
                                chunk_size=_CHUNK):
      pass
    rates.append(tokens / (time.perf_counter() - begin))
  return rates


def bench_model(name: str, prompts: list[int]) -> list[dict]:
  """One row per prompt length (skipped ones say why)."""
  cfg = model_config(name, _MEMORY_SLOTS.value)
  model, dec = melodi_hk.build(cfg), melodi_hk.decoder(cfg)
  params = jax.jit(model.init)(jax.random.PRNGKey(0))
  # Compiles the prefill of whole segments (every prompt is made of them).
  dec.prefill(params, model.init_memory(1),
              np.ones((1, cfg.segment_length), np.int32), np.ones(1, bool))
  rows, rate = [], None
  for length in prompts:
    row = dict(model=name, prompt_tokens=length)
    if rate and length / rate > _MAX_PREFILL.value:
      rows.append(row | dict(skipped=f"prefill predicted {length / rate:.0f}"
                             f" s > --max_prefill_s={_MAX_PREFILL.value:.0f}"))
      continue
    tokens = np.random.default_rng(length).integers(1, 256, (1, length))
    begin = time.perf_counter()
    logits, state = dec.prefill(params, model.init_memory(1), tokens,
                                np.ones(1, bool))
    jax.block_until_ready(state)
    rate = length / (time.perf_counter() - begin)
    rates = _decode_rate(dec, params, state, logits, _DECODE.value)
    row |= dict(prefill_tokens_per_s=rate, state_bytes=_nbytes(state),
                decode_tokens_per_s=float(np.median(rates)),
                best_decode_tokens_per_s=max(rates),
                decode_tokens_per_s_all=rates)
    print(json.dumps(row), flush=True)
    rows.append(row)
  return rows


def markdown(rows: list[dict]) -> str:
  lines = ["| model | prompt tokens | prefill tokens/s | decode tokens/s, "
           "median | decode tokens/s, best | decode state bytes |",
           "|---|---:|---:|---:|---:|---:|"]
  for r in rows:
    if "skipped" in r:
      lines.append(f"| {r['model']} | {r['prompt_tokens']:,} | "
                   f"skipped: {r['skipped']} | | | |")
    else:
      lines.append(f"| {r['model']} | {r['prompt_tokens']:,} | "
                   f"{r['prefill_tokens_per_s']:,.0f} | "
                   f"{r['decode_tokens_per_s']:,.0f} | "
                   f"{r['best_decode_tokens_per_s']:,.0f} | "
                   f"{r['state_bytes']:,} |")
  return "\n".join(lines)


def plot(rows: list[dict], path: str) -> None:
  fig, axes = plt.subplots(1, 2, figsize=(10, 4))
  for name in sorted({r["model"] for r in rows}):
    done = [r for r in rows if r["model"] == name and "skipped" not in r]
    x = [r["prompt_tokens"] for r in done]
    axes[0].plot(x, [r["best_decode_tokens_per_s"] for r in done], "o-",
                 label=name)
    axes[1].plot(x, [r["state_bytes"] for r in done], "o-", label=name)
  for ax, title in zip(axes, ("decode tokens/s (best)",
                             "decode state bytes")):
    ax.set_xscale("log")
    ax.set_xlabel("prompt tokens")
    ax.set_title(title)
    ax.legend()
  fig.tight_layout()
  fig.savefig(path)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}.")
  prompts = [int(p) for p in _PROMPTS.value]
  rows = [row for name in _MODELS.value for row in bench_model(name, prompts)]
  os.makedirs(_OUTPUT.value, exist_ok=True)
  meta = dict(config=_COMMON, memory_size=_MEMORY_SLOTS.value,
              decode_tokens=_DECODE.value, devices=str(jax.devices()))
  with open(os.path.join(_OUTPUT.value, "results.json"), "w") as f:
    json.dump(dict(meta=meta, rows=rows), f, indent=2)
  table = markdown(rows)
  with open(os.path.join(_OUTPUT.value, "results.md"), "w") as f:
    f.write(table + "\n")
  plot(rows, os.path.join(_OUTPUT.value, "decode.png"))
  print(table)


if __name__ == "__main__":
  app.run(main)
