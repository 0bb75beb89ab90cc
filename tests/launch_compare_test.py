"""Tests of launch/compare.py on the smoke suite: every row, finite numbers.

Shape letters (launch/__init__.py): A = 8 fake CPU devices, B = 8 rows
(windowed: 16), T = 32 tokens.
"""

import math
import os
import tempfile
from unittest import mock

from absl.testing import absltest

from launch import compare_lib
from launch import trainer
from launch.configs import suites


class CompareTest(absltest.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    workdir = cls.enterClassContext(tempfile.TemporaryDirectory())
    cls.smoke = workdir, compare_lib.run_suite(suites.get_suite("smoke"),
                                               workdir)

  def test_every_row_is_in_the_table_with_finite_numbers(self):
    workdir, out = self.smoke
    with open(os.path.join(workdir, "comparison.md")) as f:
      table = f.read().splitlines()
    self.assertEqual([line.split(" | ")[0].strip("| ") for line in table[2:]],
                     list(suites.ROWS))
    for row in out["rows"]:
      for key in ("nats_per_token", "step_time_ms", "recall_accuracy",
                  "first_accuracy", "reset_segment_cost"):
        self.assertTrue(math.isfinite(row[key]), (row["model"], key, row[key]))
      self.assertEqual(row["tokens_trained"], 3 * 8 * 32)
    floats = {r["model"]: r["carried_floats_per_row"] for r in out["rows"]}
    self.assertEqual(floats["windowed"], 0)
    self.assertGreater(floats["melodi_short"], 0)
    self.assertLess(floats["melodi_short"], floats["melodi_short_long"])
    long_rows = [r for r in out["rows"] if "long" in r["model"]]
    self.assertTrue(all(math.isfinite(r["reset_long_cost"])
                        for r in long_rows))

  def test_plots_and_json_are_written(self):
    workdir, _ = self.smoke
    for name in ("comparison.json", "curves.png", "position.png",
                 "recall_gap.png"):
      self.assertGreater(os.path.getsize(os.path.join(workdir, name)), 0,
                         name)

  def test_rerun_resumes_without_training_again(self):
    workdir, out = self.smoke
    with mock.patch.object(trainer, "train",
                           lambda *_: self.fail("retrained")):
      again = compare_lib.run_suite(suites.get_suite("smoke"), workdir)
    self.assertEqual(compare_lib.markdown_table(again["rows"]),
                     compare_lib.markdown_table(out["rows"]))

  def test_unequal_budgets_are_an_error(self):
    rows = suites.get_suite("smoke")["rows"]
    rows["windowed"].batch_size = 8
    with self.assertRaisesRegex(ValueError, "different token budgets"):
      compare_lib.check_equal_budget(rows)


if __name__ == "__main__":
  absltest.main()
