r"""Tables and a plot of experiments/meliad_side_by_side.py's JSON lines.

Glossary of shapes: T segment, W window, E width, V vocab.

  python -m experiments.meliad_report results.jsonl out_dir

writes out_dir/table.md (bench-default compile and step times; paper-size
temp memory per T, each as a ratio to meliad's, and whether issue 9's
targets hold) and out_dir/temp_memory.png (temp memory against T, one line
per implementation). The latest record of each (implementation, size, T)
counts; compiles that failed or ran past their limit are listed as such.
"""

import json
import os
import sys

IMPLS = ("meliad", "none", "window", "dots")  # Others follow, as recorded.
GB = 1e9


def load(path: str) -> list[dict]:
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def _size(record: dict) -> str:
  return "paper" if record["config"]["embed_dim"] == 1024 else "bench"


def compiles(records: list[dict], size: str) -> dict:
  """{(impl, T): latest compile record, or a failure record} of `size`."""
  out = {}
  for r in records:
    if r.get("mode") == "compile" and _size(r) == size:
      out[(r["impl"], r["config"]["segment_length"])] = r
    elif r.get("mode") == "compile_failed" and size == "paper":
      out[(r["impl"], r["segment_length"])] = r
  return out


def impls_of(got: dict) -> list[str]:
  """IMPLS, then any other in `got` (e.g. none_unroll4) in record order."""
  seen = dict.fromkeys(i for i, _ in got)
  return list(IMPLS) + [i for i in seen if i not in IMPLS]


def main_step(records: list[dict]) -> dict | None:
  """The step record timing the most implementations (the latest of those)."""
  steps = [r for r in records if r.get("mode") == "step"]
  return max(reversed(steps), key=lambda r: len(r["step_s"]), default=None)


def _cell(rec: dict | None, base: dict | None) -> str:
  if rec is None:
    return "not run"
  if rec["mode"] == "compile_failed":
    return (f"over {rec['limit_s']} s" if rec["rc"] in (124, 137)
            else f"failed (rc {rec['rc']})")
  text = f"{rec['temp_bytes'] / GB:.2f} GB"
  if base and base.get("mode") == "compile" and rec is not base:
    text += f" ({rec['temp_bytes'] / base['temp_bytes']:.2f}x)"
  return text


def paper_table(records: list[dict]) -> list[str]:
  got = compiles(records, "paper")
  ts, impls = sorted({t for _, t in got}), impls_of(got)
  lines = ["| T | " + " | ".join(impls) + " | params equal |",
           "|---" * (len(impls) + 2) + "|"]
  for t in ts:
    base = got.get(("meliad", t))
    counts = {r["num_params"] for (i, tt), r in got.items()
              if tt == t and r["mode"] == "compile"}
    lines.append(f"| {t} | " + " | ".join(
        _cell(got.get((i, t)), base) for i in impls) +
                 f" | {'yes' if len(counts) == 1 else counts} |")
  lines += ["", "Compile seconds (wall / CPU):", "",
            "| T | " + " | ".join(impls) + " |",
            "|---" * (len(impls) + 1) + "|"]
  for t in ts:
    lines.append(f"| {t} | " + " | ".join(
        f"{r['compile_s']:.0f} / {r['compile_cpu_s']:.0f}"
        if (r := got.get((i, t))) and r["mode"] == "compile" else "-"
        for i in impls) + " |")
  return lines


def bench_table(records: list[dict]) -> list[str]:
  got = compiles(records, "bench")
  step = main_step(records)
  lines = ["| impl | params | compile s (wall / CPU) | temp MB | step s "
           "(median) | step / meliad |", "|---|---|---|---|---|---|"]
  for impl in impls_of(got):
    r = next((r for (i, _), r in got.items() if i == impl), None)
    if r is None:
      continue
    s = step["step_s"].get(impl) if step else None
    q = step["ratio_to_base"].get(impl) if step else None
    lines.append(
        f"| {impl} | {r['num_params']:,} | {r['compile_s']:.1f} / "
        f"{r['compile_cpu_s']:.1f} | {r['temp_bytes'] / 1e6:.0f} | "
        f"{'-' if s is None else f'{s:.3f}'} | "
        f"{'-' if q is None else f'{q:.2f}x'} |")
  if step:
    lines += ["", f"{step['rounds']} alternating rounds of {step['steps']} "
              f"steps, code {step.get('code', 'not recorded')}; 1-minute "
              "load average per round: " +
              ", ".join(f"{x:.1f}" for x in step["load_1min"]) + "."]
  others = [r for r in records if r.get("mode") == "step" and r is not step]
  for k, run in enumerate(others):  # The other runs, for the spread.
    code = f" (code {run['code']})" if "code" in run else " (older code)"
    lines += ["", f"Other run {k + 1}{code}: step / {run['base']} " + ", ".join(
        f"{n} {q:.2f}x" for n, q in run["ratio_to_base"].items()) +
              f" (load {min(run['load_1min']):.1f}-"
              f"{max(run['load_1min']):.1f})."]
  return lines


def targets(records: list[dict]) -> list[str]:
  """Issue 9's targets, each met / not met / not measured."""
  paper, out = compiles(records, "paper"), []
  for t in sorted({t for _, t in paper}):
    base = paper.get(("meliad", t))
    ok = lambda r: r is not None and r["mode"] == "compile"
    if not ok(base):
      out.append(f"- T = {t}: meliad not measured ({_cell(base, None)}).")
      continue
    ratio = lambda i: paper[(i, t)]["temp_bytes"] / base["temp_bytes"]
    if ok(paper.get(("none", t))):
      out.append(f"- T = {t}, remat none <= 0.8x meliad: {ratio('none'):.2f}x,"
                 f" {'met' if ratio('none') <= 0.8 else 'NOT met'}.")
    remats = [i for i in ("window", "dots") if ok(paper.get((i, t)))]
    if remats:
      best = min(remats, key=ratio)
      out.append(f"- T = {t}, best remat ({best}) <= 0.3x meliad: "
                 f"{ratio(best):.2f}x, "
                 f"{'met' if ratio(best) <= 0.3 else 'NOT met'}.")
  step = main_step(records)
  if step and "meliad" in step["step_s"]:
    for impl, q in step["ratio_to_base"].items():
      if impl != "meliad":
        out.append(f"- bench default step, {impl} <= 0.8x meliad: "
                   f"{q:.2f}x, {'met' if q <= 0.8 else 'NOT met'}.")
  return out


def plot(records: list[dict], path: str):
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  got = compiles(records, "paper")
  fig, ax = plt.subplots(figsize=(6, 4))
  for impl in impls_of(got):
    pts = sorted((t, r["temp_bytes"] / GB) for (i, t), r in got.items()
                 if i == impl and r["mode"] == "compile")
    if pts:
      ax.plot(*zip(*pts), marker="o",
              label="meliad" if impl == "meliad" else f"melodi_hk {impl}")
  ax.set_xscale("log", base=2)
  ax.set_xlabel("segment length T (tokens)")
  ax.set_ylabel("XLA temp memory of one training step (GB)")
  ax.set_title("Paper size (13 layers, E 1024, bf16), CPU analysis")
  ax.legend()
  ax.grid(alpha=0.3)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def write(records: list[dict], out_dir: str):
  text = ["# melodi_hk beside meliad (cc1aef5)", "",
          "## Bench default (4 layers, E 256, T 512, float32, batch 2)", ""]
  text += bench_table(records)
  text += ["", "## Paper size, temp memory of one training step "
           "(ratio to meliad)", ""] + paper_table(records)
  text += ["", "## Targets (issue 9)", ""] + targets(records)
  with open(os.path.join(out_dir, "table.md"), "w") as f:
    f.write("\n".join(text) + "\n")
  plot(records, os.path.join(out_dir, "temp_memory.png"))


if __name__ == "__main__":
  write(load(sys.argv[1]), sys.argv[2])
