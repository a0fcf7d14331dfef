#!/usr/bin/env bash
# Train the two DEMO networks on synthetic phantoms (CPU), bundle them, and evaluate them on held-out phantoms.
#
#   bash scripts/train_demo.sh            # about 4 h on 2 CPU cores (training 60 + 37 + 25 + 40 + 45 min, data, classifier, evaluation)
#
# Three phases, each running both stages in parallel, one CPU thread each, then two more for the tumor stage:
#   1. Resources/Training/demo-{liver,tumor}.json: phantom seeds 1000-1059 for training, 2000-2003 for validation,
#      48x48x32 patches, 60 min budget;
#   2. Resources/Training/demo-{liver,tumor}-resume.json (iterations 20000, max_minutes 97): resumed for 37 more
#      minutes (the time-aware cosine schedule restarts at a lower learning rate and decays again);
#   3. Resources/Training/demo-{liver,tumor}-finetune.json: resumed with 64x64x48 patches (more context) until
#      122 min in all;
#   4. Resources/Training/demo-tumor-small-lesions.json: the tumor weights of phase 3 fine-tuned (--init-from) for
#      40 min with lesion-balanced sampling (small lesions; docs/small-lesions.md);
#   5. Resources/Training/demo-tumor-wall-lesions.json: those fine-tuned for 45 min more on liver masks grown by
#      0-8 mm and phantoms with a lesion against the body-wall muscle (issue 12; docs/trustworthy-numbers-pipeline.md).
# Then the tumor card's lesion classifier (docs/small-lesions.md section 7): the tuning phantoms 2004-2063 are
# segmented with the new cards and every floor off (about 10 min), and a logistic model over each tumor component's
# features, fitted on them, goes into the tumor card with its score floor 0.3 (instead of a confidence floor).
# Their weights and filled cards are copied to Resources/Models/, the cards get the inference and post-processing
# chosen on the tuning phantoms 2004-2063 (both stages in sliding windows the size of the last phase's training
# patches, overlap 0.25, no test-time mirroring; tumor lesions >= 0.2 ml), and held-out phantoms
# 3000-3039 are segmented by the real pipeline and scored, writing Resources/Models/demo-evaluation.md and .csv.
#
# Environment: PYTHON (default .venv/bin/python), WORK (default build/demo-train), SEEDS (default 3000:3040),
# TUNING (the classifier's phantoms, default 2004:2064), JOBS (parallel evaluation processes, default 2), CONFIGS (folder of the eight demo-*.json configs, default
# Resources/Training), MODELS (where the weights, cards and evaluation go, default Resources/Models). The last two
# let Testing/test_train_demo_script.py run this very script on tiny configs without touching the bundled weights.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
WORK=${WORK:-build/demo-train}
SEEDS=${SEEDS:-3000:3040}
TUNING=${TUNING:-2004:2064}
JOBS=${JOBS:-2}
CONFIGS=${CONFIGS:-Resources/Training}
MODELS=${MODELS:-Resources/Models}
export OMP_NUM_THREADS=1

if [ -e "$WORK/liver/checkpoint.pt" ] || [ -e "$WORK/tumor/checkpoint.pt" ]; then
    echo "error: $WORK already holds a training run; remove it or set WORK" >&2
    exit 2
fi
mkdir -p "$WORK"

# phase LABEL CONFIG_SUFFIX ARGS...: both stages in parallel with $CONFIGS/demo-STAGE{CONFIG_SUFFIX}.json.
phase() {
    local label=$1 suffix=$2
    shift 2
    echo "$label: both stages in parallel; logs in $WORK/{liver,tumor}.$label.log"
    local pids=() stage pid status=0
    for stage in liver tumor; do
        "$PYTHON" -m SmoothSegNetLib -v train --config "$CONFIGS/demo-$stage$suffix.json" -o "$WORK/$stage" \
            --progress none "$@" >"$WORK/$stage.$label.log" 2>&1 &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do
        wait "$pid" || status=$?
    done
    if [ "$status" -ne 0 ]; then
        echo "error: training ($label) failed (see $WORK/liver.$label.log and $WORK/tumor.$label.log)" >&2
        exit "$status"
    fi
}

phase train ""
phase resume "-resume" --resume
phase finetune "-finetune" --resume

# tumor_finetune LABEL FROM: the tumor stage fine-tuned with $CONFIGS/demo-tumor-LABEL.json from the weights of the
# run in $WORK/FROM (--init-from), into $WORK/tumor-LABEL.
tumor_finetune() {
    local label=$1 from=$2
    echo "$label: tumor stage fine-tuned with demo-tumor-$label.json; log in $WORK/tumor.$label.log"
    if ! "$PYTHON" -m SmoothSegNetLib -v train --config "$CONFIGS/demo-tumor-$label.json" \
        --init-from "$WORK/$from/smoothsegnet-demo-tumor.json" -o "$WORK/tumor-$label" --progress none \
        >"$WORK/tumor.$label.log" 2>&1; then
        echo "error: training ($label) failed (see $WORK/tumor.$label.log)" >&2
        exit 1
    fi
}

tumor_finetune small-lesions tumor
tumor_finetune wall-lesions tumor-small-lesions

for run in liver tumor-wall-lesions; do
    stage=${run%%-*}
    cp "$WORK/$run/smoothsegnet-demo-$stage.safetensors" "$WORK/$run/smoothsegnet-demo-$stage.json" "$MODELS/"
done
# Chosen on the tuning phantoms 2004-2063 (never the held-out ones; see the README demo-weights section): both
# stages in sliding windows of the last phase's patch size, overlap 0.25 (the networks' instance normalisation then
# sees the statistics of a training patch, not of a whole box: whole-box passes missed large lesions and cost liver
# Dice), no test-time mirroring (it did not help with windows and costs 8 passes), tumor lesions >= 0.2 ml (chosen on
# tuning phantoms 2004-2033 for the phase-4 weights: docs/small-lesions.md); the lesion classifier is added below.
for stage in liver tumor; do
    "$PYTHON" - "$MODELS/smoothsegnet-demo-$stage.json" "$CONFIGS/demo-$stage-finetune.json" <<'PY'
import json
import sys
from SmoothSegNetLib.models.card import write_card_file
path, config = sys.argv[1], json.load(open(sys.argv[2], encoding="utf-8"))
card = json.load(open(path, encoding="utf-8"))
card["inference"].update(mode="sliding", roi_size_ijk=config["patch_size_ijk"], overlap=0.25)
card["inference"].pop("mirror_axes", None)
if card["task"] == "tumor":
    card.setdefault("postprocessing", {}).update(min_lesion_ml=0.2)
write_card_file(path, card)
PY
done
# The ONNX graphs of the new weights (the torch-free CPU runtime; docs/onnx-runtime.md), hashes in the cards.
for stage in liver tumor; do
    "$PYTHON" -m SmoothSegNetLib models export "$MODELS/smoothsegnet-demo-$stage.json"
done
echo "bundled $MODELS/smoothsegnet-demo-{liver,tumor}.{json,safetensors,onnx}"

# The lesion classifier of the tumor card, fitted on the components these weights find on the tuning phantoms (every
# floor off; one record per phantom in $WORK/lesion-features, which is read instead when it is already there).
echo "classifier: tuning phantoms $TUNING segmented with every floor off; log in $WORK/classifier.log"
if ! "$PYTHON" -m SmoothSegNetLib.evaluation.lesion_features --seeds "$TUNING" --jobs "$JOBS" --threads 1 \
    --cache "$WORK/lesion-features" --liver-model "$MODELS/smoothsegnet-demo-liver.json" \
    --tumor-model "$MODELS/smoothsegnet-demo-tumor.json" >"$WORK/classifier.log" 2>&1; then
    echo "error: segmenting the tuning phantoms failed (see $WORK/classifier.log)" >&2
    exit 1
fi
"$PYTHON" -m SmoothSegNetLib.evaluation.lesion_classifier --seeds "$TUNING" --cache "$WORK/lesion-features" \
    --into-card "$MODELS/smoothsegnet-demo-tumor.json" >>"$WORK/classifier.log"

"$PYTHON" -m SmoothSegNetLib.evaluation.phantoms --seeds "$SEEDS" --jobs "$JOBS" --threads 1 \
    --liver-model "$MODELS/smoothsegnet-demo-liver.json" \
    --tumor-model "$MODELS/smoothsegnet-demo-tumor.json" \
    --markdown "$MODELS/demo-evaluation.md" --csv "$MODELS/demo-evaluation.csv" --record-in-cards
echo "wrote $MODELS/demo-evaluation.md and demo-evaluation.csv"
