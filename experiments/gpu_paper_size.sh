#!/bin/bash
# MELODI's training step at the paper's size on one GPU (README, Performance
# > On a GPU): tokens/s, model-FLOP utilisation (MFU), peak device memory and
# compile time, with the card's name, from `launch.bench` runs:
#   melodi_b1_none    batch 1, remat none (the paper-size launch config's)
#   xl_b1_none        Transformer-XL, same size and batch, for the ratio
#   melodi_max_none   the largest batch whose compiled step fits, remat none
#   melodi_b1_window  batch 1, remat window
#   melodi_b1_scan    batch 1, remat none, scan_layers (the launch config
#                     keeps it off for step time, measured only on CPU)
# then, while the budget lasts, at launch/bench.py's default size:
#   compare.jsonl     `launch.bench --compare` (MELODI, XL, Memorizing)
#   sbs.jsonl         meliad beside us (experiments/meliad_side_by_side),
#                     only if .meliad/ holds a meliad checkout (its
#                     `transformer/`; git-ignored, carried) and flax is there
# and at the paper size, MELODI b1 none:
#   profile.md        where the step's time goes (experiments/step_profile)
# Sizes: 13 layers, E 1024, 8x128 heads, F 4096, V 32128, W 512, T 4096,
# M = S = 128, long layer 6 with L 8192 / I 64, bfloat16. Each run is one
# process (the allocator's peak is per process) under `timeout`; runs start
# only while $BUDGET_S (570 s) allows, so the script ends inside 10 minutes,
# later runs reported as skipped. Writes $OUT/runs.jsonl (one line per run:
# the bench JSON, or its error), $OUT/table.md, $OUT/nvidia_smi.txt and the
# three files above.
#
# Once, here, in the checkout the tool `run` sends (the session's own), the
# wheels the device machine lacks (.whl/ is git-ignored; 0.4 MB):
#   bash experiments/gpu_paper_size.sh fetch
#   mkdir -p .meliad && cp -r /tmp/meliad_src/transformer .meliad/  # optional
# Then the device call, tool `run`:
#   command:   bash experiments/gpu_paper_size.sh
#   carry:     [".whl", ".meliad"]
#   timeout_s: 600
# and copy files_at/* to experiments/results/gpu_paper_size/.
# CPU smoke test of the same path at tiny sizes (MFU and memory are null):
#   SMOKE=1 OUT=/tmp/gpu_smoke PYTHON=.venv/bin/python \
#     bash experiments/gpu_paper_size.sh
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

if [[ "${1:-}" == fetch ]]; then  # Here: pure-Python wheels, no deps.
  haiku=$(grep -i '^dm-haiku==' requirements.txt)
  exec python3 -m pip download -q --no-deps --only-binary=:all: \
    --python-version 3.12 --implementation cp --platform any \
    -d .whl "$haiku" jmp==0.0.4 gin-config==0.5.0
fi

: "${OUT:?set OUT to the folder for runs.jsonl and table.md}"
mkdir -p "$OUT"
LOGS=$(mktemp -d)  # Each run's stderr; the tail of a failed one is printed.
if compgen -G ".whl/*.whl" > /dev/null; then  # dm-haiku is not installed there.
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
    --upgrade --target /tmp/melodi_site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/melodi_site${PYTHONPATH:+:$PYTHONPATH}
fi
"$PY" -c "import haiku, launch.bench" || exit 1

export PYTHONUNBUFFERED=1
# XLA's GPU allocator takes 75% of the card unless told; the budget of
# --max_batch is 95% of what it takes.
export XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.9}
# Compiles are cached across this script's runs (the max-batch search
# re-asks B = 1), not across invocations: compile_s stays a first compile.
export JAX_COMPILATION_CACHE_DIR=$LOGS/jax_cache
export JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0
if [[ -n "${SMOKE:-}" ]]; then
  export JAX_PLATFORMS=cpu
  SIZE="--num_layers=4 --embed_dim=64 --num_heads=2 --head_dim=32
    --mlp_dim=128 --vocab_size=256 --window_length=32 --segment_length=128
    --memory=8 --long_layer=1 --long_memory=64 --increment=8"
  STEPS="--steps=2 --warmup=1"; MAX_BYTES="--max_batch_bytes=40000000"
  # The meliad side-by-side at the tiny size too: at the bench default its
  # unrolled compiles alone outlast its cap on a loaded 2-core CPU.
  SBS="$(echo $SIZE) --rounds=1 --steps=2 --warmup=1"  # one line: in bash -c
  BUDGET_S=${BUDGET_S:-900}
else
  SIZE="--num_layers=13 --embed_dim=1024 --num_heads=8 --head_dim=128
    --mlp_dim=4096 --vocab_size=32128 --window_length=512
    --segment_length=4096 --memory=128 --long_layer=6 --long_memory=8192
    --increment=64"
  STEPS="--steps=10 --warmup=2"; MAX_BYTES=""
  SBS="--rounds=5 --steps=10 --warmup=2"    # at the bench default
  BUDGET_S=${BUDGET_S:-570}
fi

# bench <name> <seconds at most> <flags...>: one line of runs.jsonl.
bench() {
  local name=$1 cap=$2; shift 2
  local left=$((BUDGET_S - SECONDS - 5)) line rc
  (( cap > left )) && cap=$left
  if (( cap < 30 )); then
    echo "{\"run\": \"$name\", \"error\": \"skipped: budget spent\"}" \
      >> "$OUT/runs.jsonl"; return
  fi
  line=$(timeout -k 10 "$cap" "$PY" -m launch.bench $SIZE $STEPS \
    --dtype=bfloat16 "$@" 2> "$LOGS/$name.log" | tail -1)
  rc=$?
  if (( rc == 0 )) && [[ "$line" == "{"* ]]; then
    echo "{\"run\": \"$name\", \"bench\": $line}" >> "$OUT/runs.jsonl"
  else
    echo "== $name failed (rc $rc, limit $cap s); stderr tail:"
    tail -n 15 "$LOGS/$name.log"
    "$PY" -c 'import json, sys; name, rc, cap, err = sys.argv[1:]
print(json.dumps({"run": name, "stderr": err[-2000:], "error":
  f"timed out after {cap} s" if rc in ("124", "137") else f"exit {rc}: "
  + (err.strip().splitlines() or [""])[-1][-150:]}))' "$name" "$rc" "$cap" \
      "$(tail -n 5 "$LOGS/$name.log")" >> "$OUT/runs.jsonl"
  fi
  echo "$name done at ${SECONDS} s (rc $rc)"
}

# extra <name> <seconds at most> <command...>: run it if the budget allows,
# its stderr tail printed when it fails.
extra() {
  local name=$1 cap=$2; shift 2
  local left=$((BUDGET_S - SECONDS - 5)) rc
  (( cap > left )) && cap=$left
  if (( cap < 30 )); then echo "== $name skipped: budget spent"; return; fi
  timeout -k 10 "$cap" "$@" 2> "$LOGS/$name.log"
  rc=$?
  (( rc == 0 )) || { echo "== $name failed (rc $rc)"; tail -n 15 "$LOGS/$name.log"; }
  echo "$name done at ${SECONDS} s (rc $rc)"
}

rm -f "$OUT/runs.jsonl" "$OUT/compare.jsonl" "$OUT/sbs.jsonl" "$OUT/profile.md"
nvidia-smi > "$OUT/nvidia_smi.txt" 2>&1
bench melodi_b1_none 150 --model=melodi --remat=none --batch=1
bench xl_b1_none 90 --model=transformer_xl --remat=none --batch=1
# The search stops probing after 2/3 of its time; the rest runs the batch.
bench melodi_max_none 200 --model=melodi --remat=none --max_batch \
  --max_batch_seconds=120 $MAX_BYTES
bench melodi_b1_window 120 --model=melodi --remat=window --batch=1
bench melodi_b1_scan 120 --model=melodi --remat=none --batch=1 --scan_layers
extra compare 90 bash -c "\"$PY\" -m launch.bench --compare --rounds=3 \
  --steps=10 | tail -1 >> \"$OUT/compare.jsonl\""
if [[ -d .meliad/transformer ]]; then
  # A cache of its own, so its compile times are first compiles too.
  extra meliad 150 env JAX_COMPILATION_CACHE_DIR="$LOGS/sbs_cache" \
    bash -c "\"$PY\" -m experiments.meliad_side_by_side --meliad_dir=.meliad \
    --impls=meliad,none,window,none_unroll4 $SBS \
    --out=\"$OUT/sbs.jsonl\" > /dev/null"
fi
# shellcheck disable=SC2086
extra profile 120 "$PY" -m experiments.step_profile $SIZE --dtype=bfloat16 \
  --batch=1 --steps=3 --top=40 --out="$OUT/profile.md"
"$PY" - "$OUT/runs.jsonl" > "$OUT/table.md" <<'PYEOF'
import json, sys
runs = {r["run"]: r for r in map(json.loads, open(sys.argv[1]))}
fmt = lambda x, f: "n/a" if x is None else format(x, f)
gb = lambda x: ("n/a" if x is None else f"{x / 1e9:.1f} GB" if x >= 1e9
                else f"{x / 1e6:.1f} MB")
print("| run | card | batch | tokens/s | step | MFU | of matmul | peak memory "
      "| XLA step bytes | compile |\n|---|---|---|---|---|---|---|---|---|---|")
for name, r in runs.items():
  b = r.get("bench")
  if b is None:
    print(f"| {name} | {r['error'].replace('|', '/')} |||||||||")
    continue
  print(f"| {name} | {b['device']} | {b['batch']} | {b['tokens_per_s']:.0f} "
        f"| {b['step_s'] * 1e3:.0f} ms | {fmt(b['mfu'], '.1%')} "
        f"| {b['flop_utilisation']:.1%} | {gb(b['peak_bytes_in_use'])} of "
        f"{gb(b['bytes_limit'])} | {gb(b['step_bytes'])} "
        f"| {b['compile_s']:.0f} s |")
m, x = (runs.get(n, {}).get("bench") for n in ("melodi_b1_none", "xl_b1_none"))
if m and x:
  print(f"\nMELODI / Transformer-XL step time at batch 1: "
        f"{m['step_s'] / x['step_s']:.2f}x (FLOPs predict "
        f"{m['flops_per_step'] / x['flops_per_step']:.2f}x).")
s = (runs.get("melodi_b1_scan") or {}).get("bench")
if m and s:
  print(f"\nscan_layers: step {s['step_s'] / m['step_s']:.2f}x, compile "
        f"{s['compile_s'] / m['compile_s']:.2f}x of the unrolled layers'.")
search = (runs.get("melodi_max_none", {}).get("bench") or {}).get("max_batch")
if search:
  print(f"\nLargest batch: probes (batch, XLA bytes, fits) {search['probes']} "
        f"against {gb(search['budget_bytes'])}, {search['search_s']} s"
        f"{', stopped early' if search['stopped_early'] else ''}.")
PYEOF
cat "$OUT/table.md"
rm -rf "$LOGS"
