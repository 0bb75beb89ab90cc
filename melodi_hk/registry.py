"""One entry point per operation for every model family, keyed by config type.

Glossary: a "family" is a config class with its `build` and its meliad
name conversions. `melodi_hk.build(cfg)` and friends dispatch here, so the
same training and evaluation code runs MELODI and both baselines.
"""

from typing import Callable, NamedTuple

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
  """init / init_memory / apply of the model `cfg` describes."""
  return family(cfg).build(cfg)


def build_loss(cfg):
  """The training loss `(params, memory, tokens, sos, loss_mask=None,
  rng=None, is_training=False) -> (LossOutput, memory)` of `cfg`'s model.

  Equal to `apply` followed by `lm_loss`; MELODI's computes it a window at
  a time inside its scan, which never holds the segment's [B, T, V] logits.
  """
  if isinstance(cfg, config_lib.MelodiConfig):
    return model_lib.build_loss(cfg)
  return model_lib.loss_from_apply(build(cfg))


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
