r"""Table and plot of experiments/paper_memory.sh's JSON lines.

Glossary of shapes: T segment, L long memory, C Memorizing's memory slots.

  python -m experiments.paper_memory_report out_dir

reads out_dir/runs.jsonl ({"code": commit, "bench": launch.bench's JSON
line, or an error}) and writes out_dir/table.md and out_dir/paper_memory.png:
each model's and remat option's temp memory per segment length T, with the
parameters and optimizer state (XLA's argument bytes) beside it.
"""

import json
import sys

MODELS = {"melodi": "MELODI", "transformer_xl": "Transformer-XL",
          "memorizing": "Memorizing (C 65536)"}


def load(path: str) -> list[dict]:
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def cells(records: list[dict]) -> tuple[dict, list[int], str]:
  """({(model, remat): {T: bench or error}}, the Ts, the code's commits)."""
  rows, lengths = {}, set()
  for r in records:
    b = r["bench"]
    t = b["config"]["segment_length"]
    lengths.add(t)
    rows.setdefault((b["model"], b["config"]["remat"]), {})[t] = b
  codes = sorted({r["code"] for r in records})
  return rows, sorted(lengths), ", ".join(codes)


def _gb(x: float) -> str:
  return f"{x / 1e9:.2f} GB"


def table(records: list[dict]) -> list[str]:
  rows, lengths, code = cells(records)
  head = " | ".join(f"T = {t}" for t in lengths)
  lines = [f"| model | remat | {head} | parameters + optimizer state |",
           "|---|---|" + "---|" * len(lengths) + "---|"]
  for (model, remat), by_t in rows.items():
    temps = [_gb(by_t[t]["temp_bytes"]) if "temp_bytes" in by_t.get(t, {})
             else "failed" for t in lengths]
    args = [b["argument_bytes"] for b in by_t.values() if "argument_bytes" in b]
    lines.append(f"| {MODELS.get(model, model)} | {remat} | "
                 + " | ".join(temps) + f" | {_gb(args[0]) if args else '-'} |")
  return lines + ["", f"XLA temp memory of one training step (CPU memory "
                  f"analysis), code {code}."]


def plot(records: list[dict], path: str) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  rows, lengths, _ = cells(records)
  fig, ax = plt.subplots(figsize=(7, 3.5))
  width = 0.8 / max(len(rows), 1)
  for i, ((model, remat), by_t) in enumerate(rows.items()):
    ys = [by_t.get(t, {}).get("temp_bytes", 0) / 1e9 for t in lengths]
    ax.bar([k + i * width for k in range(len(lengths))], ys, width,
           label=f"{MODELS.get(model, model)}, {remat}")
  ax.set_xticks([k + 0.4 - width / 2 for k in range(len(lengths))],
                [f"T = {t}" for t in lengths])
  ax.set_ylabel("temp memory of a step (GB)")
  ax.set_title("Paper size, batch 1, bfloat16")
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def main(out_dir: str) -> None:
  records = load(f"{out_dir}/runs.jsonl")
  lines = table(records)
  with open(f"{out_dir}/table.md", "w") as f:
    f.write("# Training-step memory at the paper's size\n\n"
            + "\n".join(lines) + "\n")
  plot(records, f"{out_dir}/paper_memory.png")
  print("\n".join(lines))


if __name__ == "__main__":
  main(sys.argv[1])
