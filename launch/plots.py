"""PNG plots of eval and training results, several runs overlaid (matplotlib).

Glossary of shapes:
- P: a target's position in its document (log-spaced buckets).
- G: characters between two mentions of a value (log2 buckets).

Every function takes {run name: result} where a result is what
launch/eval_lib.py `evaluate` returns (or, for training curves, a list of
the JSON lines of train_log.jsonl / eval_log.jsonl) and writes one PNG.
Runs without the plotted quantity are left out of that plot.
"""

from typing import Any

import matplotlib

matplotlib.use("Agg")  # Files only; no display on TPU VMs or CI.
from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top


def loss_by_position(results: dict[str, dict[str, Any]], path: str) -> None:
  """Nats/token vs position in the document (log x), one line per run."""
  fig, ax = plt.subplots(figsize=(7, 4.5))
  for name, result in results.items():
    buckets = result.get("by_position", [])
    if buckets:
      ax.plot([(b["start"] * b["end"]) ** 0.5 for b in buckets],
              [b["nats_per_token"] for b in buckets], marker="o", label=name)
  ax.set_xscale("log", base=2)
  ax.set_xlabel("position in the document (tokens; bucket centre)")
  ax.set_ylabel("nats / token")
  ax.set_title("Loss by position")
  _finish(fig, ax, path)


def recall_by_gap(results: dict[str, dict[str, Any]], path: str) -> None:
  """Exact match of recalled values vs gap to the previous mention."""
  fig, ax = plt.subplots(figsize=(7, 4.5))
  for name, result in results.items():
    buckets = result.get("values", {}).get("by_gap", [])
    if buckets:
      ax.plot([(b["start"] * b["end"]) ** 0.5 for b in buckets],
              [b["exact_match"] for b in buckets], marker="o", label=name)
  ax.set_xscale("log", base=2)
  ax.set_ylim(-0.02, 1.02)
  ax.set_xlabel("gap to the previous mention (characters; bucket centre)")
  ax.set_ylabel("exact match of the recalled value")
  ax.set_title("Recall vs gap")
  _finish(fig, ax, path)


def training_curves(logs: dict[str, dict[str, list[dict]]], path: str) -> None:
  """Training loss and held-out loss (and recall) vs step, per run.

  Args:
    logs: {run: {"train": train_log lines, "eval": eval_log lines}}.
    path: the PNG to write.
  """
  fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
  for i, (name, log) in enumerate(logs.items()):
    color = f"C{i % 10}"
    train = [l for l in log.get("train", []) if "train/nats_per_token" in l]
    left.plot([l["step"] for l in train],
              [l["train/nats_per_token"] for l in train], color=color,
              label=f"{name} train")
    held = log.get("eval", [])
    left.plot([l["step"] for l in held], [l["nats_per_token"] for l in held],
              color=color, linestyle="--", label=f"{name} held-out")
    recall = [l for l in held if l.get("recall_exact_match") is not None]
    right.plot([l["step"] for l in recall],
               [l["recall_exact_match"] for l in recall], color=color,
               marker=".", label=name)
  left.set_xlabel("step")
  left.set_ylabel("nats / token")
  left.set_yscale("log")
  left.set_title("Loss (solid: train, dashed: held-out)")
  right.set_xlabel("step")
  right.set_ylabel("held-out recall exact match")
  right.set_ylim(-0.02, 1.02)
  right.set_title("Held-out recall")
  right.legend(fontsize=7)
  _finish(fig, left, path, legend=False)


def _finish(fig, ax, path: str, legend: bool = True) -> None:
  ax.grid(True, alpha=0.3)
  if legend and ax.get_legend_handles_labels()[0]:
    ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
