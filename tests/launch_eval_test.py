"""Tests of launch/eval_lib.py: perplexity over every document of a split.

Shape letters (launch/__init__.py): A = 8 fake CPU devices, R = 8 eval
rows, T = 32 tokens.
"""

import json
import math
import os
import tempfile

from absl.testing import absltest
import jax
import melodi_hk
import numpy as np

from data import tokenizers
from launch import eval_lib
from launch import experiment
from launch import trainer
from tests import launch_testing

_DOCUMENTS = 5  # Fewer than the 8 rows: three rows idle from the start.


def _reference_nats(config, params, texts, reset_every_segment=False):
  """Summed nats and predicted tokens, one document at a time, batch 1."""
  model_cfg = experiment.model_config(config)
  model = melodi_hk.build(model_cfg)
  apply = jax.jit(model.apply)
  length = model_cfg.segment_length
  nats, tokens = 0.0, 0
  for text in texts:
    ids = tokenizers.ByteTokenizer().encode(text)
    ids = np.pad(ids, (0, -len(ids) % length)).reshape(-1, 1, length)
    memory = model.init_memory(1)
    for k, segment in enumerate(ids):  # [1, T] each, memory carried.
      start = np.array([k == 0 or reset_every_segment])
      logits, memory = apply(params, memory, segment, start)
      out = melodi_hk.lm_loss(logits, segment, segment > 0)
      nats, tokens = nats + float(out.loss), tokens + int(out.num_tokens)
  return nats, tokens


class EvalTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    self.enter_context(launch_testing.small_corpus(count=_DOCUMENTS))
    self.workdir = self.enter_context(tempfile.TemporaryDirectory())

  def test_perplexity_is_exp_of_total_nats_per_predicted_token(self):
    config = launch_testing.small_config()
    trainer.train(config, self.workdir)
    result = eval_lib.evaluate(config, self.workdir, "validation")
    params, _ = eval_lib.restore_params(
        config, experiment.model_config(config), self.workdir, None)
    nats, tokens = _reference_nats(
        config, params, launch_testing.documents("validation", _DOCUMENTS))
    self.assertEqual(result["documents"], _DOCUMENTS)
    self.assertEqual(result["predicted_tokens"], tokens)
    np.testing.assert_allclose(result["nats_per_token"], nats / tokens,
                               rtol=1e-5)
    np.testing.assert_allclose(result["perplexity"], math.exp(nats / tokens),
                               rtol=1e-5)

  def test_a_run_scores_its_own_data_unless_told_and_says_so(self):
    trainer.train(launch_testing.small_config(), self.workdir)
    own, name = eval_lib.evaluate_run(self.workdir, max_batches=1)
    self.assertEqual((own["data_changes"], name), ([], "validation"))
    other = launch_testing.small_config()
    other.data.synthetic.min_recall_gap = 400
    with self.assertLogs(level="WARNING") as logs:
      result, other_name = eval_lib.evaluate_run(self.workdir, other,
                                                 max_batches=1)
    change = "data.synthetic.min_recall_gap: 8192 -> 400"
    self.assertEqual(result["data_changes"], [change])
    self.assertIn(change, "\n".join(logs.output))
    self.assertRegex(other_name, r"^validation_data-[0-9a-f]{8}$")
    self.assertEqual(other_name, "validation" + eval_lib.data_tag([change]))
    self.assertNotEqual(eval_lib.data_tag([change]),
                        eval_lib.data_tag(["data.corpus: 'a' -> 'b'"]))
    # The test corpus ignores the gap: same documents, same score.
    self.assertEqual(result["nats_per_token"], own["nats_per_token"])

  def test_a_workdir_without_config_json_is_a_clear_error(self):
    with self.assertRaisesRegex(ValueError, "No config.json in .*--workdir"):
      eval_lib.evaluate_run(self.workdir)

  def test_missing_checkpoint_is_a_clear_error(self):
    with self.assertRaisesRegex(ValueError, "No checkpoints in .*--workdir"):
      eval_lib.evaluate(launch_testing.small_config(), self.workdir,
                        "validation")

  def test_held_out_every_eval_every_steps_and_memory_modes(self):
    config = launch_testing.small_config()
    config.eval_every, config.eval_batches = 3, 2
    trainer.train(config, self.workdir)
    with open(os.path.join(self.workdir, "eval_log.jsonl")) as log:
      lines = [json.loads(line) for line in log.read().splitlines()]
    self.assertEqual([line["step"] for line in lines], [3, 6])
    model_cfg = experiment.model_config(config)
    params, _ = eval_lib.restore_params(config, model_cfg, self.workdir, None)
    held_out = eval_lib.score_params(config, model_cfg, params, "validation",
                                     max_batches=2)
    np.testing.assert_allclose(lines[-1]["nats_per_token"],
                               held_out["nats_per_token"], rtol=1e-6)
    self.assertEqual(held_out["batches"], 2)
    result = eval_lib.evaluate(config, self.workdir, "validation",
                               memory_modes=("carried", "reset_segment",
                                             "reset_long"))
    texts = launch_testing.documents("validation", _DOCUMENTS)
    for mode, reset in (("carried", False), ("reset_segment", True)):
      nats, tokens = _reference_nats(config, params, texts, reset)
      np.testing.assert_allclose(
          result["memory_gain"][mode]["nats_per_token"], nats / tokens,
          rtol=1e-5)
    # Zeroing only the long memory lands in between (it is not a no-op).
    gains = result["memory_gain"]
    self.assertFalse(np.isclose(gains["reset_long"]["nats_per_token"],
                                gains["carried"]["nats_per_token"],
                                rtol=1e-7, atol=1e-12))
    self.assertEqual(sum(b["tokens"] for b in result["by_position"]), tokens)

  def test_reset_long_needs_a_long_memory(self):
    config = launch_testing.small_config()
    config.model.long_term_layers = ()
    config.model.long_term_memory_size = 0
    config.model.long_term_memory_increment = 0
    with self.assertRaisesRegex(ValueError,
                                "'reset_long' needs a MELODI model"):
      eval_lib.check_memory_mode(experiment.model_config(config),
                                 "reset_long")


if __name__ == "__main__":
  absltest.main()
