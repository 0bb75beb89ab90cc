r"""Trains a long-context LM (MELODI or a baseline) from a config file.

Shape letters (launch/__init__.py): B `config.batch_size` global rows, split
over the A local devices of each host; T `config.model.segment_length`
tokens per row and step.

Tiny MELODI on the offline synthetic corpus, on CPU, in a few minutes:

  python -m launch.train --config=launch/configs/tiny.py \
      --workdir=/tmp/melodi_tiny

Any config field can be overridden, e.g. `--config.model.num_layers=3`;
`--help` lists them all with their defaults. Rerunning the same command
continues from the latest checkpoint in --workdir (exactly as if never
interrupted); SIGTERM saves and stops with exit status 75 (EX_TEMPFAIL:
preempted, rerun to resume).
"""

import sys

from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

from launch import config_help
from launch import metrics
from launch import trainer

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "A launch/configs/*.py file; override fields with "
    "--config.<field>=<value>.", lock_config=True)
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Checkpoints, config.json and TensorBoard logs; "
    "training resumes from the latest checkpoint here.", required=True)
_MULTIHOST = flags.DEFINE_bool(
    "multihost", False, "Call jax.distributed.initialize() first (TPU pods, "
    "multi-host GPU); each host then feeds its own batch rows.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}.")
  metrics.quiet_library_logs()
  if _MULTIHOST.value:
    jax.distributed.initialize()
  try:
    trainer.train(_CONFIG.value, _WORKDIR.value,
                  process_index=jax.process_index(),
                  process_count=jax.process_count())
  except trainer.Preempted:
    sys.exit(trainer.EXIT_PREEMPTED)  # Logged by the trainer.
  # A bad config or workdir, or a diverged loss: one line, no trace.
  except (ValueError, FloatingPointError) as error:
    logging.error("%s", error)
    sys.exit(1)


def parse_flags(argv: list[str]) -> list[str]:
  """absl's parsing, plus the config fields in --help and misspelt fields."""
  try:
    return flags.FLAGS(argv)
  except SystemExit:  # --help printed absl's usage; add the config fields.
    if {"--help", "-h", "-?", "--helpshort"} & set(argv):
      print(config_help.describe(flags.FLAGS["config"].value))
      sys.exit(0)  # Help asked for is not a failure (absl exits 1).
    raise
  except (AttributeError, KeyError) as error:  # An unknown --config.<field>.
    config = flags.FLAGS["config"].value or config_help.load(argv)
    bad = config_help.unknown_fields(config, argv) if config else []
    valid = ", ".join(config_help.flat_fields(config)) if config else "?"
    sys.exit(f"Unknown config field(s) {bad or error}: the config file has "
             f"no such field. Valid fields: {valid}. See --help for each "
             "field's default and meaning.")


if __name__ == "__main__":
  flags.mark_flag_as_required("config")
  app.run(main, flags_parser=parse_flags)
