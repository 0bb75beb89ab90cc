"""Parameters and memories from/to meliad's (Flax) flat names.

Glossary of shapes:
- B: batch.  M: short-term memory.  L: long-term memory.  E: width.

meliad names a parameter by its Flax path, e.g.
`layer_stack/melodi_layers_1/melodi_layer/tbase/_kvq/keys_layer/kernel`;
the golden files store them as `params/<path>` and the carried memories as
`layer_stack/melodi_layers_<l>/{short,long}_memory/previous_mems_<mode>`.
Both conventions store dense kernels as (in, out), as we do, so converting
is renaming plus strict checks.
"""

import re

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from melodi_hk import config as config_lib
from melodi_hk import memory as memory_lib
from melodi_hk import model as model_lib

# meliad suffix inside a transformer layer -> (our module suffix, parameter).
TRANSFORMER_BLOCK = {
    "relative_positions/rel_embedding": ("relative_positions", "embedding"),
    "tbase/pre_attn_layernorm/scale": ("attention/~/pre_attn_norm", "scale"),
    "tbase/_kvq/queries_layer/kernel": ("attention/~/query", "kernel"),
    "tbase/_kvq/keys_layer/kernel": ("attention/~/key", "kernel"),
    "tbase/_kvq/values_layer/kernel": ("attention/~/value", "kernel"),
    "tbase/_kvq/attention_scale": ("attention", "scale"),
    "tbase/post_attn_mlp/output_layer/kernel": ("attention/~/output", "kernel"),
    "tbase/pre_ffn_layernorm/scale": ("pre_ffn_norm", "scale"),
    "tbase/ffn/mlp_layer/input_layer/kernel": ("ffn/~/input", "kernel"),
    "tbase/ffn/mlp_layer/input_layer/bias": ("ffn/~/input", "bias"),
    "tbase/ffn/mlp_layer/output_layer/kernel": ("ffn/~/output", "kernel"),
    "tbase/ffn/mlp_layer/output_layer/bias": ("ffn/~/output", "bias"),
}

# base_transformer.gin names its bias-free FFN differently.
BIAS_FREE_FFN = {
    "tbase/ffn/hidden0/kernel": ("ffn/~/input", "kernel"),
    "tbase/ffn/output_layer/kernel": ("ffn/~/output", "kernel"),
}

_MIXINGS = {"token_mixing_summary": "summary_mixing",
            "token_mixing_short": "short_mixing",
            "long_mem_token_mixing": "increment_mixing"}

MELODI_LAYER = dict(TRANSFORMER_BLOCK, attn_gate=("", "attn_gate"))
for _theirs, _ours in _MIXINGS.items():
  MELODI_LAYER[f"{_theirs}/lin_mix/kernel"] = (_ours, "kernel")
  MELODI_LAYER[f"{_theirs}/lin_mix/bias"] = (_ours, "bias")
  MELODI_LAYER[f"{_theirs}/layernorm1/scale"] = (f"{_ours}/~/context_norm",
                                                 "scale")
  MELODI_LAYER[f"{_theirs}/layernorm2/scale"] = (f"{_ours}/~/summary_norm",
                                                 "scale")

MELODI_STACK = {
    "embed/embedding": ("melodi", "embedding"),
    "layer_stack/summary_embeddings": ("melodi", "summary_embeddings"),
    "layer_stack/final_layernorm/scale": ("melodi/~/final_norm", "scale"),
}


def meliad_names(params_shape: hk.Params, stack: dict[str, tuple[str, str]],
                 layer_patterns: list[tuple[str, str, dict]]) -> dict:
  """Maps each of our (module, parameter) to its meliad path.

  Args:
    params_shape: our parameter tree (arrays or ShapeDtypeStructs).
    stack: meliad path -> (module, parameter) outside the layers.
    layer_patterns: (our module regex with one group, meliad prefix format
      taking that group, per-layer table), tried in order.

  Returns:
    {(module, parameter): meliad path}.
  """
  inverse = {ours: theirs for theirs, ours in stack.items()}
  names = {}
  for module, param in ((m, p) for m in params_shape for p in params_shape[m]):
    names[(module, param)] = inverse.get((module, param)) or _layer_name(
        module, param, layer_patterns)
  return names


def _layer_name(module, param, layer_patterns):
  for regex, prefix, table in layer_patterns:
    match = re.fullmatch(regex + r"(?:/~/(.*))?", module)
    if match:
      inverse = {ours: theirs for theirs, ours in table.items()}
      suffix = inverse.get((match.group(2) or "", param))
      if suffix is not None:
        return prefix.format(match.group(1)) + suffix
  raise KeyError(f"no meliad name for {module}:{param}")


def from_flat(flat: dict, names: dict, shapes: hk.Params) -> hk.Params:
  """Our float32 params from meliad's flat dict; lists every mismatch.

  bfloat16 entries (meliad's summary tokens and gate) become float32.
  """
  wanted = {theirs: ours for ours, theirs in names.items()}
  missing = sorted(set(wanted) - set(flat))
  extra = sorted(set(flat) - set(wanted))
  wrong = sorted(
      f"{k}: {tuple(np.shape(flat[k]))} (want "
      f"{shapes[wanted[k][0]][wanted[k][1]].shape})"
      for k in set(flat) & set(wanted)
      if tuple(np.shape(flat[k])) != shapes[wanted[k][0]][wanted[k][1]].shape)
  if missing or extra or wrong:
    raise ValueError(
        "meliad parameters do not match this config:"
        + (f"\n  missing: {missing}" if missing else "")
        + (f"\n  unexpected: {extra}" if extra else "")
        + (f"\n  wrong shape: {wrong}" if wrong else "")
        + "\nCheck the config against the checkpoint's gin settings.")
  params = {}
  for theirs, (module, param) in wanted.items():
    params.setdefault(module, {})[param] = jnp.asarray(flat[theirs],
                                                       jnp.float32)
  return params


def to_flat(params: hk.Params, names: dict) -> dict:
  """The inverse of `from_flat`; also maps gradients."""
  return {names[(m, p)]: params[m][p] for m in params for p in params[m]}


def melodi_names(cfg: config_lib.MelodiConfig) -> tuple[dict, hk.Params]:
  """{(module, parameter): meliad path} and our parameter shapes."""
  shapes = jax.eval_shape(model_lib.build(cfg).init, jax.random.PRNGKey(0))
  names = meliad_names(shapes, MELODI_STACK, [(
      r"melodi/~/layer_(\d+)", "layer_stack/melodi_layers_{}/melodi_layer/",
      MELODI_LAYER)])
  return names, shapes


def _memory_paths(cfg: config_lib.MelodiConfig, mode: str):
  short = [f"layer_stack/melodi_layers_{l}/short_memory/previous_mems_{mode}"
           for l in range(cfg.num_layers)]
  long = [f"layer_stack/melodi_layers_{l}/long_memory/previous_mems_{mode}"
          for l in cfg.long_term_layers]
  return short, long


def memory_from_meliad(flat_state: dict, cfg: config_lib.MelodiConfig,
                       mode: str = "test") -> memory_lib.MelodiMemory:
  """Our memory from meliad's flat "state" collection ([B, M|L, E] each)."""
  short, long = _memory_paths(cfg, mode)
  missing = [p for p in short + long if p not in flat_state]
  if missing:
    raise ValueError(f"meliad state lacks {missing}.")
  return memory_lib.MelodiMemory(
      tuple(memory_lib.ShortTermMemory(jnp.asarray(flat_state[p], cfg.dtype))
            for p in short),
      tuple(memory_lib.LongTermMemory(jnp.asarray(flat_state[p], cfg.dtype))
            for p in long))


def memory_to_meliad(memory: memory_lib.MelodiMemory,
                     cfg: config_lib.MelodiConfig, mode: str = "test") -> dict:
  """The inverse of `memory_from_meliad`."""
  short, long = _memory_paths(cfg, mode)
  return dict(zip(short + long,
                  [m.tokens for m in memory.short + memory.long]))
