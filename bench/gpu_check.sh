#!/usr/bin/env bash
# Issue 10's one-shot GPU check, for a session whose device tool lends a GPU (never required).
#
#   bash bench/gpu_prepare.sh                                    # here: wheels + dped-mini -> .gpu/
#   device run: command "bash bench/gpu_check.sh", carry [".gpu"], timeout_s 560
#
# Figures go to $OUT/gpu_check.txt (the device tool brings $OUT back) and to stdout:
#   1. training patches/s on CUDA, fp32 and bf16, without and with torch.compile (goal: bf16
#      >= 5,000 patches/s on an H200), bench/train_bench.py;
#   2. enhance latency of the shipped model on a 1920x1080 and a 4032x3024 photo;
#   3. a 5-minute real training run of the small-data recipe on dped-mini (bench/small_data.py),
#      scored on the 40 raw test pairs.
# Each part has its own timeout, so one that hangs does not take the others' time. A dry run
# on a CPU checks the script itself: DEVICE=cpu BATCH=2 MINUTES=0.2 bash bench/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
LOG="$OUT/gpu_check.txt"
PY=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
BATCH=${BATCH:-128}
MINUTES=${MINUTES:-5}
export PYTHONUNBUFFERED=1 DPED_MINI=${DPED_MINI:-$PWD/.gpu/dped-mini} DEVICE
log() { echo "$@" | tee -a "$LOG"; }
[ -d .gpu/wheels ] && "$PY" -m pip install -q --no-index --no-deps .gpu/wheels/*.whl 2>&1 | tail -2
log "== $(date -u +%FT%TZ) $(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>&1)"
log "== $("$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' 2>&1)"

log "== 1. training throughput (bench/train_bench.py, 96x96 patches, full GAN step)"
timeout 200 "$PY" bench/train_bench.py --device "$DEVICE" --batch "$BATCH" --precisions fp32 bf16 \
    --compile both --steps 20 --warmup 5 --quality-steps 0 2>&1 | tee -a "$LOG"

log "== 2. enhance latency (shipped model, tiled as the enhance command runs it)"
timeout 90 "$PY" - <<'PY' 2>&1 | tee -a "$LOG"
import os, time, numpy as np, torch
from gan.checkpoint import load_generator
from gan.deploy.inference import DEFAULT_OVERLAP, DEFAULT_TILE, enhance_array
from gan.deploy.pretrained import DEFAULT_MODEL, resolve_model
device = torch.device(os.environ["DEVICE"])
sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
generator = load_generator(resolve_model(DEFAULT_MODEL), device)
rng = np.random.default_rng(0)
for width, height in ((1920, 1080), (4032, 3024)):
    rgb = rng.random((height, width, 3), dtype=np.float32)
    for tile in (DEFAULT_TILE, 0):
        enhance_array(generator, rgb, device, tile, DEFAULT_OVERLAP)  # warm-up
        sync(); began = time.perf_counter()
        for _ in range(3):
            enhance_array(generator, rgb, device, tile, DEFAULT_OVERLAP)
        sync()
        print(f"{width}x{height} tile {tile or 'whole'}: {(time.perf_counter() - began) / 3:.3f} s")
PY

log "== 3. $MINUTES minutes of the small-data recipe on dped-mini ($DEVICE, batch 64)"
timeout 420 "$PY" bench/small_data.py --recipe recipes/small-data.yaml --set train.device="$DEVICE" \
    --set train.batch_size=64 --set train.lr_cosine_steps=0 --steps 1000000 --minutes "$MINUTES" \
    --eval-every 2000 --work /tmp/small_data --tag gpu5min 2>&1 | tee -a "$LOG"
log "== done $(date -u +%FT%TZ)"
