"""Named configurations of the MELODI paper's models, ablations and baselines.

Glossary of shapes and sizes:
- T: segment length (4096).  W: window length (512).  E: width (1024).
- H x D: heads x head dim (8 x 128).  F: MLP hidden dim (4096).
- "S<s>+L<l>": s short-term tokens per layer (`short_term_memory_size =
  summary_size = s`) and l long-term tokens added per window
  (`long_term_memory_increment = l`), with a long-term memory of 128
  windows (`long_term_memory_size = 128 * l`), melodi_hk/README.md §1.
- C: Memorizing Transformer memory slots (64K).

Every function returns a frozen config; keyword overrides replace any
field (e.g. `dtype="float32"`). `melodi_hk.tiny(cfg)` shrinks any of them to
a CPU-sized model of the same structure for tests, from the pieces at the
end of this module. Sizes the reference cannot
run raise MelodiConfig's ValueErrors (e.g. "S0": no short-term memory).
"""

import re
from typing import Callable

from melodi_hk import config as config_lib

# Paper scale: base_melodi.gin / base_memory2.gin widths; vocabulary of the
# pg19_tokens_t5 task (T5 SentencePiece).
PAPER = dict(vocab_size=32128, embed_dim=1024, num_heads=8, head_dim=128,
             mlp_dim=4096, window_length=512, segment_length=4096)
HISTORY_WINDOWS = 128  # Windows of history held by the long-term memory.
_TINY = dict(vocab_size=64, embed_dim=32, num_heads=2, head_dim=16,
             mlp_dim=64, window_length=16, num_layers=3, dtype="float32")


def parse_size(size: str) -> tuple[int, int]:
  """"S128+L64" -> (128, 64); "S128" -> (128, 0) (no long-term memory)."""
  match = re.fullmatch(r"S(\d+)(?:\+L(\d+))?", size)
  if not match:
    raise ValueError(f"size={size!r} is not of the form 'S<short>+L<long>' "
                     "or 'S<short>', e.g. 'S128+L64'.")
  return int(match.group(1)), int(match.group(2) or 0)


def melodi(size: str = "S128+L64", num_layers: int = 13,
           long_term_layer: int | None = None,
           **overrides) -> config_lib.MelodiConfig:
  """MELODI at paper scale.

  Args:
    size: "S<s>+L<l>" (see the module glossary) or "S<s>" for short-term
      memory only.
    num_layers: 12 or 13 in the paper.
    long_term_layer: 0-based layer holding the long-term memory; default
      the middle one, num_layers // 2 (base_melodi.gin's 6 of 12).
    **overrides: any MelodiConfig field.
  """
  short, long = parse_size(size)
  fields = dict(PAPER, num_layers=num_layers, short_term_memory_size=short,
                summary_size=short)
  if long:
    layer = num_layers // 2 if long_term_layer is None else long_term_layer
    fields.update(long_term_layers=(layer,),
                  long_term_memory_size=HISTORY_WINDOWS * long,
                  long_term_memory_increment=long)
  elif long_term_layer is not None:
    raise ValueError(f"long_term_layer={long_term_layer} but size={size!r} "
                     "has no long-term memory; use e.g. 'S128+L64'.")
  return config_lib.MelodiConfig(**dict(fields, **overrides))


def short_term_only(short: int = 128, num_layers: int = 13,
                    **overrides) -> config_lib.MelodiConfig:
  """Ablation: every layer keeps `short` tokens, no long-term layer."""
  return melodi(f"S{short}", num_layers, **overrides)


def memorizing(memory_size: int = 65536, num_layers: int = 12,
               memory_layer: int = 6,
               **overrides) -> config_lib.MemorizingConfig:
  """Memorizing Transformer (dense, 64K slots): base_memory2.gin +
  memory2/mem_densekv_64k.gin."""
  return config_lib.MemorizingConfig(**dict(
      PAPER, num_layers=num_layers, memory_layer=memory_layer,
      memory_size=memory_size, **overrides))


def transformer_xl(num_layers: int = 12,
                   **overrides) -> config_lib.TransformerXLConfig:
  """Transformer-XL with a 512-token sliding window, T = 4096."""
  return config_lib.TransformerXLConfig(
      **dict(PAPER, num_layers=num_layers, **overrides))


def windowed_transformer(num_layers: int = 12,
                         **overrides) -> config_lib.TransformerXLConfig:
  """No memory at all: T = W = 512 and no XL cache (seq_512_vanilla.gin),
  so each window attends only to its own earlier tokens."""
  fields = dict(PAPER, num_layers=num_layers, segment_length=512,
                xl_cache=False)
  return config_lib.TransformerXLConfig(**dict(fields, **overrides))


PRESETS: dict[str, Callable] = {
    "melodi_s64_l32": lambda: melodi("S64+L32"),
    "melodi_s128_l64": lambda: melodi("S128+L64"),
    "melodi_s192_l96": lambda: melodi("S192+L96"),
    "melodi_s192_l32": lambda: melodi("S192+L32"),
    "melodi_s128_l64_12_layers": lambda: melodi("S128+L64", num_layers=12),
    "melodi_short_term_only": short_term_only,
    "melodi_long_term_low": lambda: melodi("S128+L64", long_term_layer=3),
    "melodi_long_term_high": lambda: melodi("S128+L64", long_term_layer=9),
    "memorizing_64k": memorizing,
    "transformer_xl": transformer_xl,
    "transformer_xl_13_layers": lambda: transformer_xl(13),
    "windowed_transformer": windowed_transformer,
}


def tiny_fields(cfg) -> dict:
  """The fields every tiny config shares: 3 layers, E 32, W 16, float32.

  `registry.tiny(cfg)` (also `melodi_hk.tiny`) adds the memory sizes of
  `cfg`'s model type, below.
  """
  windows = min(cfg.windows_per_segment, 2)
  return dict(_TINY, segment_length=windows * _TINY["window_length"])


def _shrink(cfg, n: int) -> int:
  """A memory size scaled with the window (S128 -> 4 at W 16)."""
  return max(1, n * _TINY["window_length"] // cfg.window_length)


def _depth(cfg, layer: int) -> int:
  """`layer` moved to the same relative depth of the tiny stack."""
  return min(layer * _TINY["num_layers"] // cfg.num_layers,
             _TINY["num_layers"] - 1)


def tiny_melodi_memory(cfg: config_lib.MelodiConfig) -> dict:
  """M, S and I scaled with W; L keeps its number of windows of history."""
  increment = cfg.long_term_memory_increment and _shrink(
      cfg, cfg.long_term_memory_increment)
  return dict(
      short_term_memory_size=_shrink(cfg, cfg.short_term_memory_size),
      summary_size=_shrink(cfg, cfg.summary_size),
      long_term_layers=tuple(_depth(cfg, l) for l in cfg.long_term_layers),
      long_term_memory_increment=increment,
      long_term_memory_size=increment and increment * (
          cfg.long_term_memory_size // cfg.long_term_memory_increment))


def tiny_memorizing_memory(cfg: config_lib.MemorizingConfig) -> dict:
  """C keeps its number of segments; the memory layer its relative depth."""
  segments = cfg.memory_size // cfg.segment_length
  return dict(memory_layer=_depth(cfg, cfg.memory_layer),
              memory_size=segments * tiny_fields(cfg)["segment_length"])
