"""Tests of launch/config_help.py: what --help says about config fields."""

import dataclasses
import glob
import os
import runpy

from absl.testing import absltest
from absl.testing import parameterized

from launch import config_help
from launch import experiment
from launch.configs import common

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The config files (common.py and suites.py hold helpers, not a config).
_FILES = sorted(f for f in glob.glob(
    os.path.join(_ROOT, "launch", "configs", "*.py"))
                if "\ndef get_config(" in open(f).read())


class ConfigHelpTest(parameterized.TestCase):

  def test_trailing_and_block_comments_are_read(self):
    notes = config_help.comments(common)
    self.assertEqual(notes["checkpoint_every"],
                     "Also at the end and on SIGTERM.")  # Trailing.
    for field in ("eval_every", "eval_batches"):  # One block over both.
      self.assertTrue(notes[field].startswith("Held-out loss on the first"),
                      notes[field])

  def test_every_field_of_the_base_config_is_described(self):
    lines = config_help.describe().splitlines()[1:]
    self.assertEqual([l for l in lines if "#" not in l and
                      "model.<field>" not in l], [])
    self.assertTrue(any(l.strip().startswith("model.window_unroll = 1  #")
                        for l in lines))

  def test_the_config_files_are_found(self):
    self.assertContainsSubset(["tiny.py", "passkey.py", "melodi_pg19.py"],
                              [os.path.basename(f) for f in _FILES])

  @parameterized.parameters(*[os.path.basename(f) for f in _FILES])
  def test_every_field_of_each_config_file_is_described(self, name):
    get_config = runpy.run_path(
        os.path.join(_ROOT, "launch", "configs", name))["get_config"]
    lines = config_help.describe(get_config()).splitlines()[1:]
    self.assertEqual([l for l in lines if "#" not in l], [])

  @parameterized.parameters(*[os.path.basename(f) for f in _FILES])
  def test_each_config_file_has_every_model_field_to_override(self, name):
    config = runpy.run_path(
        os.path.join(_ROOT, "launch", "configs", name))["get_config"]()
    model_class = experiment.MODEL_CLASSES[config.model_name]
    self.assertEqual(sorted(config.model),
                     sorted(f.name for f in dataclasses.fields(model_class)))


if __name__ == "__main__":
  absltest.main()
