"""Speed and memory of the classical baselines: a 100x100 patch and a 12 MP photo.

    python bench/baselines_bench.py

Targets (issue 4): a 100x100 patch in under 20 ms and a 4032x3024 photo in under 10 s, each
method, on a 2-core machine. The input is a real photo (scikit-image's astronaut) resized, so
the histograms and local statistics are those of a photo, not of noise. Each photo-size run
happens in a fresh process, so its peak RSS is its own.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

METHODS = ("clhe", "npea")


def photo(width: int, height: int):
    import numpy as np
    from PIL import Image
    from skimage import data

    return np.asarray(Image.fromarray(data.astronaut()).resize((width, height), Image.BICUBIC))


def method(name: str):
    if name == "clhe":
        from gan.evaluation.baselines.clhe import clhe
        return clhe
    from gan.evaluation.baselines.npea import npea
    return npea


def one_run(name: str, width: int, height: int, repeats: int) -> dict:
    """Time ``name`` on one photo size in this process (best of ``repeats``)."""
    import resource

    image = photo(width, height)
    fn = method(name)
    fn(image[:64, :64])  # warm-up: imports, caches
    best = float("inf")
    for _ in range(repeats):
        began = time.perf_counter()
        fn(image)
        best = min(best, time.perf_counter() - began)
    return {"seconds": best, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs=4, metavar=("METHOD", "W", "H", "REPEATS"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        name, w, h, repeats = args.child
        print(json.dumps(one_run(name, int(w), int(h), int(repeats))))
        return
    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}")
    print(f"{'method':8} {'100x100 patch':>16} {'4032x3024 photo':>18} {'peak RSS (12 MP)':>18}")
    for name in METHODS:
        results = []
        for w, h, repeats in ((100, 100, 20), (4032, 3024, 1)):
            out = subprocess.run([sys.executable, __file__, "--child", name, str(w), str(h),
                                  str(repeats)], capture_output=True, text=True, check=True)
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        patch, big = results
        print(f"{name:8} {patch['seconds'] * 1000:13.1f} ms {big['seconds']:16.2f} s "
              f"{big['peak_rss_mb']:15.0f} MB")


if __name__ == "__main__":
    main()
