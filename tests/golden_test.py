"""MELODI reproduces meliad's golden vectors through the public API.

Glossary of shapes: B batch (2), T segment, V vocabulary, M short memory,
L long memory, E width.

Each golden (tests/testdata/melodi_*.npz, made by running meliad itself, see
the .json sidecars) holds parameters, three segments of tokens and flags,
the logits, per-token losses and the carried memories after every segment.
We replay the segments from the zero memory and compare with the error
measure of melodi_hk/README.md §14: max |ours - reference| /
max |reference| per array.
"""

from absl.testing import absltest
from absl.testing import parameterized
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

import melodi_hk
from tests import melodi_testing

_FORWARD = ("melodi_a_short_only", "melodi_b_sandwich", "melodi_c_t5_w32_s128")
_GRADS = ("melodi_b_sandwich_grads", "melodi_c_t5_w32_s128_grads")
_RTOL = 1e-5
_REMAT = melodi_hk.config.MELODI_REMAT
load_golden = melodi_testing.load_golden
relative_error = melodi_testing.relative_error


class ForwardGoldenTest(parameterized.TestCase):

  # scan_layers: params_from_meliad stacks runs of layers (stacking.py).
  @parameterized.product(name=_FORWARD, remat_scan=(
      [(remat, False) for remat in _REMAT] + [("none", True),
                                              ("window", True)]))
  def test_three_segments_match_reference(self, name, remat_scan):
    remat, scan_layers = remat_scan
    cfg, g, flat = load_golden(name)
    cfg = dataclasses.replace(cfg, remat=remat, scan_layers=scan_layers)
    model = melodi_hk.build(cfg)
    params = melodi_hk.params_from_meliad(flat, cfg)
    memory = model.init_memory(2)
    apply = jax.jit(model.apply)
    for k in (1, 2, 3):
      tokens = jnp.asarray(g[f"seg{k}/input_tokens"])
      logits, memory = apply(params, memory, tokens,
                             jnp.asarray(g[f"seg{k}/start_of_sequence"]))
      with self.subTest(segment=k, array="logits"):
        self.assertLess(relative_error(logits, g[f"seg{k}/logits"]), _RTOL)
      out = melodi_hk.lm_loss(logits, tokens)
      with self.subTest(segment=k, array="token_losses"):
        self.assertLess(relative_error(out.token_losses,
                                       g[f"seg{k}/token_losses"]), _RTOL)
        self.assertLess(relative_error(out.loss, g[f"seg{k}/loss_sum"]),
                        _RTOL)
      for path, ours in melodi_hk.memory_to_meliad(memory, cfg).items():
        with self.subTest(segment=k, array=path):
          self.assertLess(relative_error(ours, g[f"seg{k}/state/{path}"]),
                          _RTOL)

  def test_reference_memories_load_back(self):
    cfg, g, flat = load_golden("melodi_b_sandwich")
    model = melodi_hk.build(cfg)
    params = melodi_hk.params_from_meliad(flat, cfg)
    state = {k[len("seg2/state/"):]: g[k] for k in g.files
             if k.startswith("seg2/state/")}
    memory = melodi_hk.memory_from_meliad(state, cfg)
    logits, _ = model.apply(params, memory, jnp.asarray(g["seg3/input_tokens"]),
                            jnp.asarray(g["seg3/start_of_sequence"]))
    self.assertLess(relative_error(logits, g["seg3/logits"]), _RTOL)


class GradientGoldenTest(parameterized.TestCase):

  # in_scan: the training loss computed window by window (build_loss);
  # False: apply followed by lm_loss.
  # scan_layers: params_to_meliad unstacks the gradients of stacked runs.
  @parameterized.product(name=_GRADS, segment=(1, 2), remat_in_scan=(
      [("none", False, False)] + [(remat, True, False) for remat in _REMAT]
      + [("window", True, True)]))
  def test_segment_gradients_match_reference(self, name, segment,
                                             remat_in_scan):
    remat, in_scan, scan_layers = remat_in_scan
    cfg, g, flat = load_golden(name)
    cfg = dataclasses.replace(cfg, remat=remat, scan_layers=scan_layers)
    model = melodi_hk.build(cfg)
    training_loss = (melodi_hk.build_loss(cfg) if in_scan else
                     melodi_hk.loss_from_apply(model))
    prefix = f"seg{segment}/state_in/state/"
    memory = melodi_hk.memory_from_meliad(
        {k[len(prefix):]: g[k] for k in g.files if k.startswith(prefix)}, cfg)
    tokens = jnp.asarray(g[f"seg{segment}/input_tokens"])
    sos = jnp.asarray(g[f"seg{segment}/start_of_sequence"])

    def loss(params):
      return training_loss(params, memory, tokens, sos)[0].loss

    value, grads = jax.jit(jax.value_and_grad(loss))(
        melodi_hk.params_from_meliad(flat, cfg))
    self.assertLess(relative_error(value, g[f"seg{segment}/loss_sum"]), _RTOL)
    for path, ours in melodi_hk.params_to_meliad(grads, cfg).items():
      reference = g[f"seg{segment}/grad/params/{path}"]
      with self.subTest(param=path):
        if not np.abs(reference).max():  # The last layer's summary mixing.
          np.testing.assert_array_equal(ours, 0.0)
        else:
          self.assertLess(relative_error(ours, reference), _RTOL)


if __name__ == "__main__":
  absltest.main()
