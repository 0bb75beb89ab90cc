"""Tests for data/curriculum.py: the task switches at a step, resumably.

Glossary of shapes:
- R = 3 rows.  T = 128 tokens.  G: characters between passkey mentions.
"""

import itertools
import json
import re

from absl.testing import absltest
from absl.testing import parameterized
import numpy as np

from data import curriculum
from data import pipeline
from data import testing
from data import tokenizers

T = 128
_BOUNDARY = 5  # Steps of the warm-up phase.
_FINAL = dict(task="passkey", document_chars=1024, min_recall_gap=100,
              value_length=3, filler="dots")
_WARM_UP = dict(_FINAL, min_recall_gap=24)
_MENTION = re.compile(r"the pass key is \d{3}\. ")


def make_stream(**kwargs):
  kwargs = dict(rows=3, segment_length=T, window_length=32,
                synthetic_config=_FINAL,
                curriculum=[(_BOUNDARY, _WARM_UP)]) | kwargs
  return pipeline.make_stream("synthetic", "train", **kwargs)


def take(segments, steps):
  return list(itertools.islice(segments, steps))


def gaps(batch) -> set[int]:
  """Distances between consecutive passkey mentions inside each row."""
  found = set()
  for row in batch["tokens"]:
    text = tokenizers.ByteTokenizer().decode(row[row != 0])
    starts = [m.start() for m in _MENTION.finditer(text)]
    found.update(np.diff(starts).tolist())
  return found


class CurriculumStreamTest(parameterized.TestCase):

  def test_the_gap_changes_at_the_boundary(self):
    batches = take(make_stream(), 2 * _BOUNDARY)
    warm_up = [gaps(batch) for batch in batches[:_BOUNDARY]]
    final = [gaps(batch) for batch in batches[_BOUNDARY:]]
    # A segment may hold fewer than two mentions; every pair counts.
    self.assertEqual(set().union(*warm_up), {24})
    self.assertEqual(set().union(*final), {100})

  def test_every_row_starts_a_new_document_at_the_switch(self):
    batches = take(make_stream(), _BOUNDARY + 2)
    starts = [bool(b["start_of_sequence"].all()) for b in batches]
    # 1024-character documents span 8 segments: only steps 0 and 5 start.
    self.assertEqual(starts, [True] + [False] * 4 + [True, False])
    # The order of documents runs on: none read twice across the switch.
    first = {int(d) for b in batches[:_BOUNDARY] for d in b["doc_index"]}
    second = {int(d) for b in batches[_BOUNDARY:] for d in b["doc_index"]}
    self.assertEmpty(first & second)

  def test_without_curriculum_the_stream_is_the_final_task(self):
    batches = take(make_stream(curriculum=()), 3)
    self.assertEqual(set().union(*map(gaps, batches)), {100})

  @parameterized.parameters(2, _BOUNDARY, _BOUNDARY + 2)
  def test_resume_reads_the_same_batches(self, stop):
    steps = 2 * _BOUNDARY + 1
    expected = take(make_stream(), steps)
    # As the trainer does: the state paired with the last consumed batch,
    # saved as JSON, restored into a freshly built stream.
    with pipeline.Prefetcher(make_stream()) as prefetched:
      state = [s for _, s in itertools.islice(prefetched, stop)][-1]
    resumed = make_stream()
    resumed.set_state(json.loads(json.dumps(state)))
    testing.assert_batches_equal(expected[stop:], take(resumed, steps - stop))

  def test_restart_documents_goes_to_the_phase_stream(self):
    segments = make_stream()
    take(segments, _BOUNDARY + 2)
    segments.set_state(segments.get_state(), restart_documents=True)
    batch = next(segments)
    self.assertTrue(batch["start_of_sequence"].all())
    self.assertLessEqual(gaps(batch), {100})

  def test_state_of_another_curriculum_is_refused(self):
    state = take_state(make_stream(), 2)
    with self.assertRaisesRegex(ValueError, r"boundaries \[5\], now \[3\]"):
      make_stream(curriculum=[(3, _WARM_UP)]).set_state(state)
    plain = take_state(make_stream(curriculum=()), 2)
    with self.assertRaisesRegex(ValueError, "not a curriculum state"):
      make_stream().set_state(plain)

  def test_a_bad_later_phase_fails_before_the_first_batch(self):
    with self.assertRaisesRegex(ValueError, "max_recall_gap=50 is below"):
      make_stream(synthetic_config=dict(_FINAL, max_recall_gap=50))

  @parameterized.parameters([[]], [[0]], [[5, 5]], [[7, 3]])
  def test_bad_boundaries_are_named(self, boundaries):
    with self.assertRaisesRegex(ValueError, re.escape(str(boundaries))):
      curriculum.CurriculumStream(lambda k: None, boundaries)


def take_state(segments, steps):
  take(segments, steps)
  return segments.get_state()


if __name__ == "__main__":
  absltest.main()
