#!/usr/bin/env bash
# Train the two DEMO networks on synthetic phantoms (CPU), bundle them, and evaluate them on held-out phantoms.
#
#   bash scripts/train_demo.sh                        # about 4 h on 2 CPU cores, in one go
#   bash scripts/train_demo.sh --stop-after STEP      # end after STEP (a run that fits the time you have) ...
#   bash scripts/train_demo.sh --resume [--stop-after STEP]   # ... and go on later from where it stopped
#
# The steps, in order, with their time on this 2-core CPU:
#   train        (60 min) Resources/Training/demo-{liver,tumor}.json, both stages in parallel, one CPU thread each:
#                phantom seeds 1000-1059 for training, 2000-2003 for validation, 48x48x32 patches;
#   resume       (37 min) demo-{liver,tumor}-resume.json (iterations 20000, max_minutes 97): resumed until 97 min in
#                all (the time-aware cosine schedule restarts at a lower learning rate and decays again);
#   finetune     (25 min) demo-{liver,tumor}-finetune.json: resumed with 64x64x48 patches (more context) until 122 min;
#   small-lesions (40 min) demo-tumor-small-lesions.json: the tumor weights of finetune fine-tuned (--init-from) with
#                lesion-balanced sampling (small lesions; docs/small-lesions.md);
#   wall-lesions (45 min) demo-tumor-wall-lesions.json: those fine-tuned on liver masks grown by 0-8 mm and phantoms
#                with a lesion against the body-wall muscle (issue 12; docs/trustworthy-numbers-pipeline.md);
#   bundle       (1 min) the liver weights of finetune and the tumor weights of wall-lesions, with their cards, copied
#                to Resources/Models/; the cards get the inference and post-processing chosen on the tuning phantoms
#                2004-2063 (sliding windows the size of the last phase's patches, overlap 0.25, no test-time
#                mirroring; tumor lesions >= 0.2 ml) and the ONNX graphs of the weights;
#   classifier   (10 min) the tumor card's lesion classifier (docs/small-lesions.md section 7): the tuning phantoms
#                segmented with the new cards and every floor off, a logistic model over each tumor component's
#                features fitted on them, into the tumor card with its score floor 0.3;
#   evaluate     (11 min) held-out phantoms 3000-3039 segmented by the real pipeline and scored:
#                Resources/Models/demo-evaluation.md and .csv, the figures recorded in the cards.
# Each finished step leaves a mark in $WORK/done/. Stopped by --stop-after, by Ctrl-C or by a kill (SIGTERM), the
# training processes end at their last checkpoint (every 50 iterations); --resume skips the finished steps and goes
# on with the interrupted one from its checkpoint (the schedule follows wall time, so a run resumed mid-step is not
# bit-identical to one in one go).
#
# Environment: PYTHON (default .venv/bin/python), WORK (default build/demo-train), SEEDS (default 3000:3040),
# TUNING (the classifier's phantoms, default 2004:2064), JOBS (parallel evaluation processes, default 2), CONFIGS
# (folder of the eight demo-*.json configs, default Resources/Training), MODELS (where the weights, cards and
# evaluation go, default Resources/Models). The last two let Testing/test_train_demo_script.py run this very script
# on tiny configs without touching the bundled weights.
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
STEPS="train resume finetune small-lesions wall-lesions bundle classifier evaluate"
USAGE="usage: bash scripts/train_demo.sh [--resume] [--stop-after STEP]  (STEP: ${STEPS// /, })"

RESUME=0
STOP_AFTER=
while [ $# -gt 0 ]; do
    case $1 in
    --resume) RESUME=1 ;;
    --stop-after)
        STOP_AFTER=${2:-}
        if [ -z "$STOP_AFTER" ] || [[ " $STEPS " != *" $STOP_AFTER "* ]]; then
            echo "error: --stop-after needs one of the steps ${STEPS// /, }; got '${STOP_AFTER}'" >&2
            exit 2
        fi
        shift
        ;;
    -h | --help)
        echo "$USAGE"
        exit 0
        ;;
    *)
        echo "error: unknown argument '$1'; $USAGE" >&2
        exit 2
        ;;
    esac
    shift
done

if [ -e "$WORK/done" ] || [ -e "$WORK/liver/checkpoint.pt" ] || [ -e "$WORK/tumor/checkpoint.pt" ]; then
    if [ "$RESUME" -eq 0 ]; then
        echo "error: $WORK already holds a training run; continue it with --resume, or remove it or set WORK" >&2
        exit 2
    fi
elif [ "$RESUME" -eq 1 ]; then
    echo "error: --resume: $WORK holds no training run to continue; start without --resume" >&2
    exit 2
fi
mkdir -p "$WORK/done"

# done_before STEP: whether STEP finished in an earlier run; finished STEP: mark it.
done_before() { [ -e "$WORK/done/$1" ]; }
finished() { : >"$WORK/done/$1"; }
# stop_if STEP: end here when --stop-after names STEP.
stop_if() {
    if [ "$STOP_AFTER" = "$1" ]; then
        echo "stopped after $1; go on with: WORK=$WORK bash scripts/train_demo.sh --resume"
        exit 0
    fi
}

# Ctrl-C or SIGTERM: the training processes are told to stop (each ends at its last checkpoint), then the script ends.
CHILDREN=()
interrupted() {
    trap - INT TERM
    echo "interrupted: the training processes end at their last checkpoint; go on with: WORK=$WORK bash scripts/train_demo.sh --resume" >&2
    local pid
    for pid in "${CHILDREN[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    wait
    exit 130
}
trap interrupted INT TERM

# in_background LOG CMD...: run CMD (its output appended to LOG) so that Ctrl-C or SIGTERM reaches it; its status.
in_background() {
    local log=$1
    shift
    "$@" >>"$log" 2>&1 &
    CHILDREN=($!)
    local status=0
    wait "${CHILDREN[0]}" || status=$?
    CHILDREN=()
    return "$status"
}

# phase LABEL CONFIG_SUFFIX ARGS...: both stages in parallel with $CONFIGS/demo-STAGE{CONFIG_SUFFIX}.json (a stage
# that finished LABEL before is skipped; phase 1 interrupted goes on from its checkpoint).
phase() {
    local label=$1 suffix=$2
    shift 2
    local stages=() stage args status=0 i
    for stage in liver tumor; do
        done_before "$stage.$label" || stages+=("$stage")
    done
    if [ ${#stages[@]} -eq 0 ]; then
        echo "$label: done before; skipped"
        return
    fi
    echo "$label: ${stages[*]} stage(s) in parallel; logs in $WORK/{liver,tumor}.$label.log"
    CHILDREN=()
    for stage in "${stages[@]}"; do
        args=("$@")
        if [ "$label" = train ] && [ -e "$WORK/$stage/checkpoint.pt" ]; then
            args+=(--resume)
        fi
        "$PYTHON" -m SmoothSegNetLib -v train --config "$CONFIGS/demo-$stage$suffix.json" -o "$WORK/$stage" \
            --progress none "${args[@]}" >>"$WORK/$stage.$label.log" 2>&1 &
        CHILDREN+=($!)
    done
    for i in "${!CHILDREN[@]}"; do
        if wait "${CHILDREN[$i]}"; then
            finished "${stages[$i]}.$label"
        else
            status=$?
        fi
    done
    CHILDREN=()
    if [ "$status" -ne 0 ]; then
        echo "error: training ($label) failed (see $WORK/liver.$label.log and $WORK/tumor.$label.log)" >&2
        exit "$status"
    fi
}

phase train ""
stop_if train
phase resume "-resume" --resume
stop_if resume
phase finetune "-finetune" --resume
stop_if finetune

# tumor_finetune LABEL FROM: the tumor stage fine-tuned with $CONFIGS/demo-tumor-LABEL.json from the weights of the
# run in $WORK/FROM (--init-from), into $WORK/tumor-LABEL (interrupted: it goes on from its checkpoint).
tumor_finetune() {
    local label=$1 from=$2
    if done_before "tumor.$label"; then
        echo "$label: done before; skipped"
        return
    fi
    local args=(--init-from "$WORK/$from/smoothsegnet-demo-tumor.json")
    if [ -e "$WORK/tumor-$label/checkpoint.pt" ]; then
        args+=(--resume)
    fi
    echo "$label: tumor stage fine-tuned with demo-tumor-$label.json; log in $WORK/tumor.$label.log"
    if ! in_background "$WORK/tumor.$label.log" "$PYTHON" -m SmoothSegNetLib -v train \
        --config "$CONFIGS/demo-tumor-$label.json" -o "$WORK/tumor-$label" --progress none "${args[@]}"; then
        echo "error: training ($label) failed (see $WORK/tumor.$label.log)" >&2
        exit 1
    fi
    finished "tumor.$label"
}

tumor_finetune small-lesions tumor
stop_if small-lesions
tumor_finetune wall-lesions tumor-small-lesions
stop_if wall-lesions

# bundle: the weights and cards copied to $MODELS, with the inference and post-processing chosen on the tuning
# phantoms 2004-2063 (never the held-out ones; see the README demo-weights section): both stages in sliding windows of
# the last phase's patch size, overlap 0.25 (the networks' instance normalisation then sees the statistics of a
# training patch, not of a whole box: whole-box passes missed large lesions and cost liver Dice), no test-time
# mirroring (it did not help with windows and costs 8 passes), tumor lesions >= 0.2 ml (chosen on tuning phantoms
# 2004-2033 for the phase-4 weights: docs/small-lesions.md), the liver scan's three best findings in the review list
# (section 9); then the ONNX graphs of the new weights (the torch-free CPU runtime; docs/onnx-runtime.md), hashes in
# the cards.
if done_before bundle; then
    echo "bundle: done before; skipped"
else
    for run in liver tumor-wall-lesions; do
        stage=${run%%-*}
        cp "$WORK/$run/smoothsegnet-demo-$stage.safetensors" "$WORK/$run/smoothsegnet-demo-$stage.json" "$MODELS/"
    done
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
    card.setdefault("postprocessing", {}).update(min_lesion_ml=0.2, candidate_scan=3)
write_card_file(path, card)
PY
        "$PYTHON" -m SmoothSegNetLib models export "$MODELS/smoothsegnet-demo-$stage.json" >/dev/null
    done
    finished bundle
    echo "bundle: $MODELS/smoothsegnet-demo-{liver,tumor}.{json,safetensors,onnx}"
fi
stop_if bundle

# classifier: the tumor card's lesion classifier, fitted on the components the new weights find on the tuning
# phantoms with every floor off (one record per phantom in $WORK/lesion-features: an interrupted step goes on from
# the phantoms it has done).
if done_before classifier; then
    echo "classifier: done before; skipped"
else
    echo "classifier: tuning phantoms $TUNING segmented with every floor off; log in $WORK/classifier.log"
    if ! in_background "$WORK/classifier.log" "$PYTHON" -m SmoothSegNetLib.evaluation.lesion_features \
        --seeds "$TUNING" --jobs "$JOBS" --threads 1 --cache "$WORK/lesion-features" \
        --liver-model "$MODELS/smoothsegnet-demo-liver.json" --tumor-model "$MODELS/smoothsegnet-demo-tumor.json"; then
        echo "error: segmenting the tuning phantoms failed (see $WORK/classifier.log)" >&2
        exit 1
    fi
    if ! in_background "$WORK/classifier.log" "$PYTHON" -m SmoothSegNetLib.evaluation.lesion_classifier \
        --seeds "$TUNING" --cache "$WORK/lesion-features" --into-card "$MODELS/smoothsegnet-demo-tumor.json"; then
        echo "error: fitting the lesion classifier failed (see $WORK/classifier.log)" >&2
        exit 1
    fi
    finished classifier
fi
stop_if classifier

# evaluate: the held-out phantoms, segmented by the real pipeline with the bundled cards.
if done_before evaluate; then
    echo "evaluate: done before; nothing left to do"
    exit 0
fi
echo "evaluate: held-out phantoms $SEEDS; log in $WORK/evaluate.log"
if ! in_background "$WORK/evaluate.log" "$PYTHON" -m SmoothSegNetLib.evaluation.phantoms --seeds "$SEEDS" \
    --jobs "$JOBS" --threads 1 --liver-model "$MODELS/smoothsegnet-demo-liver.json" \
    --tumor-model "$MODELS/smoothsegnet-demo-tumor.json" \
    --markdown "$MODELS/demo-evaluation.md" --csv "$MODELS/demo-evaluation.csv" --record-in-cards; then
    echo "error: the held-out evaluation failed (see $WORK/evaluate.log)" >&2
    exit 1
fi
finished evaluate
echo "wrote $MODELS/demo-evaluation.md and demo-evaluation.csv"
