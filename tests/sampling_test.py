"""Sampling controls: greedy, top-k, top-p, temperature, seeds, stop tokens.

Glossary of shapes: B batch (3), V vocabulary (64), n generated tokens.
"""

import functools
import pathlib
import re

import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest
from absl.testing import parameterized

import melodi_hk
from melodi_hk import sampling
from tests import melodi_testing as mt

_BATCH, _STEPS = 3, 24


@functools.cache
def _prefilled():
  """A tiny MELODI and its state after a 11-token prompt in every row."""
  cfg = mt.tiny_config()
  model = melodi_hk.build(cfg)
  params = jax.jit(model.init)(jax.random.PRNGKey(1))
  dec = melodi_hk.decoder(cfg)
  prompt = np.tile(np.arange(1, 12)[None], (_BATCH, 1))
  logits, state = dec.prefill(params, model.init_memory(_BATCH), prompt,
                              np.ones(_BATCH, bool))
  return dec, params, state, logits


def _generate(sampling_cfg, seeds=0, steps=_STEPS, chunk_size=16):
  dec, params, state, logits = _prefilled()
  chunks = list(melodi_hk.generate(dec, params, state, logits, steps,
                                   sampling_cfg, seeds, chunk_size))
  return np.concatenate([c.tokens for c in chunks], axis=1), len(chunks)


class SamplingTest(parameterized.TestCase):

  def test_greedy_follows_argmax_step_by_step(self):
    dec, params, state, logits = _prefilled()
    want = []
    for _ in range(_STEPS):  # The plain loop generate must reproduce.
      token = np.argmax(np.asarray(logits), axis=-1)
      want.append(token)
      logits, state = dec.decode_step(params, state, token)
    got, _ = _generate(melodi_hk.SamplingConfig(temperature=0.0))
    np.testing.assert_array_equal(got, np.stack(want, axis=1))

  @parameterized.named_parameters(
      ("top_k_1", dict(top_k=1)), ("tiny_top_p", dict(top_p=1e-6)),
      ("tiny_temperature", dict(temperature=1e-4)))
  def test_degenerate_controls_equal_greedy(self, kwargs):
    greedy, _ = _generate(melodi_hk.SamplingConfig(temperature=0.0))
    got, _ = _generate(melodi_hk.SamplingConfig(**kwargs), seeds=[3, 4, 5])
    np.testing.assert_array_equal(got, greedy)

  def test_chunk_size_does_not_change_the_sample(self):
    cfg = melodi_hk.SamplingConfig(temperature=0.9, top_k=20)
    a, chunks_a = _generate(cfg, seeds=[7, 8, 9], chunk_size=5)
    b, chunks_b = _generate(cfg, seeds=[7, 8, 9], chunk_size=16)
    np.testing.assert_array_equal(a, b)
    self.assertEqual((chunks_a, chunks_b), (5, 2))

  def test_rows_are_independent_given_their_seeds(self):
    cfg = melodi_hk.SamplingConfig(temperature=1.0)
    base, _ = _generate(cfg, seeds=[11, 11, 12])
    np.testing.assert_array_equal(base[0], base[1])  # Same prompt and seed.
    self.assertFalse(np.array_equal(base[0], base[2]))
    changed, _ = _generate(cfg, seeds=[11, 11, 99])
    np.testing.assert_array_equal(changed[:2], base[:2])
    self.assertFalse(np.array_equal(changed[2], base[2]))

  def test_stop_tokens_end_a_row(self):
    cfg = melodi_hk.SamplingConfig(temperature=1.0)
    free, _ = _generate(cfg, seeds=[1, 2, 3])
    stop = int(free[0, 5])
    stopped, _ = _generate(melodi_hk.SamplingConfig(stop_tokens=(stop,)),
                           seeds=[1, 2, 3])
    for row in range(_BATCH):
      hits = np.flatnonzero(free[row] == stop)
      end = hits[0] + 1 if hits.size else _STEPS
      np.testing.assert_array_equal(stopped[row, :end], free[row, :end])
      self.assertTrue(np.all(stopped[row, end:] == sampling.FINISHED))

  def test_generation_ends_once_every_row_stopped(self):
    greedy, _ = _generate(melodi_hk.SamplingConfig(temperature=0.0))
    first = tuple(int(t) for t in greedy[:, 0])
    got, chunks = _generate(melodi_hk.SamplingConfig(
        temperature=0.0, stop_tokens=first), chunk_size=4)
    self.assertEqual(chunks, 1)
    np.testing.assert_array_equal(got[:, 0], greedy[:, 0])
    self.assertTrue(np.all(got[:, 1:] == sampling.FINISHED))

  def test_top_k_and_top_p_keep_the_right_tokens(self):
    draws = 400  # Every kept token has probability >= 0.15 / 0.85.
    logits = jnp.log(jnp.array([[0.05, 0.4, 0.1, 0.3, 0.15]] * draws))
    keys = jax.vmap(jax.random.PRNGKey)(jnp.arange(draws))
    seen = {name: set(np.asarray(sampling.sample(logits, keys, cfg)).tolist())
            for name, cfg in (
                ("k2", melodi_hk.SamplingConfig(top_k=2)),
                ("p0.75", melodi_hk.SamplingConfig(top_p=0.75)),
                ("p0.65", melodi_hk.SamplingConfig(top_p=0.65)),
                ("all", melodi_hk.SamplingConfig()))}
    # 0.4 + 0.3 = 0.7 < 0.75 needs the third (0.15); 0.65 needs two.
    self.assertEqual(seen, {"k2": {1, 3}, "p0.75": {1, 3, 4},
                            "p0.65": {1, 3}, "all": {0, 1, 2, 3, 4}})

  def test_readme_example_runs(self):
    readme = (pathlib.Path(__file__).resolve().parent.parent /
              "README.md").read_text()
    match = re.search(r"## Generate\n.*?```python\n(.*?)```", readme, re.S)
    scope = {}
    exec(match.group(1), scope)  # pylint: disable=exec-used
    self.assertEqual(scope["tokens"].shape, (2, 48))
    self.assertTrue(np.all((scope["tokens"] >= 0) & (scope["tokens"] < 260)))
    self.assertEqual(scope["logits"].shape, (2, 260))

  @parameterized.named_parameters(
      ("negative_temperature", dict(temperature=-0.1), "temperature=-0.1"),
      ("top_p_zero", dict(top_p=0.0), "top_p=0.0"),
      ("top_p_above_one", dict(top_p=1.5), "top_p=1.5"),
      ("negative_top_k", dict(top_k=-1), "top_k=-1"))
  def test_bad_sampling_config(self, kwargs, message):
    with self.assertRaisesRegex(ValueError, message):
      melodi_hk.SamplingConfig(**kwargs)

  @parameterized.named_parameters(
      ("top_k_above_vocab", dict(sampling_cfg=melodi_hk.SamplingConfig(
          top_k=mt.VOCAB + 1)), f"top_k={mt.VOCAB + 1}"),
      ("stop_token_out_of_range", dict(sampling_cfg=melodi_hk.SamplingConfig(
          stop_tokens=(mt.VOCAB,))), rf"stop_tokens \[{mt.VOCAB}\]"),
      ("seeds_per_row", dict(sampling_cfg=None, seeds=[1, 2]), "seeds"),
      ("no_tokens", dict(sampling_cfg=None, steps=0), "num_tokens=0"))
  def test_bad_generate_arguments(self, kwargs, message):
    with self.assertRaisesRegex(ValueError, message):
      _generate(**kwargs)

  def test_logits_and_state_of_other_batch_sizes(self):
    dec, params, state, logits = _prefilled()
    with self.assertRaisesRegex(ValueError, "batch of 2"):
      melodi_hk.generate(dec, params, state, logits[:2], 4)


if __name__ == "__main__":
  absltest.main()
