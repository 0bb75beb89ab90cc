"""config.data.curriculum: checked before anything runs, read by training.

Glossary of shapes:
- B = 8 rows.  T = 32 tokens.  G: characters between passkey mentions.
"""

import math

from absl.testing import absltest
from absl.testing import parameterized

from launch import compare_lib
from launch import experiment
from launch.configs import passkey
from launch.configs import suites


def smoke_row(**curriculum):
  """The smoke suite's MELODI S+L config, curriculum fields replaced."""
  config = suites.get_suite("smoke")["rows"]["melodi_short_long"]
  for key, value in curriculum.items():
    if key == "steps":
      config.data.curriculum.steps = value
    else:
      config.data.curriculum.synthetic[key] = value
  return config


class CurriculumConfigTest(parameterized.TestCase):

  def test_warm_up_fields_replace_the_run_task_for_its_steps(self):
    config = smoke_row()
    (steps, fields), = experiment.curriculum(config)
    self.assertEqual(steps, config.data.curriculum.steps)
    self.assertLess(steps, config.num_steps)  # The run reaches its task.
    expected = dict(config.data.synthetic.to_dict(), min_recall_gap=24,
                    max_recall_gap=24)
    self.assertEqual(fields, expected)

  def test_off_by_default(self):
    config = passkey.get_config("xl,40")
    self.assertEqual(experiment.curriculum(config), [])

  def test_training_streams_switch_and_eval_streams_do_not(self):
    config = smoke_row()
    steps = config.data.curriculum.steps
    train = experiment.make_stream(config, "train", rows=8, devices=1,
                                   training=True)
    for _ in range(steps + 1):
      next(train)
    self.assertEqual(train.get_state()["phase"], 1)
    held_out = experiment.make_stream(config, "validation", rows=8,
                                      devices=1, training=False)
    self.assertNotIn("phase", held_out.get_state())

  @parameterized.named_parameters(
      ("negative steps", dict(steps=-1), r"curriculum.steps=-1 must be"),
      ("fields without steps", dict(steps=0),
       r"sets \{'max_recall_gap': 24, 'min_recall_gap': 24\} but "
       "config.data.curriculum.steps=0"),
      ("steps without fields", dict(steps=2, min_recall_gap=None,
                                    max_recall_gap=None),
       "sets no field"),
      ("warm-up as long as the run", dict(steps=3),
       "steps=3 is not below config.num_steps=3"),
      ("bad warm-up corpus", dict(max_recall_gap=20),
       r"makes a bad warm-up corpus: max_recall_gap=20 is below "
       "min_recall_gap=24"),
  )
  def test_bad_values_are_named(self, curriculum, message):
    with self.assertRaisesRegex(ValueError, message):
      experiment.check_config(smoke_row(**curriculum))

  def test_a_real_corpus_has_no_warm_up(self):
    config = smoke_row()
    config.data.corpus = "local:kjv"
    with self.assertRaisesRegex(ValueError, "needs the synthetic corpus, not "
                                "config.data.corpus='local:kjv'"):
      experiment.check_config(config)


class SuiteTest(absltest.TestCase):

  def test_curriculum_suite_is_the_cpu_suite_with_a_warm_up(self):
    cpu = suites.get_suite("cpu")["rows"]
    curriculum = suites.get_suite("curriculum")["rows"]
    self.assertEqual(list(curriculum), list(suites.ROWS))
    for row, config in curriculum.items():
      self.assertEqual(experiment.curriculum(config), [(1000, dict(
          cpu[row].data.synthetic.to_dict(), min_recall_gap=24,
          max_recall_gap=24))])
      config.data.curriculum.steps = 0
      config.data.curriculum.synthetic.min_recall_gap = None
      config.data.curriculum.synthetic.max_recall_gap = None
      self.assertEqual(config.to_dict(), cpu[row].to_dict(), row)


class ComparisonTableTest(absltest.TestCase):
  """The curriculum suite is read by the recall that each memory mode keeps."""

  def test_exact_match_of_every_memory_mode_is_a_column(self):
    gains = dict(carried=dict(minus_first=0.0, recall_exact_match=1.0),
                 reset_segment=dict(minus_first=0.1, recall_exact_match=0.25),
                 reset_long=dict(minus_first=0.2, recall_exact_match=0.5))
    evaluation = dict(nats_per_token=1.0, perplexity=2.7, memory_gain=gains,
                      values=dict(recall_exact_match=1.0))
    row = compare_lib.summary(dict(name="melodi_long", eval=evaluation,
                                   carried_floats_per_row=8,
                                   step_time_ms=1.0, tokens_trained=64))
    self.assertEqual((row["reset_segment_exact_match"],
                      row["reset_long_exact_match"]), (0.25, 0.5))
    head, _, line = compare_lib.markdown_table([row]).splitlines()
    split = lambda text: [cell.strip() for cell in text.strip("|").split("|")]
    cells = dict(zip(split(head), split(line)))
    self.assertEqual(cells["EM, reset every segment"], "0.250")
    self.assertEqual(cells["EM, long memory reset"], "0.500")
    del gains["reset_long"]  # A model without a long memory: blank.
    row = compare_lib.summary(dict(row, name="melodi_short", eval=evaluation))
    self.assertTrue(math.isnan(row["reset_long_exact_match"]))


if __name__ == "__main__":
  absltest.main()
