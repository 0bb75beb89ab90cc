#!/bin/bash
# melodi_hk beside the official meliad: bench default (compile + alternating
# step times, window_unroll included), then compile-only memory at the paper
# size for T = 4096, 8192, 16384 (one process per compile, under the
# paper-size lock), then the table and plot.
#   bash experiments/meliad_side_by_side.sh /tmp/meliad_src [out_dir]
# Run with the venv that has flax==0.12.8 and gin-config (PY=/tmp/mvenv/bin/python).
# Env: TS (segment lengths), LIMIT (seconds per paper-size compile, 1800),
# STAGES ("bench paper report" by default), PAPER_IMPLS (the paper stage's
# implementations, e.g. "none window dots" after a change to ours only:
# meliad's T = 16384 compile takes 45 min; the report keeps the latest
# record of each).
set -uo pipefail
MELIAD=${1:?usage: $0 MELIAD_DIR [OUT_DIR]}
OUT=${2:-experiments/results/meliad_side_by_side}
PY=${PY:-python}
LIMIT=${LIMIT:-1800}
mkdir -p "$OUT"
J="$OUT/results.jsonl"
run() { nice -n 10 "$PY" -m experiments.meliad_side_by_side "$@" --out="$J"; }

if [[ " ${STAGES:-bench paper report} " == *" bench "* ]]; then
  run --meliad_dir="$MELIAD" --rounds=7 --steps=10 --warmup=2 \
    --impls=meliad,none,none_unroll2,none_unroll4,window,window_unroll4,dots
fi

PAPER="--num_layers=13 --embed_dim=1024 --num_heads=8 --head_dim=128
  --mlp_dim=4096 --vocab_size=32128 --window_length=512 --memory=128
  --long_layer=6 --long_memory=8192 --increment=64 --dtype=bfloat16
  --batch=1 --compile_only --noverify_golden"
if [[ " ${STAGES:-bench paper report} " == *" paper "* ]]; then
  for T in ${TS:-4096 8192 16384}; do
    IMPLS=${PAPER_IMPLS:-meliad none window dots}
    # window_unroll's cost at the paper size: compile and memory, T = 4096.
    [[ $T == 4096 && -z ${PAPER_IMPLS:-} ]] && IMPLS="$IMPLS none_unroll2 none_unroll8"
    for IMPL in $IMPLS; do
      # shellcheck disable=SC2086
      flock /tmp/paper_size.lock timeout "$LIMIT" nice -n 10 "$PY" -m \
        experiments.meliad_side_by_side --meliad_dir="$MELIAD" \
        --impls=$IMPL $PAPER --segment_length="$T" --out="$J"
      rc=$?
      if [[ $rc -ne 0 ]]; then
        echo "{\"mode\": \"compile_failed\", \"impl\": \"$IMPL\", \"segment_length\": $T, \"rc\": $rc, \"limit_s\": $LIMIT}" >> "$J"
      fi
    done
  done
fi

if [[ " ${STAGES:-bench paper report} " == *" report "* ]]; then
  "$PY" -m experiments.meliad_report "$J" "$OUT"
fi
