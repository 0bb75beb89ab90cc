#!/bin/bash
# Temp memory of one training step at the paper's size for all three models
# (MELODI, Transformer-XL, Memorizing with the paper's C = 65536 slots),
# every remat option (MELODI: none, window, dots; the baselines: none,
# layer, dots), T = 4096 and 8192: `launch.bench --compile_only`, XLA's
# memory analysis on this CPU, one process per compile.
#   bash experiments/paper_memory.sh [out_dir]      # ~9 min on 2 cores
# Writes out_dir/runs.jsonl (the code's commit and each bench JSON line or
# error), table.md and paper_memory.png (experiments/paper_memory_report.py).
set -euo pipefail
OUT=${1:-experiments/results/paper_memory}
PY=${PY:-python}
mkdir -p "$OUT"
PAPER="--compile_only --num_layers=13 --long_layer=6 --embed_dim=1024
  --num_heads=8 --head_dim=128 --mlp_dim=4096 --vocab_size=32128
  --window_length=512 --memory=128 --long_memory=8192 --increment=64
  --memory_size=65536 --dtype=bfloat16 --batch=1"
rm -f "$OUT/runs.jsonl"
ERR=$(mktemp)
trap 'rm -f "$ERR"' EXIT
CODE=$(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo +)
for T in ${TS:-4096 8192}; do
  for MODEL in melodi transformer_xl memorizing; do
    REMATS="none layer dots"
    [[ $MODEL == melodi ]] && REMATS="none window dots"
    for REMAT in $REMATS; do
      # shellcheck disable=SC2086
      line=$(JAX_PLATFORMS=cpu "$PY" -m launch.bench --model="$MODEL" \
        --remat="$REMAT" --segment_length="$T" $PAPER 2> "$ERR" | tail -1) \
        || true
      if [[ $line != "{"* ]]; then  # The failure's last stderr line.
        line=$("$PY" -c 'import json, sys; m, r, t, err = sys.argv[1:]
print(json.dumps(dict(model=m, config=dict(remat=r, segment_length=int(t)),
                      error=(err.strip().splitlines() or ["no output"])[-1])))' \
          "$MODEL" "$REMAT" "$T" "$(tail -n 3 "$ERR")")
      fi
      echo "{\"code\": \"$CODE\", \"bench\": $line}" >> "$OUT/runs.jsonl"
    done
  done
done
"$PY" -m experiments.paper_memory_report "$OUT"
