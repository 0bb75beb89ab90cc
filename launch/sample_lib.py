r"""The library behind launch/sample.py: load a model, stream a continuation.

Glossary of shapes:
- B: samples of the one prompt.  T': prompt tokens.  V: vocabulary.

`load` gives (config, model config, params) from a training workdir or a
random-init config; `sample` prefills the prompt (with a progress line) and
prints the continuation as `melodi_hk.generate` produces it.
"""

import dataclasses
import sys
import time

import jax
import melodi_hk
import ml_collections
import numpy as np

from data import tokenizers
from launch import checkpoints
from launch import eval_lib
from launch import experiment



def load(workdir: str | None, config: ml_collections.ConfigDict | None,
         step: int | None = None):
  """(run config, model config, params) from a workdir or a config file."""
  if (workdir is None) == (config is None):
    raise ValueError("Pass exactly one of --workdir (a trained run) and "
                     "--config (a random-init model).")
  if config is not None:
    model_cfg = experiment.model_config(config)
    params = jax.jit(melodi_hk.build(model_cfg).init)(
        jax.random.PRNGKey(config.seed))
    return (config,) + _per_layer(model_cfg, params)
  config = checkpoints.run_config(workdir)
  model_cfg = experiment.model_config(config)
  params, _ = eval_lib.restore_params(config, model_cfg, workdir, step)
  return (config,) + _per_layer(model_cfg, params)


def _per_layer(model_cfg, params):
  """(model config, params) unstacked once: decoding runs layer by layer."""
  if getattr(model_cfg, "scan_layers", False):
    params = melodi_hk.unstack_layers(params, model_cfg)
    model_cfg = dataclasses.replace(model_cfg, scan_layers=False)
  return model_cfg, params


def state_bytes(tree) -> int:
  return sum(leaf.size * leaf.dtype.itemsize for leaf in jax.tree.leaves(tree))


class _Progress:
  """A `\\r` progress line on stderr, at most a few times a second."""

  def __init__(self, out=sys.stderr):
    self.out, self.begin, self.last = out, time.perf_counter(), 0.0

  def __call__(self, done: int, total: int) -> None:
    now = time.perf_counter()
    if done < total and now - self.last < 0.5:
      return
    self.last = now
    self.out.write(f"\rprefill {done}/{total} tokens ({100 * done / total:.1f}"
                   f"%), {done / max(now - self.begin, 1e-9):.0f} tokens/s")
    if done == total:
      self.out.write("\n")
    self.out.flush()


def sample(config, model_cfg, params, prompt: str | bytes, num_tokens: int,
           sampling: melodi_hk.SamplingConfig, seed: int, batch: int,
           out=sys.stdout, err=sys.stderr) -> list[str]:
  """Prefills `prompt` in `batch` rows and prints their continuations.

  Returns:
    The B continuations as text.
  """
  tokenizer = tokenizers.get_tokenizer(config.data.tokenizer,
                                       config.data.vocab_path)
  ids = tokenizer.encode(prompt)
  if not ids.size:
    raise ValueError("The prompt is empty; give --prompt or --prompt_file.")
  dec, model = melodi_hk.decoder(model_cfg), melodi_hk.build(model_cfg)
  logits, state = dec.prefill(params, model.init_memory(batch),
                              np.tile(ids[None], (batch, 1)),
                              np.ones(batch, bool), _Progress(err))
  err.write(f"read {ids.size} prompt tokens; decode state: "
            f"{state_bytes(state)} bytes\n")
  rows = [[] for _ in range(batch)]
  shown = [""] * batch
  for chunk in melodi_hk.generate(dec, params, state, logits, num_tokens,
                                  sampling, seed):
    for r in range(batch):
      rows[r] += [int(t) for t in chunk.tokens[r] if t >= 0]
      # Hold back an incomplete UTF-8 character until its bytes arrive.
      text = tokenizer.decode(rows[r]).rstrip("\ufffd")
      new, shown[r] = text[len(shown[r]):], text
      out.write(new if batch == 1 else f"[{r}] {new!r}\n")
    out.flush()
  out.write("\n")
  return [tokenizer.decode(r) for r in rows]
