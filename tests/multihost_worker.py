"""One process of tests/multihost_test.py: trains the small test run.

Shape letters (launch/__init__.py): B = 8 global rows, N processes (hosts),
A CPU devices per process, R = B / N rows per process, T = 32 tokens.

  python -m tests.multihost_worker --process_id=0 --num_processes=2 \
      --devices=2 --port=12345 --workdir=/tmp/run --output=/tmp/0.json

With --num_processes > 1 it joins a `jax.distributed` job on a localhost
coordinator, with gloo CPU collectives, exactly as a pod host would (minus
TPU). --sigterm_at sends this process SIGTERM after that step (only on
process 0: the other hosts must stop at the same step by agreement).
--as_hosts=2 in a single process reads the batch rows of 2 hosts side by
side, so one process sees the same global batch as a 2-process job. Writes
{"losses": {step: nats}, "exit": ...} to --output, and exits with
trainer.EXIT_PREEMPTED when preempted, as launch/train.py does.
"""

import argparse
import json
import os
import signal
import sys

import numpy as np


def _parse(argv):
  parser = argparse.ArgumentParser()
  for name, default in [("process_id", 0), ("num_processes", 1),
                        ("devices", 2), ("port", 0), ("num_steps", 6),
                        ("sigterm_at", 0), ("as_hosts", 1)]:
    parser.add_argument(f"--{name}", type=int, default=default)
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--output", required=True)
  return parser.parse_args(argv)


class SideBySide:
  """The streams of `hosts` hosts as one: host h's rows after host h-1's."""

  def __init__(self, streams):
    self._streams = streams

  def __iter__(self):
    return self

  def __next__(self):
    batches = [next(stream) for stream in self._streams]
    return {key: np.concatenate([b[key] for b in batches])
            for key in batches[0]}

  def get_state(self):
    return {"hosts": [stream.get_state() for stream in self._streams]}

  def set_state(self, state):
    for stream, part in zip(self._streams, state["hosts"]):
      stream.set_state(part)


def main(argv):
  args = _parse(argv)
  os.environ["XLA_FLAGS"] = (
      f"--xla_force_host_platform_device_count={args.devices}")
  import jax  # pylint: disable=g-import-not-at-top
  jax.config.update("jax_default_matmul_precision", "highest")
  if args.num_processes > 1:
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=f"localhost:{args.port}",
        num_processes=args.num_processes, process_id=args.process_id)
  # pylint: disable=g-import-not-at-top
  from data import pipeline
  from data import sources
  from launch import experiment
  from launch import metrics
  from launch import trainer
  from tests import launch_testing
  # pylint: enable=g-import-not-at-top
  pipeline.open_corpus = lambda corpus, split, **_: (
      sources.InMemoryDocuments(
          launch_testing.documents(split)))
  if args.as_hosts > 1:
    make_stream = experiment.make_stream

    def side_by_side(config, split, *, rows, devices, **kwargs):
      del devices, kwargs  # One process stands in for as_hosts hosts.
      return SideBySide([
          make_stream(config, split, rows=rows // args.as_hosts, devices=1,
                      process_index=h, process_count=args.as_hosts,
                      training=True) for h in range(args.as_hosts)])

    experiment.make_stream = side_by_side
  if args.sigterm_at and args.process_id == 0:
    add = metrics.Reporter.add

    def add_and_signal(self, step, step_metrics):
      add(self, step, step_metrics)
      if step == args.sigterm_at:
        os.kill(os.getpid(), signal.SIGTERM)

    metrics.Reporter.add = add_and_signal
  config = launch_testing.small_config(dropout=0.0)
  config.checkpoint_every = 2
  config.num_steps = args.num_steps
  try:
    losses, code = trainer.train(
        config, args.workdir, process_index=jax.process_index(),
        process_count=jax.process_count()), 0
  except trainer.Preempted as stopped:
    losses, code = stopped.losses, trainer.EXIT_PREEMPTED
  with open(args.output, "w") as file:
    json.dump({"losses": losses, "exit": code}, file)
  sys.exit(code)


if __name__ == "__main__":
  main(sys.argv[1:])
