"""Tests of launch/eval_lib.py: perplexity over every document of a split.

Glossary of shapes:
- P = 8 fake CPU devices.  R = 8 eval rows.  T = 32 tokens.
"""

import math

import jax
import melodi_hk
import numpy as np
import pytest

from data import tokenizers
from launch import eval_lib
from launch import experiment
from launch import trainer
from tests import launch_testing

_DOCUMENTS = 5  # Fewer than the 8 rows: three rows idle from the start.


def _reference_nats(config, params, texts):
  """Summed nats and predicted tokens, one document at a time, batch 1."""
  model_cfg = experiment.model_config(config)
  model = melodi_hk.build(model_cfg)
  apply = jax.jit(model.apply)
  length = model_cfg.segment_length
  nats, tokens = 0.0, 0
  for text in texts:
    ids = tokenizers.ByteTokenizer().encode(text)
    ids = np.pad(ids, (0, -len(ids) % length)).reshape(-1, 1, length)
    memory = model.init_memory(1)
    for k, segment in enumerate(ids):  # [1, T] each, memory carried.
      logits, memory = apply(params, memory, segment, np.array([k == 0]))
      out = melodi_hk.lm_loss(logits, segment, segment > 0)
      nats, tokens = nats + float(out.loss), tokens + int(out.num_tokens)
  return nats, tokens


def test_perplexity_is_exp_of_total_nats_per_predicted_token(
    tmp_path, monkeypatch):
  launch_testing.use_small_corpus(monkeypatch, count=_DOCUMENTS)
  config = launch_testing.small_config()
  trainer.train(config, str(tmp_path))
  result = eval_lib.evaluate(config, str(tmp_path), "validation")
  params, _ = eval_lib.restore_params(
      config, experiment.model_config(config), str(tmp_path), None)
  nats, tokens = _reference_nats(
      config, params, launch_testing.documents("validation", _DOCUMENTS))
  assert result["documents"] == _DOCUMENTS
  assert result["predicted_tokens"] == tokens
  assert result["nats_per_token"] == pytest.approx(nats / tokens, rel=1e-5)
  assert result["perplexity"] == pytest.approx(math.exp(nats / tokens),
                                               rel=1e-5)


def test_missing_checkpoint_is_a_clear_error(tmp_path, monkeypatch):
  launch_testing.use_small_corpus(monkeypatch, count=_DOCUMENTS)
  with pytest.raises(ValueError, match="No checkpoints in .*--workdir"):
    eval_lib.evaluate(launch_testing.small_config(), str(tmp_path),
                      "validation")
