"""One entry point per operation for every model type, keyed by config type.

Glossary: a "family" is a config class with everything that differs per
model type: its `build`, its meliad names, its memory footprint and how its
memory shrinks for tests. This is the one place that switches on the config
type; `melodi_hk.build(cfg)` and friends dispatch here, so the same
training and evaluation code runs MELODI and both baselines.
"""

import dataclasses
import functools
from typing import Callable, NamedTuple

import jax
import numpy as np

from melodi_hk import config as config_lib
from melodi_hk import contract
from melodi_hk import convert
from melodi_hk import convert_baselines
from melodi_hk import footprint
from melodi_hk import memorizing
from melodi_hk import model as model_lib
from melodi_hk import presets
from melodi_hk import stacking
from melodi_hk import transformer_xl


class Family(NamedTuple):
  build: Callable  # (cfg) -> contract.Model
  meliad_names: Callable  # (cfg) -> ({(module, param): path}, param shapes)
  memory_from_meliad: Callable  # (flat_state, cfg, mode) -> memory
  memory_to_meliad: Callable  # (memory, cfg, mode) -> flat_state
  footprint: Callable  # (cfg) -> footprint.Footprint
  tiny_memory: Callable  # (cfg) -> memory-size fields of its tiny twin


FAMILIES = {
    config_lib.MelodiConfig: Family(
        model_lib.build, convert.melodi_names, convert.memory_from_meliad,
        convert.memory_to_meliad, footprint.melodi,
        presets.tiny_melodi_memory),
    config_lib.TransformerXLConfig: Family(
        transformer_xl.build, convert_baselines.xl_names,
        convert_baselines.xl_memory_from_meliad,
        convert_baselines.xl_memory_to_meliad, footprint.transformer_xl,
        lambda cfg: {}),
    config_lib.MemorizingConfig: Family(
        memorizing.build, convert_baselines.memorizing_names,
        convert_baselines.memorizing_memory_from_meliad,
        convert_baselines.memorizing_memory_to_meliad, footprint.memorizing,
        presets.tiny_memorizing_memory),
}


def family(cfg) -> Family:
  """The family of `cfg`; TypeError for anything but the three configs."""
  try:
    return FAMILIES[type(cfg)]
  except KeyError:
    raise TypeError(
        f"{type(cfg).__name__} is not a model config; use one of "
        f"{[c.__name__ for c in FAMILIES]}.") from None


def build(cfg) -> contract.Model:
  """init / init_memory / apply of the model `cfg` describes.

  `apply` first checks that its params have the names and shapes `init`
  makes for `cfg` (abstractly, once per trace), so params of another config
  give one error naming the differences instead of a deep Haiku traceback.
  """
  model = family(cfg).build(cfg)
  expected = functools.cache(lambda: _shapes(jax.eval_shape(
      model.init, jax.ShapeDtypeStruct((2,), np.uint32))))

  def apply(params, *args, **kwargs):
    _check_params(_shapes(params), expected(), cfg)
    return model.apply(params, *args, **kwargs)

  return model._replace(apply=apply)


def _shapes(params) -> dict[str, tuple[int, ...]]:
  return {jax.tree_util.keystr(path): tuple(np.shape(leaf)) for path, leaf
          in jax.tree_util.tree_flatten_with_path(params)[0]}


def _check_params(got: dict, want: dict, cfg) -> None:
  if got == want:
    return
  diffs = [f"{key}: {got.get(key, 'missing')} (expected "
           f"{want.get(key, 'absent')})" for key in sorted(set(got) | set(want))
           if got.get(key) != want.get(key)]
  raise ValueError(
      f"The params do not match this {type(cfg).__name__} "
      f"({len(diffs)} differences, e.g. {'; '.join(diffs[:3])}). Build the "
      "model from the config the params were made with, or make new params "
      f"with this model's `init`.{_layout_hint(got, want, cfg)}")


def _layout_hint(got: dict, want: dict, cfg) -> str:
  stacked = lambda shapes: any("melodi/layers_" in k for k in shapes)
  if not isinstance(cfg, config_lib.MelodiConfig) or (
      stacked(got) == stacked(want)):
    return ""
  fix = "stack_layers" if cfg.scan_layers else "unstack_layers"
  return (f" This config has scan_layers={cfg.scan_layers} but the params "
          f"are laid out for the other value; convert them with "
          f"melodi_hk.{fix}(params, cfg).")


def _per_layer(cfg):
  """`cfg` with its layers unstacked: the layout meliad's names describe."""
  if isinstance(cfg, config_lib.MelodiConfig) and cfg.scan_layers:
    return dataclasses.replace(cfg, scan_layers=False)
  return cfg


def build_loss(cfg):
  """The training loss `(params, memory, tokens, sos, loss_mask=None,
  rng=None, is_training=False) -> (LossOutput, memory)` of `cfg`'s model.

  Equal to `apply` followed by `lm_loss`; MELODI's computes it a window at
  a time inside its scan, which never holds the segment's [B, T, V] logits.
  """
  if isinstance(cfg, config_lib.MelodiConfig):
    return model_lib.build_loss(cfg)
  return contract.loss_from_apply(build(cfg))


def params_from_meliad(flat: dict, cfg):
  """Our parameters from meliad's flat {"embed/embedding": array, ...}.

  Raises ValueError listing missing, unexpected and wrongly-shaped entries
  (e.g. an FFN with biases given to a config with ffn_bias=False).
  """
  base = _per_layer(cfg)
  names, shapes = family(base).meliad_names(base)
  params = convert.from_flat(flat, names, shapes)
  return stacking.stack_layers(params, cfg) if base is not cfg else params


def params_to_meliad(params, cfg) -> dict:
  """meliad's flat {path: array} of our parameters (or gradients).

  With scan_layers, stacked runs are unstacked first (and `params_from_meliad`
  stacks them), so meliad checkpoints and goldens load in either layout.
  """
  base = _per_layer(cfg)
  names, _ = family(base).meliad_names(base)
  if base is not cfg:
    params = stacking.unstack_layers(params, cfg)
  return convert.to_flat(params, names)


def memory_from_meliad(flat_state: dict, cfg, mode: str = "test"):
  """Our memory from meliad's flat "state" collection."""
  return family(cfg).memory_from_meliad(flat_state, cfg, mode)


def memory_to_meliad(memory, cfg, mode: str = "test") -> dict:
  """meliad's flat "state" collection of our memory."""
  return family(cfg).memory_to_meliad(memory, cfg, mode)


def memory_footprint(cfg) -> footprint.Footprint:
  """The memory one batch row carries between segments, for any config."""
  return family(cfg).footprint(cfg)


def tiny(cfg):
  """`cfg` shrunk for CPU tests: 3 layers, E 32, W 16, float32.

  Memory sizes scale with W (S128 -> 4, L64 -> 2), whole-window ratios are
  kept (128 windows of long-term history, C / T segments of KV memory) and
  layer indices move to the same relative depth.
  """
  memory_fields = family(cfg).tiny_memory(cfg)
  return dataclasses.replace(cfg, **presets.tiny_fields(cfg), **memory_fields)
