#!/bin/bash
# launch.bench at another commit (in a temporary git worktree) and now, one
# process per run, alternating so both share the machine's load: by default
# the paper-size step's compile (--compile_only, remat none, scan_layers
# off). Compile CPU-seconds drift by 10% with other jobs, so only a paired
# comparison says what a change bought (README, Compile time).
#   nice -n 10 bash experiments/compile_vs.sh <commit> [out_dir] [rounds] [layers]
# Appends to <out_dir>/compile_vs.jsonl and prints each commit's median.
# STEP=1 times the bench-default step instead (launch.bench's default
# size, median of 10 steps after 2 per process; [layers] is ignored) into
# <out_dir>/step_vs.jsonl; EXTRA adds bench flags (e.g. a --model).
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
if [[ -n "${STEP:-}" ]]; then
  FLAGS="--steps=10 --warmup=2"; FILE=step_vs.jsonl; KEY=step_s
else
  FLAGS="--compile_only --remat=none --num_layers=$LAYERS
    --long_layer=$((LAYERS / 2)) --embed_dim=1024 --num_heads=8
    --head_dim=128 --mlp_dim=4096 --window_length=512 --segment_length=4096
    --memory=128 --long_memory=8192 --increment=64 --dtype=bfloat16
    --batch=1 --vocab_size=32128"
  FILE=compile_vs.jsonl; KEY=compile_cpu_s
fi
NOW=$(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo +)
for round in $(seq "$ROUNDS"); do
  for WHERE in before now; do
    DIR=.; CODE=$NOW
    [[ $WHERE == before ]] && DIR=$BEFORE && CODE=$REV
    load=$(cut -d' ' -f1 /proc/loadavg)
    # shellcheck disable=SC2164
    # shellcheck disable=SC2086
    line=$(cd "$DIR" && JAX_PLATFORMS=cpu "$PY" -m launch.bench $FLAGS \
      ${EXTRA:-} 2>/dev/null | tail -1)
    echo "{\"round\": $round, \"code\": \"$WHERE\", \"commit\": \"$CODE\", \"load_before\": $load, \"bench\": $line}" \
      | tee -a "$OUT/$FILE"
  done
done
"$PY" - "$OUT/$FILE" "$REV" "$KEY" <<'PYEOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
key, pairs = sys.argv[3], {}
for r in rows:
  if r["code"] == "before" and r["commit"] != sys.argv[2]:
    continue
  b = r["bench"]
  pairs.setdefault((r["commit"], b["model"], b["config"]["num_layers"]),
                   []).append(b[key])
for (commit, model, layers), v in pairs.items():
  print(f"{commit} {model}, {layers} layers: {key} {statistics.median(v):.4g}"
        f" (median of {len(v)}: {min(v):.4g}-{max(v):.4g})")
PYEOF
