"""Tests of launch/compare.py on the smoke suite: every row, finite numbers.

Glossary of shapes:
- P = 8 fake CPU devices.  B = 8 rows (windowed: 16).  T = 32 tokens.
"""

import math
import os

import pytest

from launch import compare_lib
from launch import trainer
from launch.configs import suites


@pytest.fixture(name="smoke", scope="module")
def _smoke(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("smoke"))
  return workdir, compare_lib.run_suite(suites.get_suite("smoke"), workdir)


def test_every_row_is_in_the_table_with_finite_numbers(smoke):
  workdir, out = smoke
  table = open(os.path.join(workdir, "comparison.md")).read().splitlines()
  assert [line.split(" | ")[0].strip("| ") for line in table[2:]] == list(
      suites.ROWS)
  for row in out["rows"]:
    for key in ("nats_per_token", "step_time_ms", "recall_accuracy",
                "first_accuracy", "reset_segment_cost"):
      assert math.isfinite(row[key]), (row["model"], key, row[key])
    assert row["tokens_trained"] == 3 * 8 * 32
  floats = {r["model"]: r["carried_floats_per_row"] for r in out["rows"]}
  assert floats["windowed"] == 0
  assert 0 < floats["melodi_short"] < floats["melodi_short_long"]
  long_rows = [r for r in out["rows"] if "long" in r["model"]]
  assert all(math.isfinite(r["reset_long_cost"]) for r in long_rows)


def test_plots_and_json_are_written(smoke):
  workdir, _ = smoke
  for name in ("comparison.json", "curves.png", "position.png",
               "recall_gap.png"):
    assert os.path.getsize(os.path.join(workdir, name)) > 0, name


def test_rerun_resumes_without_training_again(smoke, monkeypatch):
  workdir, out = smoke
  monkeypatch.setattr(trainer, "train", lambda *_: pytest.fail("retrained"))
  again = compare_lib.run_suite(suites.get_suite("smoke"), workdir)
  assert compare_lib.markdown_table(again["rows"]) == compare_lib.markdown_table(
      out["rows"])


def test_unequal_budgets_are_an_error():
  rows = suites.get_suite("smoke")["rows"]
  rows["windowed"].batch_size = 8
  with pytest.raises(ValueError, match="different token budgets"):
    compare_lib.check_equal_budget(rows)
