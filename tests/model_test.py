"""MELODI's own invariants (melodi_hk/README.md §4-9), via the public API.

The contract shared with the baselines (resets, causality, gradients,
retracing, input errors) is tested in model_contract_test.py.

Glossary of shapes: B batch, T segment, W window, V vocabulary.
"""

import functools

from absl.testing import absltest
from absl.testing import parameterized
import chex
import jax
import jax.numpy as jnp

import melodi_hk
from melodi_hk import contract
from tests import melodi_testing

_B, _W, _T, _V = (melodi_testing.BATCH, melodi_testing.WINDOW,
                  melodi_testing.SEGMENT, melodi_testing.VOCAB)
tiny_config = melodi_testing.tiny_config


@functools.lru_cache
def jitted_model(cfg: melodi_hk.MelodiConfig) -> melodi_hk.Model:
  """The model with jitted functions, shared by tests to compile once."""
  model = melodi_hk.build(cfg)
  return model._replace(init=jax.jit(model.init),
                        apply=jax.jit(model.apply,
                                      static_argnames="is_training"))


def setup(cfg=None, seed=0):
  model = jitted_model(cfg or tiny_config())
  params = model.init(jax.random.PRNGKey(seed))
  tokens = jax.random.randint(jax.random.PRNGKey(seed + 1), (_B, _T), 1, _V)
  return model, params, tokens


def run_segments(model, params, memory, chunks, sos):
  """Calls apply on each chunk in turn, carrying memory; concatenates logits."""
  logits = []
  for i, chunk in enumerate(chunks):
    out, memory = model.apply(params, memory, chunk,
                              sos if i == 0 else jnp.zeros_like(sos))
    logits.append(out)
  return jnp.concatenate(logits, axis=1), memory


class CarryTest(parameterized.TestCase):

  @parameterized.named_parameters(("one window per call", _W),
                                  ("two halves", _T // 2))
  def test_split_calls_equal_one_call(self, chunk):
    model, params, tokens = setup()
    sos = jnp.array([True, False])
    memory = jax.tree.map(lambda m: m + 0.5, model.init_memory(_B))
    whole, whole_memory = model.apply(params, memory, tokens, sos)
    chunks = [tokens[:, i:i + chunk] for i in range(0, _T, chunk)]
    split, split_memory = run_segments(model, params, memory, chunks, sos)
    chex.assert_trees_all_close(whole, split, atol=1e-5)
    chex.assert_trees_all_close(whole_memory, split_memory, atol=1e-5)

  def test_memory_matters_across_segments(self):
    model, params, tokens = setup()
    _, memory = model.apply(params, model.init_memory(_B), tokens,
                            jnp.ones(_B, bool))
    carried, _ = model.apply(params, memory, tokens, jnp.zeros(_B, bool))
    fresh, _ = model.apply(params, memory, tokens, jnp.ones(_B, bool))
    self.assertGreater(float(jnp.abs(carried - fresh).max()), 1e-3)



class CompilationTest(absltest.TestCase):

  def test_jit_and_eager_agree(self):
    model = melodi_hk.build(tiny_config())
    _, params, tokens = setup()
    memory, sos = model.init_memory(_B), jnp.ones(_B, bool)
    jitted, jitted_memory = jax.jit(model.apply)(params, memory, tokens, sos)
    with jax.disable_jit():  # Every op, the window scan included, eagerly.
      eager, eager_memory = model.apply(params, memory, tokens, sos)
    chex.assert_trees_all_close(eager, jitted, atol=1e-5)
    chex.assert_trees_all_close(eager_memory, jitted_memory, atol=1e-5)
    chex.assert_shape(eager, (_B, _T, _V))
    chex.assert_type(eager, jnp.float32)

  def test_scan_equals_python_loop(self):
    step = lambda c, t, r: (t * c, c + t.sum())  # toy RNN core, no rng
    tokens = jnp.arange(12).reshape(2, 6)
    out, carry = contract.unroll(step, jnp.int32(1), tokens, 3, None)
    loop_carry, loop_out = jnp.int32(1), []
    for k in range(2):
      o, loop_carry = step(loop_carry, tokens[:, 3 * k:3 * k + 3], None)
      loop_out.append(o)
    chex.assert_trees_all_equal(out, jnp.concatenate(loop_out, axis=1))
    chex.assert_trees_all_equal(carry, loop_carry)


class DropoutTest(absltest.TestCase):

  def test_dropout_only_in_training_and_reproducible(self):
    model, params, tokens = setup()
    memory, sos = model.init_memory(_B), jnp.ones(_B, bool)
    key = jax.random.PRNGKey(7)
    evaluated, _ = model.apply(params, memory, tokens, sos)
    eval_with_rng, _ = model.apply(params, memory, tokens, sos, rng=key)
    train_a, _ = model.apply(params, memory, tokens, sos, rng=key,
                             is_training=True)
    train_b, _ = model.apply(params, memory, tokens, sos, rng=key,
                             is_training=True)
    train_c, _ = model.apply(params, memory, tokens, sos,
                             rng=jax.random.PRNGKey(8), is_training=True)
    chex.assert_trees_all_equal(evaluated, eval_with_rng)
    chex.assert_trees_all_equal(train_a, train_b)
    self.assertGreater(float(jnp.abs(train_a - evaluated).max()), 1e-3)
    self.assertGreater(float(jnp.abs(train_a - train_c).max()), 1e-3)



class BFloat16Test(absltest.TestCase):

  def test_bfloat16_is_finite_and_close_to_float32(self):
    cfg, g, flat = melodi_testing.load_golden("melodi_c_t5_w32_s128")
    params = melodi_hk.params_from_meliad(flat, cfg)
    bf16 = cfg.__class__(**(vars(cfg) | {"dtype": "bfloat16"}))
    outputs = {}
    for c in (cfg, bf16):
      model = melodi_hk.build(c)
      memory, apply = model.init_memory(2), jax.jit(model.apply)
      for k in (1, 2, 3):
        tokens = jnp.asarray(g[f"seg{k}/input_tokens"])
        sos = jnp.asarray(g[f"seg{k}/start_of_sequence"])
        logits, memory = apply(params, memory, tokens, sos)
      outputs[c.dtype] = (logits, memory)
    logits16, memory16 = outputs["bfloat16"]
    self.assertEqual(logits16.dtype, jnp.float32)
    self.assertEqual(memory16.short[0].tokens.dtype, jnp.bfloat16)
    self.assertTrue(bool(jnp.isfinite(logits16).all()))
    err = melodi_testing.relative_error(logits16, outputs["float32"][0])
    self.assertLess(err, 0.1)


class MaskUnwrittenLongMemoryTest(absltest.TestCase):
  """The opt-in improvement changes only rows with never-written slots."""

  def _run(self, mask_unwritten, filled_slots):
    cfg = tiny_config(mask_unwritten_long_memory=mask_unwritten)
    model, params, tokens = setup(cfg)
    size = cfg.long_term_memory_size  # L
    long = jax.random.normal(jax.random.PRNGKey(3),
                             (_B, size, cfg.embed_dim))  # [B, L, E]
    long = long.at[:, :size - filled_slots].set(0.0)  # Unwritten slots first.
    memory = model.init_memory(_B)
    memory = memory._replace(long=(melodi_hk.LongTermMemory(long),))
    return model.apply(params, memory, tokens, jnp.zeros(_B, bool))[0]

  def test_full_memory_gives_the_reference_result(self):
    size = tiny_config().long_term_memory_size
    chex.assert_trees_all_close(self._run(True, size),
                                self._run(False, size), atol=1e-6)

  def test_partly_written_memory_is_no_longer_diluted(self):
    diff = jnp.abs(self._run(True, 2) - self._run(False, 2)).max()
    self.assertGreater(float(diff), 1e-3)


class LongMemoryScaleTest(absltest.TestCase):
  """The opt-in temperature of the long memory's cross-attention."""

  def _logits(self, cfg, params):
    model = jitted_model(cfg)
    long = jax.random.normal(jax.random.PRNGKey(3), (
        _B, cfg.long_term_memory_size, cfg.embed_dim))  # [B, L, E], all full
    memory = model.init_memory(_B)._replace(
        long=(melodi_hk.LongTermMemory(long),))
    tokens = jax.random.randint(jax.random.PRNGKey(4), (_B, _T), 1, _V)
    return model.apply(params, memory, tokens, jnp.zeros(_B, bool))[0]

  def _params(self):
    on = tiny_config(long_memory_scale=True)
    params = jitted_model(on).init(jax.random.PRNGKey(0))
    layer = f"melodi/~/layer_{on.long_term_layers[0]}"
    return on, params, layer

  def test_flag_off_keeps_the_reference_parameters(self):
    on, params, layer = self._params()
    off = jitted_model(tiny_config()).init(jax.random.PRNGKey(0))
    found = [(m, n) for m in params for n in params[m] if n == "long_scale"]
    self.assertEqual(found, [(layer, "long_scale")])
    self.assertEqual(params[layer]["long_scale"].shape, (on.num_heads,))
    without = {m: {n: v for n, v in p.items() if n != "long_scale"}
               for m, p in params.items()}
    chex.assert_trees_all_equal(without, off)
    # Initialised like the layer's own temperature.
    chex.assert_trees_all_equal(params[layer]["long_scale"],
                                params[f"{layer}/~/attention"]["scale"])

  def test_own_scale_equal_to_the_layers_gives_the_reference(self):
    on, params, layer = self._params()
    shared = params[f"{layer}/~/attention"]["scale"] * jnp.array([1.7, -0.6])
    params = jax.tree.map(lambda x: x, params)
    params[f"{layer}/~/attention"]["scale"] = shared
    off = {m: {n: v for n, v in p.items() if n != "long_scale"}
           for m, p in params.items()}
    params[layer]["long_scale"] = jnp.abs(shared)  # |s| is what is used.
    reference = self._logits(tiny_config(), off)
    chex.assert_trees_all_close(self._logits(on, params), reference,
                                atol=1e-6)
    params[layer]["long_scale"] = jnp.array([8.0, 0.1])
    diff = jnp.abs(self._logits(on, params) - reference).max()
    self.assertGreater(float(diff), 1e-3)


if __name__ == "__main__":
  absltest.main()
