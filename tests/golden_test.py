"""MELODI reproduces meliad's golden vectors through the public API.

Glossary of shapes: B batch (2), T segment, V vocabulary, M short memory,
L long memory, E width.

Each golden (tests/testdata/melodi_*.npz, made by running meliad itself, see
the .json sidecars) holds parameters, three segments of tokens and flags,
the logits, per-token losses and the carried memories after every segment.
We replay the segments from the zero memory and compare with the error
measure of the spec: max |ours - reference| / max |reference| per array.
"""

import json
import pathlib

from absl.testing import absltest
from absl.testing import parameterized
import jax
import jax.numpy as jnp
import numpy as np

import melodi_hk

_TESTDATA = pathlib.Path(__file__).parent / "testdata"
_FORWARD = ("melodi_a_short_only", "melodi_b_sandwich", "melodi_c_t5_w32_s128")
_GRADS = ("melodi_b_sandwich_grads", "melodi_c_t5_w32_s128_grads")
_RTOL = 1e-5


def load_golden(name: str):
  """(MelodiConfig, npz arrays, meliad flat params) of one golden file."""
  c = json.loads((_TESTDATA / f"{name}.json").read_text())["config"]
  long_layers = tuple(c["long_term_layer_indices"] or ())
  cfg = melodi_hk.MelodiConfig(
      vocab_size=c["vocab"], num_layers=c["num_layers"],
      embed_dim=c["embed_dim"], num_heads=c["num_heads"],
      head_dim=c["head_dim"], mlp_dim=c["mlp_dim"],
      window_length=c["window_length"], segment_length=c["segment_length"],
      short_term_memory_size=c["short_term_memory_size"],
      summary_size=c["summary_size"], long_term_layers=long_layers,
      long_term_memory_size=c["long_term_memory_size"] if long_layers else 0,
      long_term_memory_increment=(c["long_term_memory_increment_size"]
                                  if long_layers else 0),
      dropout_rate=c["dropout"], attention_dropout_rate=c["attn_dropout"],
      dtype=c["dtype"])
  arrays = np.load(_TESTDATA / f"{name}.npz")
  flat = {k[len("params/"):]: arrays[k] for k in arrays.files
          if k.startswith("params/")}
  return cfg, arrays, flat


def relative_error(ours, reference) -> float:
  ours, reference = np.asarray(ours, np.float64), np.asarray(reference)
  scale = np.abs(reference).max()
  return float(np.abs(ours - reference).max() / (scale if scale else 1.0))


class ForwardGoldenTest(parameterized.TestCase):

  @parameterized.parameters(*_FORWARD)
  def test_three_segments_match_reference(self, name):
    cfg, g, flat = load_golden(name)
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

  @parameterized.product(name=_GRADS, segment=(1, 2))
  def test_segment_gradients_match_reference(self, name, segment):
    cfg, g, flat = load_golden(name)
    model = melodi_hk.build(cfg)
    prefix = f"seg{segment}/state_in/state/"
    memory = melodi_hk.memory_from_meliad(
        {k[len(prefix):]: g[k] for k in g.files if k.startswith(prefix)}, cfg)
    tokens = jnp.asarray(g[f"seg{segment}/input_tokens"])
    sos = jnp.asarray(g[f"seg{segment}/start_of_sequence"])

    def loss(params):
      logits, _ = model.apply(params, memory, tokens, sos)
      return melodi_hk.lm_loss(logits, tokens).loss

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
