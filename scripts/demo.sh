#!/usr/bin/env bash
# The main job on the embedded demo data, end to end through the real tools:
#   set-up -> write a VOC/SBD-format data set -> prepare_voc -> build_mindrecord -> train -> eval -> predict -> export
# Everything lands under DEMO_ROOT (data) and DEMO_WORK_DIR (run outputs); the last lines say where.
#
# Environment knobs (defaults in brackets), used by the test suite to run a reduced version:
#   DEMO_ROOT [demo_data]  DEMO_WORK_DIR [work_dirs/demo]  DEMO_EPOCHS [from configs/demo.yaml]
#   DEMO_NUM_TRAIN [240]  DEMO_NUM_VAL [60]  DEMO_NUM_SBD [160]  DEMO_SKIP_SETUP [0]
# Extra arguments are passed to tools/train.py (e.g. --set train.log_interval=5).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
start=$(date +%s)

if [ "${DEMO_SKIP_SETUP:-0}" != "1" ]; then
    ./scripts/setup.sh
fi
py="${DEMO_PYTHON:-$repo/.venv/bin/python}"
root="${DEMO_ROOT:-demo_data}"
work="${DEMO_WORK_DIR:-work_dirs/demo}"
config=configs/demo.yaml
paths=(--set "data.train.mindrecord=$root/mindrecord/vocaug_train.mindrecord0"
       "data.eval.list=$root/prepared/voc_val.txt" "runtime.work_dir=$work")
epochs=()
if [ -n "${DEMO_EPOCHS:-}" ]; then epochs=(--set "train.epochs=$DEMO_EPOCHS"); fi

step() { printf '\n==> %s\n' "$*"; }

step "1/7 writing the demo data set (VOC 2012 + SBD formats) to $root/raw"
"$py" tools/make_demo_data.py --out "$root/raw" --num-train "${DEMO_NUM_TRAIN:-240}" \
    --num-val "${DEMO_NUM_VAL:-60}" --num-sbd "${DEMO_NUM_SBD:-160}"

step "2/7 preparing labels and list files"
"$py" tools/prepare_voc.py --voc-root "$root/raw/VOC2012" --sbd-root "$root/raw/benchmark_RELEASE/dataset" \
    --out "$root/prepared"

step "3/7 building the training MindRecord (2 shards, validated)"
"$py" tools/build_mindrecord.py --list "$root/prepared/vocaug_train.txt" --out "$root/mindrecord/vocaug_train.mindrecord" \
    --num-shards 2 --shuffle --num-classes 21 --overwrite

step "4/7 training ($config)"
rm -rf "$work"
"$py" tools/train.py --config "$config" "${paths[@]}" "${epochs[@]}" "$@"
checkpoint="$work/$(cat "$work/last_checkpoint")"

step "5/7 evaluating $checkpoint on $root/prepared/voc_val.txt"
"$py" tools/eval.py --config "$config" "${paths[@]}" --checkpoint "$checkpoint" \
    --out "$work/results.json" --show-dir "$work/eval_vis"

step "6/7 predicting the first val images with overlays"
head -n 4 "$root/prepared/voc_val.txt" > "$work/predict_list.txt"
"$py" tools/predict.py --config "$config" "${paths[@]}" --checkpoint "$checkpoint" \
    --input "$work/predict_list.txt" --out-dir "$work/predictions" --overlay

step "7/7 exporting to MINDIR and checking it against the framework"
"$py" tools/export.py --config "$config" "${paths[@]}" --checkpoint "$checkpoint" --format MINDIR \
    --input-size 161 161 --out "$work/export/deeplabv3_demo.mindir"

miou=$("$py" -c 'import json,sys; print(format(json.load(open(sys.argv[1]))["mIoU"], ".2f"))' "$work/results.json")
best=""  # best.ckpt exists when a periodic evaluation ran; steps 5-7 used the last checkpoint
if [ -f "$work/best.ckpt" ]; then best=$'\n'"  best periodic-eval ckpt  : $work/best.ckpt"; fi
cat <<EOF

Demo finished in $(( $(date +%s) - start )) s.
  mIoU on the demo val set : $miou
  work dir                 : $work  (config.yaml, train.log, metrics.jsonl)
  checkpoint (steps 5-7)   : $checkpoint$best
  results                  : $work/results.json
  eval overlays            : $work/eval_vis
  predictions + overlays   : $work/predictions
  exported model           : $work/export/deeplabv3_demo.mindir
EOF
