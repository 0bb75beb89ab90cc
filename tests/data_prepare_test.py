"""Tests for data/prepare.py: the CLI prepares a local corpus and C4(4K+)."""

from absl import flags
from absl.testing import absltest
from absl.testing import flagsaver
import numpy as np
import tensorflow_datasets as tfds

from data import c4_filter
from data import local_corpus
from data import prepare
from data import testing


def fake_c4(self, split, **kwargs):
  del self, split, kwargs
  return [{"text": b"x" * n, "url": b"u"} for n in (10, 5000, 4096, 4095)]


class PrepareTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    flags.FLAGS.mark_as_parsed()  # pytest does not run absl's flag parsing.
    self.data_dir = testing.tempdir(self)

  def test_local_corpus(self):
    source = testing.tempdir(self)
    for i in range(4):
      with open(f"{source}/doc{i}.txt", "w") as f:
        f.write(f"document {i}")
    with flagsaver.flagsaver(corpus="local", data_dir=self.data_dir,
                             source_dir=source, name="notes"):
      prepare.main([])
    documents = local_corpus.local_documents("notes", "train",
                                             data_dir=self.data_dir)
    self.assertLen(documents, 2)

  def test_c4_4k_index(self):
    with tfds.testing.mock_data(as_data_source_fn=fake_c4):
      with flagsaver.flagsaver(corpus="c4_4k", data_dir=self.data_dir,
                               splits=["validation"]):
        prepare.main([])
    folder = c4_filter.index_folder(self.data_dir, "validation", "bytes")
    np.testing.assert_array_equal(c4_filter.load_index(folder), [1, 2])


if __name__ == "__main__":
  absltest.main()
