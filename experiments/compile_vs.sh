#!/bin/bash
# Compile time of the paper-size training step (launch.bench --compile_only,
# remat none, scan_layers off) at another commit (in a temporary git
# worktree) and now, one process per compile, alternating so both share the
# machine's load; compile CPU-seconds drift by 10% with other jobs, so only
# a paired comparison says what a change bought (README, Compile time).
#   nice -n 10 bash experiments/compile_vs.sh <commit> [out_dir] [rounds] [layers]
# Appends to <out_dir>/compile_vs.jsonl and prints each commit's median.
set -euo pipefail
REV=$1
OUT=$(realpath -m "${2:-experiments/results/compile_scan}")
ROUNDS=${3:-3}; LAYERS=${4:-13}
PY=${PY:-python}
[[ $PY == */* ]] && PY=$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")
mkdir -p "$OUT"
BEFORE=$(mktemp -d)
trap 'git worktree remove --force "$BEFORE"' EXIT
git worktree add -q --detach "$BEFORE" "$REV"
NOW=$(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo +)
for round in $(seq "$ROUNDS"); do
  for WHERE in before now; do
    DIR=.; CODE=$NOW
    [[ $WHERE == before ]] && DIR=$BEFORE && CODE=$REV
    load=$(cut -d' ' -f1 /proc/loadavg)
    # shellcheck disable=SC2164
    line=$(cd "$DIR" && JAX_PLATFORMS=cpu "$PY" -m launch.bench \
      --compile_only --remat=none --num_layers="$LAYERS" \
      --long_layer=$((LAYERS / 2)) --embed_dim=1024 --num_heads=8 \
      --head_dim=128 --mlp_dim=4096 --window_length=512 \
      --segment_length=4096 --memory=128 --long_memory=8192 --increment=64 \
      --dtype=bfloat16 --batch=1 --vocab_size=32128 2>/dev/null | tail -1)
    echo "{\"round\": $round, \"code\": \"$WHERE\", \"commit\": \"$CODE\", \"load_before\": $load, \"bench\": $line}" \
      | tee -a "$OUT/compile_vs.jsonl"
  done
done
"$PY" - "$OUT/compile_vs.jsonl" "$REV" <<'PYEOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
pairs = {}
for r in rows:
  if r["code"] == "before" and r["commit"] != sys.argv[2]:
    continue
  pairs.setdefault((r["commit"], r["bench"]["config"]["num_layers"]),
                   []).append(r["bench"]["compile_cpu_s"])
for (commit, layers), cpu in pairs.items():
  print(f"{commit} {layers} layers: compile {statistics.median(cpu):.1f} "
        f"CPU-s (median of {len(cpu)}: {min(cpu):.1f}-{max(cpu):.1f})")
PYEOF
