"""`python -m experiments.step_profile` end to end at a tiny size.

A subprocess, as for `launch.bench`: the entry module's flags (bench's size
flags) stay out of the test process.
"""

import json
import os
import subprocess
import sys
import tempfile

from absl.testing import absltest

_TINY = ["--num_layers=2", "--embed_dim=16", "--num_heads=2", "--head_dim=8",
         "--mlp_dim=32", "--vocab_size=32", "--window_length=8",
         "--segment_length=32", "--memory=4", "--long_layer=1",
         "--long_memory=16", "--increment=4", "--batch=2", "--steps=2"]


def run(*args: str) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, "-m", "experiments.step_profile",
                         *args], capture_output=True, text=True, check=False,
                        timeout=600)


class StepProfileTest(absltest.TestCase):

  def test_profile_groups_the_models_ops(self):
    out_md = os.path.join(tempfile.mkdtemp(), "profile.md")
    done = run(*_TINY, "--top=500", f"--out={out_md}")
    self.assertEqual(done.returncode, 0, done.stderr[-2000:])
    result = json.loads(done.stdout.strip().splitlines()[-1])
    groups = result["top_groups_ms"]
    self.assertGreater(result["step_s"], 0)
    # Every instruction's time lands in exactly one group.
    self.assertAlmostEqual(sum(groups.values()), result["op_ms"], places=6)
    # Both passes, with layer indices folded, and the long layer's cross-
    # attention (layer 1 only) among them.
    self.assertTrue(any(g.startswith("forward: melodi/layer_*/ffn/")
                        for g in groups), groups)
    self.assertTrue(any(g.startswith("backward: melodi/layer_*/ffn/")
                        for g in groups), groups)
    self.assertTrue(any("_cross_attention" in g for g in groups), groups)
    self.assertFalse(any("layer_0" in g or "layer_1" in g for g in groups))
    with open(out_md) as f:
      self.assertIn("| ms / step | share | group |", f.read())

  def test_leading_sum_times_both_ways(self):
    done = run("--leading_sum=3,4,5")
    self.assertEqual(done.returncode, 0, done.stderr[-2000:])
    result = json.loads(done.stdout.strip().splitlines()[-1])
    self.assertEqual(result["shape"], [3, 4, 5])
    self.assertEqual(set(result["seconds"]), {"jnp_sum", "sum_rows"})
    self.assertTrue(all(s > 0 for s in result["seconds"].values()))


if __name__ == "__main__":
  absltest.main()
