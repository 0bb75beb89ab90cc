"""The contract every model type keeps (melodi_hk/README.md §9).

Glossary of shapes: B batch (2), T segment, W window, V vocabulary.

One test per promise of `Model.apply`, run for MELODI (random parameters of
melodi_testing.tiny_config) and both baselines (their golden parameters):
resets are per row, logits are causal, no gradient reaches the memory
passed in, segments do not retrace, and bad inputs are explained.
"""

import functools
import re
from typing import Any, Callable, NamedTuple

from absl.testing import absltest
from absl.testing import parameterized
import chex
import jax
import jax.numpy as jnp
import numpy as np

import melodi_hk
from tests import melodi_testing


class Case(NamedTuple):
  cfg: Any
  model: melodi_hk.Model  # `apply` jitted: every case compiles once.
  params: dict
  segments: list  # Three (tokens int32[B, T], start_of_sequence bool[B]).
  atol: float  # How far "equal" logits of two calls may differ.
  other_memory: Callable  # () -> a memory of another structure.


def _jitted(model: melodi_hk.Model) -> melodi_hk.Model:
  return model._replace(apply=jax.jit(model.apply,
                                      static_argnames="is_training"))


@functools.lru_cache
def _melodi() -> Case:
  cfg = melodi_testing.tiny_config()
  model = _jitted(melodi_hk.build(cfg))
  tokens = jax.random.randint(jax.random.PRNGKey(1), (2, cfg.segment_length),
                              1, cfg.vocab_size)
  segments = [(tokens, jnp.ones(2, bool)), (tokens, jnp.zeros(2, bool)),
              ((tokens + 1) % cfg.vocab_size, jnp.array([True, False]))]
  other = melodi_hk.build(melodi_testing.tiny_config(
      long_term_layers=(), long_term_memory_size=0,
      long_term_memory_increment=0))
  return Case(cfg, model, jax.jit(model.init)(jax.random.PRNGKey(0)),
              segments, 1e-6,
              lambda: other.init_memory(2))


@functools.lru_cache
def _golden(name: str) -> Case:
  cfg, g, flat = melodi_testing.load_golden(name)
  model = _jitted(melodi_hk.build(cfg))
  if isinstance(cfg, melodi_hk.MemorizingConfig):
    xl = melodi_hk.build(melodi_hk.TransformerXLConfig(
        **{k: v for k, v in vars(cfg).items()
           if k not in ("memory_layer", "memory_size", "single_residual")}))
    other = lambda: xl.init_memory(2)
  else:
    other = lambda: model.init_memory(2).caches[:2]
  return Case(cfg, model, melodi_hk.params_from_meliad(flat, cfg),
              [melodi_testing.segment(g, k) for k in (1, 2, 3)], 0.0, other)


_CASES = {"melodi": _melodi,
          "transformer_xl": lambda: _golden("txl_tiny"),
          "memorizing": lambda: _golden("memorizing_dense_tiny")}
_NAMES = [dict(testcase_name=name, name=name) for name in _CASES]


def _carried(case: Case):
  """The memory after the first segment."""
  return case.model.apply(case.params, case.model.init_memory(2),
                          *case.segments[0])[1]


class ResetTest(parameterized.TestCase):

  @parameterized.named_parameters(*_NAMES)
  def test_reset_row_equals_fresh_memory_other_row_untouched(self, name):
    case = _CASES[name]()
    apply = functools.partial(case.model.apply, case.params)
    carried, tokens = _carried(case), case.segments[1][0]
    mixed, mixed_memory = apply(carried, tokens, jnp.array([True, False]))
    fresh, fresh_memory = apply(case.model.init_memory(2), tokens,
                                jnp.ones(2, bool))
    kept, kept_memory = apply(carried, tokens, jnp.zeros(2, bool))
    chex.assert_trees_all_close(mixed[0], fresh[0], atol=case.atol)
    chex.assert_trees_all_close(mixed[1], kept[1], atol=case.atol)
    if name == "memorizing":
      return  # Its write index is never reset: memorizing_test checks rows.
    row = lambda tree, b: jax.tree.map(lambda m: m[b], tree)
    chex.assert_trees_all_close(row(mixed_memory, 0), row(fresh_memory, 0),
                                atol=case.atol)
    chex.assert_trees_all_close(row(mixed_memory, 1), row(kept_memory, 1),
                                atol=case.atol)


class CausalityTest(parameterized.TestCase):

  @parameterized.named_parameters(*_NAMES)
  def test_changing_token_t_changes_no_earlier_logit(self, name):
    case = _CASES[name]()
    w, t_max = case.cfg.window_length, case.cfg.segment_length
    memory, (tokens, _) = _carried(case), case.segments[1]
    sos = jnp.zeros(2, bool)
    before, _ = case.model.apply(case.params, memory, tokens, sos)
    # Inside, at and past a window edge, and the last token.
    for t in (0, 3, w - 1, w, w + 3, t_max - 1):
      changed = tokens.at[:, t].set((tokens[:, t] + 1) % case.cfg.vocab_size)
      after, _ = case.model.apply(case.params, memory, changed, sos)
      np.testing.assert_array_equal(before[:, :t], after[:, :t], err_msg=t)
      self.assertGreater(float(jnp.abs(before[:, t] - after[:, t]).max()), 0)
      self.assertGreater(float(jnp.abs(before[:, t:] - after[:, t:]).max()),
                         1e-4)


class GradientTest(parameterized.TestCase):

  @parameterized.named_parameters(*_NAMES)
  def test_no_gradient_reaches_the_memory_passed_in(self, name):
    case = _CASES[name]()
    tokens, sos = case.segments[1]

    def loss(memory):
      logits = case.model.apply(case.params, memory, tokens, sos)[0]
      return melodi_hk.lm_loss(logits, tokens).loss + logits.sum()

    grads = jax.grad(loss, allow_int=True)(_carried(case))
    floats = [g for g in jax.tree.leaves(grads)
              if g.dtype != jax.dtypes.float0]  # int leaves have no gradient
    self.assertNotEmpty(floats)
    for g in floats:
      np.testing.assert_array_equal(g, 0.0)


class CompilationTest(parameterized.TestCase):

  @parameterized.named_parameters(*_NAMES)
  def test_segments_do_not_retrace(self, name):
    case = _CASES[name]()
    chex.clear_trace_counter()
    model = melodi_hk.build(case.cfg)  # Not the case's jitted apply.
    apply = jax.jit(chex.assert_max_traces(model.apply, n=1))
    memory = model.init_memory(2)
    for tokens, sos in case.segments + case.segments[1:]:
      _, memory = apply(case.params, memory, tokens, sos)


class InputErrorTest(parameterized.TestCase):

  def _raises(self, case, message, memory=None, tokens=None, sos=None,
              **kwargs):
    tokens = case.segments[0][0] if tokens is None else tokens
    sos = jnp.ones(tokens.shape[:1], bool) if sos is None else sos
    memory = case.model.init_memory(2) if memory is None else memory
    with self.assertRaisesRegex(ValueError, message):
      case.model.apply(case.params, memory, tokens, sos, **kwargs)

  @parameterized.named_parameters(*_NAMES)
  def test_bad_tokens(self, name):
    case = _CASES[name]()
    tokens = case.segments[0][0]
    w, t = case.cfg.window_length, case.cfg.segment_length
    self._raises(case, r"tokens must be int32\[B, T\]", tokens=tokens[0],
                 sos=jnp.ones(2, bool))
    self._raises(case, r"int32\[B, T\]", tokens=tokens[..., None])
    self._raises(case, "integer", tokens=tokens.astype(jnp.float32))
    self._raises(case, f"T={w + w // 2} but T must be a positive multiple of "
                 f"window_length={w}", tokens=tokens[:, :w + w // 2])
    self._raises(case, f"no larger than segment_length={t}",
                 tokens=jnp.concatenate([tokens, tokens], axis=1))

  @parameterized.named_parameters(*_NAMES)
  def test_bad_start_of_sequence(self, name):
    case = _CASES[name]()
    self._raises(case, r"start_of_sequence must be bool\[2\]",
                 sos=jnp.ones(1, bool))
    self._raises(case, r"bool\[2\]", sos=jnp.ones(3, bool))

  @parameterized.named_parameters(*_NAMES)
  def test_memory_of_another_batch_size(self, name):
    case = _CASES[name]()
    tokens, sos = case.segments[0]
    self._raises(case, "batch size 1", tokens=tokens[:1], sos=sos[:1])
    three = case.model.init_memory(3)
    shape = jax.tree.leaves(three)[0].shape
    self._raises(case, "batch size 2.*" + re.escape(str(shape)), memory=three)

  @parameterized.named_parameters(*_NAMES)
  def test_memory_of_another_config(self, name):
    case = _CASES[name]()
    self._raises(case, "memory has structure", memory=case.other_memory())

  @parameterized.named_parameters(*_NAMES)
  def test_training_without_rng_is_an_error(self, name):
    self._raises(_CASES[name](), "needs an rng", is_training=True)

  @parameterized.named_parameters(*_NAMES)
  def test_bad_rng_is_named(self, name):
    # A typed key failed deep in the dropout draws ("iteration over a 0-d
    # array"); several keys would have been split as one.
    case = _CASES[name]()
    self._raises(case, r"typed key.*key_data", is_training=True,
                 rng=jax.random.key(0))
    self._raises(case, r"uint32\[2\].*got uint32\[2, 2\]",
                 is_training=True,
                 rng=jax.random.split(jax.random.PRNGKey(0)))

  @parameterized.named_parameters(*_NAMES)
  def test_bad_batch_size_for_init_memory(self, name):
    with self.assertRaisesRegex(ValueError, "batch_size=0"):
      _CASES[name]().model.init_memory(0)


if __name__ == "__main__":
  absltest.main()
