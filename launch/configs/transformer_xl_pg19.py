r"""Transformer-XL baseline on PG-19 (melodi_hk/README.md §12.1), T5 tokens.

  python -m launch.train --config=launch/configs/transformer_xl_pg19.py \
      --workdir=gs://<bucket>/txl_pg19 \
      --config.data.data_dir=gs://<bucket>/tfds \
      --config.data.vocab_path=gs://t5-data/vocabs/cc_all.32000/sentencepiece.model \
      --multihost

12 sliding-window XL layers of width 1024 (8 x 128 heads, MLP 4096), windows
of 512, segments of 4096, the previous window's keys and values cached
across segments; bfloat16, 32 rows, 500k Adafactor steps as MELODI. The
"lower baseline" of the paper's comparison (not run here). A CPU smoke run:
append `--config.model.num_layers=2 --config.model.embed_dim=64
--config.model.num_heads=2 --config.model.head_dim=32
--config.model.mlp_dim=256 --config.model.window_length=32
--config.model.segment_length=128 --config.model.vocab_size=260
--config.model.dtype=float32 --config.data.corpus=synthetic
--config.data.tokenizer=bytes --config.batch_size=8 --config.num_steps=200
--config.optimizer.warmup_steps=20`.
"""

import melodi_hk
import ml_collections

from launch.configs import common


def get_config() -> ml_collections.ConfigDict:
  config = common.base_config()
  config.model_name = "transformer_xl"
  config.model = common.model_fields(melodi_hk.presets.transformer_xl())
  config.data.update(dict(corpus="pg19", tokenizer="t5"))
  return config
