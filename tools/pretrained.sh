#!/usr/bin/env bash
# Regenerates the shipped model: the small-data recipe (recipes/small-data.yaml) trained with the
# pipeline's own stage commands on the DPED iPhone pairs DATA points at, scored on its test
# pairs, and published as NAME in models/pretrained/ (file, model card, sha256).
#
#     make pretrained DATA=../shared/dped-mini                 # DPED layout: PIRM pairs 0-199
#     make pretrained DATA=/data/ai-challenge-master.zip SOURCE=pirm   # the PIRM download
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
DATA=$(realpath "$DATA")
mkdir -p "$WORK"
"$PY" - "$RECIPE" "$SOURCE" "$DATA" "$WORK/params.yaml" <<'PY'
import sys, yaml
from pathlib import Path
from gan.recipe import apply_recipe, load_recipe
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
run train --params "$W/params.yaml" --data "$W/patches" --model "$W/generator.pt" \
    --checkpoint "$W/checkpoints/last.pt" --metrics "$W/train.json" --curves "$W/curves" --no-progress
run evaluate --params "$W/params.yaml" --patches "$W/patches" --raw "$W/raw/dped.zip" --model "$W/generator.pt" \
    --metrics "$W/eval.json" --per-patch "$W/eval_per_patch.csv" --out "$W/eval" --no-progress
PAIRS=$("$PY" -c "import json; d = json.load(open('$W/source.json'))['pairs']; print(d['train'], 'training and', d['test'], 'test pairs')")
run publish --model "$W/generator.pt" --name "$NAME" --train-metrics "$W/train.json" --eval-metrics "$W/eval.json" \
    --data "DPED iPhone 3GS / Canon 70D pairs ($SOURCE source, $(basename "$DATA")): $PAIRS. dped-mini is the PIRM 2018 challenge's DPED pairs 0-199: training on 0-159, testing on 160-199 (the raw 100x100 pairs, as DPED scores them)." \
    --command "make pretrained DATA=$(basename "$DATA") SOURCE=$SOURCE" \
    --summary "iPhone -> DSLR, small-data recipe on $PAIRS" --directory "$DIRECTORY"
