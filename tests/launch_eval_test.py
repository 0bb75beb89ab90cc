"""Tests of launch/eval_lib.py: perplexity over every document of a split.

Glossary of shapes:
- P = 8 fake CPU devices.  R = 8 eval rows.  T = 32 tokens.
"""

import json
import math
import os

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


def _reference_nats(config, params, texts, reset_every_segment=False):
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
      start = np.array([k == 0 or reset_every_segment])
      logits, memory = apply(params, memory, segment, start)
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


def test_held_out_every_eval_every_steps_and_memory_modes(
    tmp_path, monkeypatch):
  launch_testing.use_small_corpus(monkeypatch, count=_DOCUMENTS)
  config = launch_testing.small_config()
  config.eval_every, config.eval_batches = 3, 2
  trainer.train(config, str(tmp_path))
  lines = [json.loads(line) for line in
           open(os.path.join(tmp_path, "eval_log.jsonl")).read().splitlines()]
  assert [line["step"] for line in lines] == [3, 6]
  model_cfg = experiment.model_config(config)
  params, _ = eval_lib.restore_params(config, model_cfg, str(tmp_path), None)
  held_out = eval_lib.score_params(config, model_cfg, params, "validation",
                                   max_batches=2)
  assert lines[-1]["nats_per_token"] == pytest.approx(
      held_out["nats_per_token"], rel=1e-6)
  assert held_out["batches"] == 2
  result = eval_lib.evaluate(config, str(tmp_path), "validation",
                             memory_modes=("carried", "reset_segment",
                                           "reset_long"))
  texts = launch_testing.documents("validation", _DOCUMENTS)
  for mode, reset in (("carried", False), ("reset_segment", True)):
    nats, tokens = _reference_nats(config, params, texts, reset)
    assert result["memory_gain"][mode]["nats_per_token"] == pytest.approx(
        nats / tokens, rel=1e-5)
  # Zeroing only the long memory lands in between (it is not a no-op).
  gains = result["memory_gain"]
  assert gains["reset_long"]["nats_per_token"] != pytest.approx(
      gains["carried"]["nats_per_token"], rel=1e-7)
  assert sum(b["tokens"] for b in result["by_position"]) == tokens


def test_reset_long_needs_a_long_memory():
  config = launch_testing.small_config()
  config.model.long_term_layers = ()
  config.model.long_term_memory_size = 0
  config.model.long_term_memory_increment = 0
  with pytest.raises(ValueError, match="'reset_long' needs a MELODI model"):
    eval_lib.check_memory_mode(experiment.model_config(config), "reset_long")
