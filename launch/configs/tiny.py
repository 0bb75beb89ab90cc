"""Tiny MELODI on the synthetic corpus: the few-minute CPU smoke run.

  python -m launch.train --config=launch/configs/tiny.py \
      --workdir=/tmp/melodi_tiny

Two layers of width 64 (0.12M parameters), windows of 32 bytes, segments of
128, 16+16 short-term memory and summary tokens per layer, a 64-token
long-term memory in layer 1; float32 on CPU; 8 rows. On a 2-core CPU it
compiles in ~20 s, then runs 30-60 steps/s (by the machine's load): 2000
steps in 1-2 minutes. The first logged loss, at step 200, is ~3.1
nats/token (ppl 22); at step 2000 it is ~1.06 (ppl ~2.9). Checkpoints go to
<workdir>/checkpoints every 500 steps, TensorBoard logs to
<workdir>/tensorboard; `python -m launch.eval --workdir=<workdir>` then
scores the 64 validation documents (~20 s).
"""

import ml_collections

from launch.configs import common


def get_config() -> ml_collections.ConfigDict:
  config = common.base_config()
  config.model = common.model_from("melodi", dict(
      vocab_size=260, num_layers=2, embed_dim=64, num_heads=2, head_dim=32,
      mlp_dim=256, window_length=32, segment_length=128,
      short_term_memory_size=16, summary_size=16, long_term_layers=(1,),
      long_term_memory_size=64, long_term_memory_increment=8,
      dropout_rate=0.05, attention_dropout_rate=0.05,
      dtype="float32"))  # bfloat16 is slow on CPUs.
  config.batch_size = 8
  config.eval_batch_size = 8
  config.num_steps = 2000
  config.optimizer.warmup_steps = 100  # The paper's 1000 are half the run.
  config.log_every = 200
  config.checkpoint_every = 500
  return config
