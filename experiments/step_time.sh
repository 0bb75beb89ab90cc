#!/bin/bash
# Step time against Transformer-XL, and what each step option costs.
#   bash experiments/step_time.sh [out_dir]       # ~14 min on 2 idle cores
# 1. `launch.bench --compare` (MELODI, Transformer-XL, Memorizing C 2048 in
#    alternating rounds) at the bench default and the small size, with
#    window_unroll 1 and 4 -> compare.jsonl (each line with the code's
#    commit, "+" for uncommitted changes);
# 2. our step options (remat, window_unroll) at the small size, alternating
#    rounds, ratios to remat none -> options_small.jsonl (the bench default's
#    are in experiments/results/meliad_side_by_side, beside meliad);
# 3. the baselines' remat options (`launch.bench --remat_costs`) at both
#    sizes, alternating rounds, ratios to remat none -> baseline_remat.jsonl;
# 4. table.md and step_time.png (experiments/step_time_report.py).
# STAGES (default "compare options remat") picks stages 1-3; 4 always runs.
# Times are wall seconds: run on an otherwise idle machine.
set -euo pipefail
OUT=${1:-experiments/results/step_time}
PY=${PY:-python}
mkdir -p "$OUT"
SMALL="--num_layers=3 --embed_dim=64 --num_heads=4 --head_dim=16
  --mlp_dim=256 --window_length=64 --segment_length=256 --memory=16
  --long_layer=1 --long_memory=1024 --increment=16 --batch=8"
CODE=$(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo +)
STAGES=${STAGES:-compare options remat}
with_code() {  # The JSON line on stdin, with the code's commit added.
  tail -1 | "$PY" -c 'import json, sys
print(json.dumps({**json.loads(sys.stdin.read()), "code": sys.argv[1]}))' \
    "$CODE"
}
UNROLLS="1 4"; [[ $STAGES == *compare* ]] || UNROLLS=""
MODELS="transformer_xl memorizing"; [[ $STAGES == *remat* ]] || MODELS=""
for SIZE in "" "$SMALL"; do
  for UNROLL in $UNROLLS; do
    # shellcheck disable=SC2086
    "$PY" -m launch.bench --compare --rounds=5 --steps=10 \
      --window_unroll="$UNROLL" $SIZE | with_code >> "$OUT/compare.jsonl"
  done
  for MODEL in $MODELS; do
    # shellcheck disable=SC2086
    "$PY" -m launch.bench --remat_costs --model="$MODEL" --rounds=5 \
      --steps=10 $SIZE | with_code >> "$OUT/baseline_remat.jsonl"
  done
done
if [[ $STAGES == *options* ]]; then
  # shellcheck disable=SC2086
  "$PY" -m experiments.meliad_side_by_side $SMALL --rounds=7 --steps=10 \
    --impls=none,window,dots,none_unroll4,dots_unroll4 \
    --out="$OUT/options_small.jsonl" > /dev/null
fi
"$PY" -m experiments.step_time_report "$OUT"
