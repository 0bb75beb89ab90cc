"""melodi_hk: MELODI (Chen, Hutchins et al., ICLR 2025) in Haiku/JAX."""

from melodi_hk.config import MelodiConfig
from melodi_hk.config import MemorizingConfig
from melodi_hk.config import TransformerXLConfig
from melodi_hk.memory import LongTermMemory
from melodi_hk.memory import MelodiMemory
from melodi_hk.memory import ShortTermMemory
from melodi_hk.memorizing import KVMemory
from melodi_hk.memorizing import MemorizingMemory
from melodi_hk.transformer_xl import XLCache
from melodi_hk.transformer_xl import XLMemory
from melodi_hk.contract import Model
# Everything that differs per model type dispatches on the config type.
from melodi_hk.registry import build
from melodi_hk.registry import memory_footprint
from melodi_hk.registry import build_loss
from melodi_hk.contract import loss_from_apply
from melodi_hk.registry import memory_from_meliad
from melodi_hk.registry import memory_to_meliad
from melodi_hk.registry import params_from_meliad
from melodi_hk.registry import params_to_meliad
from melodi_hk.registry import tiny
# scan_layers' parameter layout <-> the per-layer one.
from melodi_hk.stacking import stack_layers
from melodi_hk.stacking import unstack_layers
from melodi_hk.losses import lm_loss
from melodi_hk.losses import LossOutput
from melodi_hk.footprint import Footprint
from melodi_hk import presets
# Streaming generation: exact decoding from any model's memory, sampling.
from melodi_hk.decode import DecodeState
from melodi_hk.decode import Decoder
from melodi_hk.decode import decoder
from melodi_hk.sampling import generate
from melodi_hk.sampling import SamplingConfig
