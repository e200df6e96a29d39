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
#   3. DPED at full scale on that machine (issue 23): the release-sized archive built there
#      (bench/dped_scale.py: 160,471 + 4,353 pairs, on its 16 cores), the extract stage on it,
#      the batch sampler alone on the 4.4 GB arrays, then the train stage with the paper's
#      settings (random VGG19: nothing can be fetched there) for TRAIN_SECONDS, stopped, and
#      resumed for a few steps from its checkpoint;
#   4. a short real training run of the small-data recipe on dped-mini (bench/small_data.py),
#      scored on the 40 raw test pairs.
# Each part has its own timeout, so one that hangs does not take the others' time; together
# they stay under 10 minutes. A dry run on a CPU checks the script itself:
#   DEVICE=cpu BATCH=2 MINUTES=0.2 SCALE_TRAIN=2000 SCALE_TEST=200 TRAIN_SECONDS=60 CHECKPOINT_EVERY=2 \
#       RESUME_STEPS=2
#       bash bench/gpu_check.sh
# PARTS=34 runs only parts 3 and 4 (the default runs all four).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
LOG="$OUT/gpu_check.txt"
PY=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
BATCH=${BATCH:-128}
MINUTES=${MINUTES:-1.5}
SCALE_TRAIN=${SCALE_TRAIN:-160471}
SCALE_TEST=${SCALE_TEST:-4353}
TRAIN_SECONDS=${TRAIN_SECONDS:-100}
CHECKPOINT_EVERY=${CHECKPOINT_EVERY:-200}
RESUME_STEPS=${RESUME_STEPS:-100}
PARTS=${PARTS:-1234}
SCALE=${SCALE:-/tmp/dped_scale}
export PYTHONUNBUFFERED=1 DPED_MINI=${DPED_MINI:-$PWD/.gpu/dped-mini} DEVICE
log() { echo "$@" | tee -a "$LOG"; }
# measure NAME CMD...: CMD's wall time and its largest process's peak RSS (no /usr/bin/time there).
measure() {
    "$PY" -c 'import resource, subprocess, sys, time
began = time.time(); code = subprocess.call(sys.argv[2:])
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(f"{sys.argv[1]}: {time.time() - began:.1f} s wall, peak RSS {peak:.0f} MB (largest process), exit {code}")
sys.exit(code)' "$@"
}
[ -d .gpu/wheels ] && "$PY" -m pip install -q --no-index --no-deps .gpu/wheels/*.whl 2>&1 | tail -2
log "== $(date -u +%FT%TZ) $(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>&1)"
log "== $("$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' 2>&1)"

if [[ $PARTS == *1* ]]; then
log "== 1. training throughput (bench/train_bench.py, 96x96 patches, full GAN step)"
timeout 150 "$PY" bench/train_bench.py --device "$DEVICE" --batch "$BATCH" --precisions fp32 bf16 \
    --compile both --steps 20 --warmup 5 --quality-steps 0 2>&1 | tee -a "$LOG"

fi

if [[ $PARTS == *2* ]]; then
log "== 2. enhance latency (shipped model, tiled as the enhance command runs it)"
timeout 45 "$PY" - <<'PY' 2>&1 | tee -a "$LOG"
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

fi

if [[ $PARTS == *3* ]]; then
log "== 3. DPED at full scale: $SCALE_TRAIN + $SCALE_TEST pairs built, extracted, sampled, trained"
rm -rf "$SCALE" && mkdir -p "$SCALE"
measure build timeout 90 "$PY" bench/dped_scale.py "$SCALE/dped.zip" --train "$SCALE_TRAIN" --test "$SCALE_TEST" \
    --full-size 4 2>&1 | grep -v "  .* pairs/s$" | tee -a "$LOG"
"$PY" - "$SCALE/params.yaml" "$DEVICE" "$CHECKPOINT_EVERY" <<'PY'
import sys, yaml
# The paper's settings as `make paper` sets them (Makefile), with a random VGG19 (offline).
params = yaml.safe_load(open("params.yaml"))
params["data"].update(phone="iphone")
params["loss"].update(vgg_weights="random")
params["train"].update(device=sys.argv[2], batch_size=64, steps=10**6, lr_g=1e-4, lr_d=1e-4,
                       log_every=50, val_every=10**6, val_patches=1000, checkpoint_every=int(sys.argv[3]))
yaml.safe_dump(params, open(sys.argv[1], "w"), sort_keys=False)
PY
measure extract timeout 90 "$PY" -m stages.extract --params "$SCALE/params.yaml" --raw "$SCALE/dped.zip" \
    --out "$SCALE/patches" --metrics "$SCALE/extract.json" --no-progress 2>&1 | tee -a "$LOG"
du -sh "$SCALE"/dped.zip "$SCALE"/patches 2>&1 | tee -a "$LOG"
timeout 40 "$PY" bench/train_bench.py --sampler "$SCALE/patches" --batch 64 256 --seconds 8 \
    2>&1 | tee -a "$LOG"
# Stopped by the timeout (as a user's Ctrl-C or a lost machine), then resumed for RESUME_STEPS.
timeout -s INT "$TRAIN_SECONDS" "$PY" -m stages.train --params "$SCALE/params.yaml" \
    --data "$SCALE/patches" --model "$SCALE/generator.pt" --checkpoint "$SCALE/ckpt/last.pt" \
    --metrics "$SCALE/train.json" --curves "$SCALE/curves" --no-progress 2>&1 | tail -3 | tee -a "$LOG"
log "train, the last logged rows (patches_per_s: the whole step, sampling included):"
tail -4 "$SCALE/curves/losses.csv" 2>&1 | cut -c1-400 | tee -a "$LOG"
"$PY" - "$SCALE" "$RESUME_STEPS" <<'PY' 2>&1 | tee -a "$LOG"
import sys, torch, yaml
scale, more = sys.argv[1], int(sys.argv[2])
saved = torch.load(f"{scale}/ckpt/last.pt", map_location="cpu", weights_only=True)["step"]
params = yaml.safe_load(open(f"{scale}/params.yaml"))
params["train"].update(steps=saved + more, val_every=saved + more)
yaml.safe_dump(params, open(f"{scale}/params.yaml", "w"), sort_keys=False)
print(f"checkpoint at step {saved}: resuming to step {saved + more}")
PY
measure "resumed train" timeout 120 "$PY" -m stages.train --params "$SCALE/params.yaml" --data "$SCALE/patches" \
    --model "$SCALE/generator.pt" --checkpoint "$SCALE/ckpt/last.pt" --metrics "$SCALE/train.json" \
    --curves "$SCALE/curves" --no-progress --accept-worse 2>&1 | tail -4 | tee -a "$LOG"
rm -rf "$SCALE"

fi

if [[ $PARTS == *4* ]]; then
log "== 4. $MINUTES minutes of the small-data recipe on dped-mini ($DEVICE, batch 64)"
timeout 130 "$PY" bench/small_data.py --recipe recipes/small-data.yaml --set train.device="$DEVICE" \
    --set train.batch_size=64 --set train.lr_cosine_steps=0 --steps 1000000 --minutes "$MINUTES" \
    --eval-every 2000 --work /tmp/small_data --tag gpu5min 2>&1 | tee -a "$LOG"
fi
log "== done $(date -u +%FT%TZ)"
