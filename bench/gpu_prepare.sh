#!/usr/bin/env bash
# Here, before the GPU check: what bench/gpu_check.sh needs on the device machine and cannot
# fetch there, into .gpu/ (ignored by git; the device tool's `carry`). The device's python3
# (3.12, with torch, numpy, scipy, pandas, scikit-image, typer...) lacks simplejpeg and
# pytorch-msssim; dped-mini lives beside the checkout, which does not travel.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .gpu && mkdir -p .gpu/wheels
.venv/bin/python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 -d .gpu/wheels \
    simplejpeg pytorch-msssim
cp -r "${DPED_MINI:-../shared/dped-mini}" .gpu/dped-mini
du -sh .gpu
