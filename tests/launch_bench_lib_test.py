"""Tests of launch/bench_lib.py: FLOP counts, peaks, MFU, memory, batch search.

Shape letters (launch/__init__.py): B 3 rows; MELODI with 2 layers, E 8,
2x4 heads (H*D 8), F 16, V 32, W 4, T 8 (2 windows), M = S = 2, long layer
1 with L 8 / I 2; Transformer-XL of the same size.
"""

import itertools
import json
import subprocess
import sys

from absl.testing import absltest
from absl.testing import parameterized
import jax

import melodi_hk
from launch import bench_lib

_SIZE = dict(vocab_size=32, num_layers=2, embed_dim=8, num_heads=2,
             head_dim=4, mlp_dim=16, window_length=4, segment_length=8,
             dtype="bfloat16")


def mm(m: int, k: int, n: int) -> int:
  """FLOPs of one [m, k] x [k, n] matmul."""
  return 2 * m * k * n


class FlopsTest(absltest.TestCase):

  def test_melodi_count_matches_the_matmuls_listed_by_hand(self):
    cfg = melodi_hk.MelodiConfig(
        **_SIZE, short_term_memory_size=2, summary_size=2,
        long_term_layers=(1,), long_term_memory_size=8,
        long_term_memory_increment=2)
    # A window's queries: W + S = 6 tokens; its keys: M + W + S = 8.
    layer = (mm(8, 8, 8) * 2  # K and V of the 8 keys.
             + mm(6, 8, 8)  # Q.
             + mm(6, 8, 8) + mm(6, 8, 8)  # Scores [6, 8], weighted sum.
             + mm(6, 8, 8)  # Output projection.
             + mm(6, 8, 16) + mm(6, 16, 8)  # FFN.
             + mm(4, 6, 8))  # Token mixing into M + S = 4 rows.
    long_extra = (mm(6, 8, 8) * 2  # Scores against L = 8, weighted sum.
                  + mm(2, 6, 8)  # Mixing into the I = 2 new entries.
                  + mm(2, 8, 8) * 2)  # Their K and V.
    window = 2 * layer + long_extra + mm(4, 8, 32)  # 2 layers, the head.
    segment = 2 * window + mm(8, 8, 8) * 2  # 2 windows; K, V of L.
    self.assertEqual(segment, 44928)  # The sum above, done by hand.
    self.assertEqual(bench_lib.training_flops(cfg, 3), 3 * 3 * segment)
    self.assertEqual(bench_lib.model_flops(cfg, 3), 3 * 3 * segment)

  def test_transformer_xl_count_matches_the_matmuls_listed_by_hand(self):
    cfg = melodi_hk.TransformerXLConfig(**_SIZE)
    layer = (mm(8, 8, 8) * 4  # Q, K, V, output over T = 8 tokens.
             + mm(8, 8, 16) + mm(8, 16, 8)  # FFN.
             + mm(8, 8, 8) * 2)  # Scores against 2W = 8 keys, weighted sum.
    segment = 2 * layer + mm(8, 8, 32)
    self.assertEqual(segment, 24576)
    self.assertEqual(bench_lib.model_flops(cfg, 3), 3 * 3 * segment)


class PeakTest(parameterized.TestCase):

  @parameterized.parameters(
      ("NVIDIA H200", "bfloat16", 989.4e12),
      ("NVIDIA H200", "float32", 494.7e12),  # TF32, XLA's float32 default.
      ("NVIDIA H100 80GB HBM3", "bfloat16", 989.4e12),
      ("NVIDIA A100-SXM4-80GB", "bfloat16", 312e12),
      ("TPU v5 lite", "bfloat16", 197e12),
      ("TPU v4", "float32", 275e12))
  def test_known_cards(self, kind, dtype, peak):
    self.assertAlmostEqual(bench_lib.peak_flops(kind, dtype), peak, delta=1e6)

  @parameterized.parameters("cpu", "NVIDIA GeForce RTX 4090", "nvidia h200")
  def test_unknown_card_has_no_peak_and_no_mfu(self, kind):
    self.assertIsNone(bench_lib.peak_flops(kind, "bfloat16"))
    self.assertIsNone(bench_lib.utilisation(1e12, 1.0, None))

  def test_mfu_is_analytic_flops_per_second_over_the_peak(self):
    cfg = melodi_hk.MelodiConfig(
        **_SIZE, short_term_memory_size=2, summary_size=2,
        long_term_layers=(1,), long_term_memory_size=8,
        long_term_memory_increment=2)
    flops = bench_lib.training_flops(cfg, 3)  # 404352, tested above.
    peak = bench_lib.peak_flops("NVIDIA H200", cfg.dtype)
    # 404352 FLOPs in 2 us: 2.02176e11 FLOP/s of 9.894e14.
    self.assertAlmostEqual(bench_lib.utilisation(flops, 2e-6, peak),
                           2.02176e11 / 9.894e14, places=12)

  def test_other_dtypes_are_refused(self):
    with self.assertRaisesRegex(ValueError, "float16"):
      bench_lib.peak_flops("NVIDIA H200", "float16")


class _FakeDevice:

  device_kind = "fake"

  def __init__(self, stats):
    self._stats = stats

  def memory_stats(self):
    return self._stats


class MemoryTest(absltest.TestCase):

  def test_allocator_statistics_are_read(self):
    stats = dict(peak_bytes_in_use=5, bytes_limit=9, bytes_in_use=3)
    self.assertEqual(bench_lib.device_memory(_FakeDevice(stats)),
                     dict(peak_bytes_in_use=5, bytes_limit=9))

  def test_backends_without_statistics_give_none(self):
    none = dict(peak_bytes_in_use=None, bytes_limit=None)
    self.assertEqual(bench_lib.device_memory(_FakeDevice(None)), none)
    self.assertEqual(bench_lib.device_memory(jax.devices("cpu")[0]), none)

  def test_budget_is_95_percent_of_the_limit_unless_given(self):
    device = _FakeDevice(dict(peak_bytes_in_use=0, bytes_limit=1000))
    self.assertEqual(bench_lib.memory_budget(device), 950)
    self.assertEqual(bench_lib.memory_budget(device, 123), 123)

  def test_budget_without_a_limit_asks_for_one(self):
    with self.assertRaisesRegex(ValueError, "--max_batch_bytes"):
      bench_lib.memory_budget(jax.devices("cpu")[0])
    self.assertEqual(bench_lib.memory_budget(jax.devices("cpu")[0], 7), 7)

  def test_step_bytes_counts_donated_outputs_once(self):
    memory = dict(argument_bytes=100, output_bytes=110, alias_bytes=90,
                  temp_bytes=40)
    self.assertEqual(bench_lib.step_bytes(memory), 100 + 20 + 40)


class LargestBatchTest(parameterized.TestCase):
  """The search against a fake step's bytes: 1000 fixed, 300 per row and
  a convex term, so a line through B = 1, 2 guesses too high."""

  @staticmethod
  def bytes_at(batch: int) -> int:
    return 1000 + 300 * batch + 7 * batch * batch

  @parameterized.parameters(itertools.product(
      (900, 1307, 5000, 20000, 10**9), (1, 5, 37, 64), (64, 100)))
  def test_finds_the_largest_fitting_batch(self, budget, guess, limit):
    guess = min(guess, limit)
    probed = []
    def fits(batch):
      probed.append(batch)
      return self.bytes_at(batch) <= budget
    batch, probes, early = bench_lib.largest_batch(fits, guess, limit, 60.0)
    brute = max([b for b in range(1, limit + 1)
                 if self.bytes_at(b) <= budget], default=0)
    self.assertEqual(batch, brute)
    self.assertFalse(early)
    self.assertEqual([b for b, _ in probes], probed)
    self.assertTrue(all(ok == (self.bytes_at(b) <= budget)
                        for b, ok in probes))
    self.assertLessEqual(len(probes), 2 * limit.bit_length() + 1)

  def test_an_exact_guess_costs_two_probes(self):
    budget = self.bytes_at(20)
    _, probes, _ = bench_lib.largest_batch(
        lambda b: self.bytes_at(b) <= budget, 20, 64, 60.0)
    self.assertEqual(probes, [(20, True), (21, False)])

  def test_linear_guess_lands_on_a_linear_step(self):
    bytes_at = lambda b: 1000 + 300 * b
    budget = bytes_at(17) + 299
    self.assertEqual(bench_lib.linear_guess(bytes_at(1), bytes_at(2), budget),
                     17)
    self.assertEqual(bench_lib.linear_guess(bytes_at(1), bytes_at(2), 10), 1)

  def test_stops_at_the_deadline_with_a_batch_that_fits(self):
    now = [0.0]
    def fits(batch):
      now[0] += 10.0  # Each probe (a compile) takes 10 s.
      return batch <= 50
    batch, probes, early = bench_lib.largest_batch(
        fits, 1, 1000, 25.0, clock=lambda: now[0])
    self.assertTrue(early)
    self.assertEqual([b for b, _ in probes], [1, 2, 4])
    self.assertEqual(batch, 4)

  def test_guess_outside_the_range_is_refused(self):
    with self.assertRaisesRegex(ValueError, "guess=0"):
      bench_lib.largest_batch(lambda b: True, 0, 8, 1.0)


class BenchCommandTest(absltest.TestCase):
  """`python -m launch.bench` end to end at a tiny size (a subprocess: the
  entry module's flags stay out of the test process)."""

  _TINY = ["--num_layers=2", "--embed_dim=16", "--num_heads=2",
           "--head_dim=8", "--mlp_dim=32", "--vocab_size=32",
           "--window_length=8", "--segment_length=32", "--memory=4",
           "--long_layer=1", "--long_memory=16", "--increment=4",
           "--memory_size=64", "--batch=2", "--steps=1", "--warmup=0"]

  def bench(self, *extra: str) -> dict:
    run = subprocess.run(
        [sys.executable, "-m", "launch.bench", *self._TINY, *extra],
        capture_output=True, text=True, check=False, timeout=600)
    self.assertEqual(run.returncode, 0, run.stderr[-2000:])
    return json.loads(run.stdout.strip().splitlines()[-1])

  def test_compare_times_all_three_models(self):
    out = self.bench("--compare", "--rounds=1", "--window_unroll=2")
    self.assertEqual(out["config"]["window_unroll"], 2)
    self.assertEqual(set(out["step_s"]),
                     {"melodi", "transformer_xl", "memorizing"})
    self.assertTrue(all(t > 0 for t in out["step_s"].values()))
    self.assertGreater(out["melodi_over_xl_flops"], 1.0)

  def test_compile_only_reports_memory_and_runs_nothing(self):
    out = self.bench("--compile_only", "--remat=window")
    self.assertGreater(out["temp_bytes"], 0)
    self.assertNotIn("step_s", out)
    self.assertEqual(out["config"]["remat"], "window")

  def test_remat_costs_times_every_option_of_the_model(self):
    out = self.bench("--remat_costs", "--model=memorizing", "--rounds=1")
    self.assertEqual(set(out["over_none"]), {"none", "layer", "dots"})
    self.assertEqual(out["over_none"]["none"], 1.0)
    self.assertTrue(all(t > 0 for t in out["step_s"].values()))
    self.assertTrue(all(b > 0 for b in out["temp_bytes"].values()))


if __name__ == "__main__":
  absltest.main()
