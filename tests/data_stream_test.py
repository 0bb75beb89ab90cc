"""Tests for data/stream.py: reconstruction, resume, sharding and masks."""

import itertools
import json

from absl.testing import absltest
from absl.testing import parameterized
import numpy as np

from data import sources
from data import stream
from data import testing
from data import tokenizers
from melodi_hk import losses

T = 16  # Short segments keep documents many segments long and tests fast.
_BYTES = tokenizers.ByteTokenizer()

def make_documents(num_documents=23, seed=0):
  """Texts whose lengths hit the edge cases: empty, 1, T, T + 1, k * T."""
  rng = np.random.default_rng(seed)
  lengths = [0, 1, T, T + 1, 3 * T, 0] + list(rng.integers(1, 6 * T,
                                                           num_documents - 6))
  letters = np.array(list("abcdefghij "))
  return sources.InMemoryDocuments(
      ["".join(rng.choice(letters, n)) for n in lengths])


def make_stream(documents, **kwargs):
  kwargs = dict(rows=3, segment_length=T, seed=7) | kwargs
  return stream.SegmentStream(documents, _BYTES, **kwargs)


def take(segments, steps):
  """Up to `steps` batches; fewer when an eval stream ends."""
  return list(itertools.islice(segments, steps))


class ReconstructionTest(parameterized.TestCase):

  def test_eval_pass_reads_every_document_once_then_stops(self):
    documents = make_documents()
    batches = list(make_stream(documents, shuffle=False, repeat=False))
    read = testing.read_documents(batches)
    expected = [i for i in range(len(documents)) if documents[i]]
    self.assertCountEqual([doc for doc, _, _ in read], expected)
    for doc, _, text in read:
      self.assertEqual(text, documents[doc])
    # Unshuffled: the rows start on the first non-empty documents in order.
    np.testing.assert_array_equal(batches[0]["doc_index"], [1, 2, 3])

  def test_train_epoch_reads_every_document_once(self):
    documents = make_documents()
    segments = make_stream(documents)
    batches = []
    while not batches or min(batches[-1]["epoch"]) < 1:
      batches.append(next(segments))
    read = testing.read_documents(batches)
    epoch0 = [(doc, text) for doc, epoch, text in read if epoch == 0]
    self.assertCountEqual([doc for doc, _ in epoch0],
                          [i for i in range(len(documents)) if documents[i]])
    for doc, text in epoch0:
      self.assertEqual(text, documents[doc])

  def test_idle_rows_are_zero_and_reset(self):
    batches = list(make_stream(make_documents(), shuffle=False, repeat=False))
    idle = np.concatenate([b["doc_index"] < 0 for b in batches])
    self.assertTrue(idle.any())
    for batch in batches:
      rows = batch["doc_index"] < 0
      self.assertFalse(batch["tokens"][rows].any())
      self.assertFalse(batch["loss_mask"][rows].any())
      self.assertTrue(batch["start_of_sequence"][rows].all())

  def test_padding_only_at_the_end_of_a_documents_last_segment(self):
    for batch in take(make_stream(make_documents()), 60):
      for row in np.flatnonzero(batch["doc_index"] >= 0):
        mask = batch["loss_mask"][row]
        self.assertTrue(mask[0])
        np.testing.assert_array_equal(mask, np.arange(T) < mask.sum())
        np.testing.assert_array_equal(mask, batch["tokens"][row] != 0)

  def test_all_empty_documents_is_an_error(self):
    segments = make_stream(sources.InMemoryDocuments(["", "", ""]))
    with self.assertRaisesRegex(ValueError, "All 3 documents"):
      next(segments)


class ResumeTest(parameterized.TestCase):

  @parameterized.named_parameters(("train", True, 11), ("eval", False, 9))
  def test_restored_state_reproduces_next_batches(self, training, steps):
    documents = make_documents()
    kwargs = dict(shuffle=training, repeat=training)
    first = make_stream(documents, **kwargs)
    before = take(first, steps)
    state = json.loads(json.dumps(first.get_state()))
    expected = take(first, 40)
    second = make_stream(documents, **kwargs)
    second.set_state(state)
    after = take(second, 40)
    testing.assert_batches_equal(expected, after)
    read = testing.read_documents(before + after)
    for doc, _, text in read[:-3]:  # The last ones may still be unfinished.
      self.assertEqual(text, documents[doc])
    if not training:  # One whole pass, split by the restore: each doc once.
      self.assertCountEqual([doc for doc, _, _ in read],
                            [i for i in range(len(documents)) if documents[i]])

  def test_shuffle_depends_only_on_the_seed(self):
    documents = make_documents()
    same = [take(make_stream(documents, seed=3), 5) for _ in range(2)]
    testing.assert_batches_equal(same[0], same[1])
    other = take(make_stream(documents, seed=4), 5)
    self.assertFalse(all(np.array_equal(a["doc_index"], b["doc_index"])
                         for a, b in zip(same[0], other)))

  def test_restart_documents_rewinds_every_row(self):
    documents = make_documents()
    first = make_stream(documents)
    take(first, 4)
    state = first.get_state()
    second = make_stream(documents)
    second.set_state(state, restart_documents=True)
    batch = next(second)
    self.assertTrue(batch["start_of_sequence"].all())
    for row, doc in enumerate(batch["doc_index"]):
      expected = _BYTES.encode(documents[doc])[:T]
      np.testing.assert_array_equal(batch["tokens"][row, :len(expected)],
                                    expected)

  def test_state_from_other_settings_is_rejected(self):
    state = make_stream(make_documents()).get_state()
    with self.assertRaisesRegex(ValueError, "rows.*rebuild the stream"):
      make_stream(make_documents(), rows=4).set_state(state)


class ShardTest(absltest.TestCase):

  def test_hosts_read_disjoint_shares_covering_the_corpus(self):
    documents = make_documents()
    seen = []
    for host in range(3):
      segments = make_stream(documents, shuffle=False, repeat=False,
                             shard_index=host, num_shards=3)
      read = testing.read_documents(list(segments))
      self.assertTrue(all(doc % 3 == host for doc, _, _ in read))
      self.assertTrue(all(text == documents[doc] for doc, _, text in read))
      seen += [doc for doc, _, _ in read]
    self.assertCountEqual(seen,
                          [i for i in range(len(documents)) if documents[i]])

  def test_more_shards_than_documents_is_an_error(self):
    with self.assertRaisesRegex(ValueError, "fewer than the 4 host shards"):
      make_stream(sources.InMemoryDocuments(["a", "b"]), num_shards=4)

  def test_shard_index_out_of_range_is_an_error(self):
    with self.assertRaisesRegex(ValueError, r"Shard index 2 must be in \[0, 2"):
      make_stream(make_documents(), shard_index=2, num_shards=2)


class TargetsTest(absltest.TestCase):

  def test_padding_is_never_predicted_under_the_models_loss(self):
    for batch in take(make_stream(make_documents()), 30):
      targets, mask = map(np.asarray, losses.targets_and_mask(
          batch["tokens"], batch["loss_mask"]))
      self.assertFalse((mask & (targets == 0)).any())
      self.assertFalse((mask & ~batch["loss_mask"]).any())
      full = batch["loss_mask"].all(axis=1)
      np.testing.assert_array_equal(mask[full].sum(axis=1), T - 1)


if __name__ == "__main__":
  absltest.main()
