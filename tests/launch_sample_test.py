"""Smoke tests of launch/sample.py on a tiny random-init MELODI.

Glossary of shapes: B = 2 samples, T = 32 tokens, W = 16, V = 260 bytes.
"""

import io
import tempfile

from absl.testing import absltest
import melodi_hk
import numpy as np

from data import tokenizers
from launch import checkpoints
from launch import sample_lib
from tests import launch_testing


def _random_model():
  config = launch_testing.small_config(dropout=0.0)
  return sample_lib.load(None, config)


class SampleTest(absltest.TestCase):

  def test_random_init_streams_a_continuation_per_row(self):
    config, model_cfg, params = _random_model()
    out, err = io.StringIO(), io.StringIO()
    prompt = "abc de. " * 9  # 72 bytes: 4 windows and a partial one.
    texts = sample_lib.sample(config, model_cfg, params, prompt, 20,
                          melodi_hk.SamplingConfig(temperature=0.0), 0, 2,
                          out=out, err=err)
    self.assertLen(texts, 2)
    self.assertEqual(texts[0], texts[1])  # Greedy: rows agree.
    self.assertIn("prefill 72/72 tokens (100.0%)", err.getvalue())
    self.assertIn("decode state:", err.getvalue())
    # The printed stream is the greedy continuation, token by token.
    dec = melodi_hk.decoder(model_cfg)
    ids = tokenizers.ByteTokenizer().encode(prompt)[None]
    logits, state = dec.prefill(params, melodi_hk.build(model_cfg)
                                .init_memory(1), ids, np.ones(1, bool))
    want = []
    for _ in range(20):
      want.append(int(np.argmax(logits[0])))
      logits, state = dec.decode_step(params, state, np.array(want[-1:]))
    self.assertEqual(texts[0], tokenizers.ByteTokenizer().decode(want))
    self.assertIn(f"[0] {texts[0]!r}", out.getvalue())  # One chunk.

  def test_state_size_is_reported_and_fixed(self):
    config, model_cfg, params = _random_model()
    sizes = []
    for prompt in ("ab", "ab" * 100):
      err = io.StringIO()
      sample_lib.sample(config, model_cfg, params, prompt, 1,
                    melodi_hk.SamplingConfig(), 0, 1, out=io.StringIO(),
                    err=err)
      sizes.append(err.getvalue().split("decode state: ")[1])
    self.assertEqual(sizes[0], sizes[1])

  def test_workdir_without_checkpoint(self):
    config = launch_testing.small_config()
    with tempfile.TemporaryDirectory() as workdir:
      with self.assertRaisesRegex(ValueError, "No config.json"):
        sample_lib.load(workdir, None)
      checkpoints.store_config(workdir, config)
      with self.assertRaisesRegex(ValueError, "No checkpoint"):
        sample_lib.load(workdir, None)

  def test_workdir_and_config_are_exclusive(self):
    with self.assertRaisesRegex(ValueError, "exactly one"):
      sample_lib.load("/tmp/x", launch_testing.small_config())

  def test_empty_prompt(self):
    config, model_cfg, params = _random_model()
    with self.assertRaisesRegex(ValueError, "empty"):
      sample_lib.sample(config, model_cfg, params, "", 5,
                    melodi_hk.SamplingConfig(), 0, 1, out=io.StringIO(),
                    err=io.StringIO())


if __name__ == "__main__":
  absltest.main()
