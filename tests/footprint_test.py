"""Memory footprint: agrees with init_memory and melodi_hk/README.md §12.4.

Glossary: W window, C KV memory slots, E width; all counts per batch row.
"""

import contextlib
import io

from absl import flags
from absl.testing import absltest
from absl.testing import parameterized
import jax
import numpy as np

import melodi_hk
from launch import footprint as footprint_main
from melodi_hk import presets


def _pytree_sizes(cfg) -> tuple[int, int]:
  """(bytes, float count) of init_memory(1), from shapes only."""
  leaves = jax.tree.leaves(
      jax.eval_shape(lambda: melodi_hk.build(cfg).init_memory(1)))
  nbytes = sum(int(np.prod(l.shape)) * l.dtype.itemsize for l in leaves)
  floats = sum(int(np.prod(l.shape)) for l in leaves
               if np.issubdtype(l.dtype, np.floating) or l.dtype == "bfloat16")
  return nbytes, floats


class FootprintTest(parameterized.TestCase):

  @parameterized.product(name=sorted(presets.PRESETS),
                         scale=["paper", "tiny"])
  def test_footprint_equals_the_init_memory_pytree(self, name, scale):
    cfg = presets.PRESETS[name]()
    cfg = melodi_hk.tiny(cfg) if scale == "tiny" else cfg
    fp = melodi_hk.memory_footprint(cfg)
    self.assertEqual((fp.bytes, fp.floats), _pytree_sizes(cfg))

  def test_paper_table_reproduces_spec_12_5(self):
    rows = {(r.model, r.layers): r for r in footprint_main.paper_table()}
    mt = rows["Memorizing 64K", 12].footprint
    self.assertEqual((mt.tokens, mt.floats), (71_680, 146_800_640))
    self.assertEqual(rows["Transformer-XL", 12].footprint.floats, 12_582_912)
    self.assertEqual(rows["Transformer-XL", 13].footprint.floats, 13_631_488)
    spec = {  # (layers, size): tokens, as embeddings, as K+V, both ratios
        (12, "S64+L32"): (4_864, 4_980_736, 9_961_472, 29.47, 14.74),
        (12, "S128+L64"): (9_728, 9_961_472, 19_922_944, 14.74, 7.37),
        (12, "S192+L96"): (14_592, 14_942_208, 29_884_416, 9.82, 4.91),
        (13, "S64+L32"): (4_928, 5_046_272, 10_092_544, 29.09, 14.55),
        (13, "S128+L64"): (9_856, 10_092_544, 20_185_088, 14.55, 7.27),
        (13, "S192+L96"): (14_784, 15_138_816, 30_277_632, 9.70, 4.85),
        (13, "S192+L32"): (6_592, 6_750_208, 13_500_416, 21.75, 10.87),
    }
    for (layers, size), want in spec.items():
      r = rows[f"MELODI {size}", layers]
      got = (r.footprint.tokens, r.footprint.floats, r.footprint.floats_as_kv,
             round(r.ratio, 2), round(r.ratio_kv, 2))
      self.assertEqual(got, want, (layers, size))
    # The paper's "8x": 64K slots vs S128+L64's 8,192 long-term tokens.
    self.assertEqual(mt.tokens - 12 * 512,
                     8 * rows["MELODI S128+L64", 13].long_term)

  def test_bytes_follow_the_compute_dtype(self):
    half = melodi_hk.memory_footprint(presets.melodi("S64+L32", 12))
    full = melodi_hk.memory_footprint(presets.melodi("S64+L32", 12,
                                                     dtype="float32"))
    self.assertEqual((half.bytes, full.bytes),
                     (2 * half.floats, 4 * half.floats))

  def test_not_a_config_is_a_type_error(self):
    with self.assertRaisesRegex(TypeError, "dict is not a model config"):
      melodi_hk.memory_footprint({})
    with self.assertRaisesRegex(TypeError, "dict is not a model config"):
      melodi_hk.build({})

  def test_launch_script_prints_the_table(self):
    if not flags.FLAGS.is_parsed():
      flags.FLAGS.mark_as_parsed()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
      footprint_main.main([])
    self.assertIn("| MELODI S128+L64 | 13 | 8,192 | 9,856 | 10,092,544 |",
                  out.getvalue())
    self.assertIn("| Memorizing 64K | 12 | 65,536 | 71,680 | 146,800,640 |",
                  out.getvalue())


if __name__ == "__main__":
  absltest.main()
