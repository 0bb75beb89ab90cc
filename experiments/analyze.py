r"""Reads trained runs: long-layer gate values, learning curves, eval scores.

Glossary of shapes:
- H: heads.  D: head dim (the gate is [H, D] per long-term layer).

  python -m experiments.analyze /tmp/ev/cpu/melodi_short_long /tmp/ev/...
  python -m experiments.analyze --json=OUT.json /tmp/ev/...   # also saves
  python -m experiments.analyze --plot=OUT.png /tmp/ev/...    # recall curves

For each workdir (a launch/train run with config.json), prints the
sigmoid(attn_gate) of every MELODI long-term layer (the weight of
self-attention; 1 - it goes to the long-memory cross-attention), the
held-out recall curve of eval_log.jsonl and, if present, eval.json's
recall exact match by gap with memory carried and reset.
"""

import json
import os
import sys

import jax
import ml_collections
import numpy as np

from launch import eval_lib
from launch import experiment
from launch import plots


def gate_values(workdir: str) -> dict[str, list[float]]:
  """{parameter path: [min, mean, max] of sigmoid(attn_gate)}."""
  with open(os.path.join(workdir, "config.json")) as f:
    config = ml_collections.ConfigDict(json.load(f))
  if config.model_name != "melodi":
    return {}
  params, _ = eval_lib.restore_params(
      config, experiment.model_config(config), workdir, None)
  out = {}
  for module, leaves in params.items():
    if "attn_gate" in leaves:
      alpha = 1 / (1 + np.exp(-np.asarray(leaves["attn_gate"])))  # [H, D]
      out[module] = [float(alpha.min()), float(alpha.mean()),
                     float(alpha.max())]
  return out


def summarize(workdir: str) -> dict:
  """Gate values, held-out curve and final eval numbers of one run."""
  out = {"workdir": workdir, "gates": gate_values(workdir)}
  log = os.path.join(workdir, "eval_log.jsonl")
  if os.path.exists(log):
    out["held_out"] = [json.loads(l) for l in open(log).read().splitlines()]
  for name in ("eval.json", "eval_gap40.json"):
    path = os.path.join(workdir, name)
    if os.path.exists(path):
      result = json.load(open(path))
      out[name] = {k: result.get(k) for k in (
          "step", "nats_per_token", "values", "memory_gain")}
  return out


def main(workdirs: list[str]) -> None:
  if workdirs and workdirs[0].startswith("--json="):
    path, workdirs = workdirs[0].removeprefix("--json="), workdirs[1:]
    with open(path, "w") as f:
      json.dump([summarize(w) for w in workdirs], f, indent=1)
  if workdirs and workdirs[0].startswith("--plot="):
    path, workdirs = workdirs[0].removeprefix("--plot="), workdirs[1:]
    plots.training_curves({
        os.path.relpath(w, os.path.dirname(workdirs[0].rstrip("/"))):
        dict(eval=summarize(w).get("held_out", [])) for w in workdirs}, path)
    return
  for workdir in workdirs:
    print(f"== {workdir}")
    for module, (low, mean, high) in gate_values(workdir).items():
      print(f"  sigmoid(attn_gate) {module}: min {low:.3f} mean {mean:.3f} "
            f"max {high:.3f}")
    log = os.path.join(workdir, "eval_log.jsonl")
    if os.path.exists(log):
      lines = [json.loads(l) for l in open(log).read().splitlines()]
      print("  held-out recall EM by step:", ", ".join(
          f"{l['step']}: {l.get('recall_exact_match', float('nan')):.2f}"
          for l in lines))
    result_path = os.path.join(workdir, "eval.json")
    if os.path.exists(result_path):
      result = json.load(open(result_path))
      values = result.get("values", {})
      gaps = [(b["start"], round(b["exact_match"], 3))
              for b in values.get("by_gap", [])]
      print(f"  eval nats/token {result['nats_per_token']:.4f}, recall EM "
            f"{values.get('recall_exact_match')}, by gap {gaps}")
      for mode, gain in result.get("memory_gain", {}).items():
        print(f"  {mode}: nats/token {gain['nats_per_token']:.4f}, recall EM "
              f"{gain['recall_exact_match']}")


if __name__ == "__main__":
  if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
    print(__doc__)
    sys.exit(0 if len(sys.argv) > 1 else 2)  # Asked for, or missing.
  jax.config.update("jax_platforms", "cpu")
  main(sys.argv[1:])
