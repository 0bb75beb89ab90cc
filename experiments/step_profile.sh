#!/bin/bash
# Profiles of the bench-default training step (experiments/step_profile.py),
# MELODI and Transformer-XL, at the commit before the attention's bias-
# gradient change (1d42844, in a temporary git worktree) and now, and the
# leading-axis sum it works around, timed both ways. ~1.5 min on 2 idle cores.
#   bash experiments/step_profile.sh [out_dir]
# Writes <model>_before.md, <model>.md, profiles.jsonl, leading_sum.jsonl.
set -euo pipefail
OUT=$(realpath -m "${1:-experiments/results/step_profile}")
PY=${PY:-python}
# Absolute, links kept (a venv's python is a link), for the worktree too.
[[ $PY == */* ]] && PY=$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")
mkdir -p "$OUT"
rm -f "$OUT/profiles.jsonl" "$OUT/leading_sum.jsonl"
BEFORE=$(mktemp -d)
trap 'git worktree remove --force "$BEFORE"' EXIT
git worktree add -q --detach "$BEFORE" 1d42844~1
cp experiments/step_profile.py "$BEFORE/experiments/"
for MODEL in melodi transformer_xl; do
  for WHERE in before now; do
    DIR=.; NAME=$MODEL
    [[ $WHERE == before ]] && DIR=$BEFORE && NAME=${MODEL}_before
    # shellcheck disable=SC2164
    (cd "$DIR" && "$PY" -m experiments.step_profile --model="$MODEL" \
      --out="$OUT/$NAME.md" | tail -1 |
      sed "s/^{/{\"code\": \"$WHERE\", /") >> "$OUT/profiles.jsonl"
  done
done
for SHAPE in 1,4,160,192 2,4,160,192 3,4,160,192 8,4,80,96 8,4,160,192; do
  "$PY" -m experiments.step_profile --leading_sum="$SHAPE" | tail -1 >> "$OUT/leading_sum.jsonl"
done
