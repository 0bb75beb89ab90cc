"""Tests for data/local_corpus.py: preparing and reading a folder of files."""

import gzip
import os

from absl.testing import absltest

from data import local_corpus
from data import pipeline
from data import testing


def write_folder(folder):
  """Ten .tex/.txt documents (one gzipped, one nested) and a stray .pdf."""
  texts = {}
  for i in range(10):
    name = f"paper{i}.tex" if i % 2 else f"notes/book{i}.txt"
    formula = "$x^2 + y^2 = z^2$. " * (30 * i + 1)
    texts[name] = f"\\section{{Part {i}}} {formula}"
  texts["compressed.tex.gz"] = "Gzipped LaTeX \\(e^{i\\pi} = -1\\)."
  os.makedirs(os.path.join(folder, "notes"))
  for name, text in texts.items():
    data = text.encode()
    with open(os.path.join(folder, name), "wb") as f:
      f.write(gzip.compress(data) if name.endswith(".gz") else data)
  with open(os.path.join(folder, "figure.pdf"), "wb") as f:
    f.write(b"%PDF")
  return texts


class LocalCorpusTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    self.source = testing.tempdir(self)
    self.texts = write_folder(self.source)
    self.data_dir = testing.tempdir(self)

  def test_every_file_is_one_document_of_exactly_one_split(self):
    local_corpus.prepare_local_corpus(self.source, name="maths",
                                      data_dir=self.data_dir,
                                      holdout_fraction=0.05)
    seen = []
    for split in local_corpus.SPLITS:
      documents = local_corpus.local_documents("maths", split,
                                               data_dir=self.data_dir)
      self.assertLen(documents, 9 if split == "train" else 1)
      seen += [documents[i].decode() for i in range(len(documents))]
    self.assertCountEqual(seen, self.texts.values())

  def test_split_ignores_listing_order(self):
    paths = sorted(self.texts)
    forward = local_corpus.split_files(paths, 0.2)
    backward = local_corpus.split_files(paths[::-1], 0.2)
    self.assertEqual(forward, backward)
    self.assertEqual([len(forward[s]) for s in local_corpus.SPLITS],
                     [5, 3, 3])  # ceil(0.2 * 11) = 3 held out twice.

  def test_stream_reads_the_prepared_corpus(self):
    local_corpus.prepare_local_corpus(self.source, name="maths",
                                      data_dir=self.data_dir)
    segments = pipeline.make_stream("local:maths", "train",
                                    data_dir=self.data_dir, rows=2,
                                    segment_length=256, training=False)
    read = testing.read_documents(list(segments))
    self.assertLen(read, 9)  # 11 files, one each for validation and test.
    self.assertContainsSubset([text for _, _, text in read],
                              self.texts.values())

  def test_missing_source_folder_is_an_error(self):
    with self.assertRaisesRegex(ValueError, "'/no/such/dir' does not exist"):
      local_corpus.prepare_local_corpus("/no/such/dir", name="x",
                                        data_dir=self.data_dir)

  def test_folder_without_documents_is_an_empty_corpus_error(self):
    empty = testing.tempdir(self)
    with self.assertRaisesRegex(ValueError, "corpus would be empty"):
      local_corpus.prepare_local_corpus(empty, name="x",
                                        data_dir=self.data_dir)

  def test_unprepared_corpus_names_the_prepare_command(self):
    with self.assertRaisesRegex(ValueError,
                                "not prepared.*--corpus=local --name=nope"):
      pipeline.make_stream("local:nope", data_dir=self.data_dir)

  def test_unknown_split_lists_the_prepared_ones(self):
    local_corpus.prepare_local_corpus(self.source, name="maths",
                                      data_dir=self.data_dir)
    with self.assertRaisesRegex(ValueError, "no split 'dev'; use one of"):
      local_corpus.local_documents("maths", "dev", data_dir=self.data_dir)


if __name__ == "__main__":
  absltest.main()
