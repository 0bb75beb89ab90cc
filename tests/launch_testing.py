"""Shared set-up for the launch tests: a very small config and corpus.

Glossary of shapes:
- B = 8 rows (one per fake CPU device).  T = 32 tokens, windows of W = 16.

The corpus replaces `data.pipeline.open_corpus`, so tests read a dozen
short in-memory documents (1 to 6 segments each) instead of the 32 KB
synthetic ones, and every stream, resume and eval path stays the real one.
"""

import numpy as np

from data import pipeline
from data import sources
from launch.configs import tiny


def small_config(dropout: float = 0.05):
  """tiny.py shrunk to E 32, W 16, T 32, 2 layers; 8 rows, 6 steps."""
  config = tiny.get_config()
  config.model.update(dict(
      embed_dim=32, num_heads=2, head_dim=16, mlp_dim=64, window_length=16,
      segment_length=32, short_term_memory_size=8, summary_size=8,
      long_term_memory_size=16, long_term_memory_increment=4,
      dropout_rate=dropout, attention_dropout_rate=dropout))
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


def use_small_corpus(monkeypatch, count: int = 12) -> None:
  """Makes every corpus name read `documents(split, count)`."""
  monkeypatch.setattr(
      pipeline, "open_corpus", lambda corpus, split, **_:
      sources.InMemoryDocuments(documents(split, count)))
