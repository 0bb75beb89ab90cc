"""Tests of launch/scores.py: position buckets and value scores by hand.

Glossary of shapes:
- R = 2 rows.  T = 8 tokens.  W = 4 (position buckets [1,4), [4,8), ...).
"""

import math

from absl.testing import absltest
import numpy as np

from data import synthetic
from launch import scores


class ScoresTest(absltest.TestCase):

  def test_position_buckets_are_log_spaced_from_the_first_window(self):
    got = scores.position_bucket(np.array([1, 3, 4, 7, 8, 15, 16, 100]), 4)
    np.testing.assert_array_equal(got, [0, 0, 1, 1, 2, 2, 3, 5])
    self.assertEqual(scores.bucket_range(0, 4), (1, 4))
    self.assertEqual(scores.bucket_range(3, 4), (16, 32))

  def test_sums_follow_each_row_through_its_document(self):
    # Row 0 reads document 0 over two segments; row 1 is idle after one.
    mentions = {0: [synthetic.Mention(2, 4, False, 0),
                    synthetic.Mention(10, 12, True, 8)],
                1: [synthetic.Mention(5, 6, False, 0)]}
    s = scores.Scores(2, 4, mentions.get)
    losses = np.arange(16, dtype=np.float64).reshape(2, 8) / 10  # [R, T]
    hits = np.ones((2, 8), bool)
    hits[0, 1] = False  # Target position 2: the first-stated value.
    mask = np.ones((2, 8), bool)
    mask[0, 7] = False  # Position 8 is never predicted (segment end).
    s.add(losses, hits, mask, np.array([True, True]), np.array([0, 1]))
    hits2 = np.ones((2, 8), bool)
    hits2[0, 2] = False  # Column 2 of segment 2 = target position 11.
    mask2 = np.array([[True] * 8, [False] * 8])
    s.add(losses, hits2, mask2, np.array([False, True]), np.array([0, -1]))
    out = s.result()
    self.assertEqual(out["documents"], 2)
    self.assertEqual(out["predicted_tokens"], 7 + 8 + 8)
    total = losses[0, :7].sum() + losses[1].sum() + losses[0].sum()
    self.assertAlmostEqual(out["total_nats"], total)
    # Bucket [1, 4): row 0 positions 1-3 and row 1 positions 1-3.
    first = out["by_position"][0]
    self.assertEqual((first["start"], first["end"], first["tokens"]),
                     (1, 4, 6))
    self.assertAlmostEqual(first["nats_per_token"],
                           (losses[0, :3].sum() + losses[1, :3].sum()) / 6)
    values = out["values"]
    # First-stated: doc 0 positions 2, 3 (one miss), doc 1 position 5.
    self.assertEqual(values["first"]["tokens"], 3)
    self.assertAlmostEqual(values["first"]["accuracy"], 2 / 3)
    self.assertAlmostEqual(values["first"]["nats_per_token"],
                           (losses[0, 1] + losses[0, 2] + losses[1, 4]) / 3)
    # The recall at positions 10, 11 (columns 1, 2 of segment 2): one miss.
    self.assertEqual(values["recall"]["tokens"], 2)
    self.assertAlmostEqual(values["recall"]["accuracy"], 0.5)
    self.assertEqual(values["recalls"], 1)
    self.assertEqual(values["recall_exact_match"], 0.0)
    self.assertEqual(values["by_gap"], [dict(start=8, end=16, recalls=1,
                                             exact_match=0.0)])

  def test_a_recall_with_an_unpredicted_character_is_left_out(self):
    mentions = {0: [synthetic.Mention(7, 9, True, 7)]}
    s = scores.Scores(1, 4, mentions.get)
    mask = np.ones((1, 8), bool)
    mask[0, 7] = False  # Position 8, inside the recall, is not predicted.
    s.add(np.zeros((1, 8)), np.ones((1, 8), bool), mask, np.array([True]),
          np.array([0]))
    values = s.result()["values"]
    self.assertEqual((values["recalls"], values["unscored"]), (1, 1))
    self.assertTrue(math.isnan(values["recall_exact_match"]))


if __name__ == "__main__":
  absltest.main()
