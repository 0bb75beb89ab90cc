r"""Memorizing Transformer on PG-19 (melodi_hk/README.md §12.2), 64K memory.

  python -m launch.train --config=launch/configs/memorizing_pg19.py \
      --workdir=gs://<bucket>/memorizing_pg19 \
      --config.data.data_dir=gs://<bucket>/tfds \
      --config.data.vocab_path=gs://t5-data/vocabs/cc_all.32000/sentencepiece.model \
      --multihost

12 XL layers of width 1024 (8 x 128 heads, MLP 4096) plus a memory layer
after layer 6 attending densely over the last 65536 tokens' keys and
values (base_memory2.gin + mem_densekv_64k.gin); windows of 512, segments
of 4096, bfloat16, 32 rows, 500k Adafactor steps as MELODI. The paper's
headline comparison: MELODI matches it with ~8x less memory (not run here;
see launch/footprint.py). For a CPU smoke run shrink it as in
transformer_xl_pg19.py and add `--config.model.memory_layer=1
--config.model.memory_size=512`.
"""

import melodi_hk
import ml_collections

from launch.configs import common


def get_config() -> ml_collections.ConfigDict:
  config = common.base_config()
  config.model_name = "memorizing"
  config.model = common.model_fields(melodi_hk.presets.memorizing())
  config.data.update(dict(corpus="pg19", tokenizer="t5"))
  return config
