"""Tests of experiments/paper_memory_report.py: its table and plot.

Glossary of shapes: T segment length.
"""

import json
import os
import tempfile

from absl.testing import absltest

from experiments import paper_memory_report


def _run(model, remat, t, temp=None):
  bench = dict(model=model, config=dict(remat=remat, segment_length=t))
  if temp is None:
    bench["error"] = "no JSON line"
  else:
    bench.update(temp_bytes=temp, argument_bytes=1.6e9)
  return dict(code="abc1234", bench=bench)


class ReportTest(absltest.TestCase):

  def test_rows_are_model_and_remat_columns_are_segment_lengths(self):
    rows = paper_memory_report.table([
        _run("melodi", "none", 4096, 9.28e9),
        _run("melodi", "none", 8192, 15.0e9),
        _run("transformer_xl", "window", 4096, 2.5e9),
        _run("transformer_xl", "window", 8192)])
    self.assertEqual(rows[0], "| model | remat | T = 4096 | T = 8192 | "
                     "parameters + optimizer state |")
    self.assertEqual(rows[2], "| MELODI | none | 9.28 GB | 15.00 GB | "
                     "1.60 GB |")
    self.assertEqual(rows[3], "| Transformer-XL | window | 2.50 GB | failed "
                     "| 1.60 GB |")
    self.assertIn("code abc1234", rows[-1])

  def test_main_writes_table_and_plot(self):
    with tempfile.TemporaryDirectory() as out:
      with open(os.path.join(out, "runs.jsonl"), "w") as f:
        for r in (_run("melodi", "none", 4096, 9e9),
                  _run("memorizing", "none", 4096, 8e9)):
          f.write(json.dumps(r) + "\n")
      paper_memory_report.main(out)
      with open(os.path.join(out, "table.md")) as f:
        self.assertIn("| Memorizing (C 65536) | none | 8.00 GB |", f.read())
      self.assertGreater(os.path.getsize(
          os.path.join(out, "paper_memory.png")), 1000)


if __name__ == "__main__":
  absltest.main()
