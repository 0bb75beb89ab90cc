r"""Scores a checkpoint over every document of a split.

Shape letters (launch/__init__.py): R `config.eval_batch_size` rows
streaming documents over A local devices; T `config.model.segment_length`.

After the tiny training run of launch/train.py:

  python -m launch.eval --config=launch/configs/tiny.py \
      --workdir=/tmp/melodi_tiny

Each document is read once from its start, memory carried across its
segments. Prints nats per predicted token and perplexity (exp of it,
token-weighted over the split) and writes them with the counts, the loss by
position in the document (log-spaced buckets) and, on synthetic corpora,
the scores of recalled vs first-stated values and exact match by gap to a
JSON file (default <workdir>/eval_<split>_<step>.json), the scalars to
TensorBoard (<workdir>/tensorboard, "eval_<split>/...") and loss vs
position to a PNG next to the JSON. `--memory_modes=carried,reset_segment,
reset_long` also scores the checkpoint with memory reset every segment /
only the long-term memory reset (MELODI) and reports the memory gain. Use
the config the run was trained with (it is in <workdir>/config.json); data
fields may differ, e.g. `--config.data.synthetic.min_recall_gap=400`
scores a passkey model at another gap.
"""

import json
import os

from absl import app
from absl import flags
from absl import logging
from etils import epath
from ml_collections import config_flags

from launch import eval_lib
from launch import metrics
from launch import plots

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "The launch/configs/*.py file the run was trained with.",
    lock_config=True)
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Workdir of the training run.", required=True)
_SPLIT = flags.DEFINE_string(
    "split", None, "Split to score; default config.data.eval_split.")
_STEP = flags.DEFINE_integer(
    "step", None, "Checkpoint step; default the latest.")
_OUTPUT = flags.DEFINE_string(
    "output", None, "JSON file; default <workdir>/eval_<split>_<step>.json.")
_MEMORY_MODES = flags.DEFINE_list(
    "memory_modes", ["carried"], "Memory modes to score, the first is the "
    f"reference for memory_gain; of {eval_lib.MEMORY_MODES}.")
_MAX_BATCHES = flags.DEFINE_integer(
    "max_batches", None, "Score only the first batches of the split.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}.")
  metrics.quiet_orbax_logs()
  config = _CONFIG.value
  split = _SPLIT.value or config.data.eval_split
  result = eval_lib.evaluate(config, _WORKDIR.value, split, _STEP.value,
                             memory_modes=tuple(_MEMORY_MODES.value),
                             max_batches=_MAX_BATCHES.value)
  output = _OUTPUT.value or os.path.join(
      _WORKDIR.value, f"eval_{split}_{result['step']}.json")
  epath.Path(output).write_text(json.dumps(result, indent=2))
  metrics.write_scalars(os.path.join(_WORKDIR.value, "tensorboard"),
                        result["step"], eval_lib.scalars(result, split))
  plots.loss_by_position({_WORKDIR.value: result},
                         os.path.splitext(output)[0] + "_position.png")
  logging.info(
      "%s split %r at step %d: %.4f nats/token, perplexity %.3f over %d "
      "documents (%d predicted tokens); wrote %s", config.data.corpus, split,
      result["step"], result["nats_per_token"], result["perplexity"],
      result["documents"], result["predicted_tokens"], output)


if __name__ == "__main__":
  flags.mark_flag_as_required("config")
  app.run(main)
