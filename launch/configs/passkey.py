r"""Small models on the passkey task: the memory ladder on 2 CPU cores.

  python -m launch.train --config=launch/configs/passkey.py:melodi_sl,200 \
      --workdir=/tmp/passkey_melodi_sl_200

The argument is "<model>,<gap>[,<filler>[,<loss_on>]]": model one of
MODELS, gap the characters between two mentions of the 3-digit pass key
("the pass key is 407. "), or "<low>-<high>" for gaps drawn uniformly
from that range, filler "words" (default) or "dots", loss_on "all"
(default) or "values" (train on the value digits only). Every model
has 2 layers of width 64 (heads 2 x 32), windows of W = 64 bytes and
segments of T = 256 (the windowed model: T = W and 4x the rows, so every
step reads the same 2,048 tokens). Transformer-XL reaches back
layers x W = 128 bytes; MELODI's long memory L = 128 tokens of I = 16 per
window covers 8 windows (512 bytes), as does the Memorizing model's C = 512
slots. The gap ladder: 40 (mostly inside one window: for the windowed
model and MELODI about a third of such recalls cross a window boundary),
100 (inside XL's reach), 400 (beyond it, inside the long memories' span,
but beyond the segment T = 256 that gradients cross: README shows no
model learns it this way). See README "The paper's comparisons at small
scale" for what each learns in the README's runs (1,000-2,000 steps; the
config's default is 3,000).

A warm-up task for the first steps of the same run (one learning-rate
schedule), e.g. gap 24 for 1,000 steps, then the gap of the argument:

  --config.data.curriculum.steps=1000 \
      --config.data.curriculum.synthetic.min_recall_gap=24
"""

import ml_collections

from launch.configs import common
from launch.configs import suites

# This file's model names -> the rows of launch/configs/suites.py.
_ROWS = dict(windowed="windowed", xl="transformer_xl", melodi_s="melodi_short",
             melodi_l="melodi_long", melodi_sl="melodi_short_long",
             memorizing="memorizing")
MODELS = tuple(_ROWS)


def model_fields(model: str) -> tuple[str, dict]:
  """(config.model_name, config.model fields) of one row of the ladder."""
  if model not in _ROWS:
    raise ValueError(f"Unknown model {model!r}; use one of {MODELS}.")
  return suites.model_fields(_ROWS[model])


def get_config(arg: str = "melodi_sl,400") -> ml_collections.ConfigDict:
  model, gap, *rest = arg.split(",")
  config = common.base_config()
  config.model_name, fields = model_fields(model)
  config.model = common.model_from(config.model_name, fields)
  low, _, high = gap.partition("-")
  config.data.synthetic.update(dict(
      task="passkey", document_chars=2048, min_recall_gap=int(low),
      max_recall_gap=int(high or 0), value_length=3,
      filler=rest[0] if rest else "words",
      loss_on=rest[1] if len(rest) > 1 else "all"))
  config.batch_size = 8 * 256 // fields["segment_length"]
  config.eval_batch_size = 16
  config.num_steps = 3000
  config.optimizer.warmup_steps = 100
  config.log_every = 100
  config.checkpoint_every = 500
  config.eval_every = 250
  config.eval_batches = 4
  return config
