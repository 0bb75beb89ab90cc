"""Defaults shared by every launch config: data, optimiser, schedule, cadence.

Glossary of shapes:
- B: `batch_size`, global batch rows (all hosts and devices together).
- T: `model.segment_length`, tokens per row per step.

A config file builds on `base_config()` and sets `model_name` and `model`
(the fields of that model's dataclass, see launch/experiment.py).
"""

import dataclasses

import ml_collections
from ml_collections import config_dict

from data import synthetic
from launch import experiment


def base_config() -> ml_collections.ConfigDict:
  """The paper's training set-up (melodi_hk/README.md §15), synthetic data."""
  config = ml_collections.ConfigDict()
  config.model_name = "melodi"  # Key of experiment.MODEL_CLASSES.
  config.model = ml_collections.ConfigDict()  # Fields of the model dataclass.
  config.data = ml_collections.ConfigDict(dict(
      corpus="synthetic",  # synthetic | pg19 | c4_4k | local:<name>.
      tokenizer="bytes",  # bytes | spm | t5 (the latter two need vocab_path).
      vocab_path=config_dict.placeholder(str),  # SentencePiece .model file.
      data_dir=config_dict.placeholder(str),  # TFDS data_dir for real corpora.
      eval_split="validation",  # What launch/eval.py reads by default.
      # Fields of data/synthetic.py's SyntheticConfig (synthetic corpus only).
      synthetic=dataclasses.asdict(synthetic.SyntheticConfig()),
      # A warm-up task (synthetic corpus): training steps [0, steps) read
      # the corpus with the fields set in `curriculum.synthetic` instead of
      # `synthetic`'s, then the run switches to `synthetic` within one
      # learning-rate schedule (data/curriculum.py).
      curriculum=dict(
          steps=0,  # Warm-up steps on the curriculum's task; 0: no warm-up.
          # Unset (None) fields are those of data.synthetic.
          synthetic=_unset_synthetic_fields()),
  ))
  config.batch_size = 32  # B: 32 TPU cores x 1 row each, as the paper.
  config.eval_batch_size = 32  # Rows streaming documents in launch/eval.py.
  config.num_steps = 500_000  # Also the length of the cosine decay.
  # name: adafactor (the paper's; decay_rate, momentum) | adam (b1, b2, eps).
  config.optimizer = ml_collections.ConfigDict(dict(
      name="adafactor", warmup_steps=1000, max_lr=0.01, min_lr=0.001,
      decay_rate=0.8, momentum=0.9, b1=0.9, b2=0.999, eps=1e-8))
  config.seed = 0  # Parameters, dropout and the shuffled document order.
  config.parallelism = "pmap"  # pmap | shard_map (jit+shard_map; one host).
  config.log_every = 100  # Console line and TensorBoard scalars.
  config.checkpoint_every = 1000  # Also at the end and on SIGTERM.
  config.keep_checkpoints = 3  # Older checkpoints are deleted.
  # Held-out loss on the first `eval_batches` batches of the eval split
  # every `eval_every` steps (0: never); TensorBoard and eval_log.jsonl.
  config.eval_every = 0
  config.eval_batches = 4
  return config


def _unset_synthetic_fields() -> dict:
  """Every SyntheticConfig field as an unset placeholder of its type."""
  return {field.name: config_dict.placeholder(type(field.default))
          for field in dataclasses.fields(synthetic.SyntheticConfig)}


def model_fields(model_cfg) -> ml_collections.ConfigDict:
  """A model dataclass (e.g. from melodi_hk.presets) as `config.model`:
  every field of it, so that each can be overridden on the command line."""
  return ml_collections.ConfigDict(dataclasses.asdict(model_cfg))


def model_from(model_name: str, fields: dict) -> ml_collections.ConfigDict:
  """`config.model` for the dataclass `model_name` built from `fields`,
  the other fields at their defaults (and the whole checked now)."""
  return model_fields(experiment.MODEL_CLASSES[model_name](**fields))
