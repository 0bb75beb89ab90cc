r"""Tables and a plot of experiments/step_time.sh's JSON lines.

Glossary of shapes: T segment, W window, E width, L long memory.

  python -m experiments.step_time_report out_dir

reads out_dir/compare.jsonl (`launch.bench --compare` lines) and
out_dir/options_small.jsonl (experiments/meliad_side_by_side.py lines,
ours only), out_dir/baseline_remat.jsonl (`launch.bench --remat_costs`
lines) and writes out_dir/table.md and out_dir/step_time.png: each
model's step time over Transformer-XL's beside the ratio its FLOPs
predict, per size and window_unroll; the table lists every run with its
code, the plot the last code's; then what each remat option costs.
"""

import json
import os
import sys

SIZES = {256: "bench default", 64: "small"}  # By width E.


def load(path: str) -> list[dict]:
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def size(record: dict) -> str:
  width = record["config"]["embed_dim"]
  return SIZES.get(width, f"E {width}")


def label(record: dict) -> str:
  unroll = record["config"].get("window_unroll", 1)
  return f"{size(record)}, window_unroll {unroll}"


def compare_table(records: list[dict]) -> list[str]:
  lines = ["| size | code | MELODI / XL | its FLOPs | Memorizing / XL "
           "| its FLOPs | XL step |", "|---|---|---|---|---|---|---|"]
  for r in records:
    lines.append(
        f"| {label(r)} | {r.get('code', 'not recorded')} | "
        f"{r['melodi_over_xl']:.2f}x | "
        f"{r['melodi_over_xl_flops']:.2f}x | {r['memorizing_over_xl']:.2f}x "
        f"| {r['memorizing_over_xl_flops']:.2f}x | "
        f"{r['step_s']['transformer_xl'] * 1e3:.0f} ms |")
  return lines


def options_table(records: list[dict]) -> list[str]:
  compiles = {r["impl"]: r for r in records if r.get("mode") == "compile"}
  steps = [r for r in records if r.get("mode") == "step"]
  if not steps:
    return []
  step = steps[-1]
  lines = [f"| step | temp MB | compile CPU s | step / {step['base']} |",
           "|---|---|---|---|"]
  for impl, ratio in step["ratio_to_base"].items():
    c = compiles[impl]
    lines.append(f"| {impl} | {c['temp_bytes'] / 1e6:.0f} | "
                 f"{c['compile_cpu_s']:.1f} | {ratio:.2f}x |")
  loads = step["load_1min"]
  return lines + ["", f"{step['rounds']} alternating rounds of "
                  f"{step['steps']} steps, load {min(loads):.1f}-"
                  f"{max(loads):.1f}."]


def remat_costs_table(records: list[dict]) -> list[str]:
  """One row per `launch.bench --remat_costs` line and remat option."""
  lines = ["| model | size | code | remat | step / none | temp MB |",
           "|---|---|---|---|---|---|"]
  for r in records:
    for remat, ratio in r["over_none"].items():
      lines.append(f"| {r['model']} | {size(r)} | "
                   f"{r.get('code', 'not recorded')}"
                   f" | {remat} | {ratio:.2f}x | "
                   f"{r['temp_bytes'][remat] / 1e6:.0f} |")
  return lines if records else []


def plot(records: list[dict], path: str):
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(7, 4))
  x = range(len(records))
  for k, (key, name) in enumerate((("melodi_over_xl", "MELODI measured"),
                                   ("melodi_over_xl_flops", "MELODI FLOPs"),
                                   ("memorizing_over_xl", "Memorizing "
                                    "measured"),
                                   ("memorizing_over_xl_flops",
                                    "Memorizing FLOPs"))):
    ax.bar([i + 0.2 * k - 0.3 for i in x], [r[key] for r in records], 0.2,
           label=name)
  ax.axhline(1.25, color="k", ls="--", lw=1, label="goal 1.25x")
  ax.set_xticks(list(x), [label(r).replace(", ", "\n") for r in records])
  ax.set_ylabel("step time / Transformer-XL's")
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def latest(records: list[dict]) -> list[dict]:
  """The records of the last run's code (all, if none records its code)."""
  code = records[-1].get("code") if records else None
  return [r for r in records if r.get("code") == code] if code else records


def write(out_dir: str):
  compare = load(os.path.join(out_dir, "compare.jsonl"))
  options = load(os.path.join(out_dir, "options_small.jsonl"))
  text = ["# Step time against Transformer-XL", ""] + compare_table(compare)
  text += ["", "## Step options at the small size", ""]
  text += options_table(options)
  text += ["", "## Remat options (`launch.bench --remat_costs`)", ""]
  text += remat_costs_table(
      load(os.path.join(out_dir, "baseline_remat.jsonl")))
  with open(os.path.join(out_dir, "table.md"), "w") as f:
    f.write("\n".join(text) + "\n")
  if compare:
    plot(latest(compare), os.path.join(out_dir, "step_time.png"))


if __name__ == "__main__":
  write(sys.argv[1])
