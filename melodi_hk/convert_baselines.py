"""The baselines' parameters and memories from/to meliad's flat names.

Glossary of shapes:
- B: batch.  W: window length.  C: memory slots.  H: heads.  D: head dim.

Parameters live under `layer_stack/transformer<l>/...` (XL layers) and
`layer_stack/side_layer/...` (the memory layer; melodi_hk/README.md §12.3); the
state under `.../kvi_cache/previous_{keys,values}_<mode>` and
`layer_stack/side_layer/recurrent_memory/{memory_keys,memory_values,
write_index}_<mode>`; meliad's write index is one scalar for the batch,
ours one per row (all equal). meliad also allocates an unused, always-zero
XL cache for the memory layer; we do not store it, ignore it on the way in
and emit zeros for it on the way out, so the dict is meliad's whole state.
Each function serves one config type; `registry.py` picks them.
"""

import haiku as hk
import jax
import jax.numpy as jnp

from melodi_hk import config as config_lib
from melodi_hk import convert
from melodi_hk import memorizing
from melodi_hk import transformer_xl

_STACK = {"embed/embedding": ("{}", "embedding"),
          "layer_stack/final_layernorm/scale": ("{}/~/final_norm", "scale")}
_SIDE = "layer_stack/side_layer/"
_MEMORY = _SIDE + "recurrent_memory/"
_UNUSED_SIDE_CACHE = _SIDE + "kvi_cache/previous_{}_{}"


def _layer_table(cfg) -> dict:
  if cfg.ffn_bias:
    return convert.TRANSFORMER_BLOCK
  table = {k: v for k, v in convert.TRANSFORMER_BLOCK.items()
           if not k.startswith("tbase/ffn/")}
  return dict(table, **convert.BIAS_FREE_FFN)


def _names(cfg, build, stack_name: str) -> tuple[dict, hk.Params]:
  """{(module, parameter): meliad path} and our parameter shapes."""
  shapes = jax.eval_shape(build(cfg).init, jax.random.PRNGKey(0))
  stack = {k: (m.format(stack_name), p) for k, (m, p) in _STACK.items()}
  table = _layer_table(cfg)
  names = convert.meliad_names(shapes, stack, [
      (stack_name + r"/~/layer_(\d+)", "layer_stack/transformer{}/", table),
      (r"(" + memorizing.MEMORY_LAYER_NAME + ")", _SIDE, table)])
  return names, shapes


def xl_names(cfg: config_lib.TransformerXLConfig):
  return _names(cfg, transformer_xl.build, transformer_xl.STACK_NAME)


def memorizing_names(cfg: config_lib.MemorizingConfig):
  return _names(cfg, memorizing.build, memorizing.STACK_NAME)


def _cache_paths(num_layers: int, mode: str) -> list[tuple[str, str]]:
  prefix = "layer_stack/transformer{}/kvi_cache/previous_{}_" + mode
  return [(prefix.format(l, "keys"), prefix.format(l, "values"))
          for l in range(num_layers)]


def _kv_paths(mode: str) -> tuple[str, str, str]:
  return tuple(f"{_MEMORY}{n}_{mode}"
               for n in ("memory_keys", "memory_values", "write_index"))


def _caches_from_meliad(flat_state, cfg, mode, num_caches, kv_paths=()):
  """The XL caches; ValueError naming every path `flat_state` lacks."""
  paths = _cache_paths(num_caches, mode)
  missing = [p for p in [p for pair in paths for p in pair] + list(kv_paths)
             if p not in flat_state]
  if missing:
    raise ValueError(f"meliad state lacks {missing}; is mode={mode!r} and "
                     "the config right?")
  as_dtype = lambda p: jnp.asarray(flat_state[p], cfg.dtype)
  return tuple(transformer_xl.XLCache(as_dtype(k), as_dtype(v))
               for k, v in paths)


def _caches_to_meliad(caches, mode) -> dict:
  flat = {}
  for (k, v), cache in zip(_cache_paths(len(caches), mode), caches):
    flat[k], flat[v] = cache.keys, cache.values
  return flat


def xl_memory_from_meliad(flat_state: dict,
                          cfg: config_lib.TransformerXLConfig,
                          mode: str = "test") -> transformer_xl.XLMemory:
  """Our XLMemory from meliad's flat "state" collection."""
  num_caches = cfg.num_layers if cfg.xl_cache else 0
  return transformer_xl.XLMemory(
      _caches_from_meliad(flat_state, cfg, mode, num_caches))


def xl_memory_to_meliad(memory: transformer_xl.XLMemory, cfg,
                        mode: str = "test") -> dict:
  """The inverse of `xl_memory_from_meliad`."""
  del cfg  # The memory's own structure says everything.
  return _caches_to_meliad(memory.caches, mode)


def memorizing_memory_from_meliad(
    flat_state: dict, cfg: config_lib.MemorizingConfig,
    mode: str = "test") -> memorizing.MemorizingMemory:
  """Our MemorizingMemory from meliad's flat "state" collection."""
  kv = _kv_paths(mode)
  caches = _caches_from_meliad(flat_state, cfg, mode, cfg.num_layers, kv)
  keys = jnp.asarray(flat_state[kv[0]], cfg.dtype)  # [B, C, H, D]
  index = jnp.broadcast_to(jnp.asarray(flat_state[kv[2]], jnp.int32),
                           keys.shape[:1])  # [B]
  return memorizing.MemorizingMemory(caches, memorizing.KVMemory(
      keys, jnp.asarray(flat_state[kv[1]], cfg.dtype), index))


def memorizing_memory_to_meliad(memory: memorizing.MemorizingMemory, cfg,
                                mode: str = "test") -> dict:
  """The inverse of `memorizing_memory_from_meliad`, plus the unused cache."""
  del cfg  # The memory's own structure says everything.
  flat = _caches_to_meliad(memory.caches, mode)
  keys, values, index = _kv_paths(mode)
  flat[keys], flat[values] = memory.kv.keys, memory.kv.values
  flat[index] = memory.kv.write_index[0]  # rows share it, as in meliad
  unused = jnp.zeros_like(memory.caches[0].keys)  # [B, W, H, D]
  for name in ("keys", "values"):
    flat[_UNUSED_SIDE_CACHE.format(name, mode)] = unused
  return flat
