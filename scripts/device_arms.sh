#!/usr/bin/env bash
# Several training arms side by side on the one GPU of the lent machine (the workplace's `device` tool), each a
# process of its own (scripts/device_train.sh), then, optionally, the GPU row of bench/speed.py.
#
#   bash scripts/device_arms.sh BUDGET_MIN SITTING_MIN CONFIG...
#
#   BUDGET_MIN   each arm's training budget in minutes (train --max-minutes: the learning rate decays over it)
#   SITTING_MIN  minutes each arm's process may run in all (rendering its phantoms included): each arm cuts its
#                budget to write its card a quarter of a minute before (device_train.sh, train --finish-within;
#                FINISH_WITHIN=none: not), and is stopped at its last checkpoint at the end in any case
#   CONFIG       training configurations (Resources/Training/*.json), one arm each
#
# A small network on 64x64x48 patches leaves most of an H200 idle, and the data side costs about 3 ms a patch on
# one CPU core, so arms sharing the GPU train nearly as fast as one alone (the machine has 16 cores).
#
# The device call brings back at most 8 files, two folders down, 16 MiB each: what comes back in $OUT is one
# ARM.tar per arm (the run folder without checkpoint.pt when the card was written, else its checkpoint.pt,
# metrics.csv and train.log: continue it with device_train.sh or `train --resume` here; env.txt and train.log
# beside it), arms.log (each arm's exit status and the GPU's memory), and with BENCH=1 speed.md and speed.json
# (bench/speed.py --device cuda --in-memory: the machine has no SimpleITK to read a NRRD).
#
# Environment: PYTHON (default python3), WHEELS (default .whl), SITE (default /tmp/site), OUT (default
# build/device-out), BENCH (1: run the bench after the arms), BENCH_SECONDS (its time limit, default 100),
# DATA_WORKERS (processes that render each arm's phantoms; default the machine's cores shared among the arms: at
# 1.4 mm, 64 phantoms took about 200 s in one process there, most of a 5-minute sitting).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
WHEELS=${WHEELS:-.whl}
SITE=${SITE:-/tmp/site}
OUT=${OUT:-build/device-out}
BENCH=${BENCH:-0}
BENCH_SECONDS=${BENCH_SECONDS:-100}

usage="usage: bash scripts/device_arms.sh BUDGET_MIN SITTING_MIN CONFIG..."
if [ $# -lt 3 ]; then
    echo "error: expected a budget, a sitting and at least one configuration, got $# arguments; $usage" >&2
    exit 2
fi
budget=$1 sitting=$2
shift 2
declare -A seen=()
for config in "$@"; do
    name=$(basename "$config" .json)
    if [ ! -f "$config" ]; then
        echo "error: no training configuration at $config; $usage" >&2
        exit 2
    fi
    if [ -n "${seen[$name]:-}" ]; then
        echo "error: two arms named $name; $usage" >&2
        exit 2
    fi
    seen[$name]=1
done
mkdir -p "$OUT"
if [ -n "$(ls -A "$OUT")" ]; then
    echo "error: $OUT is not empty; give an empty OUT" >&2
    exit 2
fi

if compgen -G "$WHEELS/*.whl" >/dev/null; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$WHEELS"/*.whl
fi
if [ -d "$SITE" ]; then
    export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi
if [ -z "${DATA_WORKERS:-}" ]; then
    cores=$(nproc 2>/dev/null || echo 1)
    DATA_WORKERS=$((cores / $#))
    [ "$DATA_WORKERS" -ge 1 ] || DATA_WORKERS=1
fi
export DATA_WORKERS
work=$(mktemp -d)
empty="$work/no-wheels"
mkdir -p "$empty"

pids=()
names=()
for config in "$@"; do
    name=$(basename "$config" .json)
    mkdir -p "$work/$name"
    # Each arm: its own OUT, no wheels to install again (they are on PYTHONPATH already).
    OUT="$work/$name" WHEELS="$empty" PYTHON="$PYTHON" bash scripts/device_train.sh "$config" "$budget" "$sitting" \
        >"$work/$name/sitting.log" 2>&1 &
    pids+=($!)
    names+=("$name")
done

status=0
for index in "${!pids[@]}"; do
    name=${names[$index]}
    arm_status=0
    wait "${pids[$index]}" || arm_status=$?
    run="$work/$name/run"
    files=()
    if compgen -G "$run/*.json" >/dev/null; then
        files=($(cd "$work/$name" && ls run | grep -v '^checkpoint.pt$' | sed 's|^|run/|'))
    elif [ -f "$run/checkpoint.pt" ]; then
        files=(run/checkpoint.pt run/metrics.csv)
    fi
    for extra in env.txt train.log sitting.log; do
        [ -f "$work/$name/$extra" ] && files+=("$extra")
    done
    if [ ${#files[@]} -gt 0 ]; then
        tar -cf "$OUT/$name.tar" -C "$work/$name" "${files[@]}"
    fi
    iterations=$(tail -n 1 "$run/metrics.csv" 2>/dev/null | cut -d, -f1 || true)
    echo "$name: exit $arm_status, last logged iteration ${iterations:-none}, $(tail -n 1 "$work/$name/sitting.log")" \
        >>"$OUT/arms.log"
    [ "$arm_status" -eq 0 ] || status=$arm_status
done
if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,memory.total,memory.used --format=csv >>"$OUT/arms.log" 2>&1 || true
fi

if [ "$BENCH" = 1 ]; then
    # The GPU row of the pipeline's speed (the demo cards, the real pipeline, the CT made in memory).
    # (bench/speed.py puts the repository on its own path; PYTHONPATH holds the carried wheels.)
    timeout "$BENCH_SECONDS" "$PYTHON" bench/speed.py --device cuda --threads 16 \
        --configs torch --in-memory --json "$OUT/speed.json" >"$OUT/speed.md" 2>"$work/bench.err" ||
        { echo "bench: exit $? (last lines of its errors below)"; tail -n 5 "$work/bench.err"; } >>"$OUT/arms.log"
fi
rm -rf "$work"
cat "$OUT/arms.log"
exit "$status"
