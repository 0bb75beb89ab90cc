r"""Tables and a plot of the long-term memory ablations (one results folder).

Glossary of shapes:
- H: heads.  D: head dim (the gate is [H, D] per long-term layer).

  python -m experiments.long_memory_report \
      experiments/results/long_memory_ablations

Reads what experiments/long_memory_ablations.sh left in the folder:
evals/<run>_<mode>.json (launch/eval, one memory mode each; <run>_gap400
carried and reset_long at gap 400), analyze.json
(experiments/analyze: gates, held-out curves) and attention.json
(experiments/attention_probe), and the runs' checkpoints for the gate's
movement from its initial value. Writes results.json, results.md and
ablations.png (recall exact match and recall-digit nats per memory mode).
"""

import json
import os
import sys

import jax
import matplotlib
import melodi_hk
import ml_collections
import numpy as np

from launch import eval_lib
from launch import experiment

matplotlib.use("Agg")
from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top

MODES = ("carried", "reset_segment", "reset_long")


def gate_movement(workdir: str) -> float:
  """max |attn_gate - its initial value| over the long layers' [H, D]."""
  with open(os.path.join(workdir, "config.json")) as f:
    config = ml_collections.ConfigDict(json.load(f))
  cfg = experiment.model_config(config)
  params, _ = eval_lib.restore_params(config, cfg, workdir, None)
  # train_lib.init_state's key split: (rng, init_rng) of PRNGKey(seed).
  init = melodi_hk.build(cfg).init(
      jax.random.split(jax.random.PRNGKey(config.seed))[1])
  return max(float(np.abs(np.asarray(params[m]["attn_gate"]) -
                          np.asarray(init[m]["attn_gate"])).max())
             for m in params if "attn_gate" in params[m])


def run_row(folder: str, summary: dict) -> dict:
  """One run's numbers: curve, per-mode recall, gate."""
  name = os.path.basename(summary["workdir"].rstrip("/"))
  row = dict(run=name, held_out={h["step"]: h.get("recall_exact_match")
                                 for h in summary.get("held_out", [])})
  for mode in MODES:
    path = os.path.join(folder, "evals", f"{name}_{mode}.json")
    if os.path.exists(path):
      values = json.load(open(path))["values"]
      row[mode] = dict(recall_exact_match=values["recall_exact_match"],
                       recall_nats=values["recall"]["nats_per_token"],
                       first_nats=values["first"]["nats_per_token"])
  path = os.path.join(folder, "evals", f"{name}_gap400.json")
  if os.path.exists(path):  # {mode: recall exact match} at gap 400.
    row["gap400"] = {mode: gain["recall_exact_match"] for mode, gain in
                     json.load(open(path))["memory_gain"].items()}
  row["gate_sigmoid"] = summary["gates"]  # {module: [min, mean, max]}
  row["gate_max_move"] = gate_movement(summary["workdir"])
  return row


def markdown(rows: list[dict]) -> str:
  lines = [
      "| run | held-out EM step 1000 (G 24) / 2000 (G 160) | recall EM "
      "carried | reset_segment | reset_long | recall-digit nats carried | "
      "reset_segment | reset_long | EM at gap 400 carried / reset_long | "
      "sigmoid(gate) min/mean/max | gate: max abs change from init |",
      "|---|---|---|---|---|---|---|---|---|---|---|"]
  for r in rows:
    em = lambda m: f"{r[m]['recall_exact_match']:.3f}" if m in r else "-"
    nats = lambda m: f"{r[m]['recall_nats']:.4f}" if m in r else "-"
    curve = r["held_out"]
    gates = "; ".join("/".join(f"{v:.2f}" for v in g)
                      for g in r["gate_sigmoid"].values())
    lines.append(
        f"| {r['run']} | {curve.get(1000, float('nan')):.2f} / "
        f"{curve.get(2000, float('nan')):.2f} | "
        + " | ".join(em(m) for m in MODES) + " | "
        + " | ".join(nats(m) for m in MODES) + " | "
        + (" / ".join(f"{r['gap400'][m]:.3f}" for m in ("carried",
                                                          "reset_long"))
           if "gap400" in r else "-")
        + f" | {gates} | {r['gate_max_move']:.3f} |")
  return "\n".join(lines)


def plot(rows: list[dict], path: str) -> None:
  fig, axes = plt.subplots(1, 2, figsize=(11, 4))
  width = 0.8 / len(MODES)
  for i, mode in enumerate(MODES):
    xs = np.arange(len(rows)) + i * width
    for ax, key in zip(axes, ("recall_exact_match", "recall_nats")):
      ax.bar(xs, [r.get(mode, {}).get(key, np.nan) for r in rows], width,
             label=mode)
  for ax, title in zip(axes, ("recall exact match (held out, G = 160)",
                              "recall-digit nats/token")):
    ax.set_xticks(np.arange(len(rows)) + width)
    ax.set_xticklabels([r["run"] for r in rows], rotation=20, fontsize=8)
    ax.set_title(title)
  axes[1].set_yscale("log")
  handles, labels = axes[0].get_legend_handles_labels()
  fig.legend(handles, labels, loc="upper center", ncol=len(MODES))
  fig.tight_layout(rect=(0, 0, 1, 0.92))
  fig.savefig(path, dpi=120)
  plt.close(fig)


def main(folder: str) -> None:
  summaries = json.load(open(os.path.join(folder, "analyze.json")))
  rows = [run_row(folder, s) for s in summaries]
  with open(os.path.join(folder, "results.json"), "w") as f:
    json.dump(rows, f, indent=1)
  with open(os.path.join(folder, "results.md"), "w") as f:
    f.write(markdown(rows) + "\n")
  plot(rows, os.path.join(folder, "ablations.png"))
  print(markdown(rows))


if __name__ == "__main__":
  if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
    print(__doc__)
    sys.exit(0 if len(sys.argv) > 1 else 2)  # Asked for, or missing.
  jax.config.update("jax_platforms", "cpu")
  main(sys.argv[1])
