"""Test helpers: read documents back out of stream batches, compare batches.

Glossary of shapes:
- R: batch rows.  T: segment length.

Like `tfds.testing`, this lives in the package so that the tests of this
project, and of projects using it, can check stream invariants.
"""

import tempfile

import numpy as np

from data import tokenizers


def read_documents(batches, tokenizer=tokenizers.ByteTokenizer()):
  """Per row, joins the segments between start flags.

  Returns [(doc_index, epoch, text)] for every document met, finished or not,
  in the order documents end.
  """
  rows = batches[0]["tokens"].shape[0]
  current, done = [None] * rows, []
  for batch in batches:
    for row in range(rows):
      if batch["start_of_sequence"][row] and current[row] is not None:
        done.append(current[row])
        current[row] = None
      if batch["doc_index"][row] < 0:
        continue
      if current[row] is None:
        current[row] = [batch["doc_index"][row], batch["epoch"][row], []]
      current[row][2].extend(batch["tokens"][row][batch["loss_mask"][row]])
  done += [c for c in current if c is not None]
  return [(int(d), int(e), tokenizer.decode(ids)) for d, e, ids in done]


def assert_batches_equal(expected, actual):
  """Same number of batches with identical arrays under every key."""
  assert len(expected) == len(actual), (len(expected), len(actual))
  for want, got in zip(expected, actual):
    for key in want:
      np.testing.assert_array_equal(want[key], got[key], err_msg=key)


def tempdir(test) -> str:
  """A fresh folder removed after `test`.

  absltest's create_tempdir needs parsed absl flags, which pytest lacks.
  """
  folder = tempfile.TemporaryDirectory()
  test.addCleanup(folder.cleanup)
  return folder.name
