"""From a run's ConfigDict to what it needs: model config, optimiser, data.

Shape letters (launch/__init__.py): B global batch rows
(`config.batch_size`), N hosts, A devices of one host, R = B / N rows read
by one host, T segment length.

Every launch config (see `launch/configs/`) has the same top-level fields:
`model_name` picks the model family, `model` holds the fields of its
dataclass, `data` names the corpus and tokenizer, `optimizer` the schedule.
This module is the one place that turns those into library objects; the
library itself never sees a ConfigDict or a flag.
"""

import dataclasses

import melodi_hk
import ml_collections

from data import pipeline
from data import stream as stream_lib
from data import synthetic
from data import tokenizers
from launch import train_lib


# `config.model_name` -> the dataclass that `config.model` fills in.
MODEL_CLASSES = {"melodi": melodi_hk.MelodiConfig,
                 "transformer_xl": melodi_hk.TransformerXLConfig,
                 "memorizing": melodi_hk.MemorizingConfig}


# `config.parallelism`: how the update runs over the devices (launch/state.py).
PARALLELISM = ("pmap", "shard_map")

# Run-level fields that must be at least 1, with what each one counts.
_POSITIVE = {"num_steps": ("updates in the run", 2000),
             "batch_size": ("global batch rows", 8),
             "eval_batch_size": ("eval rows", 8),
             "log_every": ("steps between console lines", 100),
             "checkpoint_every": ("steps between checkpoints", 1000),
             "keep_checkpoints": ("checkpoints kept", 3)}


def check_config(config: ml_collections.ConfigDict) -> None:
  """ValueError naming the first bad run-level value and a fix.

  Called before anything is compiled or written; the model and optimiser
  dataclasses check their own fields (`model_config`, `optimizer_config`).
  """
  for field, (meaning, example) in _POSITIVE.items():
    value = config.get(field)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
      raise ValueError(
          f"config.{field}={value!r} must be a positive integer ({meaning}); "
          f"set e.g. --config.{field}={example}.")
  eval_every = config.get("eval_every", 0)
  if not isinstance(eval_every, int) or eval_every < 0 or (
      eval_every and config.get("eval_batches", 0) < 1):
    raise ValueError(
        f"config.eval_every={eval_every!r} must be an integer >= 0 (0: no "
        "held-out eval during training) and, when > 0, config.eval_batches="
        f"{config.get('eval_batches')!r} must be >= 1; set e.g. "
        "--config.eval_every=500 --config.eval_batches=4.")
  parallelism = config.get("parallelism", "pmap")
  if parallelism not in PARALLELISM:
    raise ValueError(f"config.parallelism={parallelism!r} is not one of "
                     f"{PARALLELISM}; set e.g. --config.parallelism=pmap.")
  curriculum(config)
  model_config(config)
  optimizer_config(config)


def check_batch(batch: dict, vocab_size: int) -> None:
  """ValueError if a batch holds token ids the embedding has no row for.

  A numpy min/max on the host per step: cheap next to the step itself, and
  it catches a data set prepared with another tokenizer before the model
  silently takes the ids modulo vocab_size.
  """
  melodi_hk.losses.check_ids(
      batch["tokens"], vocab_size, "The data's token",
      "config.model.vocab_size", "The data was tokenized with another "
      "vocabulary: check --config.data.tokenizer/vocab_path, or set "
      "--config.model.vocab_size larger.")


def model_config(config: ml_collections.ConfigDict):
  """The model dataclass named by `config.model_name`, from `config.model`."""
  if config.model_name not in MODEL_CLASSES:
    raise ValueError(f"config.model_name={config.model_name!r} is not one of "
                     f"{sorted(MODEL_CLASSES)}.")
  cls = MODEL_CLASSES[config.model_name]
  valid = [field.name for field in dataclasses.fields(cls)]
  unknown = sorted(set(config.model.keys()) - set(valid))
  if unknown:
    raise ValueError(f"config.model has field(s) {unknown} that "
                     f"{cls.__name__} does not know; valid fields: {valid}.")
  return cls(**config.model.to_dict())


def optimizer_config(config: ml_collections.ConfigDict
                     ) -> train_lib.OptimizerConfig:
  """`config.optimizer` (name: adafactor | adam) over `config.num_steps`.

  Fields a saved config lacks (e.g. `name`, from before Adam) take the
  dataclass defaults: Adafactor, as those runs trained.
  """
  valid = [field.name for field in dataclasses.fields(
      train_lib.OptimizerConfig) if field.name != "num_steps"]
  unknown = sorted(set(config.optimizer.keys()) - set(valid))
  if unknown:
    raise ValueError(f"config.optimizer has field(s) {unknown} that "
                     f"OptimizerConfig does not know; valid fields: {valid}.")
  return train_lib.OptimizerConfig(num_steps=config.num_steps,
                                   **config.optimizer.to_dict())


def host_rows(batch_size: int, local_devices: int, processes: int) -> int:
  """R: the rows this host reads; each of its A devices gets R/A of them."""
  devices = local_devices * processes
  if batch_size % devices:
    raise ValueError(
        f"config.batch_size={batch_size} cannot be split over {processes} "
        f"host(s) x {local_devices} device(s); use a multiple of {devices}, "
        f"e.g. --config.batch_size={max(1, batch_size // devices) * devices}.")
  return batch_size // processes


def check_vocabulary(config: ml_collections.ConfigDict) -> None:
  """ValueError if the tokenizer emits ids the embedding has no row for."""
  if config.data.tokenizer in ("spm", "t5") and not config.data.vocab_path:
    raise ValueError(
        f"config.data.tokenizer={config.data.tokenizer!r} needs "
        "--config.data.vocab_path=<SentencePiece .model>; T5's is "
        "gs://t5-data/vocabs/cc_all.32000/sentencepiece.model.")
  tokenizer = tokenizers.get_tokenizer(config.data.tokenizer,
                                       config.data.vocab_path)
  if tokenizer.vocab_size > config.model.vocab_size:
    raise ValueError(
        f"Tokenizer {config.data.tokenizer!r} emits {tokenizer.vocab_size} "
        f"ids but config.model.vocab_size={config.model.vocab_size}; set "
        f"--config.model.vocab_size={tokenizer.embedding_rows}.")


def make_stream(config: ml_collections.ConfigDict, split: str, *, rows: int,
                devices: int, process_index: int = 0, process_count: int = 1,
                training: bool) -> stream_lib.SegmentStream:
  """This host's segment stream of `split` with `rows` rows over `devices`."""
  data = config.data
  return pipeline.make_stream(
      data.corpus, split, data_dir=data.data_dir, tokenizer=data.tokenizer,
      vocab_path=data.vocab_path, rows=rows,
      segment_length=config.model.segment_length,
      window_length=config.model.window_length, seed=config.seed,
      process_index=process_index, process_count=process_count,
      devices=devices, training=training,
      synthetic_config=synthetic_config(config),
      curriculum=curriculum(config) if training else ())


def synthetic_config(config: ml_collections.ConfigDict) -> dict | None:
  """The synthetic corpus's fields, or None for every other corpus."""
  if config.data.corpus != "synthetic" or "synthetic" not in config.data:
    return None
  return config.data.synthetic.to_dict()


def curriculum(config: ml_collections.ConfigDict) -> list[tuple[int, dict]]:
  """config.data.curriculum as [(steps, synthetic fields)]; [] when off.

  Raises:
    ValueError: naming the curriculum value that cannot work and a fix.
  """
  spec = config.data.get("curriculum")
  steps = spec.get("steps", 0) if spec else 0
  changed = {key: value for key, value in (
      spec.synthetic.to_dict() if spec and "synthetic" in spec else {}).items()
             if value is not None}
  if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
    raise ValueError(f"config.data.curriculum.steps={steps!r} must be an "
                     "integer >= 0 (0: no warm-up task); set e.g. "
                     "--config.data.curriculum.steps=1000.")
  if not steps:
    if changed:
      raise ValueError(
          f"config.data.curriculum.synthetic sets {changed} but "
          "config.data.curriculum.steps=0, so they would be ignored; set "
          "--config.data.curriculum.steps to the warm-up's length.")
    return []
  return [(steps, _warm_up_fields(config, steps, changed))]


def _warm_up_fields(config, steps: int, changed: dict) -> dict:
  """The warm-up phase's synthetic fields, checked like the run's own."""
  if config.data.corpus != "synthetic":
    raise ValueError(f"config.data.curriculum.steps={steps} needs the "
                     f"synthetic corpus, not config.data.corpus="
                     f"{config.data.corpus!r}; set the steps to 0.")
  if steps >= config.num_steps:
    raise ValueError(f"config.data.curriculum.steps={steps} is not below "
                     f"config.num_steps={config.num_steps}: the run would "
                     "never train on config.data.synthetic; use fewer "
                     "warm-up steps or more steps.")
  if not changed:
    raise ValueError(f"config.data.curriculum.steps={steps} but "
                     "config.data.curriculum.synthetic sets no field, so the "
                     "warm-up is the run's own task; set e.g. "
                     "--config.data.curriculum.synthetic.min_recall_gap=24.")
  fields = dict(synthetic_config(config) or {}, **changed)
  try:
    synthetic.SyntheticConfig(**fields)
  except (TypeError, ValueError) as error:
    raise ValueError(f"config.data.curriculum.synthetic {changed} makes a "
                     f"bad warm-up corpus: {error}") from error
  return fields
