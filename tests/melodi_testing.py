"""Shared test helpers: golden files, the error measure, a tiny config.

Glossary of shapes: B batch, T segment, W window, V vocabulary, C memory
slots, H heads, D head dim.

Each golden (tests/testdata/*.npz, made by running meliad itself; see the
.json sidecars and melodi_hk/README.md §14) holds parameters, three
segments of tokens and flags, the logits, per-token losses and meliad's
whole state after every segment.
"""

import contextlib
import dataclasses
import io
import json
import pathlib

import jax
import jax.ad_checkpoint
import jax.numpy as jnp
import numpy as np

import melodi_hk

TESTDATA = pathlib.Path(__file__).parent / "testdata"
RTOL = 1e-5  # max |ours - reference| / max |reference|, per array.


def load_golden(name: str):
  """(config, npz arrays, meliad flat params) of one golden file."""
  c = json.loads((TESTDATA / f"{name}.json").read_text())["config"]
  fields = dict(
      vocab_size=c["vocab"], num_layers=c["num_layers"],
      embed_dim=c["embed_dim"], num_heads=c["num_heads"],
      head_dim=c["head_dim"], mlp_dim=c["mlp_dim"],
      window_length=c["window_length"], segment_length=c["segment_length"],
      dropout_rate=c["dropout"], attention_dropout_rate=c["attn_dropout"],
      dtype=c["dtype"])
  if "long_term_layer_indices" in c:
    cfg = _melodi_config(c, fields)
  elif c["memory_layer_indices"]:
    (layer,) = c["memory_layer_indices"]
    cfg = melodi_hk.MemorizingConfig(
        memory_layer=layer, memory_size=c["memory_size"],
        ffn_bias="no biases" not in c["ffn"], **fields)
  else:
    cfg = melodi_hk.TransformerXLConfig(ffn_bias="no biases" not in c["ffn"],
                                        **fields)
  arrays = np.load(TESTDATA / f"{name}.npz")
  flat = {k[len("params/"):]: arrays[k] for k in arrays.files
          if k.startswith("params/")}
  return cfg, arrays, flat


def _melodi_config(c: dict, fields: dict) -> melodi_hk.MelodiConfig:
  long_layers = tuple(c["long_term_layer_indices"] or ())
  return melodi_hk.MelodiConfig(
      short_term_memory_size=c["short_term_memory_size"],
      summary_size=c["summary_size"], long_term_layers=long_layers,
      long_term_memory_size=c["long_term_memory_size"] if long_layers else 0,
      long_term_memory_increment=(c["long_term_memory_increment_size"]
                                  if long_layers else 0), **fields)


def segment(arrays, k: int):
  """tokens int32[B, T] and start_of_sequence bool[B] of segment k."""
  return (jnp.asarray(arrays[f"seg{k}/input_tokens"]),
          jnp.asarray(arrays[f"seg{k}/start_of_sequence"]))


def relative_error(ours, reference) -> float:
  """max |ours - reference| / max |reference| (melodi_hk/README.md §14).

  An all-zero reference is compared absolutely.
  """
  ours, reference = np.asarray(ours, np.float64), np.asarray(reference)
  scale = np.abs(reference).max()
  return float(np.abs(ours - reference).max() / (scale if scale else 1.0))


def replay_errors(name: str, remat: str = "none") -> dict:
  """{(segment, array): relative error} of all 3 segments from init_memory."""
  cfg, g, flat = load_golden(name)
  cfg = dataclasses.replace(cfg, remat=remat)
  model = melodi_hk.build(cfg)
  params = melodi_hk.params_from_meliad(flat, cfg)
  memory = model.init_memory(2)
  errors = {}
  for k in (1, 2, 3):
    tokens, sos = segment(g, k)
    logits, memory = model.apply(params, memory, tokens, sos)
    out = melodi_hk.lm_loss(logits, tokens)
    errors[k, "logits"] = relative_error(logits, g[f"seg{k}/logits"])
    errors[k, "token_losses"] = relative_error(out.token_losses,
                                               g[f"seg{k}/token_losses"])
    errors[k, "loss_sum"] = relative_error(out.loss, g[f"seg{k}/loss_sum"])
    state = melodi_hk.memory_to_meliad(memory, cfg)
    want = {p[len(f"seg{k}/state/"):] for p in g.files
            if p.startswith(f"seg{k}/state/")}
    assert set(state) == want, (sorted(set(state) ^ want))
    for path, ours in state.items():
      errors[k, path] = relative_error(ours, g[f"seg{k}/state/{path}"])
  return errors


def tiny_config(**overrides) -> melodi_hk.MelodiConfig:
  """`melodi_hk.tiny` of the paper's S128+L64 MELODI, four windows long.

  3 layers, E 32, W 16, M = S = 4, long layer 1 with I = 2 (float32). Tests
  want more than the tiny preset's two windows per segment and a long
  memory that one segment fills (L = 4 I = 8), so the FIFO drops tokens.
  """
  cfg = melodi_hk.tiny(melodi_hk.presets.melodi("S128+L64"))
  fields = dict(segment_length=4 * cfg.window_length,
                long_term_memory_size=4 * cfg.long_term_memory_increment)
  return dataclasses.replace(cfg, **(fields | overrides))


_TINY = tiny_config()
BATCH, WINDOW, SEGMENT, VOCAB = (2, _TINY.window_length, _TINY.segment_length,
                                 _TINY.vocab_size)


def saved_residuals(f, *args) -> list[str]:
  """One line per array autodiff stores for f's backward pass, e.g.
  "bf16[2,5,3,4] from the argument q"."""
  out = io.StringIO()
  with contextlib.redirect_stdout(out):
    jax.ad_checkpoint.print_saved_residuals(f, *args)
  return out.getvalue().splitlines()
