r"""Scores a checkpoint over every document of a split.

Shape letters (launch/__init__.py): R `config.eval_batch_size` rows
streaming documents over A local devices; T `config.model.segment_length`.

After the tiny training run of launch/train.py:

  python -m launch.eval --workdir=/tmp/melodi_tiny

Each document is read once from its start, memory carried across its
segments. Prints nats per predicted token and perplexity (exp of it,
token-weighted over the split) and writes them with the counts, the loss by
position in the document (log-spaced buckets) and, on synthetic corpora,
the scores of recalled vs first-stated values and exact match by gap to a
JSON file (default <workdir>/eval_<split>_<step>.json), the scalars to
TensorBoard (<workdir>/tensorboard, "eval_<split>/...") and loss vs
position to a PNG next to the JSON. `--memory_modes=carried,reset_segment,
reset_long` also scores the checkpoint with memory reset every segment /
only the long-term memory reset (MELODI) and reports the memory gain.

The run's own config (<workdir>/config.json, training overrides included)
is used unless --config is given. A --config may change data fields, e.g.
`--config=launch/configs/passkey.py
--config.data.synthetic.min_recall_gap=400` scores a passkey model at
another gap; the changed fields are logged, recorded in the JSON
(`data_changes`) and tag its default name and TensorBoard scalars
(eval_<split>_data-<hash>_<step>.json, "eval_<split>_data-<hash>/..."), so
a score on other data never overwrites or joins the run's own.
"""

import json
import os
import sys

from absl import app
from absl import flags
from absl import logging
from etils import epath
from ml_collections import config_flags

from launch import eval_lib
from launch import metrics
from launch import plots

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "A launch/configs/*.py file to score with instead of "
    "the run's <workdir>/config.json (e.g. to change data fields).",
    lock_config=True)
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Workdir of the training run.", required=True)
_SPLIT = flags.DEFINE_string(
    "split", None, "Split to score; default config.data.eval_split.")
_STEP = flags.DEFINE_integer(
    "step", None, "Checkpoint step; default the latest.")
_OUTPUT = flags.DEFINE_string(
    "output", None, "JSON file; default <workdir>/eval_<split>_<step>.json "
    "(eval_<split>_data-<hash>_<step>.json when --config changes data).")
_MEMORY_MODES = flags.DEFINE_list(
    "memory_modes", ["carried"], "Memory modes to score, the first is the "
    f"reference for memory_gain; of {eval_lib.MEMORY_MODES}.")
_MAX_BATCHES = flags.DEFINE_integer(
    "max_batches", None, "Score only the first batches of the split.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}.")
  metrics.quiet_library_logs()
  workdir = _WORKDIR.value
  try:
    result, name = eval_lib.evaluate_run(
        workdir, _CONFIG.value, _SPLIT.value, _STEP.value,
        memory_modes=tuple(_MEMORY_MODES.value),
        max_batches=_MAX_BATCHES.value)
  except ValueError as error:  # Bad config or workdir: one line, no trace.
    logging.error("%s", error)
    sys.exit(1)
  output = _OUTPUT.value or os.path.join(
      workdir, f"eval_{name}_{result['step']}.json")
  epath.Path(output).write_text(json.dumps(result, indent=2))
  metrics.write_scalars(os.path.join(workdir, "tensorboard"),
                        result["step"], eval_lib.scalars(result, name))
  plots.loss_by_position({workdir: result},
                         os.path.splitext(output)[0] + "_position.png")
  logging.info(
      "%s split %r at step %d: %.4f nats/token, perplexity %.3f over %d "
      "documents (%d predicted tokens); wrote %s", result["corpus"],
      result["split"], result["step"], result["nats_per_token"],
      result["perplexity"], result["documents"], result["predicted_tokens"],
      output)


if __name__ == "__main__":
  app.run(main)
