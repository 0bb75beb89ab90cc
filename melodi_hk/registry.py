"""One entry point per operation for every model family, keyed by config type.

Glossary: a "family" is a config class with its `build` and its meliad
name conversions. `melodi_hk.build(cfg)` and friends dispatch here, so the
same training and evaluation code runs MELODI and both baselines.
"""

import functools
from typing import Callable, NamedTuple

import jax
import numpy as np

from melodi_hk import config as config_lib
from melodi_hk import convert
from melodi_hk import convert_baselines
from melodi_hk import memorizing
from melodi_hk import model as model_lib
from melodi_hk import transformer_xl


class Family(NamedTuple):
  build: Callable  # (cfg) -> model.Model
  params_from_meliad: Callable  # (flat, cfg) -> params
  params_to_meliad: Callable  # (params, cfg) -> flat
  memory_from_meliad: Callable  # (flat_state, cfg, mode) -> memory
  memory_to_meliad: Callable  # (memory, cfg, mode) -> flat_state


_BASELINE_CONVERSIONS = (
    convert_baselines.params_from_meliad, convert_baselines.params_to_meliad,
    convert_baselines.memory_from_meliad, convert_baselines.memory_to_meliad)

FAMILIES = {
    config_lib.MelodiConfig: Family(
        model_lib.build, convert.params_from_meliad, convert.params_to_meliad,
        convert.memory_from_meliad, convert.memory_to_meliad),
    config_lib.TransformerXLConfig: Family(transformer_xl.build,
                                           *_BASELINE_CONVERSIONS),
    config_lib.MemorizingConfig: Family(memorizing.build,
                                        *_BASELINE_CONVERSIONS),
}


def family(cfg) -> Family:
  """The family of `cfg`; TypeError for anything but the three configs."""
  try:
    return FAMILIES[type(cfg)]
  except KeyError:
    raise TypeError(
        f"{type(cfg).__name__} is not a model config; use one of "
        f"{[c.__name__ for c in FAMILIES]}.") from None


def build(cfg) -> model_lib.Model:
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
      "with this model's `init`.")


def params_from_meliad(flat: dict, cfg):
  """Our parameters from meliad's flat {path: array} for any family."""
  return family(cfg).params_from_meliad(flat, cfg)


def params_to_meliad(params, cfg) -> dict:
  """meliad's flat {path: array} of our parameters (or gradients)."""
  return family(cfg).params_to_meliad(params, cfg)


def memory_from_meliad(flat_state: dict, cfg, mode: str = "test"):
  """Our memory from meliad's flat "state" collection."""
  return family(cfg).memory_from_meliad(flat_state, cfg, mode)


def memory_to_meliad(memory, cfg, mode: str = "test") -> dict:
  """meliad's flat "state" collection of our memory."""
  return family(cfg).memory_to_meliad(memory, cfg, mode)
