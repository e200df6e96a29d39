"""Training throughput: patches/s of the full GAN step at 96x96, and peak memory.

    python bench/train_bench.py                      # CPU: the committed settings
    python bench/train_bench.py --device cuda --batch 64 128 256 --steps 30

One step is what `dvc repro train` runs: G forward, D forward/backward on real and generated
patches, G backward through the VGG19 perceptual loss (conv5_4), MS-SSIM and the GAN term.
Patches are random (speed does not depend on content), written as the extract stage's arrays.
Each configuration gets warm-up steps, then timed steps; the DenseUNet and the DPED ResNet are
measured in the same run, so their ratio is fair. On CUDA the step runs in bf16 autocast with
channels_last (the trainer's settings) and peak memory is torch's max allocated.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gan.train import Dist, Trainer  # noqa: E402
from stages.train import LOSS_KEYS, MODEL_KEYS, TRAIN_KEYS, build_spec  # noqa: E402


def fake_patches(folder: Path, count: int) -> None:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for split in ("train", "test"):
        for side in ("phone", "dslr"):
            np.save(folder / f"{split}_{side}.npy",
                    rng.integers(0, 256, (count, 96, 96, 3), dtype=np.uint8))


def measure(kind: str, batch: int, device: str, steps: int, warmup: int, vgg: str,
            folder: Path) -> dict[str, float]:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    values = {"model": {k: params["model"][k] for k in MODEL_KEYS},
              "loss": {k: params["loss"][k] for k in LOSS_KEYS},
              "train": {k: params["train"][k] for k in TRAIN_KEYS}}
    values["model"]["generator"] = kind
    values["loss"]["vgg_weights"] = vgg
    values["train"].update(steps=10**9, batch_size=batch, device=device, val_patches=8)
    trainer = Trainer(build_spec(values, "bench"), folder, folder / "unused.pt", Dist())
    cuda = trainer.device.type == "cuda"
    for _ in range(warmup):
        trainer.optimize()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    for _ in range(steps):
        trainer.optimize()
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    peak = (torch.cuda.max_memory_allocated() if cuda
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return {"patches_per_s": batch * steps / seconds, "step_s": seconds / steps,
            "peak_mb": peak / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, nargs="+", default=[8])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--vgg", default="random", help="random | imagenet | a path (speed is the same)")
    parser.add_argument("--generators", nargs="+", default=["dense_unet", "dped_resnet"])
    args = parser.parse_args()
    name = torch.cuda.get_device_name() if args.device == "cuda" else f"{torch.get_num_threads()} CPU threads"
    print(f"machine: {name}, torch {torch.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "patches"
        fake_patches(folder, max(256, max(args.batch)))
        print(f"{'generator':12} {'batch':>5} {'patches/s':>10} {'s/step':>8} {'peak MB':>8}")
        results = {}
        for kind in args.generators:
            for batch in args.batch:
                r = measure(kind, batch, args.device, args.steps, args.warmup, args.vgg, folder)
                results[(kind, batch)] = r
                print(f"{kind:12} {batch:5d} {r['patches_per_s']:10.1f} {r['step_s']:8.3f} "
                      f"{r['peak_mb']:8.0f}", flush=True)
        if len(args.generators) == 2:
            for batch in args.batch:
                a, b = (results[(k, batch)]["patches_per_s"] for k in args.generators)
                print(f"batch {batch}: {args.generators[0]} trains {a / b:.2f}x as fast as "
                      f"{args.generators[1]}")
    print("(peak memory on the CPU is the process's max RSS so far, so it only grows down the "
          "table; on CUDA it is torch's max allocated per configuration)")


if __name__ == "__main__":
    main()
