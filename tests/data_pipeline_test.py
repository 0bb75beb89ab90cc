"""Tests for data/pipeline.py: make_stream, shard_for_pmap and Prefetcher."""

import itertools
import threading

from absl.testing import absltest
from absl.testing import parameterized
import numpy as np

from data import pipeline
from data import sources
from data import stream
from data import tokenizers

T = 64


def small_stream(**kwargs):
  return pipeline.make_stream("synthetic", "validation", rows=4,
                              segment_length=T, **kwargs)


class MakeStreamTest(parameterized.TestCase):

  def test_synthetic_train_batches(self):
    segments = pipeline.make_stream("synthetic", rows=4, segment_length=T,
                                    window_length=16, devices=2)
    batch = next(segments)
    self.assertEqual(batch["tokens"].shape, (4, T))
    self.assertEqual(batch["tokens"].dtype, np.int32)
    self.assertEqual(batch["start_of_sequence"].dtype, bool)
    self.assertEqual(batch["loss_mask"].shape, (4, T))
    self.assertTrue(batch["start_of_sequence"].all())
    self.assertFalse(next(segments)["start_of_sequence"].any())

  def test_eval_is_unshuffled_and_training_is_seeded(self):
    np.testing.assert_array_equal(next(small_stream())["doc_index"],
                                  [0, 1, 2, 3])
    first = [next(pipeline.make_stream("synthetic", seed=s, rows=4))
             for s in (1, 1, 2)]
    np.testing.assert_array_equal(first[0]["doc_index"], first[1]["doc_index"])
    self.assertFalse(np.array_equal(first[0]["doc_index"],
                                    first[2]["doc_index"]))

  def test_synthetic_config_sets_the_corpus(self):
    fields = dict(task="passkey", document_chars=512, min_recall_gap=60,
                  value_length=2)
    segments = small_stream(synthetic_config=fields)
    row = np.concatenate([next(segments)["tokens"][0] for _ in range(2)])
    text = tokenizers.ByteTokenizer().decode(row)
    self.assertTrue(text.startswith("the pass key is "))
    self.assertEqual(text[60:76], "the pass key is ")

  def test_loss_on_values_masks_all_but_value_characters(self):
    fields = dict(task="passkey", document_chars=512, min_recall_gap=60,
                  value_length=2, loss_on="values", filler="dots")
    segments = pipeline.make_stream("synthetic", "train", rows=2,
                                    segment_length=T, synthetic_config=fields)
    decode = tokenizers.ByteTokenizer().decode
    for _ in range(20):  # Crosses document ends: rows restart at offset 0.
      batch = next(segments)
      for row in range(2):
        masked = decode(batch["tokens"][row][batch["loss_mask"][row]])
        self.assertTrue(masked.isdigit() or not masked, masked)
        digits = [c.isdigit() for c in decode(batch["tokens"][row])]
        self.assertEqual(sum(digits), int(batch["loss_mask"][row].sum()))
    # Eval streams keep every target.
    batch = next(small_stream(synthetic_config=fields))
    np.testing.assert_array_equal(batch["loss_mask"], batch["tokens"] > 0)

  @parameterized.named_parameters(
      ("synthetic config for another corpus",
       dict(corpus="pg19", synthetic_config=dict(task="passkey")),
       "synthetic_config is set but corpus='pg19'"),
      ("unknown corpus", dict(corpus="wiki"),
       r"Unknown corpus 'wiki'; known: synthetic, pg19, c4_4k, local:<name>"),
      ("segment not a multiple of window",
       dict(segment_length=100, window_length=32),
       "Segment length 100 must be a multiple of window length 32"),
      ("rows not divisible by devices", dict(rows=6, devices=4),
       "6 rows cannot be split over 4 devices; use a multiple of 4"),
      ("missing vocabulary", dict(tokenizer="t5", vocab_path="/no/t5.model"),
       "'/no/t5.model' does not exist"),
      ("unknown synthetic split", dict(split="dev"),
       "no split 'dev'; use one of train, validation, test"),
      ("pg19 without data_dir", dict(corpus="pg19"),
       "'pg19' needs data_dir.*python -m data.prepare --corpus=pg19"),
      ("c4_4k without data_dir", dict(corpus="c4_4k"),
       "'c4_4k' needs data_dir.*--corpus=c4_4k"),
      ("local without data_dir", dict(corpus="local:arxiv"),
       "'local:arxiv' needs data_dir.*--corpus=local --name=arxiv"),
  )
  def test_bad_input_names_value_and_fix(self, kwargs, message):
    with self.assertRaisesRegex(ValueError, message):
      pipeline.make_stream(**kwargs)


class ShardForPmapTest(absltest.TestCase):

  def test_row_r_goes_to_device_r_div_per_device(self):
    batch = next(pipeline.make_stream("synthetic", rows=6, segment_length=T))
    sharded = pipeline.shard_for_pmap(batch, 3)
    self.assertEqual(sharded["tokens"].shape, (3, 2, T))
    self.assertEqual(sharded["start_of_sequence"].shape, (3, 2))
    for row in range(6):
      np.testing.assert_array_equal(sharded["tokens"][row // 2, row % 2],
                                    batch["tokens"][row])

  def test_indivisible_rows_is_an_error(self):
    batch = {"tokens": np.zeros((5, T), np.int32)}
    with self.assertRaisesRegex(ValueError, "5 rows cannot be split over 2"):
      pipeline.shard_for_pmap(batch, 2)


class _FailingDocuments(sources.InMemoryDocuments):

  def __getitem__(self, index):
    if index == 3:
      raise OSError("disk on fire")
    return super().__getitem__(index)


class PrefetcherTest(absltest.TestCase):

  def test_yields_batches_with_the_state_after_each(self):
    expected = list(itertools.islice(small_stream(), 12))
    with pipeline.Prefetcher(small_stream(), size=3) as prefetched:
      pairs = list(itertools.islice(prefetched, 12))
    for want, (batch, _) in zip(expected, pairs):
      np.testing.assert_array_equal(want["tokens"], batch["tokens"])
    resumed = small_stream()
    resumed.set_state(pairs[4][1])
    np.testing.assert_array_equal(next(resumed)["tokens"],
                                  pairs[5][0]["tokens"])

  def test_end_of_an_eval_pass_stops_iteration(self):
    documents = sources.InMemoryDocuments(["abc", "defgh", "ij"])
    segments = stream.SegmentStream(documents, tokenizers.ByteTokenizer(),
                                    rows=2, segment_length=2, shuffle=False,
                                    repeat=False)
    with pipeline.Prefetcher(segments) as prefetched:
      self.assertLen(list(prefetched), 3)  # "defgh" takes 3 segments.

  def test_worker_errors_reach_the_consumer(self):
    documents = _FailingDocuments(["a"] * 10)
    segments = stream.SegmentStream(documents, tokenizers.ByteTokenizer(),
                                    rows=2, segment_length=4, shuffle=False)
    with pipeline.Prefetcher(segments) as prefetched:
      with self.assertRaisesRegex(OSError, "disk on fire"):
        list(prefetched)

  def test_close_stops_a_worker_blocked_on_a_full_queue(self):
    threads = threading.active_count()
    prefetched = pipeline.Prefetcher(small_stream(), size=1)
    next(prefetched)
    prefetched.close()
    self.assertEqual(threading.active_count(), threads)
    with self.assertRaises(StopIteration):
      next(prefetched)


if __name__ == "__main__":
  absltest.main()
