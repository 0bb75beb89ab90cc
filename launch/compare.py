r"""Trains a suite of models under one corpus and token budget, then compares.

Glossary of shapes:
- B: batch rows.  T: segment length (B x T tokens per step, every row).
- G: characters between two mentions of a value (passkey suites).

  python -m launch.compare --suite=cpu --workdir=/tmp/compare_cpu

trains every row of the suite (launch/configs/suites.py) one model at a
time in <workdir>/<row> with launch/train's loop (so a rerun resumes where
it stopped and skips finished rows), scores each final checkpoint on the
eval split with memory carried and reset every segment (MELODI with a long
memory also: long memory alone reset), and writes to <workdir>:

  comparison.md    the table: carried floats per row, step time, nats/token,
                   memory gain, first-stated vs recalled values, exact match
  comparison.json  every number, with each row's full eval result
  curves.png       training and held-out loss (and recall) vs step
  position.png     loss by position in the document, one line per row
  recall_gap.png   exact match of recalled values by gap (synthetic only)

Step time is the median over the run's log intervals after the first
(which holds the compilation), held-out eval time left out.
"""

import os

from absl import app
from absl import flags

from launch import compare_lib
from launch import metrics
from launch.configs import suites

_SUITE = flags.DEFINE_string("suite", None, "A suite of "
                             "launch/configs/suites.py: smoke, cpu, "
                             "curriculum or kjv.")
_WORKDIR = flags.DEFINE_string("workdir", None, "One subdirectory per row; "
                               "results at the top.")
_ROWS = flags.DEFINE_list("rows", None, "Only these rows, trained in this "
                          "order (default: all, in the suite's order).")
_DATA_DIR = flags.DEFINE_string("data_dir", None,
                                "config.data.data_dir (local corpora).")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}.")
  metrics.quiet_library_logs()
  suite = suites.get_suite(_SUITE.value)
  if _DATA_DIR.value:
    for config in suite["rows"].values():
      config.data.data_dir = _DATA_DIR.value
  os.makedirs(_WORKDIR.value, exist_ok=True)
  out = compare_lib.run_suite(suite, _WORKDIR.value, _ROWS.value)
  print(compare_lib.markdown_table(out["rows"]))


if __name__ == "__main__":
  flags.mark_flags_as_required(["suite", "workdir"])
  app.run(main)
