#!/bin/bash
# The passkey investigation (README "The paper's comparisons at small scale").
# Usage: bash experiments/investigate.sh /tmp/ev [names...]
# Each run trains launch/configs/passkey.py (or $CONFIG, e.g.
# experiments/long_memory_config.py) with held-out eval every 250 steps
# (<workdir>/eval_log.jsonl), then scores the final checkpoint with memory
# carried / reset every segment / long memory reset into <workdir>/eval.json.
set -e
ROOT=${1:-/tmp/ev}; shift || true
NAMES="$*"
PY=${PY:-.venv/bin/python}
source experiments/common.sh
modes() {  # reset_long only where there is a long memory
  case $1 in melodi_sl*|melodi_l*|*,melodi_sl*|*,melodi_l*)
               echo carried,reset_segment,reset_long ;;
             *) echo carried,reset_segment ;; esac
}
run() {  # name, config arg, extra flags...
  local name=$1 arg=$2; shift 2
  [ -z "$NAMES" ] || [[ " $NAMES " == *" $name "* ]] || return 0
  local dir=$ROOT/$name config=${CONFIG:-launch/configs/passkey.py}
  $PY -m launch.train --config=$config:$arg \
      --workdir=$dir "$@"
  $PY -m launch.eval --config=$config:$arg --workdir=$dir \
      --memory_modes=$(modes $arg) --output=$dir/eval.json \
      "$@"
}
# Gradients stop at segment boundaries (memory crosses them as a constant),
# so a recall whose previous mention lies in an earlier segment teaches the
# memory nothing. The cpu suite's melodi_short_long (T = 256, gaps 40-400,
# dot filler) against the same model, data and tokens per step with T = 1024:
run sl_mixed_T1024 melodi_sl,40-400,dots,values \
    --config.model.segment_length=1024 \
    --config.batch_size=2 --config.num_steps=2000 \
    --config.optimizer.warmup_steps=66 --config.checkpoint_every=500
# Word filler, fixed gap 400 > T = 256 (stopped at step 2,000 of 3,000 by
# SIGTERM in the README run): recall stays at chance.
run sl400_T256 melodi_sl,400
# Learning rate: the cpu suite's melodi_short_long (gap 160, digits-only
# loss, Adafactor max_lr 0.01) against max_lr 0.002, same everything else.
run sl160_lr002 melodi_sl,160,dots,values --config.num_steps=2000 \
    --config.optimizer.warmup_steps=66 --config.optimizer.max_lr=0.002 \
    --config.optimizer.min_lr=0.0002
# The sanity check: Transformer-XL at gap 40 (inside one window).
run xl40_values xl,40,dots,values --config.num_steps=1000 \
    --config.optimizer.warmup_steps=33
# Curriculum: MELODI S+L learns gap 40 for 1,000 steps (its own 1,000-step
# schedule), then continues from that checkpoint at gap 160 up to step 2,000
# (schedule of 2,000 steps, so the rate jumps back up to ~0.0055).
if [ -z "$NAMES" ] || [[ " $NAMES " == *" sl_curriculum "* ]]; then
  FLAGS="--config.optimizer.warmup_steps=33 --config.checkpoint_every=500"
  NAMES=sl_curriculum run sl_curriculum melodi_sl,40,dots,values \
      --config.num_steps=1000 $FLAGS
  cp "$ROOT/sl_curriculum/eval.json" "$ROOT/sl_curriculum/eval_gap40.json"
  continue_at_gap "$ROOT/sl_curriculum" 160 2000
  NAMES=sl_curriculum run sl_curriculum melodi_sl,160,dots,values \
      --config.num_steps=2000 $FLAGS
fi
# Distance inside reach: Transformer-XL at gap 100 (beyond one window,
# inside layers x W = 128), 2,000 steps.
run xl100_values xl,100,dots,values --config.num_steps=2000 \
    --config.optimizer.warmup_steps=66
# Gap 40 (inside one window) for MELODI short-only and the windowed model:
# is the long layer's gate the obstacle, and how far does in-window copying
# alone go? (MELODI S+L's gap-40 run is the curriculum's first phase; the
# README run stopped there since it learned nothing.)
run s40_values melodi_s,40,dots,values --config.num_steps=1000 \
    --config.optimizer.warmup_steps=33
run windowed40_values windowed,40,dots,values --config.num_steps=1000 \
    --config.optimizer.warmup_steps=33
# Gap 24: most recalls (62%) have their source inside the same window.
run sl24_values melodi_sl,24,dots,values --config.num_steps=1000 \
    --config.optimizer.warmup_steps=33
# The curriculums below restart the learning-rate schedule at step 1,000 by
# hand, as these README runs did; `python -m launch.compare
# --suite=curriculum` (config.data.curriculum) runs the same tasks in one
# run with one schedule.
# Curriculum 24 -> 160: MELODI S+L continues from sl24_values's checkpoint
# (1,000 steps at gap 24) at gap 160 up to step 2,000 (a 2,000-step
# schedule, so the rate jumps back up to ~0.0055 at step 1,000).
if [ -z "$NAMES" ] || [[ " $NAMES " == *" sl_curriculum24 "* ]]; then
  [ -d "$ROOT/sl24_values" ] || NAMES=sl24_values run sl24_values \
      melodi_sl,24,dots,values --config.num_steps=1000 \
      --config.optimizer.warmup_steps=33  # The checkpoint it continues.
  rm -rf "$ROOT/sl_curriculum24" && cp -r "$ROOT/sl24_values" \
      "$ROOT/sl_curriculum24"
  continue_at_gap "$ROOT/sl_curriculum24" 160 2000
  NAMES=sl_curriculum24 run sl_curriculum24 melodi_sl,160,dots,values \
      --config.num_steps=2000 --config.optimizer.warmup_steps=33
fi
# The same curriculum (1,000 steps at gap 24, then gap 160 up to 2,000) for
# the other models: curriculum <name> <model>.
curriculum() {
  local name=$1 model=$2 flags="--config.optimizer.warmup_steps=33"
  [ -z "$NAMES" ] || [[ " $NAMES " == *" $name "* ]] || return 0
  NAMES=${name}_24 run ${name}_24 $model,24,dots,values \
      --config.num_steps=1000 $flags
  rm -rf "$ROOT/$name" && cp -r "$ROOT/${name}_24" "$ROOT/$name"
  continue_at_gap "$ROOT/$name" 160 2000
  NAMES=$name run $name $model,160,dots,values --config.num_steps=2000 $flags
}
curriculum xl_curriculum24 xl
curriculum s_curriculum24 melodi_s
curriculum memorizing_curriculum24 memorizing
# Memorizing's memory layer on top (layer 1 of 2) instead of at the bottom,
# with the curriculum suite's warm-up (one run, one schedule): a copy needs
# keys that know their previous token, which layer 0's keys cannot.
run memorizing_upper_curriculum memorizing,160,dots,values \
    --config.model.memory_layer=1 --config.num_steps=2000 \
    --config.optimizer.warmup_steps=66 --config.data.curriculum.steps=1000 \
    --config.data.curriculum.synthetic.min_recall_gap=24 \
    --config.data.curriculum.synthetic.max_recall_gap=24
# MELODI S+L with the same one-run curriculum, its long-memory
# cross-attention learning its own temperature (long_memory_scale=True)
# instead of sharing its layer's: experiments/results/sl_longscale/.
CONFIG=experiments/long_memory_config.py run sl_longscale_curriculum \
    longscale,melodi_sl,160,dots,values --config.num_steps=2000 \
    --config.optimizer.warmup_steps=66 --config.data.curriculum.steps=1000 \
    --config.data.curriculum.synthetic.min_recall_gap=24 \
    --config.data.curriculum.synthetic.max_recall_gap=24
