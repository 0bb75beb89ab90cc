"""What each model carries from one segment to the next (spec §12.5).

Glossary of shapes:
- B: batch.  W: window length.  C: KV memory slots.  E: width.
- H: heads.  D: head dim.  M: short-term tokens per layer.
- L: long-term tokens per long-term layer.

Counts are per batch row and one mode (meliad keeps separate train and test
copies). MELODI stores embeddings ([M, E] per layer, [L, E] per long-term
layer) and recomputes their keys and values every segment; Transformer-XL
stores the last window's keys and values per layer ([W, H, D] twice); the
Memorizing Transformer adds its [C, H, D] key and value memory. The
memory layer's unused XL cache, which meliad allocates, does not exist here
and is not counted.
"""

from typing import NamedTuple

import jax.numpy as jnp

from melodi_hk import config as config_lib
from melodi_hk import presets


_CONFIGS = (config_lib.MelodiConfig, config_lib.TransformerXLConfig,
            config_lib.MemorizingConfig)


class Footprint(NamedTuple):
  tokens: int  # Token slots kept between segments.
  floats: int  # Numbers stored, as this implementation stores them.
  floats_as_kv: int  # Numbers if every slot were kept as a key and a value.
  # Bytes of `init_memory(1)`: the floats in the compute dtype, plus 4 for
  # the Memorizing Transformer's int32 write index.
  bytes: int


def memory_footprint(cfg) -> Footprint:
  """The memory one batch row carries between segments, for any config."""
  if not isinstance(cfg, _CONFIGS):
    raise TypeError(f"{type(cfg).__name__} is not a model config; use "
                    "MelodiConfig, TransformerXLConfig or MemorizingConfig.")
  kv_width = 2 * cfg.num_heads * cfg.head_dim  # a key plus a value
  extra_bytes = 0
  if isinstance(cfg, config_lib.MelodiConfig):
    tokens = (cfg.num_layers * cfg.short_term_memory_size +
              len(cfg.long_term_layers) * cfg.long_term_memory_size)
    floats = tokens * cfg.embed_dim
  elif isinstance(cfg, config_lib.TransformerXLConfig):
    tokens = cfg.num_layers * cfg.window_length if cfg.xl_cache else 0
    floats = tokens * kv_width
  else:
    tokens = cfg.num_layers * cfg.window_length + cfg.memory_size
    floats = tokens * kv_width
    extra_bytes = jnp.dtype(jnp.int32).itemsize
  itemsize = jnp.dtype(cfg.dtype).itemsize
  return Footprint(tokens, floats, tokens * kv_width,
                   floats * itemsize + extra_bytes)


class Row(NamedTuple):
  model: str  # e.g. "MELODI S128+L64".
  layers: int  # Ordinary layers (the memory layer is extra).
  long_term: int  # L of MELODI's long-term layer; C of the KV memory.
  footprint: Footprint
  ratio: float  # Memorizing-64K floats / these floats (as stored).
  ratio_kv: float  # The same with both counted as keys + values.


def paper_table(dtype: str = "bfloat16") -> list[Row]:
  """Spec §12.5: MELODI at 12 and 13 layers vs both baselines."""
  reference = memory_footprint(presets.memorizing(dtype=dtype))
  models = [(f"MELODI {size}", presets.melodi(size, n, dtype=dtype))
            for n in (12, 13) for size in ("S64+L32", "S128+L64", "S192+L96")]
  models += [("MELODI S192+L32", presets.melodi("S192+L32", 13, dtype=dtype)),
             ("Memorizing 64K", presets.memorizing(dtype=dtype)),
             ("Transformer-XL", presets.transformer_xl(12, dtype=dtype)),
             ("Transformer-XL", presets.transformer_xl(13, dtype=dtype))]
  rows = []
  for name, cfg in models:
    fp = memory_footprint(cfg)
    long_term = getattr(cfg, "long_term_memory_size", 0) or getattr(
        cfg, "memory_size", 0)
    rows.append(Row(name, cfg.num_layers, long_term, fp,
                    reference.floats / fp.floats,
                    reference.floats_as_kv / fp.floats_as_kv))
  return rows


_COLUMNS = ("model", "layers", "L or C", "tokens kept", "floats stored",
            "floats as K+V", "bytes", "MT64K / this", "MT64K / this (K+V)")


def format_table(rows: list[Row]) -> str:
  """A Markdown table of `rows`, numbers with thousands separators."""
  lines = ["| " + " | ".join(_COLUMNS) + " |",
           "|" + "---|" * len(_COLUMNS)]
  for r in rows:
    cells = (r.model, r.layers, f"{r.long_term:,}", f"{r.footprint.tokens:,}",
             f"{r.footprint.floats:,}", f"{r.footprint.floats_as_kv:,}",
             f"{r.footprint.bytes:,}", f"{r.ratio:.2f}", f"{r.ratio_kv:.2f}")
    lines.append("| " + " | ".join(str(c) for c in cells) + " |")
  return "\n".join(lines)
