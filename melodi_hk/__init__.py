"""melodi_hk: MELODI (Chen, Hutchins et al., ICLR 2025) in Haiku/JAX."""

from melodi_hk.config import MelodiConfig
from melodi_hk.memory import LongTermMemory
from melodi_hk.memory import MelodiMemory
from melodi_hk.memory import ShortTermMemory
from melodi_hk.model import build
from melodi_hk.model import Model
from melodi_hk.convert import memory_from_meliad
from melodi_hk.convert import memory_to_meliad
from melodi_hk.convert import params_from_meliad
from melodi_hk.convert import params_to_meliad
from melodi_hk.losses import lm_loss
from melodi_hk.losses import LossOutput
