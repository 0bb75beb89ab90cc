"""Which device a batch row lives on: the one placement rule.

Glossary of shapes:
- R: batch rows of this host.
- A: local devices (launch/__init__.py's letters); each gets R / A rows.

Row r of a host always lands on device r // (R / A), for its batch
(`shard_for_pmap`) and for its memory (launch/state.py), so a row's memory
stays on the device that reads the row. This module needs numpy alone, so
the training step (launch/state.py) places rows without importing the data
pipeline and its TFDS / SentencePiece dependencies; `data.pipeline`
re-exports both functions.
"""

import numpy as np


def rows_to_devices(rows: np.ndarray, devices: int) -> np.ndarray:
  """[R, ...] -> [A, R / A, ...]: row r goes to device r // (R / A)."""
  count = len(rows)
  if count % devices:
    raise ValueError(f"{count} rows cannot be split over {devices} devices; "
                     f"use a multiple of {devices} rows.")
  return np.reshape(rows, (devices, count // devices) + np.shape(rows)[1:])


def shard_for_pmap(batch: dict[str, np.ndarray],
                   devices: int) -> dict[str, np.ndarray]:
  """Every [R, ...] array to [A, R / A, ...] by `rows_to_devices`."""
  return {key: rows_to_devices(value, devices)
          for key, value in batch.items()}
