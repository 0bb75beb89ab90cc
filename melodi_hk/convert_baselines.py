"""The baselines' parameters and memories from/to meliad's flat names.

Glossary of shapes:
- B: batch.  W: window length.  C: memory slots.  H: heads.  D: head dim.

Parameters live under `layer_stack/transformer<l>/...` (XL layers) and
`layer_stack/side_layer/...` (the memory layer, spec §12.2); the carried
state under `.../kvi_cache/previous_{keys,values}_<mode>` and
`layer_stack/side_layer/recurrent_memory/{memory_keys,memory_values,
write_index}_<mode>`; meliad's write index is one scalar for the batch,
ours one per row (all equal). meliad also allocates an unused, always-zero XL cache
for the memory layer; we do not store it, ignore it on the way in and emit
zeros for it on the way out, so the dict is meliad's whole state.
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


def _names(cfg) -> tuple[dict, hk.Params]:
  """{(module, parameter): meliad path} and our parameter shapes."""
  if isinstance(cfg, config_lib.MemorizingConfig):
    build, stack_name = memorizing.build, memorizing.STACK_NAME
  else:
    build, stack_name = transformer_xl.build, transformer_xl.STACK_NAME
  shapes = jax.eval_shape(build(cfg).init, jax.random.PRNGKey(0))
  stack = {k: (m.format(stack_name), p) for k, (m, p) in _STACK.items()}
  table = _layer_table(cfg)
  names = convert.meliad_names(shapes, stack, [
      (stack_name + r"/~/layer_(\d+)", "layer_stack/transformer{}/", table),
      (r"(" + memorizing.MEMORY_LAYER_NAME + ")", _SIDE, table)])
  return names, shapes


def params_from_meliad(flat: dict, cfg) -> hk.Params:
  """Our parameters from meliad's {"embed/embedding": array, ...}.

  Raises ValueError listing missing, unexpected and wrongly-shaped entries
  (e.g. an FFN with biases given to a config with ffn_bias=False).
  """
  names, shapes = _names(cfg)
  return convert.from_flat(flat, names, shapes)


def params_to_meliad(params: hk.Params, cfg) -> dict:
  """The inverse of `params_from_meliad` (also maps gradients)."""
  names, _ = _names(cfg)
  return {names[(m, p)]: params[m][p] for m in params for p in params[m]}


def _cache_paths(cfg, mode: str) -> list[tuple[str, str]]:
  if isinstance(cfg, config_lib.TransformerXLConfig) and not cfg.xl_cache:
    return []
  prefix = "layer_stack/transformer{}/kvi_cache/previous_{}_" + mode
  return [(prefix.format(l, "keys"), prefix.format(l, "values"))
          for l in range(cfg.num_layers)]


def _memory_paths(mode: str) -> tuple[str, str, str]:
  return tuple(f"{_MEMORY}{n}_{mode}"
               for n in ("memory_keys", "memory_values", "write_index"))


def memory_from_meliad(flat_state: dict, cfg, mode: str = "test"):
  """Our XLMemory / MemorizingMemory from meliad's flat "state" collection."""
  caches = _cache_paths(cfg, mode)
  kv = (_memory_paths(mode) if isinstance(cfg, config_lib.MemorizingConfig)
        else ())
  missing = [p for p in [p for pair in caches for p in pair] + list(kv)
             if p not in flat_state]
  if missing:
    raise ValueError(f"meliad state lacks {missing}; is mode={mode!r} and "
                     "the config right?")
  as_dtype = lambda p: jnp.asarray(flat_state[p], cfg.dtype)
  caches = tuple(transformer_xl.XLCache(as_dtype(k), as_dtype(v))
                 for k, v in caches)
  if not kv:
    return transformer_xl.XLMemory(caches)
  keys = as_dtype(kv[0])  # [B, C, H, D]
  index = jnp.broadcast_to(jnp.asarray(flat_state[kv[2]], jnp.int32),
                           keys.shape[:1])  # [B]
  return memorizing.MemorizingMemory(caches, memorizing.KVMemory(
      keys, as_dtype(kv[1]), index))


def memory_to_meliad(memory, cfg, mode: str = "test") -> dict:
  """The inverse of `memory_from_meliad`, plus meliad's unused side cache."""
  flat = {}
  for (k, v), cache in zip(_cache_paths(cfg, mode), memory.caches):
    flat[k], flat[v] = cache.keys, cache.values
  if isinstance(cfg, config_lib.MemorizingConfig):
    keys, values, index = _memory_paths(mode)
    flat[keys], flat[values] = memory.kv.keys, memory.kv.values
    flat[index] = memory.kv.write_index[0]  # rows share it, as in meliad
    unused = jnp.zeros_like(memory.caches[0].keys)  # [B, W, H, D]
    for name in ("keys", "values"):
      flat[_UNUSED_SIDE_CACHE.format(name, mode)] = unused
  return flat
