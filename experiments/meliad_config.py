"""Our MELODI config as meliad's gin bindings, and the side-by-side's checks.

Glossary of shapes: B batch, T segment, W window, S summary, M short memory,
L long memory, I increment, E width, H heads, D head dim, F MLP, V vocab.

Nothing here imports flax, gin or meliad, so the mapping is tested without
them (tests/meliad_config_test.py); experiments/meliad_side_by_side.py
feeds `gin_bindings` to meliad's gin.
"""

import os

import numpy as np

import melodi_hk

INSTALL_HINT = (
    "The side-by-side needs meliad and its deps, which melodi_hk does not "
    "require: put google-research/meliad at "
    "cc1aef50bdcda007e7ea15be9b9a89b95996d17a outside the repository and "
    "pass --meliad_dir=<it>, and in a separate venv run `pip install -r "
    "requirements.txt flax==0.12.8 gin-config` and `pip install -e .` "
    "(README, \"Performance\").")
OUR_REMATS = melodi_hk.MelodiConfig.REMAT_CHOICES

# The model part of meliad's base_melodi.gin, with the sizes filled in.
_BINDINGS = """
transformer_stack.DecoderStack.embedding_dim = {embed_dim}
transformer_stack.DecoderStack.stack_factory = @ordinary/melodi_layer.MelodiStack
transformer_stack.DecoderStack.final_dropout_rate = {dropout_rate}
transformer_stack.DecoderStack.dtype = "{dtype}"
ordinary/melodi_layer.MelodiStack.num_layers = {num_layers}
ordinary/melodi_layer.MelodiStack.window_length = {window_length}
ordinary/melodi_layer.MelodiStack.layer_factory = @ordinary/melodi_layer.MelodiSequenceLayer
ordinary/melodi_layer.MelodiStack.long_term_memory_layer_indices = {long_term_layers}
ordinary/melodi_layer.MelodiStack.long_term_memory_size = {long_term_memory_size}
ordinary/melodi_layer.MelodiStack.long_term_memory_increment_size = {long_term_memory_increment}
ordinary/melodi_layer.MelodiStack.short_term_memory_size = {short_term_memory_size}
ordinary/melodi_layer.MelodiStack.memory_embedding_dim = 0
ordinary/melodi_layer.MelodiStack.summary_size = {summary_size}
ordinary/melodi_layer.MelodiSequenceLayer.num_heads = {num_heads}
ordinary/melodi_layer.MelodiSequenceLayer.head_size = {head_dim}
ordinary/melodi_layer.MelodiSequenceLayer.mlp_dim = {mlp_dim}
ordinary/melodi_layer.MelodiSequenceLayer.window_length = {window_length}
ordinary/melodi_layer.MelodiSequenceLayer.relative_position_type = "t5"
ordinary/melodi_layer.MelodiSequenceLayer.attn_dropout_rate = {attention_dropout_rate}
ordinary/melodi_layer.MelodiSequenceLayer.dtype = "{dtype}"
transformer_base.TransformerBase.attn_mlp_factory = @transformer_attn/nn_components.MLP
transformer_base.TransformerBase.ffn_factory = @transformer_ffn/nn_components.MLPWrapper
transformer_base.TransformerBase.normalize_keys = True
transformer_base.TransformerBase.dropout_rate = {dropout_rate}
transformer_base.TransformerBase.pre_attn_dropout = True
transformer_base.TransformerBase.post_attn_dropout = False
transformer_base.TransformerBase.pre_ffn_dropout = False
transformer_base.TransformerBase.post_ffn_dropout = True
transformer_attn/nn_components.MLP.num_layers = 1
transformer_attn/nn_components.MLP.hidden_activation = None
transformer_attn/nn_components.MLP.use_bias = False
transformer_ffn/nn_components.MLPWrapper.mlp_factory = @transformer_ffn/nn_components.SimpleMLP
transformer_ffn/nn_components.SimpleMLP.hidden_activation = "relu"
nn_components.LayerNorm.use_scale = True
nn_components.LayerNorm.use_bias = False
nn_components.LayerNorm.use_mean = False
nn_components.LayerNorm.dtype = "{dtype}"
"""


def gin_bindings(cfg: melodi_hk.MelodiConfig) -> str:
  """meliad's gin bindings for the model `cfg` describes.

  Refuses what meliad cannot express (our improvements behind flags); the
  remat option and scan_layers change how ours computes, not the model.
  """
  if not isinstance(cfg, melodi_hk.MelodiConfig):
    raise TypeError(f"{type(cfg).__name__}: only MELODI has a meliad side "
                    "here; pass a melodi_hk.MelodiConfig.")
  extras = [n for n in ("mask_unwritten_long_memory", "long_memory_scale")
            if getattr(cfg, n)]
  if extras:
    raise ValueError(f"{extras} are melodi_hk improvements meliad does not "
                     "have; set them False to compare the same model.")
  fields = dict(vars(cfg))
  layers = ", ".join(str(i) for i in cfg.long_term_layers)
  fields["long_term_layers"] = f"({layers},)" if layers else "()"
  return _BINDINGS.format(**fields)


def golden_config(sidecar: dict) -> melodi_hk.MelodiConfig:
  """Our config of a golden's sidecar `config` (meliad's names)."""
  return melodi_hk.MelodiConfig(
      vocab_size=sidecar["vocab"], num_layers=sidecar["num_layers"],
      embed_dim=sidecar["embed_dim"], num_heads=sidecar["num_heads"],
      head_dim=sidecar["head_dim"], mlp_dim=sidecar["mlp_dim"],
      window_length=sidecar["window_length"],
      segment_length=sidecar["segment_length"],
      short_term_memory_size=sidecar["short_term_memory_size"],
      summary_size=sidecar["summary_size"],
      long_term_layers=tuple(sidecar["long_term_layer_indices"]),
      long_term_memory_size=sidecar["long_term_memory_size"],
      long_term_memory_increment=sidecar["long_term_memory_increment_size"],
      dropout_rate=sidecar["dropout"],
      attention_dropout_rate=sidecar["attn_dropout"], dtype=sidecar["dtype"])


def unflatten(arrays, prefix: str) -> dict:
  """{'a/b/c': x} (keys under `prefix`) as nested {'a': {'b': {'c': x}}}."""
  tree = {}
  for key in arrays.keys():
    if not key.startswith(prefix):
      continue
    *path, leaf = key[len(prefix):].split("/")
    node = tree
    for part in path:
      node = node.setdefault(part, {})
    node[leaf] = np.asarray(arrays[key])
  if not tree:
    raise KeyError(f"no array under {prefix!r}")
  return tree


def parse_impl(name: str) -> tuple[str, int]:
  """Our step's (remat, window_unroll) from 'none', 'window_unroll4', ...

  Raises:
    ValueError: naming the accepted forms.
  """
  remat, _, unroll = name.partition("_unroll")
  if remat in OUR_REMATS and (not _ or (unroll.isdigit() and int(unroll))):
    return remat, int(unroll) if _ else 1
  raise ValueError(f"--impls entry {name!r}: use meliad, or one of "
                   f"{', '.join(OUR_REMATS)}, optionally with _unroll<k> "
                   "(windows per scan iteration, k >= 1), e.g. none_unroll4.")


def check_impls(impls: list[str]) -> list[str]:
  """The --impls list, each 'meliad' or one of our steps, once."""
  if not impls or len(set(impls)) != len(impls):
    raise ValueError(f"--impls={','.join(impls)}: give distinct names "
                     "(e.g. --impls=meliad,none).")
  for impl in impls:
    if impl != "meliad":
      parse_impl(impl)
  return impls


def check_meliad_dir(path: str | None) -> str:
  """`path` if it holds meliad's MELODI modules, else a clear error."""
  need = os.path.join("transformer", "memory2", "melodi_layer.py")
  if not path or not os.path.isfile(os.path.join(path, need)):
    raise ValueError(f"--meliad_dir={path!r} has no {need}. " + INSTALL_HINT)
  return path
