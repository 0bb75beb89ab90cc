"""README stays true: its example runs and CI runs its exact commands."""

import pathlib
import re

from absl.testing import absltest
import numpy as np

from data import pipeline

_ROOT = pathlib.Path(__file__).resolve().parent.parent


def fenced_block(heading: str, language: str) -> str:
  readme = (_ROOT / "README.md").read_text()
  match = re.search(rf"## {heading}\n.*?```{language}\n(.*?)```", readme,
                    re.S)
  if match is None:
    raise AssertionError(f"README has no ```{language} block under "
                         f"'## {heading}'.")
  return match.group(1)


class ReadmeTest(absltest.TestCase):

  def test_api_example_runs(self):
    scope = {}
    example = fenced_block("The pure API", "python")
    exec(example, scope)  # pylint: disable=exec-used
    self.assertEqual(scope["logits"].shape, (2, 128, 260))
    self.assertGreater(float(scope["loss"]), 0.0)

  def test_presets_example_runs(self):
    scope = {}
    example = fenced_block("Baselines, presets and the memory claim", "python")
    exec(example, scope)  # pylint: disable=exec-used
    self.assertEqual(scope["cfg"].segment_length, scope["cfg"].window_length)

  def test_data_example_runs_and_resumes_after_its_last_batch(self):
    scope = {}
    exec(fenced_block("Data", "python"), scope)  # pylint: disable=exec-used
    self.assertEqual(scope["per_device"]["tokens"].shape, (8, 1, 4096))
    fresh = pipeline.make_stream("synthetic", "train", rows=8,
                                 segment_length=4096, window_length=512,
                                 devices=8)
    for _ in range(scope["step"] + 2):
      expected = next(fresh)
    np.testing.assert_array_equal(next(scope["stream"])["tokens"],
                                  expected["tokens"])

  def test_ci_runs_the_readme_commands(self):
    setup, test = fenced_block("Set-up and tests", "sh").strip().splitlines()
    ci = (_ROOT / ".ci" / "run").read_text().splitlines()
    self.assertIn(setup, ci)
    self.assertIn(test, ci)


if __name__ == "__main__":
  absltest.main()
