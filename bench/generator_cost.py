"""Cost of the two generators: parameters, multiply-adds per pixel and CPU inference speed.

    python bench/generator_cost.py              # MACs counted on 96x96 (a training patch)
    python bench/generator_cost.py --size 256

For the default Dense U-Net (the paper's generator) and the default DPED ResNet (the baseline):
parameter count, multiply-adds per pixel (gan.networks.macs_per_pixel), their ratio, and
megapixels/s of CPU inference on one 512x512 and one 1280x720 image (torch.inference_mode, all
cores; warm-up runs, then the best of the timed runs, as the machines here are shared and noisy).

DPED's ResNet takes ~15 s per 1280x720 frame on two cores, so warm-up and timed runs stop at
--budget seconds each (at least one run of each always happens): the whole script stays around
a minute on two cores and does more runs on a bigger machine.

By default glibc is told to keep freed blocks of up to 512 MB in the heap (mallopt), as the
extract stage does: each forward pass allocates the same 50-250 MB activations, and with the
default thresholds every one is mmap'ed, zero-filled by the kernel and unmapped again, which
on a 2-core VM cost 37 s of system time over three 1280x720 passes of each model and made the
Dense U-Net 2-3x slower. --default-malloc measures without it.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gan.networks import build_generator, count_parameters, macs_per_pixel  # noqa: E402
from gan.runtime import keep_freed_memory  # noqa: E402

SIZES = ((512, 512), (720, 1280))  # (height, width)


def runs(fn: object, max_runs: int, budget_s: float) -> list[float]:
    """Seconds of up to max_runs calls of fn(), stopping once budget_s is spent (>= 1 call)."""
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < max_runs and (not times or time.perf_counter() - start < budget_s):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - t0)
    return times


def megapixels_per_s(model: torch.nn.Module, height: int, width: int,
                     warmup: int, repeats: int, budget_s: float) -> tuple[float, int]:
    """(best megapixels/s over the timed runs, number of timed runs) on a (1, 3, H, W) image."""
    x = torch.rand(1, 3, height, width)
    with torch.inference_mode():
        # Warm-up: oneDNN builds its kernels for a new shape on the first call.
        runs(lambda: model(x), warmup, budget_s)
        times = runs(lambda: model(x), repeats, budget_s)
    return height * width / 1e6 / min(times), len(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=96,
                        help="side of the square input the MACs are counted on (default 96)")
    parser.add_argument("--warmup", type=int, default=2, help="warm-up runs at most (default 2)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs at most (default 3)")
    parser.add_argument("--budget", type=float, default=3.0,
                        help="seconds after which warm-up / timing stop adding runs (default 3)")
    parser.add_argument("--default-malloc", action="store_true",
                        help="leave glibc's malloc thresholds alone (see the module docstring)")
    args = parser.parse_args()

    tuned = not args.default_malloc and keep_freed_memory()

    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(0)
    print(f"machine: {os.cpu_count()} cores ({platform.processor() or platform.machine()}), "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"Python {platform.python_version()}, "
          f"malloc: {'freed blocks kept (mallopt)' if tuned else 'default'}")

    models = {kind: build_generator(kind).eval() for kind in ("dense_unet", "dped_resnet")}
    cost = {kind: macs_per_pixel(m, args.size, args.size) for kind, m in models.items()}

    print(f"\n{'generator':<12} {'params':>9} {'MACs/pixel':>11}   config")
    for kind, model in models.items():
        print(f"{kind:<12} {count_parameters(model):>9,} {cost[kind]:>11,.0f}   "
              f"{model.config_dict()}")
    ratio = cost["dense_unet"] / cost["dped_resnet"]
    print(f"MACs ratio dense_unet / dped_resnet: {ratio:.3f} (1/{1 / ratio:.1f}), "
          f"counted on {args.size}x{args.size}")

    print(f"\nCPU inference, megapixels/s (best of the timed runs; warm-up <= {args.warmup}, "
          f"timed <= {args.repeats}, budget {args.budget:g} s each)")
    print(f"{'size':<10}{'dense_unet':>13}{'dped_resnet':>13}{'speed ratio':>12}")
    for height, width in SIZES:
        speed = {}
        n_runs = {}
        for kind, model in models.items():
            speed[kind], n_runs[kind] = megapixels_per_s(
                model, height, width, args.warmup, args.repeats, args.budget)
        cells = "".join(f"{speed[k]:>9.3f} ({n_runs[k]})" for k in models)
        print(f"{width}x{height:<6}{cells} {speed['dense_unet'] / speed['dped_resnet']:>10.1f}x")
    print("(n) = timed runs; speed ratio = dense_unet MP/s / dped_resnet MP/s")


if __name__ == "__main__":
    main()
