"""Tests for data/c4_filter.py: exact filtering, resuming and C4(4K+) reads."""

from absl.testing import absltest
import numpy as np
import tensorflow_datasets as tfds

from data import c4_filter
from data import pipeline
from data import sources
from data import testing
from data import tokenizers

MIN_TOKENS = 100


def c4_texts(count=47, seed=0):
  """Mostly short web pages with some long ones, as in C4."""
  rng = np.random.default_rng(seed)
  lengths = rng.choice([5, 50, MIN_TOKENS - 1, MIN_TOKENS, 400], count,
                       p=[0.3, 0.3, 0.1, 0.1, 0.2])
  return ["".join(rng.choice(list("abc "), n)) for n in lengths]


class _InterruptingTokenizer(tokenizers.ByteTokenizer):
  """Counts calls and fails once `fail_at` documents were tokenized."""

  def __init__(self, fail_at=None):
    self.calls, self._fail_at = 0, fail_at

  def encode(self, text):
    if self.calls == self._fail_at:
      raise KeyboardInterrupt("preempted")
    self.calls += 1
    return super().encode(text)


class FilterTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    self.texts = c4_texts()
    self.long = [i for i, t in enumerate(self.texts) if len(t) >= MIN_TOKENS]
    self.folder = testing.tempdir(self)

  def run_filter(self, tokenizer, **kwargs):
    return c4_filter.filter_long_documents(
        sources.InMemoryDocuments(self.texts), tokenizer, self.folder,
        min_tokens=MIN_TOKENS, chunk_size=10, **kwargs)

  def test_keeps_exactly_the_long_documents(self):
    self.assertTrue(self.run_filter(tokenizers.ByteTokenizer()))
    np.testing.assert_array_equal(c4_filter.load_index(self.folder), self.long)

  def test_rerun_after_interruption_continues_at_the_missing_chunk(self):
    with self.assertRaises(KeyboardInterrupt):
      self.run_filter(_InterruptingTokenizer(fail_at=25))
    with self.assertRaisesRegex(ValueError, r"missing \(2 chunks done\)"):
      c4_filter.load_index(self.folder)
    resumed = _InterruptingTokenizer()
    self.assertTrue(self.run_filter(resumed))
    self.assertEqual(resumed.calls, len(self.texts) - 20)
    np.testing.assert_array_equal(c4_filter.load_index(self.folder), self.long)

  def test_workers_share_the_chunks(self):
    self.assertFalse(self.run_filter(tokenizers.ByteTokenizer(),
                                     worker_index=1, num_workers=2))
    self.assertTrue(self.run_filter(tokenizers.ByteTokenizer(),
                                    worker_index=0, num_workers=2))
    np.testing.assert_array_equal(c4_filter.load_index(self.folder), self.long)

  def test_other_settings_in_the_same_folder_are_rejected(self):
    self.run_filter(tokenizers.ByteTokenizer())
    with self.assertRaisesRegex(ValueError, "records settings.*delete"):
      c4_filter.filter_long_documents(
          sources.InMemoryDocuments(self.texts), tokenizers.ByteTokenizer(),
          self.folder, min_tokens=MIN_TOKENS + 1, chunk_size=10)


class C4LongStreamTest(absltest.TestCase):

  def test_stream_reads_only_the_kept_c4_documents(self):
    texts = c4_texts()
    data_dir = testing.tempdir(self)

    def fake_c4(self, split, **kwargs):
      del self, split, kwargs
      return [{"text": text.encode(), "url": b"u"} for text in texts]

    with tfds.testing.mock_data(as_data_source_fn=fake_c4):
      folder = c4_filter.index_folder(data_dir, "validation", "bytes")
      c4_filter.filter_long_documents(
          sources.tfds_documents("c4", "validation", data_dir=data_dir),
          tokenizers.ByteTokenizer(), folder, min_tokens=MIN_TOKENS)
      segments = pipeline.make_stream("c4_4k", "validation",
                                      data_dir=data_dir, rows=2,
                                      segment_length=64)
    read = testing.read_documents(list(segments))
    self.assertCountEqual([text for _, _, text in read],
                          [t for t in texts if len(t) >= MIN_TOKENS])

  def test_an_empty_index_is_an_empty_corpus_error(self):
    data_dir = testing.tempdir(self)
    with tfds.testing.mock_data(as_data_source_fn=lambda *a, **k: ["short"]):
      c4_filter.filter_long_documents(
          sources.InMemoryDocuments(["short"]), tokenizers.ByteTokenizer(),
          c4_filter.index_folder(data_dir, "train", "bytes"))
      with self.assertRaisesRegex(ValueError, "'c4_4k' split 'train' has no "
                                  "documents"):
        pipeline.make_stream("c4_4k", data_dir=data_dir)

  def test_missing_index_names_the_prepare_command(self):
    with self.assertRaisesRegex(ValueError, "--corpus=c4_4k"):
      pipeline.make_stream("c4_4k", data_dir=testing.tempdir(self))

  def test_index_folder_separates_vocabularies(self):
    self.assertEqual(
        str(c4_filter.index_folder("/d", "train", "t5:/v/spiece.model")),
        "/d/c4_4k/t5-spiece/train")


if __name__ == "__main__":
  absltest.main()
