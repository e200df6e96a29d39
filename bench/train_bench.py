"""Training throughput in fp32 and bf16, and what bf16 does to the model after the same steps.

    python bench/train_bench.py                                  # CPU: both precisions
    python bench/train_bench.py --quality-steps 300              # + longer quality check
    python bench/train_bench.py --device cuda --batch 64 256 --compile both --quality-steps 0

1. Speed: patches/s of the full GAN step at 96x96, per precision (and batch, and generator), in
   one run, so the ratios are fair. One step is what `dvc repro train` runs: G forward, D
   forward/backward on real and generated patches, G backward through the VGG19 perceptual loss
   (conv5_4), MS-SSIM and the GAN term. Random patches (speed does not depend on content),
   written as the extract stage's arrays. Each configuration gets warm-up steps, then timed
   steps. Peak memory: the process's max RSS on the CPU (it only grows down the table), torch's
   max allocated per configuration on CUDA.
2. With ``--sampler FOLDER``: the batch sampler alone (gan.data.patches.PatchPairs.sample, what
   the trainer draws each step: random rows, flips, rotations, float tensors) on the extract
   stage's arrays in FOLDER, in patches/s per batch size, with the process's anonymous and
   file-backed resident memory before and after (the sampler must keep up with a GPU: an H200
   at >= 5,000 patches/s; and its memory must not grow with the arrays).
3. With ``--step-flops``: the floating-point operations of one full training step at each
   --batch (torch.utils.flop_counter, matrix multiplications and convolutions, forward and
   backward), what README.md's "Training the paper model" projects GPU times from.
4. Quality: the committed params trained ``--quality-steps`` steps in each precision from the
   same seed on the same batches (real DPED pairs from ../shared/dped-mini when present, else
   the simulated sample), then validated in fp32 on the test pairs: the PSNR / MS-SSIM of the
   two runs and their difference.
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

from gan.config import ExtractConfig, Params  # noqa: E402
from gan.data.dped import DpedSource, find_layout  # noqa: E402
from gan.data.extract import extract  # noqa: E402
from gan.data.patches import data_fingerprint  # noqa: E402
from gan.data.sample import write_sample_zip  # noqa: E402
from gan.runtime import cpu_has_native_bf16, keep_freed_memory  # noqa: E402
from gan.train import Dist, RunSpec, Trainer  # noqa: E402

DPED_MINI = ROOT.parent / "shared" / "dped-mini" / "iphone"


def fake_patches(folder: Path, count: int) -> None:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for split in ("train", "test"):
        for side in ("phone", "dslr"):
            np.save(folder / f"{split}_{side}.npy",
                    rng.integers(0, 256, (count, 96, 96, 3), dtype=np.uint8))


def spec(data: str, **train) -> RunSpec:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    values = {name: dict(params[name]) for name in ("model", "loss", "train")}
    generator = train.pop("generator", None)
    if generator:
        values["model"]["generator"] = generator
    values["train"].update(train)
    return RunSpec.from_params(Params.from_dict(values), data)


def measure(kind: str, batch: int, device: str, precision: str, compile_: bool, steps: int,
            warmup: int, folder: Path) -> dict[str, float]:
    run = spec("bench", generator=kind, steps=10**9, batch_size=batch, device=device,
               precision=precision, compile=compile_, val_patches=8)
    trainer = Trainer(run, folder, folder / "unused.pt", Dist())
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


def resident_mb() -> dict[str, float]:
    """This process's resident memory: anonymous (its own) and file-backed (mapped files'
    pages, which the kernel may drop at any time), in MB, from /proc/self/status."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("RssAnon", "RssFile", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields


def sampler(folder: Path, batches: list[int], seconds: float) -> None:
    """The trainer's batch sampler alone on real arrays: patches/s and memory, per batch size."""
    from gan.data.patches import PatchPairs

    before = resident_mb()
    data = PatchPairs(folder, "train")
    size_gb = (data.phone.nbytes + data.dslr.nbytes) / 1e9
    print(f"sampler on {folder}: {len(data):,} training pairs, {size_gb:.1f} GB of arrays, "
          f"{torch.get_num_threads()} torch threads")
    print(f"{'batch':>5} {'patches/s':>10} {'batches':>8} {'anon MB':>8} {'file MB':>8}")
    rng = np.random.default_rng(0)
    for batch in batches:
        data.sample(rng, batch)  # warm-up
        count, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            data.sample(rng, batch)
            count += 1
        rate = batch * count / (time.perf_counter() - started)
        now = resident_mb()
        print(f"{batch:5d} {rate:10.0f} {count:8d} {now.get('RssAnon', 0):8.0f} "
              f"{now.get('RssFile', 0):8.0f}", flush=True)
    print(f"memory before opening: anon {before.get('RssAnon', 0):.0f} MB, file "
          f"{before.get('RssFile', 0):.0f} MB; peak resident (VmHWM) "
          f"{resident_mb().get('VmHWM', 0):.0f} MB")


def step_flops(batches: list[int], folder: Path) -> None:
    """FLOPs of one training step (the committed params: the paper's loss), per batch size."""
    from torch.utils.flop_counter import FlopCounterMode

    for batch in batches:
        run = spec("bench", steps=10**9, batch_size=batch, device="cpu", precision="fp32",
                   val_patches=8)
        trainer = Trainer(run, folder, folder / "unused.pt", Dist())
        trainer.optimize()  # first-step work (lazy init) is not counted
        counter = FlopCounterMode(display=False)
        with counter:
            trainer.optimize()
        total = counter.get_total_flops()
        by_module = {name: sum(ops.values()) for name, ops in counter.get_flop_counts().items()
                     if name.count(".") == 0 and name != "Global"}
        parts = ", ".join(f"{name} {flops / total:.0%}" for name, flops in
                          sorted(by_module.items(), key=lambda kv: -kv[1])[:4])
        print(f"batch {batch}: {total / 1e12:.3f} TFLOP per step, {total / batch / 1e9:.2f} GFLOP "
              f"per patch ({parts})", flush=True)


def real_patches(folder: Path) -> str:
    """Aligned patches of dped-mini (or of a small sample when it is absent); what they are."""
    if DPED_MINI.is_dir():
        source, what = DPED_MINI, "dped-mini (real DPED iPhone pairs)"
    else:
        source, what = folder.parent / "sample.zip", "the simulated sample"
        write_sample_zip(source, "iphone", train_pairs=400, test_pairs=80, seed=0)
    with DpedSource(source) as opened:
        layout = find_layout(opened.names(), "iphone")
    settings = ExtractConfig(**yaml.safe_load((ROOT / "params.yaml").read_text())["extract"])
    summary = extract(source, layout, folder, settings, workers=1)
    return f"{what}: {summary.kept} aligned pairs"


def quality(steps: int, device: str, folder: Path) -> None:
    print(f"\nquality after {steps} steps, same seed and batches, validated in fp32:")
    scores = {}
    for precision in ("fp32", "bf16"):
        run = spec(data_fingerprint(folder), steps=steps, device=device, precision=precision,
                   val_every=steps, checkpoint_every=steps, val_patches=10**6)
        trainer = Trainer(run, folder, folder.parent / f"{precision}.pt", Dist())
        started = time.perf_counter()
        result = trainer.fit()
        scores[precision] = result.validation
        print(f"  {precision}: PSNR {result.validation['psnr']:.3f} dB, MS-SSIM "
              f"{result.validation['ms_ssim']:.4f} (input {result.baseline['psnr']:.3f} dB); "
              f"{time.perf_counter() - started:.0f} s", flush=True)
    print(f"  bf16 - fp32: {scores['bf16']['psnr'] - scores['fp32']['psnr']:+.3f} dB, "
          f"MS-SSIM {scores['bf16']['ms_ssim'] - scores['fp32']['ms_ssim']:+.4f}")


def main() -> None:
    keep_freed_memory()  # as the train stage does: the same allocations every step
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, nargs="+", default=[8])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--compile", choices=["off", "on", "both"], default="off")
    parser.add_argument("--generators", nargs="+", default=["dense_unet"])
    parser.add_argument("--quality-steps", type=int, default=200,
                        help="steps of the fp32-vs-bf16 quality check (0: skip it)")
    parser.add_argument("--sampler", type=Path, metavar="FOLDER",
                        help="only time the batch sampler on the patch arrays in FOLDER (the "
                             "extract stage's output), at each --batch, --seconds each")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--step-flops", action="store_true",
                        help="only count the FLOPs of one training step at each --batch")
    args = parser.parse_args()
    if args.sampler:
        sampler(args.sampler, args.batch, args.seconds)
        return
    if args.device == "cuda":
        name = torch.cuda.get_device_name()
    else:
        name = (f"{torch.get_num_threads()} CPU threads, bf16 hardware: "
                f"{'yes' if cpu_has_native_bf16() else 'no'}")
    print(f"machine: {name}, torch {torch.__version__}")
    compiles = {"off": [False], "on": [True], "both": [False, True]}[args.compile]
    if args.step_flops:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "patches"
            fake_patches(folder, max(256, max(args.batch)))
            step_flops(args.batch, folder)
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "patches"
        fake_patches(folder, max(256, max(args.batch)))
        print(f"{'generator':12} {'batch':>5} {'precision':>9} {'compile':>7} {'patches/s':>10} "
              f"{'s/step':>8} {'peak MB':>8}")
        results = {}
        for kind in args.generators:
            for batch in args.batch:
                for compile_ in compiles:
                    for precision in args.precisions:
                        r = measure(kind, batch, args.device, precision, compile_, args.steps,
                                    args.warmup, folder)
                        results[(kind, batch, compile_, precision)] = r
                        print(f"{kind:12} {batch:5d} {precision:>9} {str(compile_):>7} "
                              f"{r['patches_per_s']:10.1f} {r['step_s']:8.3f} "
                              f"{r['peak_mb']:8.0f}", flush=True)
        base = results[(args.generators[0], args.batch[0], compiles[0], args.precisions[0])]
        for key, r in results.items():
            print(f"{' '.join(map(str, key))}: {r['patches_per_s'] / base['patches_per_s']:.2f}x "
                  f"the first row")
        if args.quality_steps > 0:
            data = Path(tmp) / "real" / "patches"
            data.parent.mkdir()
            print("\n" + real_patches(data))
            quality(args.quality_steps, args.device, data)


if __name__ == "__main__":
    main()
