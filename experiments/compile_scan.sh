#!/bin/bash
# Compile time of the paper-size training step with scan_layers off and on
# (README, Performance > Compile time), alternating off/on per depth so both
# share the machine's load; each line of $OUT/compile_scan.jsonl is one
# `launch.bench --compile_only` result plus the 1-minute load average.
# Rerunning appends further rounds; the table gives medians over all rounds.
#   nice -n 10 bash experiments/compile_scan.sh /tmp/compile_scan [rounds]
set -euo pipefail
OUT=${1:-/tmp/compile_scan}; ROUNDS=${2:-1}
mkdir -p "$OUT"
PY=${PYTHON:-.venv/bin/python}
FIRST=0  # Rounds already in $OUT (a fresh $OUT has none).
if [ -f "$OUT/compile_scan.jsonl" ]; then
  FIRST=$(( $(wc -l < "$OUT/compile_scan.jsonl") / 6 ))
fi
for round in $(seq $((FIRST + 1)) $((FIRST + ROUNDS))); do
  for layers in 4 13 24; do
    for scan in false true; do
      load=$(cut -d' ' -f1 /proc/loadavg)
      line=$(JAX_PLATFORMS=cpu "$PY" -m launch.bench --compile_only \
        --remat=none --num_layers="$layers" --long_layer=$((layers / 2)) \
        --embed_dim=1024 --num_heads=8 --head_dim=128 --mlp_dim=4096 \
        --window_length=512 --segment_length=4096 --memory=128 \
        --long_memory=8192 --increment=64 --dtype=bfloat16 --batch=1 \
        --vocab_size=32128 --scan_layers="$scan" 2>/dev/null | tail -1)
      echo "{\"round\": $round, \"layers\": $layers, \"scan_layers\": $scan, \"load_before\": $load, \"load_after\": $(cut -d' ' -f1 /proc/loadavg), \"bench\": $line}" \
        | tee -a "$OUT/compile_scan.jsonl"
    done
  done
done
"$PY" - "$OUT/compile_scan.jsonl" <<'PYEOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def median(layers, scan, key):
  vals = [r["bench"][key] for r in rows if r["layers"] == layers
          and r["scan_layers"] == scan and key in r["bench"]]
  return statistics.median(vals) if vals else float("nan")
print("| layers | wall off | wall on | on/off | CPU off | CPU on | on/off "
      "| runs | load (1 min) |\n|---|---|---|---|---|---|---|---|---|")
for layers in sorted({r["layers"] for r in rows}):
  w0, w1, c0, c1 = [median(layers, s, k)
                    for k in ("compile_s", "compile_cpu_s")
                    for s in (False, True)]
  loads = [r["load_before"] for r in rows if r["layers"] == layers]
  print(f"| {layers} | {w0:.1f} s | {w1:.1f} s | {w1 / w0:.2f} | {c0:.1f} s "
        f"| {c1:.1f} s | {c1 / c0:.2f} | {len(loads) // 2} | "
        f"{min(loads):.0f}-{max(loads):.0f} |")
PYEOF
