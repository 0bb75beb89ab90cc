"""Shared test helpers: golden files, the error measure, a tiny config.

Glossary of shapes: B batch, T segment, W window, V vocabulary.
"""

import json
import pathlib

import numpy as np

import melodi_hk

TESTDATA = pathlib.Path(__file__).parent / "testdata"
BATCH, WINDOW, SEGMENT, VOCAB = 2, 8, 32, 50


def load_golden(name: str):
  """(MelodiConfig, npz arrays, meliad flat params) of one golden file."""
  c = json.loads((TESTDATA / f"{name}.json").read_text())["config"]
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
  arrays = np.load(TESTDATA / f"{name}.npz")
  flat = {k[len("params/"):]: arrays[k] for k in arrays.files
          if k.startswith("params/")}
  return cfg, arrays, flat


def relative_error(ours, reference) -> float:
  """The spec's measure: max |ours - reference| / max |reference|."""
  ours, reference = np.asarray(ours, np.float64), np.asarray(reference)
  scale = np.abs(reference).max()
  return float(np.abs(ours - reference).max() / (scale if scale else 1.0))


def tiny_config(**overrides) -> melodi_hk.MelodiConfig:
  """3 layers, E 16, W 8, T 32 (4 windows), M = S = 4, long layer 1."""
  fields = dict(vocab_size=VOCAB, num_layers=3, embed_dim=16, num_heads=2,
                head_dim=8, mlp_dim=32, window_length=WINDOW,
                segment_length=SEGMENT, short_term_memory_size=4,
                summary_size=4, long_term_layers=(1,),
                long_term_memory_size=8, long_term_memory_increment=2,
                dropout_rate=0.1, attention_dropout_rate=0.1, dtype="float32")
  return melodi_hk.MelodiConfig(**(fields | overrides))
