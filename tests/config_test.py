"""MelodiConfig rejects impossible settings with messages that name them."""

from absl.testing import absltest
from absl.testing import parameterized

import melodi_hk

_BASE = dict(vocab_size=64, num_layers=3, embed_dim=32, num_heads=2,
             head_dim=16, mlp_dim=64, window_length=16, segment_length=32,
             short_term_memory_size=8, summary_size=8, long_term_layers=(1,),
             long_term_memory_size=32, long_term_memory_increment=4)


class MelodiConfigTest(parameterized.TestCase):

  def test_valid_config_and_derived_values(self):
    cfg = melodi_hk.MelodiConfig(**(_BASE | {"long_term_layers": [1]}))
    self.assertEqual(cfg.long_term_layers, (1,))
    self.assertEqual(cfg.windows_per_segment, 2)
    self.assertEqual(cfg.dtype, "bfloat16")

  @parameterized.named_parameters(
      ("segment not a multiple of window", {"segment_length": 40},
       "segment_length=40 must be a multiple of window_length=16"),
      ("long layer out of range", {"long_term_layers": (3,)},
       r"\[3\] out of range for num_layers=3"),
      ("negative long layer", {"long_term_layers": (-1,)}, "out of range"),
      ("repeated long layer", {"long_term_layers": (1, 1)},
       "strictly increasing without repeats"),
      ("long layers without memory", {"long_term_memory_size": 0},
       "needs a positive long_term_memory_size"),
      ("memory without long layers", {"long_term_layers": ()},
       "need long_term_layers, which is empty"),
      ("size not a multiple of increment", {"long_term_memory_increment": 5},
       "long_term_memory_size=32 must be a multiple of "
       "long_term_memory_increment=5"),
      ("zero width", {"embed_dim": 0}, "'embed_dim': 0"),
      ("negative heads", {"num_heads": -2}, "'num_heads': -2"),
      ("zero summary", {"summary_size": 0}, "'summary_size': 0"),
      ("zero short memory", {"short_term_memory_size": 0},
       "cannot run a MELODI layer without short-term memory"),
      ("dropout of one", {"dropout_rate": 1.0}, r"dropout_rate=1.0"),
      ("unknown dtype", {"dtype": "float16"}, "dtype='float16'"),
      ("long scale not a bool", {"long_memory_scale": 1},
       "long_memory_scale=1 must be True or False"),
      ("long scale without long memory", {
          "long_memory_scale": True, "long_term_layers": (),
          "long_term_memory_size": 0, "long_term_memory_increment": 0},
       "long_memory_scale=True needs a long-term memory"),
  )
  def test_bad_values_are_named(self, overrides, message):
    with self.assertRaisesRegex(ValueError, message):
      melodi_hk.MelodiConfig(**(_BASE | overrides))

  def test_the_shared_base_is_not_a_model_type(self):
    shared = {k: _BASE[k] for k in ("vocab_size", "num_layers", "embed_dim",
                                    "num_heads", "head_dim", "mlp_dim")}
    with self.assertRaisesRegex(TypeError, "ModelConfig is a base class"):
      melodi_hk.config.ModelConfig(**shared)


if __name__ == "__main__":
  absltest.main()
