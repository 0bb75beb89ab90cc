r"""The passkey config with one change to MELODI's long-term memory.

Glossary of shapes:
- L: long-term memory tokens.  I: tokens appended per window.

  python -m launch.train \
      --config=experiments/long_memory_config.py:mask,melodi_sl,24,dots,values \
      --workdir=/tmp/ev/ablate_mask_24

The argument is "<variant>,<passkey argument>" (see
launch/configs/passkey.py for the second part), variant one of VARIANTS:
- "base": no change (the sl_curriculum24 recipe, e.g. for other seeds);
- "mask": mask_unwritten_long_memory=True (unwritten long-memory slots
  hidden from the cross-attention instead of attended as zeros);
- "lower": the long-term layer is layer 0, the lower of the 2 layers;
- "deep3": 3 layers, the long-term layer in the middle (layer 1);
- "longscale": long_memory_scale=True (the cross-attention over the long
  memory learns its own temperature instead of sharing its layer's).
Everything else is the passkey row as given. The runs and what they show:
experiments/long_memory_ablations.sh and
experiments/results/long_memory_ablations/FINDINGS.md.
"""

import ml_collections

from launch.configs import passkey

VARIANTS = ("base", "mask", "lower", "deep3", "longscale")


def get_config(arg: str) -> ml_collections.ConfigDict:
  variant, _, rest = arg.partition(",")
  config = passkey.get_config(rest)
  if config.model_name != "melodi" or "long_term_layers" not in config.model:
    raise ValueError(f"Model in {arg!r} has no long-term memory; use "
                     "melodi_sl or melodi_l after the variant.")
  if variant == "base":
    pass
  elif variant == "mask":
    config.model.mask_unwritten_long_memory = True
  elif variant == "lower":
    config.model.long_term_layers = (0,)
  elif variant == "deep3":
    config.model.num_layers = 3
    config.model.long_term_layers = (1,)
  elif variant == "longscale":
    config.model.long_memory_scale = True
  else:
    raise ValueError(f"Unknown variant {variant!r} in {arg!r}; use one of "
                     f"{VARIANTS}.")
  return config
