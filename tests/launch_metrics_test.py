"""Tests of launch/metrics.py's console filter for library log lines."""

import logging as std_logging

from absl import logging
from absl.testing import absltest

from launch import metrics

_ORBAX = "/site-packages/orbax/checkpoint/checkpoint_manager.py"


def _record(pathname: str, level: int, msg: str) -> std_logging.LogRecord:
  return std_logging.LogRecord("absl", level, pathname, 1, msg, (), None)


class QuietLibraryLogsTest(absltest.TestCase):

  def test_library_noise_is_dropped_and_the_rest_kept(self):
    jax_bridge = std_logging.getLogger("jax._src.xla_bridge")
    jax_bridge.setLevel(std_logging.INFO)  # As absl's INFO verbosity shows.
    metrics.quiet_library_logs()
    shown = lambda *args: bool(logging.get_absl_logger().filter(
        _record(*args)))
    self.assertFalse(shown(_ORBAX, std_logging.INFO, "Saving item"))
    self.assertFalse(shown(_ORBAX, std_logging.WARNING,
                           "Given directory is read only=%s"))
    self.assertTrue(shown(_ORBAX, std_logging.WARNING, "Something broke"))
    self.assertTrue(shown("/work/launch/eval.py", std_logging.INFO,
                          "synthetic split 'validation'"))
    self.assertFalse(jax_bridge.isEnabledFor(std_logging.INFO))


if __name__ == "__main__":
  absltest.main()
