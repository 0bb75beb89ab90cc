"""Scores a checkpoint over a split: perplexity, loss by position, recall.

Shape letters: see launch/__init__.py (R: eval rows, `config.eval_batch_size`
on one host; A devices of this host; T segment; W window; V vocabulary).

Rows stream documents as in training (data/stream.py), but unshuffled and
once: every document is read from its start with its memory carried across
its segments; a row whose documents are used up idles (zero tokens, no
loss) until all rows are done. Perplexity is exp(total nats / total
predicted tokens) over the whole split, i.e. token-weighted
(melodi_hk/README.md §11).

Memory modes score the same checkpoint with its memory used differently:
"carried" (as trained), "reset_segment" (every segment starts from the zero
memory, so nothing crosses segments) and "reset_long" (MELODI only: the
long-term memories are zeroed before every segment, the short-term ones
carried). The difference to "carried" is what the memory buys.
Per-token sums live in launch/scores.py.
"""

import functools
import hashlib
import json
import os
import time
from typing import Any

from absl import logging
import jax
import jax.numpy as jnp
import melodi_hk
from melodi_hk import losses
import ml_collections
import numpy as np

from data import pipeline
from launch import checkpoints
from launch import experiment
from launch import scores as scores_lib
from launch import state as state_lib
from launch import train_lib

MEMORY_MODES = ("carried", "reset_segment", "reset_long")


@functools.cache  # One compilation per model config and mode in a process.
def pmap_token_step(model_cfg, memory_mode: str = "carried"):
  """(params, memory, batch) -> (memory, token nats, hits, mask) per device.

  Token nats float32[R/A, T], hits and mask bool[R/A, T] (hit: the argmax
  is the target).
  """
  check_memory_mode(model_cfg, memory_mode)
  model = train_lib.build(model_cfg)

  def step(params, memory, batch):
    tokens, sos = batch["tokens"], batch["start_of_sequence"]
    if memory_mode == "reset_segment":
      sos = jnp.ones_like(sos)
    elif memory_mode == "reset_long":
      memory = memory._replace(long=jax.tree.map(jnp.zeros_like, memory.long))
    logits, memory = model.apply(params, memory, tokens, sos)  # [R/A, T, V]
    out = melodi_hk.lm_loss(logits, tokens, batch["loss_mask"])
    targets, mask = losses.targets_and_mask(tokens,
                                                      batch["loss_mask"])
    hits = jnp.argmax(logits, -1) == targets % logits.shape[-1]  # [R/A, T]
    return memory, out.token_losses, hits & mask, mask

  return jax.pmap(step, axis_name=state_lib.AXIS, donate_argnums=(1,))


def check_memory_mode(model_cfg, memory_mode: str) -> None:
  if memory_mode not in MEMORY_MODES:
    raise ValueError(f"memory mode {memory_mode!r} is not one of "
                     f"{MEMORY_MODES}.")
  if memory_mode == "reset_long" and not getattr(
      model_cfg, "long_term_layers", ()):
    raise ValueError(f"memory mode 'reset_long' needs a MELODI model with "
                     f"long_term_layers; {type(model_cfg).__name__} has none.")


def evaluate(config: ml_collections.ConfigDict, workdir: str, split: str,
             step: int | None = None, *,
             memory_modes: tuple[str, ...] = ("carried",),
             max_batches: int | None = None) -> dict[str, Any]:
  """Restores `step` (default: latest) of `workdir` and scores `split`.

  The result holds the first mode's scores at the top level, and with
  several modes `memory_gain`: each mode's nats/token minus the first's.
  """
  model_cfg = experiment.model_config(config)
  params, step = restore_params(config, model_cfg, workdir, step)
  result = score_params(config, model_cfg, params, split, memory_modes,
                        max_batches)
  result["step"] = step
  return result


def evaluate_run(workdir: str,
                 config: ml_collections.ConfigDict | None = None,
                 split: str | None = None, step: int | None = None,
                 **kwargs) -> tuple[dict[str, Any], str]:
  """`evaluate` on the run's own config (its config.json) unless `config`
  is given; returns (result, name).

  `result["data_changes"]` lists the data fields `config` changes from the
  run's ('data.<field>: trained -> now'); `name` is the split, tagged by
  them (`data_tag`), for output files and TensorBoard scalars, so that a
  score on other data never takes the place of one on the run's own.
  `kwargs` go to `evaluate` (memory_modes, max_batches).
  """
  if config is None:  # The run's own data: nothing to compare.
    config, changes = checkpoints.run_config(workdir), []
  else:
    changes = checkpoints.data_changes(workdir, config)
  if changes:
    logging.warning("Scoring on other data than the run trained on "
                    "(trained -> now): %s.", "; ".join(changes))
  split = split or config.data.eval_split
  result = evaluate(config, workdir, split, step, **kwargs)
  result["data_changes"] = changes
  return result, split + data_tag(changes)


def data_tag(changes: list[str]) -> str:
  """"" for the run's own data, else "_data-<hash of the changes>"."""
  if not changes:
    return ""
  return "_data-" + hashlib.sha1("\n".join(changes).encode()).hexdigest()[:8]


def score_params(config, model_cfg, params, split: str,
                 memory_modes: tuple[str, ...] = ("carried",),
                 max_batches: int | None = None) -> dict[str, Any]:
  """Scores host `params` on `split` in each memory mode."""
  for mode in memory_modes:
    check_memory_mode(model_cfg, mode)
  devices = jax.local_devices()
  rows = experiment.host_rows(config.eval_batch_size, len(devices), 1)
  params = state_lib.replicate(params, devices)
  by_mode = {}
  for mode in memory_modes:
    stream = experiment.make_stream(config, split, rows=rows,
                                    devices=len(devices), training=False)
    by_mode[mode] = _score(
        pmap_token_step(model_cfg, mode), params,
        train_lib.build(model_cfg).init_memory(rows), stream, devices,
        scores_lib.Scores(rows, model_cfg.window_length,
                          _mentions(config, split)), max_batches)
  first = by_mode[memory_modes[0]]
  result = dict(first, split=split, corpus=config.data.corpus,
                memory_mode=memory_modes[0])
  if len(memory_modes) > 1:
    result["memory_gain"] = {
        mode: dict(nats_per_token=r["nats_per_token"],
                   minus_first=r["nats_per_token"] - first["nats_per_token"],
                   recall_exact_match=r.get("values", {}).get(
                       "recall_exact_match"))
        for mode, r in by_mode.items()}
  return result


def _mentions(config, split):
  """doc index -> value mentions for synthetic byte corpora, else None."""
  if config.data.corpus != "synthetic" or config.data.tokenizer != "bytes":
    return None
  documents = pipeline.open_corpus(
      "synthetic", split, data_dir=None,
      synthetic_config=experiment.synthetic_config(config))
  if not hasattr(documents, "mentions"):  # e.g. a test's stand-in corpus.
    return None
  return functools.lru_cache(maxsize=1024)(documents.mentions)


def restore_params(config: ml_collections.ConfigDict, model_cfg, workdir: str,
                   step: int | None) -> tuple[Any, int]:
  """The params (numpy) of checkpoint `step` (None: latest) and its step."""
  optimizer = train_lib.make_optimizer(experiment.optimizer_config(config))
  # After a multi-host run every host saved the same params with its own
  # rows' memory (checkpoints/host_<i>/); host 0's params are read here.
  hosts = checkpoints.saved_hosts(workdir)
  target = jax.eval_shape(functools.partial(  # Orbax restores into numpy.
      train_lib.init_state, train_lib.build(model_cfg), optimizer,
      config.seed, config.batch_size // hosts))
  ckpt = checkpoints.Checkpointer(workdir, keep=config.keep_checkpoints,
                                  read_only=True, process_count=hosts)
  try:
    state, _ = ckpt.restore(target, step)
  finally:
    ckpt.close()
  return state.params, int(state.step)


def _score(eval_step, params, memory, stream, devices,
           scores: scores_lib.Scores, max_batches: int | None):
  """Feeds every batch's per-token results (one transfer each) to `scores`."""
  memory = state_lib.split_rows(memory, devices)
  batches_done = 0
  with pipeline.Prefetcher(stream) as batches:
    for batch, _ in batches:
      if max_batches is not None and batches_done >= max_batches:
        break
      sharded = pipeline.shard_for_pmap(
          {key: batch[key] for key in train_lib.BATCH_KEYS}, len(devices))
      memory, nats, hits, mask = eval_step(params, memory, sharded)
      flat = lambda x: np.asarray(x).reshape(-1, x.shape[-1])  # [R, T]
      scores.add(flat(nats).astype(np.float64), flat(hits), flat(mask),
                 batch["start_of_sequence"], batch["doc_index"])
      batches_done += 1
  return dict(scores.result(), batches=batches_done)


def scalars(result: dict[str, Any], prefix: str) -> dict[str, float]:
  """The headline numbers of an `evaluate` result, as TensorBoard scalars."""
  out = {f"eval_{prefix}/nats_per_token": result["nats_per_token"],
         f"eval_{prefix}/perplexity": result["perplexity"]}
  values = result.get("values")
  if values:
    out[f"eval_{prefix}/recall_accuracy"] = values["recall"]["accuracy"]
    out[f"eval_{prefix}/first_accuracy"] = values["first"]["accuracy"]
    out[f"eval_{prefix}/recall_exact_match"] = values["recall_exact_match"]
  for mode, gain in result.get("memory_gain", {}).items():
    out[f"eval_{prefix}/{mode}_nats_per_token"] = gain["nats_per_token"]
  return out


class HeldOut:
  """Held-out loss on a fixed slice (the first `config.eval_batches`
  batches of `config.data.eval_split`), for calls during training."""

  def __init__(self, config: ml_collections.ConfigDict, workdir: str,
               reporter=None):
    self._config = config
    self._model_cfg = experiment.model_config(config)
    self._path = os.path.join(workdir, "eval_log.jsonl")
    self._reporter = reporter  # A metrics.Reporter, or None.

  def __call__(self, step: int, params) -> dict[str, Any]:
    """Scores host (numpy) `params`; appends and returns the line."""
    start = time.perf_counter()
    result = score_params(self._config, self._model_cfg, params,
                          self._config.data.eval_split,
                          max_batches=self._config.eval_batches)
    line = dict(step=step, nats_per_token=result["nats_per_token"],
                tokens=result["predicted_tokens"])
    if "values" in result:
      line.update(recall_accuracy=result["values"]["recall"]["accuracy"],
                  recall_exact_match=result["values"]["recall_exact_match"])
    with open(self._path, "a") as f:
      f.write(json.dumps(line) + "\n")
    if self._reporter is not None:
      self._reporter.write(step, {f"eval/{k}": v for k, v in line.items()
                                  if k != "step"})
      self._reporter.exclude_time(time.perf_counter() - start)
    logging.info("held-out at step %d: %s", step, line)
    return line
