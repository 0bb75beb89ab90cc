"""Training metrics: TensorBoard scalars, a console line, and the NaN rail.

Glossary of shapes:
- K: steps between flushes (at most `config.log_every`).

Each step's metrics stay on the device until `Reporter.flush`, so logging
costs one device-to-host transfer per K steps instead of a sync per step.
`flush` checks every step's loss before anything else happens, so a run
stops on the first diverged loss before it can write a checkpoint of the
broken state (big_vision's rail). Diverged means NaN, infinite, or finite
but above MAX_NATS_PER_TOKEN, where the perplexity itself would overflow.
Each report is also appended as one JSON line to <logdir>/train_log.jsonl,
which launch/compare.py plots.
"""

import json
import logging as std_logging
import math
import os
import time

from absl import logging
import jax
import numpy as np
import tensorflow as tf

# tf.summary.scalar lives in the tensorboard package (installed to view
# the logs, but not needed to write them); this is the metadata it writes,
# so TensorBoard shows scalars.
_SCALAR = tf.compat.v1.SummaryMetadata(
    plugin_data=tf.compat.v1.SummaryMetadata.PluginData(plugin_name="scalars"))


# log of the largest float64: no model that has learnt anything gets near
# it (uniform over 32K pieces is 10.4 nats/token), and exp overflows beyond.
MAX_NATS_PER_TOKEN = math.log(np.finfo(np.float64).max)


def perplexity(nats: float, tokens: float) -> float:
  """exp(nats per predicted token); 1.0 when nothing was predicted."""
  if not tokens:
    return 1.0
  per_token = nats / tokens
  return math.exp(per_token) if per_token <= MAX_NATS_PER_TOKEN else math.inf


class Reporter:
  """Collects per-step metrics and reports them every few steps."""

  def __init__(self, logdir: str | None, *, num_steps: int,
               tokens_per_step: int, first_step: int):
    # Only one host writes event files; every host checks for NaNs.
    self._writer = tf.summary.create_file_writer(logdir) if logdir else None
    self._log = os.path.join(logdir, "train_log.jsonl") if logdir else None
    self._num_steps = num_steps
    self._tokens_per_step = tokens_per_step  # All positions, padding too.
    self._pending = []  # [(step, metrics on device)] since the last flush.
    self._last = (first_step, time.perf_counter())

  def add(self, step: int, metrics: dict) -> None:
    """Records the metrics of the update that made `step` steps."""
    self._pending.append((step, metrics))

  def flush(self) -> dict[int, float]:
    """Writes the pending steps; returns {step: summed loss in nats}.

    Raises:
      FloatingPointError: if any pending loss is NaN or infinite.
    """
    if not self._pending:
      return {}
    steps = [step for step, _ in self._pending]
    # [K] per step; pmap metrics repeat on every device, take the first.
    host = jax.device_get([m for _, m in self._pending])
    loss, tokens, lr = (np.array([np.ravel(m[key])[0] for m in host])
                        for key in ("loss", "num_tokens", "learning_rate"))
    self._pending = []
    with np.errstate(invalid="ignore"):
      good = np.isfinite(loss) & (loss <= MAX_NATS_PER_TOKEN *
                                  np.maximum(tokens, 1))
    if not np.all(good):
      bad = steps[int(np.argmin(good))]
      raise FloatingPointError(
          f"The loss became NaN, infinite or too large to exponentiate "
          f"within steps [{steps[0]}, {steps[-1]}] (first at step {bad}); "
          "training stopped and the last good checkpoint is left as it was. "
          "Resume from it with a lower learning rate (e.g. "
          "--config.optimizer.max_lr=<half>), or check the data of those "
          "steps.")
    self._report(steps[-1], float(loss.sum()), float(tokens.sum()),
                 float(lr[-1]))
    return dict(zip(steps, loss.tolist()))

  def close(self) -> None:
    if self._writer:
      self._writer.close()

  def _report(self, step: int, nats: float, tokens: float, lr: float) -> None:
    first_step, start = self._last
    now = time.perf_counter()
    self._last = (step, now)
    steps_per_s = (step - first_step) / max(now - start, 1e-9)
    scalars = {
        "nats_per_token": nats / max(tokens, 1.0),
        "perplexity": perplexity(nats, tokens),
        "learning_rate": lr, "steps_per_s": steps_per_s,
        "tokens_per_s": steps_per_s * self._tokens_per_step}
    eta = (self._num_steps - step) / max(steps_per_s, 1e-9)
    logging.info(
        "step %d/%d | loss %.4f nats/token | ppl %.2f | lr %.2e | "
        "%.2f steps/s | %.0f tokens/s | ETA %s", step, self._num_steps,
        scalars["nats_per_token"], scalars["perplexity"], lr, steps_per_s,
        scalars["tokens_per_s"], _duration(eta))
    self.write(step, {f"train/{k}": v for k, v in scalars.items()})

  def exclude_time(self, seconds: float) -> None:
    """Leaves `seconds` (e.g. a held-out eval) out of the next steps/s."""
    step, start = self._last
    self._last = (step, start + seconds)

  def write(self, step: int, scalars: dict[str, float]) -> None:
    """Writes `scalars` ({"group/name": value}) to TensorBoard and JSON."""
    if not self._writer:
      return
    with self._writer.as_default(step=step):
      for name, value in scalars.items():
        tf.summary.write(name, tf.constant(value, tf.float32),
                         metadata=_SCALAR)
    self._writer.flush()
    with open(self._log, "a") as f:
      f.write(json.dumps(dict(step=step, **scalars)) + "\n")


def write_scalars(logdir: str, step: int, scalars: dict[str, float]) -> None:
  """Writes {"group/name": value} at `step` to TensorBoard in `logdir`."""
  writer = tf.summary.create_file_writer(logdir)
  with writer.as_default(step=step):
    for name, value in scalars.items():
      tf.summary.write(name, tf.constant(value, tf.float32), metadata=_SCALAR)
  writer.close()


def quiet_library_logs() -> None:
  """Keeps library lines that look like problems and are not out of the
  console: orbax's many INFO lines per save, its warning that a checkpoint
  directory is read only (eval and sample open it so on purpose), and
  jax's INFO that it found no TPU."""
  logging.get_absl_logger().addFilter(_shown)
  std_logging.getLogger("jax._src.xla_bridge").setLevel(std_logging.WARNING)


def _shown(record) -> bool:
  if "/orbax/" not in record.pathname:
    return True
  return (record.levelno >= logging.converter.STANDARD_WARNING and
          not str(record.msg).startswith("Given directory is read only"))


def _duration(seconds: float) -> str:
  minutes, seconds = divmod(int(seconds), 60)
  hours, minutes = divmod(minutes, 60)
  return f"{hours}h{minutes:02d}m{seconds:02d}s"
