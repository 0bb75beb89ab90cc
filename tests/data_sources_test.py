"""Tests for data/sources.py: the PG-19 and C4 TFDS paths, offline."""

import os
from unittest import mock

from absl.testing import absltest
import tensorflow_datasets as tfds
from tensorflow_datasets.datasets.pg19 import pg19_dataset_builder

from data import pipeline
from data import sources
from data import synthetic
from data import testing

T = 512


def long_texts(count, seed):
  """Texts of ~5-15 segments, long enough to exercise multi-segment rows."""
  documents = synthetic.SyntheticDocuments(count, seed=seed,
                                           document_chars=4000,
                                           min_recall_gap=1000)
  return [documents[i].strip() for i in range(count)]


def fake_pg19_examples(self, split, **kwargs):
  """Replaces `as_data_source`: books as TFDS returns them (bytes text)."""
  del self, kwargs
  texts = long_texts(7, seed=len(split))
  return [{"book_text": text.encode(), "book_id": i, "book_title": b"t",
           "publication_date": b"1900", "book_link": b""}
          for i, text in enumerate(texts)]


def write_fake_bucket(folder, texts_by_split):
  """Lays out gs://deepmind-gutenberg: metadata.csv and <split>/<id>.txt."""
  rows = []
  for split, texts in texts_by_split.items():
    os.makedirs(os.path.join(folder, split))
    for text in texts:
      book_id = len(rows) + 100
      rows.append(f"{book_id},Book {book_id},1900,http://b/{book_id}")
      with open(os.path.join(folder, split, f"{book_id}.txt"), "w") as f:
        f.write(text)
  with open(os.path.join(folder, "metadata.csv"), "w") as f:
    f.write("\n".join(rows))


def read_all(corpus, split, data_dir):
  """One unshuffled pass over a split (train too, which would repeat)."""
  segments = pipeline.make_stream(corpus, split, data_dir=data_dir, rows=3,
                                  segment_length=T, training=False)
  return testing.read_documents(list(segments))


class Pg19Test(absltest.TestCase):

  def test_mocked_data_source_streams_whole_books(self):
    with tfds.testing.mock_data(as_data_source_fn=fake_pg19_examples):
      read = read_all("pg19", "validation", testing.tempdir(self))
    texts = long_texts(7, seed=len("validation"))
    self.assertCountEqual([text for _, _, text in read], texts)
    for doc, _, text in read:
      self.assertEqual(text, texts[doc])

  def test_real_builder_on_a_fake_local_bucket(self):
    bucket = testing.tempdir(self)
    texts = {"train": long_texts(4, 1), "validation": long_texts(2, 2),
             "test": long_texts(5, 3)}
    write_fake_bucket(bucket, texts)
    data_dir = testing.tempdir(self)
    with mock.patch.object(pg19_dataset_builder, "_DATA_DIR",
                           tfds.core.Path(bucket)):
      sources.prepare_tfds("pg19", data_dir=data_dir)
    for split, expected in texts.items():
      read = read_all("pg19", split, data_dir)
      self.assertCountEqual([text for _, _, text in read], expected)

  def test_unprepared_data_dir_names_the_prepare_command(self):
    data_dir = testing.tempdir(self)
    with self.assertRaisesRegex(
        ValueError, f"No prepared 'pg19'.*{data_dir}.*--corpus=pg19"):
      sources.tfds_documents("pg19", "train", data_dir=data_dir)


class C4Test(absltest.TestCase):

  def test_mocked_c4_documents_are_the_text_feature(self):
    def fake_c4(self, split, **kwargs):
      del self, split, kwargs
      return [{"text": b"first", "url": b"u"}, {"text": b"second", "url": b"u"}]

    with tfds.testing.mock_data(as_data_source_fn=fake_c4):
      documents = sources.tfds_documents(
          "c4", "train", data_dir=testing.tempdir(self))
    self.assertLen(documents, 2)
    self.assertEqual(documents[1], b"second")

  def test_unknown_tfds_corpus_lists_the_known_ones(self):
    with self.assertRaisesRegex(ValueError, "'wiki'; known: pg19, c4"):
      sources.tfds_documents("wiki", "train", data_dir="/tmp")


if __name__ == "__main__":
  absltest.main()
