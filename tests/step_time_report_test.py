"""Tests of experiments/step_time_report.py: its tables and plot.

Glossary of shapes: E width (256: the bench default, 64: the small size).
"""

import json
import os
import tempfile

from absl.testing import absltest

from experiments import step_time_report


def _compare(embed_dim, unroll, melodi, xl):
  return dict(config=dict(embed_dim=embed_dim, window_unroll=unroll),
              step_s=dict(melodi=melodi, transformer_xl=xl, memorizing=xl),
              melodi_over_xl=melodi / xl, melodi_over_xl_flops=1.5,
              memorizing_over_xl=1.0, memorizing_over_xl_flops=2.0)


class ReportTest(absltest.TestCase):

  def test_compare_rows_name_size_and_unroll(self):
    rows = step_time_report.compare_table(
        [_compare(256, 1, 0.3, 0.2), _compare(64, 4, 0.25, 0.1)])
    self.assertEqual(rows[2], "| bench default, window_unroll 1 | not "
                     "recorded | 1.50x | 1.50x | 1.00x | 2.00x | 200 ms |")
    self.assertEqual(rows[3], "| small, window_unroll 4 | not recorded | "
                     "2.50x | 1.50x | 1.00x | 2.00x | 100 ms |")

  def test_rows_name_their_code_and_the_plot_takes_the_last_code(self):
    old, new = _compare(256, 1, 0.3, 0.2), _compare(256, 1, 0.25, 0.2)
    new["code"] = "abc1234"
    self.assertIn("| abc1234 | 1.25x |",
                  step_time_report.compare_table([old, new])[3])
    self.assertEqual(step_time_report.latest([old, new]), [new])
    self.assertEqual(step_time_report.latest([old]), [old])

  def test_options_are_ratios_of_the_last_run(self):
    records = [dict(mode="compile", impl=i, temp_bytes=2e6,
                    compile_cpu_s=3.0) for i in ("none", "window")] + [
                        dict(mode="step", base="none", rounds=2, steps=3,
                             ratio_to_base=dict(none=1.0, window=0.9),
                             load_1min=[1.0, 2.0])]
    rows = step_time_report.options_table(records)
    self.assertEqual(rows[3], "| window | 2 | 3.0 | 0.90x |")
    self.assertEqual(rows[-1], "2 alternating rounds of 3 steps, load "
                     "1.0-2.0.")

  def test_remat_costs_list_each_option_with_its_memory(self):
    record = dict(model="transformer_xl", code="abc1234",
                  config=dict(embed_dim=64),
                  over_none=dict(none=1.0, layer=1.2),
                  temp_bytes=dict(none=3e6, layer=1e6))
    rows = step_time_report.remat_costs_table([record])
    self.assertEqual(rows[3], "| transformer_xl | small | abc1234 | layer | "
                     "1.20x | 1 |")
    self.assertEqual(step_time_report.remat_costs_table([]), [])

  def test_write_makes_the_table_and_plot(self):
    with tempfile.TemporaryDirectory() as d:
      with open(os.path.join(d, "compare.jsonl"), "w") as f:
        f.write(json.dumps(_compare(256, 1, 0.3, 0.2)) + "\n")
      step_time_report.write(d)
      self.assertTrue(os.path.getsize(os.path.join(d, "step_time.png")))
      with open(os.path.join(d, "table.md")) as f:
        self.assertIn("| bench default, window_unroll 1 |", f.read())


if __name__ == "__main__":
  absltest.main()
