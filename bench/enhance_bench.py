"""Seconds and peak memory to enhance a 1280x720 and a 4032x3024 photo, per method, on this CPU.

    python bench/enhance_bench.py                     # all methods, both sizes
    python bench/enhance_bench.py --methods ours --sizes 4032x3024

Methods: ours (the shipped model, iphone-dped-mini: the Dense U-Net with its trainable guided
output filter, tiled as the enhance command runs it), ours_bf16 (the same under bf16 autocast:
`enhance --precision bf16`), ours whole (no tiling, the 720p photo only: the memory tiling
saves), unet_bf16 (params.yaml's Dense U-Net without the filter, in bf16: what the filter
costs), dped_resnet (DPED's generator, same tiling), dped_resnet_bf16 (it too under bf16
autocast: the like-for-like comparison), CLHE and NPEA. Generators other than the shipped one
are freshly initialised: their cost does not depend on the weights. The photo is a
real one (scikit-image's astronaut) resized. Each (method, size) runs in a fresh process, so its
peak RSS is its own; that includes Python, torch and the image buffers. A last row times the
whole `enhance` command on a 12 MP JPEG (decode, enhance, encode, write) with its default model.

Targets: issue 5, ours under 2 s for 1280x720 and at least 5x faster than dped_resnet, the
12 MP photo under 2 GB peak RSS; issue 13, 1280x720 at least 10x faster than dped_resnet, the
12 MP command under 12 s.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

METHODS = ("ours", "ours_bf16", "ours_whole", "unet_bf16", "dped_resnet", "dped_resnet_bf16",
           "clhe", "npea")
SIZES = ("1280x720", "4032x3024")


def photo(width: int, height: int):
    import numpy as np
    from PIL import Image
    from skimage import data

    return np.asarray(Image.fromarray(data.astronaut()).resize((width, height), Image.BICUBIC))


def enhancer(method: str):
    """(H, W, 3) uint8 -> enhanced, for one method."""
    import numpy as np

    from gan.deploy.inference import enhance_array
    from gan.networks import build_generator

    if method not in ("clhe", "npea"):
        import torch

        from gan.checkpoint import load_generator
        from gan.deploy.pretrained import DEFAULT_MODEL, resolve_model
        from gan.runtime import keep_freed_memory

        keep_freed_memory()  # as the enhance command does
        if method.startswith("ours"):
            generator = load_generator(resolve_model(DEFAULT_MODEL)).eval()
        else:
            kind = "dped_resnet" if method.startswith("dped_resnet") else "dense_unet"
            generator = build_generator(kind).eval()
        tiling = {"tile": 0} if method == "ours_whole" else {}  # else the enhance defaults
        if method.endswith("_bf16"):
            tiling["dtype"] = torch.bfloat16

        def run(image):
            return enhance_array(generator, image.astype(np.float32) / 255.0, **tiling)
        return run
    if method == "clhe":
        from gan.evaluation.baselines.clhe import clhe
        return clhe
    from gan.evaluation.baselines.npea import npea
    return npea


def one_run(method: str, width: int, height: int) -> dict:
    import torch

    image = photo(width, height)
    run = enhancer(method)
    run(image[:64, :64])  # warm-up: imports, first-call allocations
    with torch.inference_mode():
        began = time.perf_counter()
        run(image)
        seconds = time.perf_counter() - began
    return {"seconds": seconds,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def command_run(width: int, height: int) -> dict:
    """The whole `enhance` command on a JPEG with its default model (the shipped one)."""
    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        Image.fromarray(photo(width, height)).save(tmp / "photo.jpg", quality=95)
        began = time.perf_counter()
        done = subprocess.run(
            ["/usr/bin/time", "-f", "%M", sys.executable, "-m", "stages", "enhance",
             str(tmp / "photo.jpg"), "-o", str(tmp / "out"), "--device", "cpu", "--no-progress"],
            cwd=ROOT, capture_output=True, text=True)
        seconds = time.perf_counter() - began
        if done.returncode:
            raise RuntimeError(done.stdout + done.stderr)
        return {"seconds": seconds, "peak_rss_mb": int(done.stderr.strip().splitlines()[-1]) / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--sizes", nargs="+", default=list(SIZES))
    parser.add_argument("--no-command", action="store_true", help="skip the enhance command row")
    parser.add_argument("--child", nargs=3, metavar=("METHOD", "W", "H"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        method, w, h = args.child
        print(json.dumps(one_run(method, int(w), int(h))))
        return

    import torch

    print(f"machine: {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    print(f"{'method':14} {'size':>10} {'seconds':>9} {'MP/s':>7} {'peak RSS':>10}")
    results: dict[tuple[str, str], dict] = {}
    for size in args.sizes:
        w, h = (int(v) for v in size.split("x"))
        for method in args.methods:
            if method == "ours_whole" and w * h > 2_000_000:
                continue  # whole-image inference of 12 MP needs >10 GB: the point of tiling
            out = subprocess.run([sys.executable, __file__, "--child", method, str(w), str(h)],
                                 capture_output=True, text=True)
            if out.returncode:
                print(f"{method:14} {size:>10}   failed: {out.stderr.strip().splitlines()[-1]}")
                continue
            r = results[(method, size)] = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{method:14} {size:>10} {r['seconds']:9.2f} {w * h / 1e6 / r['seconds']:7.2f} "
                  f"{r['peak_rss_mb']:7.0f} MB", flush=True)
        for ours, resnet in (("ours", "dped_resnet"), ("ours_bf16", "dped_resnet"),
                             ("ours_bf16", "dped_resnet_bf16")):
            if (ours, size) in results and (resnet, size) in results:
                ratio = results[(resnet, size)]["seconds"] / results[(ours, size)]["seconds"]
                print(f"{'':14} {size:>10}   {ours} is {ratio:.1f}x faster than {resnet}")
    if not args.no_command:
        r = command_run(4032, 3024)
        print(f"{'enhance cmd':14} {'4032x3024':>10} {r['seconds']:9.2f} {'':>7} "
              f"{r['peak_rss_mb']:7.0f} MB   (JPEG in, JPEG out, process start included)")


if __name__ == "__main__":
    main()
