"""Perplexity of a checkpoint over every document of a split, in one pass.

Glossary of shapes:
- R: eval rows (`config.eval_batch_size`).  D: local devices.
- T: segment length.

Rows stream documents as in training (data/stream.py), but unshuffled and
once: every document is read from its start with its memory carried across
its segments; a row whose documents are used up idles (zero tokens, no
loss) until all rows are done. Perplexity is exp(total nats / total
predicted tokens) over the whole split, i.e. token-weighted
(melodi_hk/README.md §11).
"""

import functools
from typing import Any

import jax
import melodi_hk
import ml_collections
import numpy as np

from data import pipeline
from launch import checkpoints
from launch import experiment
from launch import metrics
from launch import train_lib


@functools.cache  # One compilation per model config in a process.
def pmap_eval_step(model_cfg):
  """(params, memory, batch) -> (memory, nats, predicted tokens) per device."""
  model = melodi_hk.build(model_cfg)

  def step(params, memory, batch):
    logits, memory = model.apply(params, memory, batch["tokens"],
                                 batch["start_of_sequence"])  # [R/D, T, V]
    out = melodi_hk.lm_loss(logits, batch["tokens"], batch["loss_mask"])
    return memory, out.loss, out.num_tokens

  return jax.pmap(step, axis_name=train_lib.AXIS, donate_argnums=(1,))


def evaluate(config: ml_collections.ConfigDict, workdir: str, split: str,
             step: int | None = None) -> dict[str, Any]:
  """Restores `step` (default: latest) of `workdir` and scores `split`."""
  model_cfg = experiment.model_config(config)
  devices = jax.local_devices()
  rows = experiment.host_rows(config.eval_batch_size, len(devices), 1)
  stream = experiment.make_stream(config, split, rows=rows,
                                  devices=len(devices), training=False)
  params, step = restore_params(config, model_cfg, workdir, step)
  nats, tokens, documents, batches = _score(
      pmap_eval_step(model_cfg), train_lib.replicate(params, devices),
      melodi_hk.build(model_cfg).init_memory(rows), stream, devices)
  return {"split": split, "step": step, "corpus": config.data.corpus,
          "documents": documents, "batches": batches,
          "predicted_tokens": tokens, "total_nats": nats,
          "nats_per_token": nats / max(tokens, 1),
          "perplexity": metrics.perplexity(nats, tokens)}


def restore_params(config: ml_collections.ConfigDict, model_cfg, workdir: str,
                   step: int | None) -> tuple[Any, int]:
  """The params (numpy) of checkpoint `step` (None: latest) and its step."""
  model = melodi_hk.build(model_cfg)
  optimizer = train_lib.make_optimizer(experiment.optimizer_config(config))
  # After a multi-host run every host saved the same params with its own
  # rows' memory (checkpoints/host_<i>/); host 0's params are read here.
  hosts = checkpoints.saved_hosts(workdir)
  shapes = jax.eval_shape(functools.partial(
      train_lib.init_state, model, optimizer, config.seed,
      config.batch_size // hosts))
  target = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes)
  ckpt = checkpoints.Checkpointer(workdir, keep=config.keep_checkpoints,
                                  read_only=True, process_count=hosts)
  try:
    state, _ = ckpt.restore(target, step)
  finally:
    ckpt.close()
  return state.params, int(state.step)


def _score(eval_step, params, memory, stream, devices):
  """Sums nats and predicted tokens over the stream in float64."""
  memory = train_lib.split_rows(memory, devices)
  per_batch, documents = [], 0
  with pipeline.Prefetcher(stream) as batches:
    for batch, _ in batches:
      documents += int(np.sum(batch["start_of_sequence"] &
                              (batch["doc_index"] >= 0)))
      batch = pipeline.shard_for_pmap(
          {key: batch[key] for key in train_lib.BATCH_KEYS}, len(devices))
      memory, nats, tokens = eval_step(params, memory, batch)
      per_batch.append((nats, tokens))  # Stays on device until the end.
  host = np.asarray(jax.device_get(per_batch), np.float64)  # [N, 2, D]
  return (float(host[:, 0].sum()), int(host[:, 1].sum()), documents,
          len(per_batch))
