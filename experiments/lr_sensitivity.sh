#!/bin/bash
# Why MELODI short-only is sensitive to Adam's learning rate on the passkey
# task (gap 40, dot filler, digit-only loss) where Transformer-XL is not.
# Usage: bash experiments/lr_sensitivity.sh [ROOT=/tmp/lr8] [names...]
# (names: train only those runs, no probe). Trains each run with Adam
# (1,500 steps unless noted, warm-up 50, cosine to max_lr / 10, held-out
# recall every 250 steps, the last 10 checkpoints kept), then probes the
# checkpoints with experiments/lr_probe.py into
# experiments/results/lr_sensitivity/ (probe.json, probe.md, probe.png;
# FINDINGS.md reads them). About 2 hours on 2 shared CPU cores.
set -e
ROOT=${1:-/tmp/lr8}; shift || true
NAMES="$*"
PY=${PY:-.venv/bin/python}
COMMON="--config.num_steps=1500 --config.optimizer.warmup_steps=50
  --config.checkpoint_every=250 --config.keep_checkpoints=10"
run() {  # name, config arg, optimizer, max_lr, extra flags...
  local name=$1 arg=$2 opt=$3 lr=$4; shift 4
  [ -z "$NAMES" ] || [[ " $NAMES " == *" $name "* ]] || return 0
  local min_lr
  min_lr=$($PY -c "print($lr / 10)")
  $PY -m launch.train --config=launch/configs/passkey.py:$arg \
      --workdir=$ROOT/$name $COMMON --config.optimizer.name=$opt \
      --config.optimizer.max_lr=$lr --config.optimizer.min_lr=$min_lr "$@"
}
run s_adam2e-3 melodi_s,40,dots,values adam 2e-3
run s_adam5e-4 melodi_s,40,dots,values adam 5e-4
run xl_adam2e-3 xl,40,dots,values adam 2e-3
# The MELODI runs were 3,000-3,900 steps: the same two rates with a
# 3,000-step schedule (warm-up 100).
LONG="--config.num_steps=3000 --config.optimizer.warmup_steps=100"
run s_adam2e-3_3k melodi_s,40,dots,values adam 2e-3 $LONG
run s_adam5e-4_3k melodi_s,40,dots,values adam 5e-4 $LONG
# Ablations at Adam 2e-3 (1,500 steps): a one-token memory and summary
# (M = S = 1, nearly the windowed model), and the easier gap 24 (62% of the
# recalls inside their own window) that MELODI learns under Adafactor.
run s1_adam2e-3 melodi_s,40,dots,values adam 2e-3 \
    --config.model.short_term_memory_size=1 --config.model.summary_size=1
run s_gap24_adam2e-3 melodi_s,24,dots,values adam 2e-3
# The windowed model (nothing carried) under the same Adam 2e-3: how fast is
# in-window copying learnt when only the in-window recalls (37.5% at gap 40)
# teach it?
run windowed_adam2e-3 windowed,40,dots,values adam 2e-3
# Which part of the 16-token memory slows learning at 2e-3: 16 memory keys
# made by a bare linear mix (M = 16, S = 1: no norm, no summary residual),
# and Transformer-XL at the lower rate.
run s16s1_adam2e-3 melodi_s,40,dots,values adam 2e-3 \
    --config.model.short_term_memory_size=16 --config.model.summary_size=1
run xl_adam5e-4 xl,40,dots,values adam 5e-4
# Seed 1 of the M = S = 16 and M = S = 1 runs at 2e-3 (the seed sets the
# initial weights and the document order).
run s_adam2e-3_seed1 melodi_s,40,dots,values adam 2e-3 --config.seed=1
run s1_adam2e-3_seed1 melodi_s,40,dots,values adam 2e-3 --config.seed=1 \
    --config.model.short_term_memory_size=1 --config.model.summary_size=1
# Dose: M = S = 4 at 2e-3.
run s4_adam2e-3 melodi_s,40,dots,values adam 2e-3 \
    --config.model.short_term_memory_size=4 --config.model.summary_size=4
# The rate for M = S = 16, 3,000 steps: seed 1 at 5e-4, and 1e-3.
run s_adam5e-4_3k_seed1 melodi_s,40,dots,values adam 5e-4 $LONG --config.seed=1
run s_adam1e-3_3k melodi_s,40,dots,values adam 1e-3 $LONG
# The probe (every 500 steps and step 0; 32 documents for accuracy and
# gradients, 8 for the internals): probe.json, probe.png, runs/<name>.json.
[ -n "$NAMES" ] || $PY -m experiments.lr_probe --every=500 --rows=8 \
    $ROOT/s_adam2e-3_3k $ROOT/s_adam5e-4_3k $ROOT/xl_adam2e-3 \
    $ROOT/xl_adam5e-4 $ROOT/windowed_adam2e-3 $ROOT/s1_adam2e-3 \
    $ROOT/s16s1_adam2e-3 $ROOT/s_gap24_adam2e-3 \
    $ROOT/s_adam2e-3_seed1 $ROOT/s1_adam2e-3_seed1 $ROOT/s4_adam2e-3 \
    $ROOT/s_adam5e-4_3k_seed1 $ROOT/s_adam1e-3_3k
