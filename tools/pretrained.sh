#!/usr/bin/env bash
# Regenerates the shipped model: the small-data recipe (recipes/small-data.yaml) trained with the
# pipeline's own stage commands on the DPED iPhone pairs DATA points at, scored on its test
# pairs, and published as NAME in models/pretrained/ (file, model card, sha256).
#
#     make pretrained DATA=../shared/dped-mini                 # DPED layout: PIRM pairs 0-199
#     make pretrained DATA=/data/ai-challenge-master.zip SOURCE=pirm   # the PIRM download
#
# ALL_PAIRS=1 (make pretrained's default; 0 here): train on the test pairs too, every pair there
# is (gan/data/all_pairs.py, after the extract stage; why not a params key: see there). The
# evaluate stage then scores pairs the model has seen, and the card says so; its quality figures
# come from CV_METRICS, a cross-validation summary (bench/small_data.py --cv), quoted as
# out-of-fold figures (publish --cv-metrics).
#
# Work files go to WORK (default /tmp/ppe-pretrained); nothing else in the project is touched
# until the last step replaces NAME.* in PRETRAINED_DIR (default models/pretrained). A stopped
# run resumes (the train stage's checkpoint is kept in WORK). RECIPE, NAME: other ones.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:?usage: tools/pretrained.sh DATA (a DPED-layout folder or archive, or the PIRM zip with SOURCE=pirm)}
SOURCE=${SOURCE:-dped}
NAME=${NAME:-iphone-dped-mini}
RECIPE=${RECIPE:-recipes/small-data.yaml}
WORK=${WORK:-/tmp/ppe-pretrained}
PY=${PYTHON:-.venv/bin/python}
DIRECTORY=${PRETRAINED_DIR:-models/pretrained}
ALL_PAIRS=${ALL_PAIRS:-0}
CV_METRICS=${CV_METRICS:-}
case $ALL_PAIRS in 0|1) ;; *) echo "ALL_PAIRS must be 0 or 1, got '$ALL_PAIRS'" >&2; exit 2;; esac
if [ -n "$CV_METRICS" ]; then
    test -f "$CV_METRICS" || { echo "CV_METRICS: $CV_METRICS is not a file" >&2; exit 2; }
    CV_METRICS=$(realpath "$CV_METRICS")
fi
if [ "$ALL_PAIRS" = 1 ] && [ -z "$CV_METRICS" ]; then
    echo "warning: ALL_PAIRS=1 without CV_METRICS: the model trains on its test pairs, and" \
         "its card will have no figure on pairs it has not seen (bench/small_data.py --cv" \
         "makes one)" >&2
fi
DATA=$(realpath "$DATA")
mkdir -p "$WORK"
"$PY" - "$RECIPE" "$SOURCE" "$DATA" "$WORK/params.yaml" <<'PY'
import sys, yaml
from pathlib import Path
from stages.recipe import apply_recipe, load_recipe
recipe, source, data, out = sys.argv[1:]
params = yaml.safe_load(open("params.yaml"))
params = apply_recipe(params, load_recipe(Path(recipe), params))
params["data"].update(source=source, archive=data, phone="iphone")
yaml.safe_dump(params, open(out, "w"), sort_keys=False)
PY
run() { "$PY" -m stages "$@"; }
W=$WORK
run download --params "$W/params.yaml" --out "$W/raw" --record "$W/source.json" --downloads "$W/downloads" --no-progress
run extract --params "$W/params.yaml" --raw "$W/raw/dped.zip" --out "$W/patches" --metrics "$W/extract.json" --no-progress
if [ "$ALL_PAIRS" = 1 ]; then
    "$PY" - "$W/patches" <<'PY'
import sys
from gan.data.all_pairs import train_on_every_pair
r = train_on_every_pair(sys.argv[1])
print(f"{sys.argv[1]}: training on all {r['rows']} kept pairs "
      f"({r['train_rows']} training + {r['test_rows']} test)")
PY
fi
run train --params "$W/params.yaml" --data "$W/patches" --model "$W/generator.pt" \
    --checkpoint "$W/checkpoints/last.pt" --metrics "$W/train.json" --curves "$W/curves" --no-progress
run evaluate --params "$W/params.yaml" --patches "$W/patches" --raw "$W/raw/dped.zip" --model "$W/generator.pt" \
    --metrics "$W/eval.json" --per-patch "$W/eval_per_patch.csv" --out "$W/eval" --no-progress
# The card's data text, counts and split all come from source.json (publish --source).
PAIRS=$("$PY" - "$W/source.json" "$ALL_PAIRS" <<'PY'
import json, sys
from gan.deploy.pretrained import pairs_phrase
print(pairs_phrase(json.load(open(sys.argv[1])), sys.argv[2] == "1"))
PY
)
FLAGS=(--source "$W/source.json" --params "$W/params.yaml")
if [ "$ALL_PAIRS" = 1 ]; then FLAGS+=(--all-pairs); fi
CV=""
if [ -n "$CV_METRICS" ]; then
    FLAGS+=(--cv-metrics "$CV_METRICS")
    CV=" CV_METRICS=$(basename "$CV_METRICS")"
fi
run publish --model "$W/generator.pt" --name "$NAME" --train-metrics "$W/train.json" --eval-metrics "$W/eval.json" \
    "${FLAGS[@]}" \
    --command "make pretrained DATA=$(basename "$DATA") SOURCE=$SOURCE ALL_PAIRS=$ALL_PAIRS$CV" \
    --summary "iPhone -> DSLR, small-data recipe on $PAIRS" --directory "$DIRECTORY"
