"""Tests of the side-by-side's parts that do not need meliad or flax.

Glossary of shapes: T segment, W window, E width, L long memory, I
increment, V vocab.

experiments/meliad_config.py (our config as meliad's gin bindings, the
argument checks) and experiments/meliad_report.py (ratios and targets).
"""

import json
import os
import re
import tempfile

from absl.testing import absltest
from absl.testing import parameterized

from experiments import meliad_config
from experiments import meliad_report
import melodi_hk

_TESTDATA = os.path.join(os.path.dirname(__file__), "testdata")


def _cfg(**kw):
  fields = dict(vocab_size=256, num_layers=4, embed_dim=256, num_heads=4,
                head_dim=64, mlp_dim=1024, window_length=128,
                segment_length=512, short_term_memory_size=32,
                summary_size=16, long_term_layers=(2,),
                long_term_memory_size=512, long_term_memory_increment=8,
                dtype="float32")
  fields.update(kw)
  return melodi_hk.MelodiConfig(**fields)


def _binding(text: str, name: str) -> str:
  return re.search(rf"^{re.escape(name)} = (.*)$", text, re.M).group(1)


def _compile(impl, t, temp, params=100):
  return dict(mode="compile", impl=impl, num_params=params, compile_s=1.0,
              compile_cpu_s=1.0, temp_bytes=temp,
              config=dict(embed_dim=1024, segment_length=t))


class GinBindingsTest(parameterized.TestCase):

  def test_sizes_land_on_the_modules_that_read_them(self):
    text = meliad_config.gin_bindings(_cfg())
    stack = "ordinary/melodi_layer.MelodiStack."
    layer = "ordinary/melodi_layer.MelodiSequenceLayer."
    want = {stack + "num_layers": "4", stack + "window_length": "128",
            stack + "long_term_memory_layer_indices": "(2,)",
            stack + "long_term_memory_size": "512",
            stack + "long_term_memory_increment_size": "8",
            stack + "short_term_memory_size": "32",
            stack + "summary_size": "16", layer + "num_heads": "4",
            layer + "head_size": "64", layer + "mlp_dim": "1024",
            layer + "attn_dropout_rate": "0.05",
            "transformer_stack.DecoderStack.embedding_dim": "256",
            "transformer_stack.DecoderStack.dtype": '"float32"',
            "transformer_base.TransformerBase.dropout_rate": "0.05"}
    self.assertEqual({k: _binding(text, k) for k in want}, want)

  @parameterized.parameters(((), "()"), ((1, 3), "(1, 3,)"))
  def test_long_layers_are_a_gin_tuple(self, layers, want):
    cfg = _cfg(long_term_layers=layers,
               long_term_memory_size=512 if layers else 0,
               long_term_memory_increment=8 if layers else 0)
    self.assertEqual(_binding(meliad_config.gin_bindings(cfg),
                              "ordinary/melodi_layer.MelodiStack."
                              "long_term_memory_layer_indices"), want)

  @parameterized.parameters("mask_unwritten_long_memory", "long_memory_scale")
  def test_improvements_meliad_lacks_are_refused(self, name):
    with self.assertRaisesRegex(ValueError, name):
      meliad_config.gin_bindings(_cfg(**{name: True}))

  def test_golden_sidecar_maps_to_our_config(self):
    with open(os.path.join(_TESTDATA, "melodi_c_t5_w32_s128.json")) as f:
      sidecar = json.load(f)["config"]
    cfg = meliad_config.golden_config(sidecar)
    self.assertEqual(
        (cfg.num_layers, cfg.embed_dim, cfg.window_length,
         cfg.segment_length, cfg.short_term_memory_size, cfg.summary_size,
         cfg.long_term_layers, cfg.long_term_memory_size,
         cfg.long_term_memory_increment),
        (4, 64, 32, 128, 32, 16, (2,), 64, 8))

  def test_unflatten_nests_paths_under_the_prefix(self):
    got = meliad_config.unflatten({"p/a/b": 1, "p/c": 2, "q/d": 3}, "p/")
    self.assertEqual(got, {"a": {"b": 1}, "c": 2})
    with self.assertRaisesRegex(KeyError, "x/"):
      meliad_config.unflatten({"p/a": 1}, "x/")


class ArgumentChecksTest(parameterized.TestCase):

  @parameterized.parameters([["meliad", "layer"]], [[]], [["none", "none"]],
                            [["none_unroll0"]], [["none_unroll"]],
                            [["layer_unroll2"]], [["none_unrollx"]])
  def test_bad_impls_are_named(self, impls):
    with self.assertRaisesRegex(ValueError, "--impls"):
      meliad_config.check_impls(impls)

  @parameterized.parameters(("none", ("none", 1)), ("dots", ("dots", 1)),
                            ("window_unroll4", ("window", 4)),
                            ("none_unroll2", ("none", 2)))
  def test_impl_names_give_remat_and_unroll(self, name, want):
    self.assertEqual(meliad_config.parse_impl(name), want)

  def test_meliad_dir_without_melodi_says_what_to_get(self):
    with tempfile.TemporaryDirectory() as d:
      with self.assertRaisesRegex(ValueError, "cc1aef5.*pip install"):
        meliad_config.check_meliad_dir(d)
      path = os.path.join(d, "transformer", "memory2")
      os.makedirs(path)
      open(os.path.join(path, "melodi_layer.py"), "w").close()
      self.assertEqual(meliad_config.check_meliad_dir(d), d)


class ReportTest(absltest.TestCase):

  def test_targets_are_ratios_of_temp_memory_to_meliads(self):
    records = [_compile("meliad", 4096, 10e9), _compile("none", 4096, 7e9),
               _compile("window", 4096, 3.5e9), _compile("dots", 4096, 4e9),
               dict(mode="compile_failed", impl="meliad",
                    segment_length=8192, rc=124, limit_s=1200)]
    got = meliad_report.targets(records)
    self.assertEqual(got[0], "- T = 4096, remat none <= 0.8x meliad: "
                     "0.70x, met.")
    self.assertEqual(got[1], "- T = 4096, best remat (window) <= 0.3x "
                     "meliad: 0.35x, NOT met.")
    self.assertEqual(got[2], "- T = 8192: meliad not measured (over 1200 s).")

  def test_table_flags_unequal_parameter_counts(self):
    rows = meliad_report.paper_table(
        [_compile("meliad", 4096, 10e9, params=5),
         _compile("none", 4096, 5e9, params=6)])
    self.assertIn("| 4096 | 10.00 GB | 5.00 GB (0.50x) | not run | not run "
                  "| {5, 6} |", rows)

  def test_bench_table_takes_the_widest_run_and_lists_the_others(self):
    small = dict(embed_dim=256, segment_length=512)
    records = [
        dict(_compile(i, 512, 1e6), config=small) for i in
        ("meliad", "none", "none_unroll4", "window")] + [
            _step({"meliad": 1.0, "none": 0.9, "none_unroll4": 0.8,
                   "window": 0.85}),
            _step({"meliad": 1.0, "none_unroll4": 0.82}),
            dict(_step({"meliad": 1.0, "none": 0.88}), code="abc1234")]
    rows = meliad_report.bench_table(records)
    # IMPLS first, then the others in the order they were compiled.
    self.assertEqual([r.split(" | ")[0] for r in rows[2:6]],
                     ["| meliad", "| none", "| window", "| none_unroll4"])
    self.assertIn("| 0.80x |", rows[5])
    self.assertIn("Other run 1 (older code): step / meliad meliad 1.00x, "
                  "none_unroll4 0.82x (load 1.0-1.0).", rows)
    # Step records name the code they timed; those before that field don't.
    self.assertIn("Other run 2 (code abc1234): step / meliad meliad 1.00x, "
                  "none 0.88x (load 1.0-1.0).", rows)


def _step(ratios: dict) -> dict:
  return dict(mode="step", base="meliad", rounds=1, steps=1,
              step_s=dict(ratios), ratio_to_base=dict(ratios),
              load_1min=[1.0])


if __name__ == "__main__":
  absltest.main()
