"""Tests of launch/metrics.py's console filter for orbax's log lines."""

import logging as std_logging

from absl import logging
from absl.testing import absltest

from launch import metrics

_ORBAX = "/site-packages/orbax/checkpoint/checkpoint_manager.py"


def _record(pathname: str, level: int, msg: str) -> std_logging.LogRecord:
  return std_logging.LogRecord("absl", level, pathname, 1, msg, (), None)


class QuietOrbaxLogsTest(absltest.TestCase):

  def test_orbax_info_and_read_only_warning_are_dropped_others_kept(self):
    metrics.quiet_orbax_logs()
    shown = lambda *args: bool(logging.get_absl_logger().filter(
        _record(*args)))
    self.assertFalse(shown(_ORBAX, std_logging.INFO, "Saving item"))
    self.assertFalse(shown(_ORBAX, std_logging.WARNING,
                           "Given directory is read only=%s"))
    self.assertTrue(shown(_ORBAX, std_logging.WARNING, "Something broke"))
    self.assertTrue(shown("/work/launch/eval.py", std_logging.INFO,
                          "synthetic split 'validation'"))


if __name__ == "__main__":
  absltest.main()
