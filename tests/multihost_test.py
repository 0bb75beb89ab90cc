"""Two real processes train, get preempted, resume and match one process.

Shape letters (launch/__init__.py): B = 8 global rows over N = 2 hosts
(processes) x A = 2 CPU devices each; T = 32 tokens; the small run of
tests/launch_testing.py, dropout 0.

Each process is tests/multihost_worker.py in a `jax.distributed` job on a
localhost coordinator with gloo collectives, the path a TPU pod slice
takes. Process 0 alone gets SIGTERM after step 3: both must save step 3
(each host its rows, in checkpoints/host_<i>/) and exit 75, then resume to
step 6. Their losses must equal those of one process with 4 devices that
reads the same global batch; eval must read the result.
"""

import json
import os
import pathlib
import socket
import subprocess
import sys
import tempfile

from absl.testing import absltest
import numpy as np

from launch import checkpoints
from launch import eval_lib
from launch import trainer
from tests import launch_testing

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_TIMEOUT_S = 600  # A hung collective must fail the test, not CI.


def _free_port() -> int:
  with socket.socket() as sock:
    sock.bind(("localhost", 0))
    return sock.getsockname()[1]


def _run(tmp_path, name, workdir, processes, *flags):
  """Starts `processes` workers; returns [(exit code, losses)] per process."""
  port, started = _free_port(), []
  for index in range(processes):
    output = tmp_path / f"{name}_{index}.json"
    log = open(tmp_path / f"{name}_{index}.log", "w")  # pylint: disable=R1732
    command = [sys.executable, "-m", "tests.multihost_worker",
               f"--process_id={index}", f"--num_processes={processes}",
               f"--port={port}", f"--workdir={workdir}", f"--output={output}",
               *flags]
    started.append((subprocess.Popen(command, cwd=_ROOT, stdout=log,
                                     stderr=subprocess.STDOUT), output, log))
  results = []
  try:
    for process, output, log in started:
      code = process.wait(timeout=_TIMEOUT_S)
      log.close()
      losses = (json.loads(output.read_text())["losses"]
                if output.exists() else None)
      results.append((code, losses))
  finally:
    for process, _, _ in started:
      if process.poll() is None:
        process.kill()
  for index, (code, losses) in enumerate(results):
    if losses is None:
      log = (tmp_path / f"{name}_{index}.log").read_text()
      raise AssertionError(
          f"{name} process {index} exited {code}:\n{log[-3000:]}")
  return [(code, {int(k): v for k, v in losses.items()})
          for code, losses in results]


class MultihostTest(absltest.TestCase):

  def test_two_processes_preempted_and_resumed_match_one(self):
    tmp_path = pathlib.Path(self.enter_context(tempfile.TemporaryDirectory()))
    reference = _run(tmp_path, "reference", tmp_path / "one", 1,
                     "--devices=4", "--as_hosts=2")
    self.assertEqual(reference[0][0], 0)
    expected = reference[0][1]
    self.assertEqual(sorted(expected), [1, 2, 3, 4, 5, 6])

    workdir = tmp_path / "two"
    first = _run(tmp_path, "first", workdir, 2, "--devices=2",
                 "--sigterm_at=3")
    self.assertEqual([code for code, _ in first],
                     [trainer.EXIT_PREEMPTED] * 2)
    for host in range(2):
      ckpt = checkpoints.Checkpointer(str(workdir), read_only=True,
                                      process_index=host, process_count=2)
      self.assertEqual(ckpt.all_steps(), [2, 3])  # Both saved the agreed one.
      ckpt.close()
    second = _run(tmp_path, "second", workdir, 2, "--devices=2")
    self.assertEqual([code for code, _ in second], [0, 0])
    for (_, before), (_, after) in zip(first, second):
      self.assertEqual(sorted(before), [1, 2, 3])
      self.assertEqual(sorted(after), [4, 5, 6])
      merged = {**before, **after}
      self.assertEqual(sorted(merged), sorted(expected))
      np.testing.assert_allclose([merged[k] for k in sorted(expected)],
                                 [expected[k] for k in sorted(expected)],
                                 rtol=1e-5)

    self.enter_context(launch_testing.small_corpus())
    config = launch_testing.small_config(dropout=0.0)
    result = eval_lib.evaluate(config, str(workdir), "validation")
    alone = eval_lib.evaluate(config, str(tmp_path / "one"), "validation")
    self.assertEqual(result["step"], 6)
    self.assertEqual(alone["step"], 6)
    self.assertEqual(result["predicted_tokens"], alone["predicted_tokens"])
    np.testing.assert_allclose(result["total_nats"], alone["total_nats"],
                               rtol=1e-5)


if __name__ == "__main__":
  absltest.main()
