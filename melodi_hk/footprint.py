"""What each model carries between segments (melodi_hk/README.md §12.4).

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
and is not counted. `registry.memory_footprint(cfg)` picks the function of
`cfg`'s type; `launch/footprint.py` prints the paper-scale table.
"""

from typing import NamedTuple

import jax.numpy as jnp

from melodi_hk import config as config_lib


class Footprint(NamedTuple):
  tokens: int  # Token slots kept between segments.
  floats: int  # Numbers stored, as this implementation stores them.
  floats_as_kv: int  # Numbers if every slot were kept as a key and a value.
  # Bytes of `init_memory(1)`: the floats in the compute dtype, plus 4 for
  # the Memorizing Transformer's int32 write index.
  bytes: int


def _kv_width(cfg) -> int:
  return 2 * cfg.num_heads * cfg.head_dim  # a key plus a value


def _footprint(cfg, tokens: int, floats: int, extra_bytes: int = 0):
  itemsize = jnp.dtype(cfg.dtype).itemsize
  return Footprint(tokens, floats, tokens * _kv_width(cfg),
                   floats * itemsize + extra_bytes)


def melodi(cfg: config_lib.MelodiConfig) -> Footprint:
  """Embeddings: M per layer and L per long-term layer."""
  tokens = (cfg.num_layers * cfg.short_term_memory_size +
            len(cfg.long_term_layers) * cfg.long_term_memory_size)
  return _footprint(cfg, tokens, tokens * cfg.embed_dim)


def transformer_xl(cfg: config_lib.TransformerXLConfig) -> Footprint:
  """Keys and values of the last window in every layer (none without cache)."""
  tokens = cfg.num_layers * cfg.window_length if cfg.xl_cache else 0
  return _footprint(cfg, tokens, tokens * _kv_width(cfg))


def memorizing(cfg: config_lib.MemorizingConfig) -> Footprint:
  """The XL caches, the C key/value slots and the int32 write index."""
  tokens = cfg.num_layers * cfg.window_length + cfg.memory_size
  return _footprint(cfg, tokens, tokens * _kv_width(cfg),
                    jnp.dtype(jnp.int32).itemsize)
