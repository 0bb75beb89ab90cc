r"""The paper's PG-19 MELODI models (melodi_hk/README.md §1), T5 tokens.

  python -m launch.train --config=launch/configs/melodi_pg19.py:s128_l64 \
      --workdir=gs://<bucket>/melodi_s128_l64 \
      --config.data.data_dir=gs://<bucket>/tfds \
      --config.data.vocab_path=gs://t5-data/vocabs/cc_all.32000/sentencepiece.model \
      --multihost

Variants (`:<name>` after the file): s64_l32 (base_melodi.gin), s192_l32,
s128_l64 (default), s192_l96; sNNN = short-term memory and summary tokens
per window and layer, lNN = long-term tokens added per window, with a
long-term memory of 128 windows (e.g. 8192 tokens for l64) in layer 6.
13 layers of width 1024 (8 x 128 heads, MLP 4096), windows of 512 tokens,
segments of 4096, bfloat16 compute, 32 rows (1 per core), 500k steps of
Adafactor. Prepare PG-19 first with `python -m data.prepare --corpus=pg19
--data_dir=gs://<bucket>/tfds` (the same folder as --config.data.data_dir).
The paper reports test perplexities of roughly 10-11 on PG-19 (T5 tokens)
for these sizes; expect days of training on a v4-32 (not run here; one
third-party summary of the paper gives 12 layers instead of 13).
"""

import melodi_hk
import ml_collections

from launch.configs import common

VARIANTS = ("s64_l32", "s192_l32", "s128_l64", "s192_l96")


def get_config(variant: str = "s128_l64") -> ml_collections.ConfigDict:
  if variant not in VARIANTS:
    raise ValueError(f"Unknown variant {variant!r}; use one of "
                     f"{', '.join(VARIANTS)} (e.g. melodi_pg19.py:s128_l64).")
  config = common.base_config()
  # One source for the paper's sizes: melodi_hk/presets.py.
  config.model = common.model_fields(
      melodi_hk.presets.PRESETS[f"melodi_{variant}"]())
  config.data.update(dict(corpus="pg19", tokenizer="t5"))
  # remat "none" does the least arithmetic, and one row of T = 4096 fits a
  # 16-32 GB accelerator without it (README, Performance); set
  # --config.model.remat=window for longer segments or smaller devices.
  # window_unroll stays 1: unrolling 8 windows of this size compiles as
  # slowly as meliad and needs more memory than it.
  config.model.remat = "none"
  return config
