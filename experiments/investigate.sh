#!/bin/bash
# The passkey investigation (README "The paper's comparisons at small scale"):
# why long-range recall fails, one variable at a time. Usage:
#   bash experiments/investigate.sh /tmp/ev  [names...]
# Each run trains launch/configs/passkey.py with held-out eval every 250 steps
# (<workdir>/eval_log.jsonl), then scores the final checkpoint with memory
# carried / reset every segment into <workdir>/eval.json.
set -e
ROOT=${1:-/tmp/ev}; shift || true
PY=.venv/bin/python
run() {  # name, config arg, extra flags...
  local name=$1 arg=$2; shift 2
  local dir=$ROOT/$name
  $PY -m launch.train --config=launch/configs/passkey.py:$arg --workdir=$dir "$@"
  $PY -m launch.eval --config=launch/configs/passkey.py:$arg --workdir=$dir \
      --memory_modes=carried,reset_segment --output=$dir/eval.json "$@"
}
want() { [ -z "$NAMES" ] || [[ " $NAMES " == *" $1 "* ]]; }
NAMES="$*"
# 1. Gap 400 > T = 256: no recall has its source in the same segment, so no
#    gradient ever asks memory to keep the key (memory crosses segments
#    under stop_gradient). Same model, same tokens, T = 1024.
want sl400_T256 && run sl400_T256 melodi_sl,400
want sl400_T1024 && run sl400_T1024 melodi_sl,400 \
    --config.model.segment_length=1024 --config.batch_size=2
# 2. Learning rate: MELODI short-only at gap 40, the schedule's 0.01 vs 0.002.
want s40_lr01 && run s40_lr01 melodi_s,40
want s40_lr002 && run s40_lr002 melodi_s,40 --config.optimizer.max_lr=0.002 \
    --config.optimizer.min_lr=0.0002
want xl40_lr01 && run xl40_lr01 xl,40
