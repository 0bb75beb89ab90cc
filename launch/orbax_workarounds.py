"""Two narrow workarounds for orbax-checkpoint 0.12.8 (pinned).

Glossary: a "host" is one JAX process; "primary" is the process orbax lets
write a checkpoint's files.

- Per-host checkpoints: launch/checkpoints.py makes every host the primary
  of its own checkpoint of its own batch rows, but orbax's NumpyHandler
  writes numpy leaves only on process 0, so hosts 1.. saved empty states.
- Aborted reads: after tensorstore fails on a damaged file, orbax's other
  pending reads print dozens of "Event loop is closed" tracebacks.

Both are tested through launch/checkpoints.py (tests/multihost_test.py,
tests/launch_reliability_test.py); revisit them when orbax is upgraded.
"""

import contextlib
import sys

from orbax.checkpoint._src.serialization import type_handlers


class _EveryHostIsProcessZero:
  """orbax's multihost module, except that process_index() is 0."""

  def __init__(self, module):
    self._module = module

  def __getattr__(self, name):
    return getattr(self._module, name)

  @staticmethod
  def process_index() -> int:
    return 0


@contextlib.contextmanager
def numpy_written_by_every_host():
  """Lets every host's numpy leaves be written, not only process 0's.

  orbax 0.12.8's NumpyHandler writes numpy arrays only where
  `multihost.process_index() == 0`: right for one replicated copy, but
  here every host is the primary of its own checkpoint of its own rows,
  and hosts 1.. would otherwise save empty states. Only that check (and
  a log label) reads the name patched here, for the duration of a save.
  """
  original = type_handlers.multihost
  type_handlers.multihost = _EveryHostIsProcessZero(original)
  try:
    yield
  finally:
    type_handlers.multihost = original


def quiet_closed_event_loops() -> None:
  """Drops the 'Event loop is closed' errors of an aborted orbax read.

  When tensorstore fails to read a damaged file, orbax's other pending
  reads later call into their closed asyncio loop, at any time after the
  failure; Python would print each as a traceback, dozens burying the one
  message `restore` gives. Installed once, after such a failure, for the
  rest of the process; every other unraisable error still prints.
  """
  previous = sys.unraisablehook
  if getattr(previous, "quiets_closed_loops", False):
    return

  def hook(unraisable):
    if not (isinstance(unraisable.exc_value, RuntimeError) and
            "Event loop is closed" in str(unraisable.exc_value)):
      previous(unraisable)

  hook.quiets_closed_loops = True
  sys.unraisablehook = hook
