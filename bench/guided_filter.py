"""What the trainable guided output filter (model.guided_radius) costs on a 12 MP photo.

    python bench/guided_filter.py [--radius 3] [--threads 2]

Times, on a 4032x3024 RGB float32 image: the box mean as GuidedOutputFilter computes it (sums of
shifted views, rows then columns) against avg_pool2d's square window, and the whole filter
(four box means and the per-pixel arithmetic). The generator itself takes ~10 s for such a
photo on 2 cores (bench/README.md), so this is the filter's share of `enhance`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gan.networks import GuidedOutputFilter  # noqa: E402


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--radius", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    image = torch.rand(1, 3, 3024, 4032, generator=torch.Generator().manual_seed(0))
    smooth = GuidedOutputFilter(args.radius)
    r = args.radius

    def pooled() -> torch.Tensor:
        return F.avg_pool2d(F.pad(image, (r, r, r, r), mode="reflect"), 2 * r + 1, stride=1)

    difference = (smooth._box(image) - pooled()).abs().max().item()
    views = best_of(lambda: smooth._box(image), args.repeats)
    pool = best_of(pooled, args.repeats)
    whole = best_of(lambda: smooth(image), args.repeats)
    print(f"12 MP, radius {r}, {torch.get_num_threads()} threads, best of {args.repeats}:")
    print(f"  box mean, shifted views: {views:.3f} s; avg_pool2d: {pool:.3f} s "
          f"({pool / views:.2f}x; max difference {difference:.1e})")
    print(f"  the whole filter: {whole:.3f} s")


if __name__ == "__main__":
    main()
