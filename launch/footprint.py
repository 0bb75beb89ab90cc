"""Prints the memory MELODI and its baselines carry between segments.

Glossary: T segment (4096), W window (512), E width (1024), C KV memory
slots (65536); counts are per batch row and one mode, as in spec §12.5.
The last two columns divide the 64K Memorizing Transformer's numbers by
each row's, which is where the paper's "8x less memory" can be read off.

Usage (from the repository root):
  python -m launch.footprint [--dtype=float32]
"""

from absl import app
from absl import flags

from melodi_hk import footprint

_DTYPE = flags.DEFINE_enum("dtype", "bfloat16", ["bfloat16", "float32"],
                           "Compute dtype of the stored memories (bytes).")


def main(argv):
  del argv  # Unused.
  print(footprint.format_table(footprint.paper_table(_DTYPE.value)))


if __name__ == "__main__":
  app.run(main)
