"""experiments/attention_probe recomputes MELODI's attention weights exactly.

Glossary of shapes: B batch (3, unlike H, so a misplaced axis cannot
broadcast), T segment (3 windows of W = 8), S summary,
M short memory, L long memory (one long layer), H heads, Q = W + S queries.
"""

from absl.testing import absltest
from absl.testing import parameterized
import jax
import numpy as np

import melodi_hk
from experiments import attention_probe

_FIELDS = dict(vocab_size=32, num_layers=2, embed_dim=16, num_heads=2,
               head_dim=8, mlp_dim=32, window_length=8, segment_length=24,
               short_term_memory_size=4, summary_size=4,
               long_term_memory_size=8, long_term_memory_increment=2)


class ProbeTest(parameterized.TestCase):

  @parameterized.product(long_layer=(0, 1), mask=(False, True))
  def test_probe_matches_model(self, long_layer, mask):
    cfg = melodi_hk.MelodiConfig(**_FIELDS, long_term_layers=(long_layer,),
                                 mask_unwritten_long_memory=mask)
    model = melodi_hk.build(cfg)
    params = model.init(jax.random.PRNGKey(0))
    tokens = np.asarray(jax.random.randint(jax.random.PRNGKey(1), (3, 24),
                                           0, 32))
    sos = np.array([True, False, True])
    memory = model.init_memory(3)
    expected, expected_memory = model.apply(params, memory, tokens, sos)
    logits, probes, got_memory = attention_probe.probe_segment(
        cfg, attention_probe.build(cfg), params, memory, tokens, sos)
    np.testing.assert_allclose(logits, expected, atol=1e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5),
                 got_memory, expected_memory)
    for k, window in enumerate(probes):  # 3 windows x 2 layers
      for layer, probe in enumerate(window):
        self.assertLess(probe["check"], 1e-5)
        # Every query sees at least the memory slots: shares sum to 1.
        np.testing.assert_allclose(probe["groups"].sum(-1), 1.0, atol=1e-5)
        # Context queries cannot see this window's summary tokens.
        np.testing.assert_array_equal(probe["groups"][:, :, :8, 2], 0.0)
        self.assertEqual(layer == long_layer, "long_written" in probe)
        if layer != long_layer:
          continue
        self.assertLess(probe["long_check"], 1e-5)
        # Window k sees 2k written slots: none in the first window.
        expected_written = 0.0 if k == 0 else (1.0 if mask else None)
        if expected_written is not None:
          np.testing.assert_allclose(probe["long_written"], expected_written,
                                     atol=1e-5)
        else:  # Unmasked: zero slots keep some of the mass.
          self.assertTrue(np.all(probe["long_written"] < 1.0))
          self.assertTrue(np.all(probe["long_written"] > 0.0))

  def test_probe_reads_the_long_memorys_own_scale(self):
    cfg = melodi_hk.MelodiConfig(**_FIELDS, long_term_layers=(1,),
                                 long_memory_scale=True)
    model = melodi_hk.build(cfg)
    params = model.init(jax.random.PRNGKey(0))
    # Unlike its initial value, unequal to the layer's own |scale|.
    params["melodi/~/layer_1"]["long_scale"] = np.array([4.0, 0.3])
    tokens = np.asarray(jax.random.randint(jax.random.PRNGKey(1), (3, 24),
                                           0, 32))
    sos = np.array([True, False, True])
    _, probes, _ = attention_probe.probe_segment(
        cfg, attention_probe.build(cfg), params, model.init_memory(3),
        tokens, sos)
    for window in probes[1:]:  # From the second window on, slots are written.
      self.assertLess(window[1]["long_check"], 1e-5)

  def test_labels_follow_scores_positions(self):
    mention = attention_probe.synthetic.Mention(5, 8, True, 40)
    first = attention_probe.synthetic.Mention(1, 4, False, 0)
    recall, first_digit = attention_probe._labels([first, mention], 0, 10)
    # Column t predicts document position t + 1 (launch/scores.py).
    np.testing.assert_array_equal(np.flatnonzero(recall), [4, 5, 6])
    np.testing.assert_array_equal(np.flatnonzero(first_digit), [4])


if __name__ == "__main__":
  absltest.main()
