"""Shared set-up for the launch tests: a very small config and corpus.

Shape letters (launch/__init__.py): B = 8 rows (one per fake CPU device,
A = 8), T = 32 tokens, windows of W = 16.

The corpus replaces `data.pipeline.open_corpus`, so tests read a dozen
short in-memory documents (1 to 6 segments each) instead of the 32 KB
synthetic ones, and every stream, resume and eval path stays the real one.
"""

import dataclasses
from unittest import mock

import melodi_hk
import numpy as np

from data import pipeline
from data import sources
from launch import experiment
from launch.configs import common
from launch.configs import tiny


def small_config(dropout: float = 0.05):
  """launch/configs/tiny.py with its model shrunk by `melodi_hk.tiny`.

  E 32, W 16, T 32, M = S = 8, I 4 as `melodi_hk.tiny` makes them; kept
  from tiny.py: two layers (not three: a third of the compile time less)
  and the byte vocabulary (the run reads bytes); L 16, not 32: the launch
  tests' float tolerances (pmap vs one device) were set on it. 8 rows,
  6 steps.
  """
  config = tiny.get_config()
  model_cfg = experiment.model_config(config)
  config.model = common.model_fields(dataclasses.replace(
      melodi_hk.tiny(model_cfg), num_layers=model_cfg.num_layers,
      vocab_size=model_cfg.vocab_size, dropout_rate=dropout,
      attention_dropout_rate=dropout, long_term_memory_size=16))
  config.update(dict(batch_size=8, eval_batch_size=8, num_steps=6,
                     log_every=2, checkpoint_every=100))
  config.optimizer.warmup_steps = 0  # A real step from the first update.
  return config


def documents(split: str, count: int = 12) -> list[str]:
  """`count` lowercase documents of 10 to 190 characters, fixed per split."""
  rng = np.random.default_rng(["train", "validation"].index(split))
  letters = np.array(list("abcdefgh ."))
  return ["".join(rng.choice(letters, rng.integers(10, 190)))
          for _ in range(count)]


def small_corpus(count: int = 12):
  """A patch under which every corpus name reads `documents(split, count)`.

  Use as `self.enter_context(launch_testing.small_corpus())`.
  """
  return mock.patch.object(
      pipeline, "open_corpus", lambda corpus, split, **_:
      sources.InMemoryDocuments(documents(split, count)))
