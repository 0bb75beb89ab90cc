r"""Reports a checkpoint's perplexity over every document of a split.

Glossary of shapes:
- R: `config.eval_batch_size` rows streaming documents.  D: local devices.
- T: `config.model.segment_length`.

After the tiny training run of launch/train.py:

  python -m launch.eval --config=launch/configs/tiny.py \
      --workdir=/tmp/melodi_tiny

Each document is read once from its start, memory carried across its
segments. Prints nats per predicted token and perplexity (exp of it,
token-weighted over the split) and writes them with the counts to a JSON
file (default <workdir>/eval_<split>_<step>.json). Use the config the run
was trained with (it is in <workdir>/config.json).
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


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}.")
  metrics.quiet_orbax_logs()
  config = _CONFIG.value
  split = _SPLIT.value or config.data.eval_split
  result = eval_lib.evaluate(config, _WORKDIR.value, split, _STEP.value)
  output = _OUTPUT.value or os.path.join(
      _WORKDIR.value, f"eval_{split}_{result['step']}.json")
  epath.Path(output).write_text(json.dumps(result, indent=2))
  logging.info(
      "%s split %r at step %d: %.4f nats/token, perplexity %.3f over %d "
      "documents (%d predicted tokens); wrote %s", config.data.corpus, split,
      result["step"], result["nats_per_token"], result["perplexity"],
      result["documents"], result["predicted_tokens"], output)


if __name__ == "__main__":
  flags.mark_flag_as_required("config")
  app.run(main)
