#!/usr/bin/env bash
# One sitting of a training run on the lent GPU machine (the workplace's `device` tool), from this repository's root
# there. Its output comes back under $OUT; a later sitting (there or here on the CPU) continues it.
#
#   bash scripts/device_train.sh CONFIG BUDGET_MIN SITTING_MIN [RUN]
#
#   CONFIG       a training configuration (Resources/Training/*.json)
#   BUDGET_MIN   the run's whole wall-time budget in minutes (train --max-minutes): the learning rate decays over it,
#                summed over the sittings
#   SITTING_MIN  minutes this sitting may run, rendering the phantoms included: training is given until a quarter
#                of a minute before its end to write the card (train --finish-within; the budget is cut to fit and the
#                learning rate decays over what is left), and it is stopped with SIGINT at the end in any case, so
#                that it ends at its last checkpoint (every config.checkpoint_every iterations); give the device
#                call's timeout a minute more (installing the wheels)
#   RUN          a run folder of an earlier sitting (checkpoint.pt, metrics.csv), carried in: continued (--resume)
#
# What comes back in $OUT: run/ (checkpoint.pt, metrics.csv, best.safetensors; the card and its weights once the
# budget is spent), train.log, env.txt (Python, PyTorch, MONAI and the GPU it ran on). Exit 0 when the run finished
# or stopped at a checkpoint, 2 on bad arguments, else the training's own exit status.
#
# Before the device call, here: `bash scripts/device_wheels.sh` (MONAI and jsonschema as wheels in .whl/; the GPU
# machine has neither and cannot download), then e.g.
#   run(command="bash scripts/device_train.sh Resources/Training/demo-tumor-balanced-scratch.json 240 8 build/arm-gpu",
#       carry=[".whl", "build/arm-gpu"], timeout_s=600)
# The device has no SimpleITK: the phantoms are resampled by the SciPy path (SmoothSegNetLib/resample.py), which
# gives ITK's voxels. Environment: PYTHON (default python3), DEVICE (default cuda; the tests use cpu), WHEELS (default
# .whl), SITE (where the wheels are installed, default /tmp/site), OUT (default build/device-out), DATA_WORKERS
# (processes that render the phantoms, train --data-workers; default 1), FINISH_WITHIN (train --finish-within in
# minutes; default the sitting less a quarter of a minute; none: not given).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
DATA_WORKERS=${DATA_WORKERS:-1}
WHEELS=${WHEELS:-.whl}
SITE=${SITE:-/tmp/site}
OUT=${OUT:-build/device-out}

usage="usage: bash scripts/device_train.sh CONFIG BUDGET_MIN SITTING_MIN [RUN]"
if [ $# -lt 3 ] || [ $# -gt 4 ]; then
    echo "error: expected 3 or 4 arguments, got $#; $usage" >&2
    exit 2
fi
config=$1 budget=$2 sitting=$3 previous=${4:-}
if [ ! -f "$config" ]; then
    echo "error: no training configuration at $config; $usage" >&2
    exit 2
fi
for value in "$budget" "$sitting"; do
    if ! [[ $value =~ ^[0-9]+([.][0-9]+)?$ ]] || [[ $value =~ ^0+([.]0+)?$ ]]; then
        echo "error: BUDGET_MIN and SITTING_MIN must be positive numbers of minutes, got '$value'; $usage" >&2
        exit 2
    fi
done
if [ -n "$previous" ] && [ ! -f "$previous/checkpoint.pt" ]; then
    echo "error: $previous holds no checkpoint.pt to continue; $usage" >&2
    exit 2
fi

mkdir -p "$OUT"
if [ -e "$OUT/run" ]; then
    echo "error: $OUT/run exists already; give an empty OUT" >&2
    exit 2
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if compgen -G "$WHEELS/*.whl" >/dev/null; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$WHEELS"/*.whl
    export PYTHONPATH="$SITE:$PYTHONPATH"
fi
"$PYTHON" - "$DEVICE" >"$OUT/env.txt" <<'EOF'
import sys
import monai
import torch
device = sys.argv[1]
print(f"python {sys.version.split()[0]}, torch {torch.__version__}, monai {monai.__version__}")
if device.startswith("cuda"):
    if not torch.cuda.is_available():
        sys.exit("error: DEVICE is cuda but PyTorch sees no GPU")
    print(f"gpu {torch.cuda.get_device_name(0)}")
else:
    print(f"device {device}")
EOF
cat "$OUT/env.txt"

# A quarter of a minute of the sitting for starting Python; never under half the sitting. FINISH_WITHIN=none: no
# such cut (the sitting's SIGINT alone ends the run, at its last checkpoint).
finish=${FINISH_WITHIN:-$(awk -v s="$sitting" 'BEGIN { f = s - 0.25; if (f < s / 2) f = s / 2; printf "%.3f", f }')}
args=(train --config "$config" -o "$OUT/run" --device "$DEVICE" --max-minutes "$budget" --progress none
    --data-workers "$DATA_WORKERS")
if [ "$finish" != none ]; then
    args+=(--finish-within "$finish")
fi
if [ -n "$previous" ]; then
    cp -r "$previous" "$OUT/run"
    args+=(--resume)
fi
status=0
PYTHONUNBUFFERED=1 timeout -s INT "${sitting}m" "$PYTHON" -m SmoothSegNetLib -v "${args[@]}" >"$OUT/train.log" 2>&1 ||
    status=$?
tail -n 5 "$OUT/train.log"
if [ "$status" -eq 0 ]; then
    echo "finished: the card and its weights are in $OUT/run"
elif [ "$status" -eq 130 ] || [ "$status" -eq 124 ]; then
    if [ -f "$OUT/run/checkpoint.pt" ]; then
        echo "stopped after $sitting min at the last checkpoint: continue with RUN=$OUT/run"
        status=0
    else
        echo "stopped after $sitting min before the first checkpoint: nothing to continue" >&2
        status=130
    fi
fi
exit "$status"
