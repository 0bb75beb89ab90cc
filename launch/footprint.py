"""Prints the memory MELODI and its baselines carry between segments.

Glossary: T segment (4096), W window (512), E width (1024), C KV memory
slots (65536); counts per batch row and one mode (melodi_hk/README.md §12.4).
The last two columns divide the 64K Memorizing Transformer's numbers by
each row's, which is where the paper's "8x less memory" can be read off.

Usage (from the repository root):
  python -m launch.footprint [--dtype=float32]
"""

from typing import NamedTuple

from absl import app
from absl import flags

import melodi_hk
from melodi_hk import presets

_DTYPE = flags.DEFINE_enum("dtype", "bfloat16", ["bfloat16", "float32"],
                           "Compute dtype of the stored memories (bytes).")


class Row(NamedTuple):
  model: str  # e.g. "MELODI S128+L64".
  layers: int  # Ordinary layers (the memory layer is extra).
  long_term: int  # L of MELODI's long-term layer; C of the KV memory.
  footprint: melodi_hk.Footprint
  ratio: float  # Memorizing-64K floats / these floats (as stored).
  ratio_kv: float  # The same with both counted as keys + values.


def paper_table(dtype: str = "bfloat16") -> list[Row]:
  """MELODI (12 and 13 layers) vs the baselines: melodi_hk/README.md §12.4."""
  mt64k = presets.memorizing(dtype=dtype)
  reference = melodi_hk.memory_footprint(mt64k)
  models = [(f"MELODI {size}", presets.melodi(size, n, dtype=dtype))
            for n in (12, 13) for size in ("S64+L32", "S128+L64", "S192+L96")]
  models.append(("MELODI S192+L32", presets.melodi("S192+L32", 13,
                                                   dtype=dtype)))
  rows = [(name, cfg, cfg.long_term_memory_size) for name, cfg in models]
  rows.append(("Memorizing 64K", mt64k, mt64k.memory_size))
  rows += [("Transformer-XL", presets.transformer_xl(n, dtype=dtype), 0)
           for n in (12, 13)]
  table = []
  for name, cfg, long_term in rows:
    fp = melodi_hk.memory_footprint(cfg)
    table.append(Row(name, cfg.num_layers, long_term, fp,
                     reference.floats / fp.floats,
                     reference.floats_as_kv / fp.floats_as_kv))
  return table


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


def main(argv):
  del argv  # Unused.
  print(format_table(paper_table(_DTYPE.value)))


if __name__ == "__main__":
  app.run(main)
