"""Token-by-token decoding equals `apply` (teacher forcing) for every model.

Glossary of shapes: B batch (2), T segment, W window, V vocabulary (64).
Each model reads 3 segments (at least 3 window boundaries, 2 segment
boundaries); row 0 starts a new document at segment 3.
"""

import dataclasses
import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest
from absl.testing import parameterized

import melodi_hk
from tests import melodi_testing as mt

_BATCH, _VOCAB = 2, mt.VOCAB
_SMALL = dict(vocab_size=_VOCAB, num_layers=2, embed_dim=16, num_heads=2,
              head_dim=8, mlp_dim=32, dropout_rate=0.0,
              attention_dropout_rate=0.0, dtype="float32")
CONFIGS = {
    "melodi": mt.tiny_config(),
    "melodi_masked_long": mt.tiny_config(mask_unwritten_long_memory=True),
    "melodi_long_scale": mt.tiny_config(long_memory_scale=True),
    "melodi_m_ne_s": mt.tiny_config(short_term_memory_size=3),
    "transformer_xl": melodi_hk.TransformerXLConfig(
        window_length=8, segment_length=16, **_SMALL),
    "transformer_xl_no_cache": melodi_hk.TransformerXLConfig(
        window_length=8, segment_length=8, xl_cache=False, **_SMALL),
    # C = 2 segments: the ring buffer wraps during segment 3.
    "memorizing": melodi_hk.MemorizingConfig(
        window_length=4, segment_length=16, memory_layer=0, memory_size=32,
        **_SMALL),
    "memorizing_single_residual": melodi_hk.MemorizingConfig(
        window_length=4, segment_length=16, memory_layer=1, memory_size=16,
        single_residual=True, **_SMALL),
}
_RESETS = (np.array([True, True]), np.array([False, False]),
           np.array([True, False]))


@functools.cache
def _model(name):
  cfg = CONFIGS[name]
  model = melodi_hk.build(cfg)
  params = jax.jit(model.init)(jax.random.PRNGKey(1))
  # The long memory's own temperature starts equal to its layer's; move it
  # so that decoding with the layer's would not match `apply`.
  params = {m: {n: v * 3.0 if n == "long_scale" else v for n, v in p.items()}
            for m, p in params.items()}
  return cfg, model, params


def _setup(name):
  tokens = np.array(jax.random.randint(
      jax.random.PRNGKey(2), (_BATCH, 3 * CONFIGS[name].segment_length), 0,
      _VOCAB))
  return _model(name) + (tokens,)


@functools.cache
def _reference(name):
  """`apply` on 3 segments: logits [B, 3T, V] and the memory after each."""
  cfg, model, params, tokens = _setup(name)
  apply = jax.jit(model.apply)
  t, memory, logits, memories = cfg.segment_length, model.init_memory(
      _BATCH), [], []
  for s, sos in enumerate(_RESETS):
    out, memory = apply(params, memory, tokens[:, s * t:(s + 1) * t], sos)
    logits.append(out)
    memories.append(memory)
  return np.concatenate(logits, axis=1), memories


class DecodeTest(parameterized.TestCase):

  def setUp(self):
    super().setUp()
    chex.clear_trace_counter()

  @parameterized.named_parameters((n, n) for n in CONFIGS)
  def test_token_by_token_equals_apply(self, name):
    cfg, model, params, tokens = _setup(name)
    reference, memories = _reference(name)
    dec = melodi_hk.decoder(cfg)
    t, state, logits = cfg.segment_length, None, []
    for i in range(tokens.shape[1]):
      if i % t == 0:  # A segment boundary: the reset, as `apply` does it.
        memory = model.init_memory(_BATCH) if i == 0 else state.memory
        state = dec.start(params, memory, _RESETS[i // t])
      out, state = dec.decode_step(params, state, tokens[:, i])
      logits.append(out)
      if (i + 1) % t == 0:  # The block-start memory is apply's memory.
        chex.assert_trees_all_close(state.memory, memories[i // t],
                                    rtol=1e-5, atol=1e-6)
    self.assertLess(mt.relative_error(np.stack(logits, 1), reference), 1e-5)

  @parameterized.named_parameters(
      (n, n) for n in ("melodi", "transformer_xl", "memorizing"))
  def test_prefill_then_decode_equals_apply(self, name):
    cfg, model, params, tokens = _setup(name)
    reference, _ = _reference(name)
    dec = melodi_hk.decoder(cfg)
    t, w = cfg.segment_length, cfg.window_length
    # Within one document (segments 1-2): prompts ending inside the first
    # window, inside a later one and past a segment boundary.
    for length in (1, w + 3, t + 1, 2 * t - 3):
      out, state = dec.prefill(params, model.init_memory(_BATCH),
                               tokens[:, :length], _RESETS[0])
      got = [out]
      for i in range(length, min(length + 3, 2 * t)):
        out, state = dec.decode_step(params, state, tokens[:, i])
        got.append(out)
      want = reference[:, length - 1:length - 1 + len(got)]
      self.assertLess(mt.relative_error(np.stack(got, 1), want), 1e-5,
                      msg=f"prompt of {length} tokens")

  @parameterized.named_parameters(("melodi", "melodi"),
                                  ("memorizing", "memorizing"))
  def test_one_compilation_serves_every_step(self, name):
    cfg, model, params, tokens = _setup(name)
    dec = melodi_hk.decoder(cfg)
    step = jax.jit(chex.assert_max_traces(dec.step, n=1))
    state = dec.start(params, model.init_memory(_BATCH), _RESETS[0])
    for i in range(cfg.segment_length + 2):  # Every boundary kind.
      _, state = step(params, state, jnp.asarray(tokens[:, i]))

  @parameterized.named_parameters(("melodi", "melodi"),
                                  ("memorizing", "memorizing"))
  def test_bfloat16_runs_across_a_block_boundary(self, name):
    cfg = dataclasses.replace(CONFIGS[name], dtype="bfloat16")
    model, dec = melodi_hk.build(cfg), melodi_hk.decoder(cfg)
    params = jax.jit(model.init)(jax.random.PRNGKey(1))
    tokens = _setup(name)[-1][:, :cfg.segment_length]
    reference, _ = model.apply(params, model.init_memory(_BATCH), tokens,
                               _RESETS[0])
    logits, state = dec.prefill(params, model.init_memory(_BATCH),
                                tokens[:, :3], _RESETS[0])
    got = [logits]
    for i in range(3, cfg.segment_length):
      logits, state = dec.decode_step(params, state, tokens[:, i])
      got.append(logits)
    # bfloat16 keeps 8 bits of mantissa; both paths round differently.
    self.assertLess(mt.relative_error(np.stack(got, 1), reference[:, 2:]),
                    3e-2)

  def test_state_size_does_not_grow_with_the_prompt(self):
    cfg, model, params, tokens = _setup("melodi")
    dec = melodi_hk.decoder(cfg)
    shapes = [jax.tree.map(lambda a: (a.shape, a.dtype), dec.prefill(
        params, model.init_memory(_BATCH), tokens[:, :n], _RESETS[0])[1])
              for n in (3, tokens.shape[1])]
    self.assertEqual(shapes[0], shapes[1])

  @parameterized.parameters(-1, _VOCAB)
  def test_prompt_token_out_of_range(self, bad):
    cfg, model, params, tokens = _setup("melodi")
    dec = melodi_hk.decoder(cfg)
    tokens[1, 5] = bad
    with self.assertRaisesRegex(ValueError, rf"token {bad} at index \(1, 5\)"):
      dec.prefill(params, model.init_memory(_BATCH), tokens, _RESETS[0])
    state = dec.start(params, model.init_memory(_BATCH), _RESETS[0])
    with self.assertRaisesRegex(ValueError, "outside the vocabulary"):
      dec.decode_step(params, state, np.array([1, bad]))

  def test_empty_prompt(self):
    cfg, model, params, _ = _setup("melodi")
    with self.assertRaisesRegex(ValueError, "empty"):
      melodi_hk.decoder(cfg).prefill(params, model.init_memory(_BATCH),
                                     np.zeros((_BATCH, 0), np.int32),
                                     _RESETS[0])

  def test_state_of_another_batch_size(self):
    cfg, model, params, _ = _setup("melodi")
    dec = melodi_hk.decoder(cfg)
    state = dec.start(params, model.init_memory(3), np.ones(3, bool))
    with self.assertRaisesRegex(ValueError, "batch of 2"):
      dec.decode_step(params, state, np.array([1, 2]))

  @parameterized.named_parameters(
      ("other_memory_size", "melodi_m_ne_s"), ("other_model", "memorizing"))
  def test_state_of_another_config(self, other):
    cfg, model, params, _ = _setup("melodi")
    other_cfg = CONFIGS[other]
    other_model = melodi_hk.build(other_cfg)
    state = melodi_hk.decoder(other_cfg).start(
        other_model.init(jax.random.PRNGKey(0)),
        other_model.init_memory(_BATCH), _RESETS[0])
    with self.assertRaisesRegex(ValueError, "does not fit this config"):
      melodi_hk.decoder(cfg).decode_step(params, state, np.array([1, 2]))

  def test_memory_of_another_config(self):
    cfg, model, params, tokens = _setup("melodi")
    memory = melodi_hk.build(CONFIGS["melodi_m_ne_s"]).init_memory(_BATCH)
    with self.assertRaisesRegex(ValueError, "init_memory"):
      melodi_hk.decoder(cfg).prefill(params, memory, tokens, _RESETS[0])


if __name__ == "__main__":
  absltest.main()
