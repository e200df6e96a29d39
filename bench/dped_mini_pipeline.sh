#!/usr/bin/env bash
# The pipeline's own stage commands on ../shared/dped-mini (200 real DPED iPhone/Canon pairs):
# extract, train (params.yaml with train.steps=200, on the CPU), evaluate, report, into OUT.
#
#     bash bench/dped_mini_pipeline.sh [OUT]       # default OUT: /tmp/dped-mini-run
#
# Nothing in the project is touched: every input and output is passed on the command line.
set -euo pipefail
cd "$(dirname "$0")/.."
MINI=${DPED_MINI:-../shared/dped-mini}
OUT=${1:-/tmp/dped-mini-run}
[ -d "$MINI" ] || { echo "no dped-mini at $MINI (set DPED_MINI)" >&2; exit 1; }
mkdir -p "$OUT"
.venv/bin/python - "$OUT/params.yaml" <<'PY'
import sys, yaml
params = yaml.safe_load(open("params.yaml"))
params["train"]["steps"] = 200
params["evaluate"]["device"] = "cpu"
yaml.safe_dump(params, open(sys.argv[1], "w"), sort_keys=False)
PY
run() { .venv/bin/python -m stages "$@"; }
run extract --params "$OUT/params.yaml" --raw "$MINI" --out "$OUT/patches" --metrics "$OUT/extract.json" --no-progress
run train --params "$OUT/params.yaml" --data "$OUT/patches" --model "$OUT/generator.pt" \
    --checkpoint "$OUT/last.pt" --metrics "$OUT/train.json" --curves "$OUT/curves" --no-progress
run evaluate --params "$OUT/params.yaml" --patches "$OUT/patches" --raw "$MINI" --model "$OUT/generator.pt" \
    --metrics "$OUT/eval.json" --per-patch "$OUT/eval_per_patch.csv" --out "$OUT/eval" --no-progress
run report --params "$OUT/params.yaml" --eval-dir "$OUT/eval" --metrics "$OUT/eval.json" \
    --per-patch "$OUT/eval_per_patch.csv" --curves "$OUT/curves" --figures "$OUT/figures" \
    --html-out "$OUT/report.html"
