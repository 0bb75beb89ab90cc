"""Runs of identical MELODI layers under one `hk.layer_stack` (`scan_layers`).

Glossary of shapes:
- B: batch.  M: short-term memory.  E: width.
- n: layers in a run.  "group": layers the window step runs as one unit.

The window step unrolls its layers, so compile time grows with depth. With
`MelodiConfig.scan_layers`, each maximal run of at least two consecutive
layers without long memory (below, between and above the long layers) runs
as one `hk.layer_stack`: the run compiles once, whatever its length. Long
layers, and runs of one layer, stay as they are.

The stacked parameters get other names: `melodi/~/layer_<l>/~/<rest>` of the
run's layers a..b become `melodi/layers_<a>_<b>/layer/~/<rest>` with a
leading axis [n]. `stack_layers` / `unstack_layers` convert whole parameter
(or gradient) trees between the two layouts; meliad conversion and the
goldens use the per-layer one. The public memory keeps one
`ShortTermMemory` per layer; inside a segment a run's memories travel
stacked, [n, B, M, E] (`stack_memory` / `unstack_memory`).
"""

import re

import jax.numpy as jnp

from melodi_hk import config as config_lib
from melodi_hk import memory as memory_lib

_LAYER = re.compile(r"melodi/~/layer_(\d+)(/~/.*)?")
_RUN = re.compile(r"melodi/layers_(\d+)_(\d+)/layer(/~/.*)?")


def groups(cfg: config_lib.MelodiConfig,
           scan: bool | None = None) -> tuple[tuple[int, ...], ...]:
  """The layers in order, grouped as the window step runs them.

  Args:
    cfg: the config.
    scan: group runs as if `cfg.scan_layers` were this (None: as it is).

  Returns:
    One tuple of layer indices per group; a group of two or more layers
    runs under one layer_stack. E.g. 13 layers, long layer 6, scanned:
    ((0, ..., 5), (6,), (7, ..., 12)).
  """
  scan = cfg.scan_layers if scan is None else scan
  out, run = [], []
  for l in range(cfg.num_layers):
    if l in cfg.long_term_layers or not scan:
      out.extend([(r,) for r in run] if len(run) == 1 else
                 [tuple(run)] if run else [])
      out.append((l,))
      run = []
    else:
      run.append(l)
  out.extend([(r,) for r in run] if len(run) == 1 else
             [tuple(run)] if run else [])
  return tuple(out)


def run_name(group: tuple[int, ...]) -> str:
  """The layer_stack module of a run of layers a..b: `layers_<a>_<b>`."""
  return f"layers_{group[0]}_{group[-1]}"


def stack_layers(params: dict, cfg: config_lib.MelodiConfig) -> dict:
  """Per-layer params (or gradients) -> the layout of scan_layers=True.

  Each run of n layers becomes one module `melodi/layers_<a>_<b>/layer/...`
  whose leaves are the layers' leaves stacked: [n, ...] from n x [...].
  """
  _require_layout(params, cfg, stacked=False)
  out = {k: v for k, v in params.items() if not _in_run(k, cfg)}
  for group in (g for g in groups(cfg, scan=True) if len(g) > 1):
    rests = {_LAYER.fullmatch(k).group(2) or "" for k in params
             if _layer_of(k) == group[0]}
    for rest in rests:
      modules = [f"melodi/~/layer_{l}{rest}" for l in group]
      absent = [m for m in modules if m not in params]
      if absent:
        raise ValueError(f"stack_layers: {absent} missing; the params do "
                         "not come from this config's per-layer model.")
      out[f"melodi/{run_name(group)}/layer{rest}"] = {
          p: jnp.stack([params[m][p] for m in modules])
          for p in params[modules[0]]}
  return out


def unstack_layers(params: dict, cfg: config_lib.MelodiConfig) -> dict:
  """The inverse of `stack_layers`: [n, ...] leaves back to n x [...]."""
  _require_layout(params, cfg, stacked=True)
  out = {}
  for key, value in params.items():
    match = _RUN.fullmatch(key)
    if not match:
      out[key] = value
      continue
    first, last = int(match.group(1)), int(match.group(2))
    for i, l in enumerate(range(first, last + 1)):
      out[f"melodi/~/layer_{l}{match.group(3) or ''}"] = {
          p: v[i] for p, v in value.items()}
  return out


def stack_memory(short: tuple, group_list) -> tuple:
  """One ShortTermMemory per layer -> one per group ([n, B, M, E] if n > 1)."""
  return tuple(short[g[0]] if len(g) == 1 else memory_lib.ShortTermMemory(
      jnp.stack([short[l].tokens for l in g])) for g in group_list)


def unstack_memory(short: tuple, group_list) -> tuple:
  """The inverse of `stack_memory`."""
  out = []
  for memory, g in zip(short, group_list):
    out.extend([memory] if len(g) == 1 else [
        memory_lib.ShortTermMemory(t) for t in memory.tokens])
  return tuple(out)


def _layer_of(key: str) -> int | None:
  match = _LAYER.fullmatch(key)
  return int(match.group(1)) if match else None


def _in_run(key: str, cfg) -> bool:
  runs = [g for g in groups(cfg, scan=True) if len(g) > 1]
  return any(_layer_of(key) in g for g in runs)


def _require_layout(params, cfg, stacked: bool) -> None:
  if not isinstance(cfg, config_lib.MelodiConfig):
    raise TypeError(f"stacking layers needs a MelodiConfig; got "
                    f"{type(cfg).__name__} (its layers are never stacked).")
  if stacked:  # Per-layer modules of a run would be lost.
    wrong = [k for k in params if _in_run(k, cfg)]
  else:
    wrong = [k for k in params if _RUN.fullmatch(k)]
  if wrong:
    have, want, name = (("per-layer", "stacked", "unstack_layers") if stacked
                        else ("stacked", "per-layer", "stack_layers"))
    raise ValueError(
        f"{name}: these params are already {have} (e.g. {wrong[0]!r}) but "
        f"{name} takes {want} ones; use them as they are.")
