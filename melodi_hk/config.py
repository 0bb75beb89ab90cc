"""Model hyper-parameters: frozen, validated dataclasses, one per model type.

Glossary of shapes:
- B: batch.  T: segment length.  W: window length.  N = T / W windows.
- S: summary tokens per window.  M: short-term memory tokens per layer.
- L: long-term memory tokens.  I: long-term increment per window.
- E: width.  H: heads.  D: head dim.  F: MLP hidden dim.  V: vocabulary.
- C: key/value slots of the Memorizing Transformer's memory.

`ModelConfig` holds the fields every model type has, with one meaning,
and their checks; `MelodiConfig` and the two baselines (melodi_hk/README.md
§12), `TransformerXLConfig` and `MemorizingConfig` (through
`BaselineConfig`), add their own. Each field's trailing comment is its
documentation (`launch.train --help` prints it).
"""

import dataclasses
from typing import ClassVar

DTYPES = ("float32", "bfloat16")
# What the backward pass recomputes instead of storing (MaxText's
# remat_policy). MELODI: "window" stores only the carry between windows and
# recomputes each window step; "dots" also stores the outputs of the
# weight matmuls (projections, FFN, token mixing; not attention scores).
# The baselines run all windows of a segment through a layer at once, so
# their unit is the layer: "layer" stores only each layer's input.
MELODI_REMAT = ("none", "window", "dots")
BASELINE_REMAT = ("none", "layer", "dots")


def _require_positive(cfg, names):
  bad = {n: getattr(cfg, n) for n in names
         if not isinstance(getattr(cfg, n), int) or getattr(cfg, n) <= 0
         or isinstance(getattr(cfg, n), bool)}
  if bad:
    raise ValueError(f"{type(cfg).__name__}: these sizes must be positive "
                     f"integers: {bad}.")


def _require_rate(cfg, names):
  for name in names:
    rate = getattr(cfg, name)
    if not 0.0 <= rate < 1.0:
      raise ValueError(f"{name}={rate} must lie in [0, 1).")


def _require_windows(segment_length, window_length):
  if segment_length % window_length:
    raise ValueError(
        f"segment_length={segment_length} must be a multiple of "
        f"window_length={window_length}; e.g. segment_length="
        f"{max(1, segment_length // window_length) * window_length}.")


def _require_remat(cfg, choices):
  if cfg.remat not in choices:
    raise ValueError(f"{type(cfg).__name__}: remat={cfg.remat!r} is not one "
                     f"of {choices}.")


def _require_dtype(dtype):
  if dtype not in DTYPES:
    raise ValueError(f"dtype={dtype!r} is not one of {DTYPES}.")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """The fields every model type shares; subclasses add their own."""
  vocab_size: int  # V: embedding rows (token ids are taken modulo V).
  num_layers: int  # Number of layers (MELODI's, or the baselines' XL layers).
  embed_dim: int  # E: width of the residual stream (and of memory tokens).
  num_heads: int  # H: attention heads.
  head_dim: int  # D: width of each head.
  mlp_dim: int  # F: hidden width of every ReLU feed-forward block.
  window_length: int = 512  # W: context tokens attended per window.
  segment_length: int = 4096  # T: tokens per call of `apply` (N = T / W).
  dropout_rate: float = 0.05  # Pre-attention, post-FFN and final dropout.
  attention_dropout_rate: float = 0.05  # Dropout on attention weights.
  dtype: str = "bfloat16"  # Compute dtype; parameters stay float32.
  remat: str = "none"  # MELODI_REMAT/BASELINE_REMAT; same results, less memory.

  REMAT_CHOICES: ClassVar[tuple[str, ...]]  # Set by each model type.
  # Sizes that must be positive integers (one error names all bad ones).
  POSITIVE: ClassVar[tuple[str, ...]] = (
      "vocab_size", "num_layers", "embed_dim", "num_heads", "head_dim",
      "mlp_dim", "window_length", "segment_length")

  def __post_init__(self):
    if not hasattr(self, "REMAT_CHOICES"):
      raise TypeError(f"{type(self).__name__} is a base class; build a "
                      "MelodiConfig, TransformerXLConfig or MemorizingConfig.")
    _require_positive(self, self.POSITIVE)
    _require_windows(self.segment_length, self.window_length)
    _require_rate(self, ("dropout_rate", "attention_dropout_rate"))
    _require_dtype(self.dtype)
    _require_remat(self, self.REMAT_CHOICES)

  @property
  def windows_per_segment(self) -> int:
    return self.segment_length // self.window_length


@dataclasses.dataclass(frozen=True)
class MelodiConfig(ModelConfig):
  """MELODI (melodi_hk/README.md §1); defaults are base_melodi.gin's."""
  short_term_memory_size: int = 64  # M: short-term memory tokens per layer.
  summary_size: int = 64  # S: summary tokens appended to every window.
  long_term_layers: tuple[int, ...] = ()  # 0-based layers with long memory.
  long_term_memory_size: int = 0  # L: FIFO capacity of each long memory.
  long_term_memory_increment: int = 0  # I: tokens appended per window.
  # Improvement, off by default: hide never-written (all-zero) long-memory
  # slots from cross-attention instead of letting them dilute it
  # (melodi_hk/README.md §13.2).
  mask_unwritten_long_memory: bool = False
  # Improvement, off by default. False: the cross-attention over the long
  # memory uses its layer's learned temperature, as meliad does. True: it
  # learns its own per-head temperature (`long_scale` in the long-term
  # layer, initialised like the layer's `scale`), so it can sharpen over L
  # unit-norm keys without position bias independently of self-attention.
  long_memory_scale: bool = False
  # Compile each run of 2+ consecutive layers without long memory once,
  # under one hk.layer_stack: same results, compile time flat in depth,
  # parameters stacked under other names (melodi_hk.stack_layers converts).
  scan_layers: bool = False
  # Windows per iteration of the window scan (lax.scan's `unroll`): same
  # results; larger values let XLA schedule and fuse across windows for a
  # faster step at a longer compile (launch.bench --window_unroll).
  window_unroll: int = 1

  REMAT_CHOICES: ClassVar[tuple[str, ...]] = MELODI_REMAT
  POSITIVE: ClassVar[tuple[str, ...]] = ModelConfig.POSITIVE + (
      "summary_size", "window_unroll")

  def __post_init__(self):
    object.__setattr__(self, "long_term_layers",
                       tuple(self.long_term_layers))
    super().__post_init__()
    if self.short_term_memory_size <= 0:
      raise ValueError(
          f"short_term_memory_size={self.short_term_memory_size}: the "
          "reference cannot run a MELODI layer without short-term memory "
          "(its summary would not be mixed and the first token of each "
          "window would attend to nothing); use at least 1.")
    self._validate_long_term()
    for name in ("scan_layers", "long_memory_scale"):
      if not isinstance(getattr(self, name), bool):
        raise ValueError(f"{name}={getattr(self, name)!r} must be True or "
                         "False.")
    if self.long_memory_scale and not self.long_term_layers:
      raise ValueError(
          "long_memory_scale=True needs a long-term memory, but "
          "long_term_layers is empty; name the layer (e.g. long_term_layers="
          "(num_layers // 2,)) or set long_memory_scale=False.")

  def _validate_long_term(self):
    layers, size = self.long_term_layers, self.long_term_memory_size
    increment = self.long_term_memory_increment
    bad = [l for l in layers if not isinstance(l, int) or
           not 0 <= l < self.num_layers]
    if bad:
      raise ValueError(f"long_term_layers={layers}: {bad} out of range for "
                       f"num_layers={self.num_layers} (valid: 0.."
                       f"{self.num_layers - 1}).")
    if len(set(layers)) != len(layers) or list(layers) != sorted(layers):
      raise ValueError(f"long_term_layers={layers} must be strictly "
                       f"increasing without repeats, e.g. "
                       f"{tuple(sorted(set(layers)))}.")
    if not layers:
      if size or increment:
        raise ValueError(
            f"long_term_memory_size={size} and long_term_memory_increment="
            f"{increment} need long_term_layers, which is empty; name the "
            "layer (e.g. long_term_layers=(num_layers // 2,)) or set both "
            "to 0.")
      return
    if size <= 0 or increment <= 0:
      raise ValueError(
          f"long_term_layers={layers} needs a positive long_term_memory_size"
          f" and long_term_memory_increment (got {size} and {increment}).")
    if size % increment:
      raise ValueError(
          f"long_term_memory_size={size} must be a multiple of "
          f"long_term_memory_increment={increment} (whole windows of "
          f"history), e.g. {max(1, size // increment) * increment}.")


@dataclasses.dataclass(frozen=True)
class BaselineConfig(ModelConfig):
  """Fields both baselines share: XL layers with an optional FFN bias.

  In both, every token of an XL layer sees the W tokens before it.
  """
  ffn_bias: bool = True  # False: base_transformer.gin's bias-free FFNs.

  REMAT_CHOICES: ClassVar[tuple[str, ...]] = BASELINE_REMAT


@dataclasses.dataclass(frozen=True)
class TransformerXLConfig(BaselineConfig):
  """Sliding-window XL (melodi_hk/README.md §12.1); base_memory2.gin."""
  # False: meliad's "vanilla" transformer (seq_*_vanilla.gin): no cache, so
  # a window attends only within itself and nothing is carried.
  xl_cache: bool = True

  def __post_init__(self):
    super().__post_init__()
    if not self.xl_cache and self.segment_length != self.window_length:
      raise ValueError(
          f"xl_cache=False with segment_length={self.segment_length} != "
          f"window_length={self.window_length}: without a cache meliad "
          "only runs one window per segment; set segment_length="
          f"{self.window_length}.")


@dataclasses.dataclass(frozen=True)
class MemorizingConfig(BaselineConfig):
  """Memorizing Transformer, dense KV memory (melodi_hk/README.md §12.2;
  base_memory2.gin + mem_densekv_64k.gin): XL layers plus one memory layer
  with its own weights.

  num_layers counts the XL layers (the memory layer is extra) and
  attention_dropout_rate applies to them only: meliad never applies it in
  the memory layer.
  """
  memory_layer: int = 6  # The memory layer runs after this 0-based layer.
  memory_size: int = 65536  # C: key/value slots, a multiple of T.
  # The reference adds the memory layer's input twice
  # (melodi_hk/README.md §13.14); True keeps only the layer's own residual.
  single_residual: bool = False

  def __post_init__(self):
    super().__post_init__()
    if (not isinstance(self.memory_layer, int) or
        not 0 <= self.memory_layer < self.num_layers):
      raise ValueError(
          f"memory_layer={self.memory_layer} is out of range for num_layers="
          f"{self.num_layers}; use 0..{self.num_layers - 1} (the memory "
          "layer runs after that layer).")
    _require_positive(self, ("memory_size",))
    segments = max(1, self.memory_size // self.segment_length)
    if self.memory_size % self.segment_length:
      raise ValueError(
          f"memory_size={self.memory_size} must be a positive multiple of "
          f"segment_length={self.segment_length}: the reference writes "
          "whole segments into its ring buffer; e.g. memory_size="
          f"{segments * self.segment_length}.")
