"""Loading and replaying the baselines' golden files (spec §12.1).

Glossary of shapes: B batch (2), T segment (32), W window (16), V vocab (64),
C memory slots (64), H heads (2), D head dim (16).

Each golden (tests/testdata/{txl_tiny,txl_tiny_base_transformer,
memorizing_dense_tiny}.npz, made by running meliad itself; see the .json
sidecars) holds parameters, three segments of tokens and flags, the logits,
per-token losses and meliad's whole state after every segment.
"""

import dataclasses
import json
import pathlib

import jax.numpy as jnp
import numpy as np

import melodi_hk

TESTDATA = pathlib.Path(__file__).parent / "testdata"
RTOL = 1e-5  # max |ours - reference| / max |reference|, per array.


def load_golden(name: str):
  """(config, npz arrays, meliad flat params) of one baseline golden."""
  c = json.loads((TESTDATA / f"{name}.json").read_text())["config"]
  fields = dict(
      vocab_size=c["vocab"], num_layers=c["num_layers"],
      embed_dim=c["embed_dim"], num_heads=c["num_heads"],
      head_dim=c["head_dim"], mlp_dim=c["mlp_dim"],
      window_length=c["window_length"], segment_length=c["segment_length"],
      ffn_bias="no biases" not in c["ffn"], dropout_rate=c["dropout"],
      attention_dropout_rate=c["attn_dropout"], dtype=c["dtype"])
  if c["memory_layer_indices"]:
    (layer,) = c["memory_layer_indices"]
    cfg = melodi_hk.MemorizingConfig(memory_layer=layer,
                                     memory_size=c["memory_size"], **fields)
  else:
    cfg = melodi_hk.TransformerXLConfig(**fields)
  arrays = np.load(TESTDATA / f"{name}.npz")
  flat = {k[len("params/"):]: arrays[k] for k in arrays.files
          if k.startswith("params/")}
  return cfg, arrays, flat


def segment(arrays, k: int):
  """tokens int32[B, T] and start_of_sequence bool[B] of segment k."""
  return (jnp.asarray(arrays[f"seg{k}/input_tokens"]),
          jnp.asarray(arrays[f"seg{k}/start_of_sequence"]))


def relative_error(ours, reference) -> float:
  """The spec's measure; an all-zero reference is compared absolutely."""
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


def assert_causal(model, params, tokens, sos, t: int) -> None:
  """Changing token t changes no logit before t, and some logit from t on."""
  memory = model.init_memory(tokens.shape[0])
  before, _ = model.apply(params, memory, tokens, sos)
  after, _ = model.apply(params, memory, tokens.at[:, t].add(1), sos)
  np.testing.assert_array_equal(before[:, :t], after[:, :t])
  assert np.abs(before[:, t:] - after[:, t:]).max() > 1e-4
