#!/bin/bash
# Is MELODI's long-term memory used? Ablations of the sl_curriculum24 recipe
# (experiments/investigate.sh: passkey, dots filler, digits-only loss, 1,000
# steps at gap 24, then gap 160 up to step 2,000), one change each
# (experiments/long_memory_config.py):
#   mask   mask_unwritten_long_memory=True
#   lower  the long-term layer is layer 0 (the lower of 2) instead of 1
#   deep3  3 layers, the long-term layer in the middle (1)
#   base   no change (the recipe itself, for other seeds)
# Usage: [SEED=1] bash experiments/long_memory_ablations.sh /tmp/ev [variants]
# Each variant trains <root>/ablate_<v>_24 (gap 24), copies it to
# <root>/ablate_<v> and continues at gap 160 (with SEED=n: ablate_<v>_s<n>);
# both are scored with memory carried / reset every segment / long memory
# reset (<workdir>/eval.json). Then (without variant arguments, or with
# "report") it scores every mode in full (and at gap 400), writes gate
# values, recall curves and attention shares of every <root>/ablate_* run
# and of a copy of investigate.sh's sl_curriculum24
# (<root>/ablate_sl_curriculum24, which must exist: run investigate.sh's
# sl_curriculum24 into the same root first) to
# experiments/results/long_memory_ablations/.
# Each variant takes about 13 minutes of 2 CPU cores, the report about 15.
set -e
ROOT=${1:-/tmp/ev}; shift || true
VARIANTS="${*:-mask lower deep3 report}"
PY=${PY:-.venv/bin/python}
source experiments/common.sh
CONFIG=experiments/long_memory_config.py
OUT=experiments/results/long_memory_ablations
SEED=${SEED:-0}
SUFFIX=$([ "$SEED" = 0 ] || echo _s$SEED)
FLAGS="--config.optimizer.warmup_steps=33 --config.seed=$SEED"
run() {  # workdir, config arg, extra flags...
  local dir=$1 arg=$2; shift 2
  $PY -m launch.train --config=$CONFIG:$arg --workdir=$dir "$@"
  $PY -m launch.eval --config=$CONFIG:$arg --workdir=$dir \
      --memory_modes=carried,reset_segment,reset_long \
      --output=$dir/eval.json "$@"
}
ablate() {  # variant
  local v=$1 dir=$ROOT/ablate_$1$SUFFIX
  run ${dir}_24 $v,melodi_sl,24,dots,values --config.num_steps=1000 $FLAGS
  rm -rf "$dir" && cp -r "${dir}_24" "$dir"
  continue_at_gap "$dir" 160 2000
  run $dir $v,melodi_sl,160,dots,values --config.num_steps=2000 $FLAGS
  score $dir $CONFIG:$v,melodi_sl,160,dots,values
}
score() {  # workdir, config arg: each reset mode's full scores.
  local name=$(basename $1) mode
  mkdir -p $OUT/evals
  # eval.json's top level holds the first mode's, carried.
  [ -f $OUT/evals/${name}_carried.json ] || cp $1/eval.json \
      $OUT/evals/${name}_carried.json
  for mode in reset_segment reset_long; do
    [ -f $OUT/evals/${name}_$mode.json ] || $PY -m launch.eval \
        --config=$2 --workdir=$1 --memory_modes=$mode \
        --output=$OUT/evals/${name}_$mode.json
  done
  # Beyond the trained gap: recalls 400 characters (6+ windows) apart.
  [ -f $OUT/evals/${name}_gap400.json ] || $PY -m launch.eval \
      --config=$2 --workdir=$1 --memory_modes=carried,reset_long \
      --config.data.synthetic.min_recall_gap=400 \
      --output=$OUT/evals/${name}_gap400.json
}
report() {  # Gates, curves, attention shares and tables of all runs.
  local runs="" dir name v
  # launch/eval writes TensorBoard events into the workdir: score a copy of
  # investigate.sh's run, never the run itself.
  [ -d $ROOT/ablate_sl_curriculum24 ] || cp -r $ROOT/sl_curriculum24 \
      $ROOT/ablate_sl_curriculum24
  score $ROOT/ablate_sl_curriculum24 \
      launch/configs/passkey.py:melodi_sl,160,dots,values
  for dir in $ROOT/ablate_*; do
    name=$(basename $dir)
    if [[ $name != *_24 && $name != ablate_sl_* && -f $dir/eval.json ]]; then
      v=$(echo ${name#ablate_} | sed 's/_s[0-9]*$//')
      score $dir $CONFIG:$v,melodi_sl,160,dots,values
    fi
    if [[ $name != *_24 && -f $dir/eval.json ]]; then runs="$runs $dir"; fi
  done
  $PY -m experiments.analyze $runs > $OUT/analyze.txt
  $PY -m experiments.analyze --json=$OUT/analyze.json $runs > /dev/null
  $PY -m experiments.analyze --plot=$OUT/recall_curves.png $runs
  $PY -m experiments.attention_probe --json=$OUT/attention.json $runs \
      > $OUT/attention.md
  $PY -m experiments.long_memory_report $OUT
}
for v in $VARIANTS; do
  case $v in
    base|mask|lower|deep3) ablate $v ;;
    report) report ;;
    *) echo "Unknown variant $v; use base, mask, lower, deep3 or report." >&2
       exit 1 ;;
  esac
done
