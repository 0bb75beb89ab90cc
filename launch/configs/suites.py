"""Named comparison suites for launch/compare.py: rows of configs, one budget.

Glossary of shapes:
- B: batch rows.  T: segment length.  W: window length.  E: width.
- M: short-term memory.  S: summary.  L: long-term memory.  I: increment.
- C: Memorizing memory slots.

Every suite trains the paper's six contenders on one corpus with the same
tokens per step (B x T) and steps:

  windowed           Transformer without cache, T = W (4x the rows)
  transformer_xl     sliding window, reach = layers x W
  melodi_short       M = S = 16, no long-term memory
  melodi_long        M = 1 (the reference needs M >= 1), S = 16, L + I
  melodi_short_long  M = S = 16 and L + I in the last layer
  memorizing         XL layers + a dense KV memory of C = (L / I) x W slots,
                     the span MELODI's long memory covers

Suites: "smoke" (seconds per model, for CI; a 2-step warm-up at gap 24
exercises the curriculum); "cpu" (passkey at gap 160, digits-only loss,
2,000 steps; 38 minutes on a shared 2-core machine; from scratch every model
stays at chance); "curriculum" (the cpu suite with a warm-up: gap 24 for
the first 1,000 steps, then gap 160, in one run with one learning-rate
schedule; see README "The paper's comparisons at small scale"); "kjv" (the
King James Bible, whole books held out and scored to their end, same
models and budget as "cpu").
"""

import ml_collections

from launch.configs import common

ROWS = ("windowed", "transformer_xl", "melodi_short", "melodi_long",
        "melodi_short_long", "memorizing")


def model_fields(row: str, *, width: int = 64, window: int = 64,
                 segment: int = 256, long_memory: int = 128,
                 increment: int = 16, short: int = 16) -> tuple[str, dict]:
  """(config.model_name, config.model fields) of one row."""
  shared = dict(vocab_size=260, num_layers=2, embed_dim=width, num_heads=2,
                head_dim=width // 2, mlp_dim=4 * width, window_length=window,
                segment_length=segment, dropout_rate=0.0,
                attention_dropout_rate=0.0, dtype="float32")
  melodi = dict(shared, short_term_memory_size=short, summary_size=short)
  long = dict(long_term_layers=(1,), long_term_memory_size=long_memory,
              long_term_memory_increment=increment)
  span = long_memory // increment * window  # Tokens the long memory covers.
  rows = {
      "windowed": ("transformer_xl",
                   dict(shared, segment_length=window, xl_cache=False)),
      "transformer_xl": ("transformer_xl", shared),
      "melodi_short": ("melodi", melodi),
      "melodi_long": ("melodi", dict(melodi, short_term_memory_size=1,
                                     **long)),
      "melodi_short_long": ("melodi", dict(melodi, **long)),
      "memorizing": ("memorizing", dict(
          shared, memory_layer=0,
          memory_size=max(1, span // segment) * segment)),
  }
  if row not in rows:
    raise ValueError(f"Unknown row {row!r}; use one of {ROWS}.")
  return rows[row]


def _row_config(row: str, base: ml_collections.ConfigDict, rows_per_step: int,
                **sizes) -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict(base.to_dict())
  config.model_name, fields = model_fields(row, **sizes)
  config.model = common.model_from(config.model_name, fields)
  segment = sizes.get("segment", 256)
  # Equal tokens per step: rows x T is the same for every model.
  config.batch_size = rows_per_step * segment // fields["segment_length"]
  return config


def _base(num_steps: int, eval_every: int, log_every: int
          ) -> ml_collections.ConfigDict:
  config = common.base_config()
  config.num_steps = num_steps
  config.optimizer.warmup_steps = max(1, num_steps // 30)
  config.log_every = log_every
  config.checkpoint_every = max(log_every, num_steps // 6)
  config.eval_every = eval_every
  config.eval_batches = 4
  config.eval_batch_size = 16
  return config


def _passkey(config, document_chars, low, high, filler="words",
             loss_on="all"):
  config.data.synthetic.update(dict(
      task="passkey", document_chars=document_chars, min_recall_gap=low,
      max_recall_gap=high, value_length=3, filler=filler, loss_on=loss_on))


def _warm_up(config, steps: int, gap: int) -> None:
  """Steps [0, steps) train on passkey gap `gap`, then on the suite's task."""
  config.data.curriculum.steps = steps
  config.data.curriculum.synthetic.min_recall_gap = gap
  config.data.curriculum.synthetic.max_recall_gap = gap


def get_suite(name: str) -> dict:
  """{"rows": {row: config}, "max_eval_batches": int | None}."""
  if name == "smoke":
    base = _base(num_steps=3, eval_every=3, log_every=1)
    _passkey(base, 256, 24, 60, loss_on="values")
    _warm_up(base, 2, 24)
    base.eval_batch_size = 8
    sizes = dict(width=32, window=16, segment=32, long_memory=16, increment=8,
                 short=8)
    rows = {r: _row_config(r, base, 8, **sizes) for r in ROWS}
    return dict(rows=rows, max_eval_batches=3)
  if name in ("cpu", "curriculum", "kjv"):
    base = _base(num_steps=2000, eval_every=250, log_every=100)
    if name in ("cpu", "curriculum"):
      # One gap, 160: beyond Transformer-XL's reach (2 x 64), inside a
      # segment (256). Trained on the value digits only. Looser tasks gave
      # no model any recall in 2,000 steps: gaps 40-400 with every target
      # trained (word or dot filler), or with digits only (Transformer-XL
      # stayed at ln 10 nats per digit even on the in-window gaps).
      _passkey(base, 2048, 160, 160, filler="dots", loss_on="values")
    if name == "curriculum":
      # Gap 24 puts about 60% of the recalls' sources in their own window,
      # a copy small models learn; a memory that reaches 160 may then carry
      # the skill across windows.
      _warm_up(base, 1000, 24)
    if name == "kjv":
      base.data.corpus = "local:kjv"
    rows = {r: _row_config(r, base, 8) for r in ROWS}
    return dict(rows=rows, max_eval_batches=None)  # Whole held-out books.
  raise ValueError(f"Unknown suite {name!r}; use smoke, cpu, curriculum or "
                   "kjv.")
