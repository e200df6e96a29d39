"""The CPU's matrix-multiply throughput in fp32 and bf16: the ceiling of any bf16 training gain.

    python bench/matmul_peak.py [--size 2048] [--repeats 20]

Square matmuls of ``--size`` on torch's threads, best of ``--repeats`` after a warm-up; prints
GFLOPS per dtype and their ratio. A training step cannot speed up in bf16 by more than this
ratio (and less where it is not matmul/convolution bound).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gan.runtime import describe_cpu  # noqa: E402


def gflops(dtype: torch.dtype, size: int, repeats: int) -> float:
    a = torch.randn(size, size).to(dtype)
    b = torch.randn(size, size).to(dtype)
    torch.mm(a, b)  # warm-up: kernel selection, page faults
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    print(describe_cpu(), f"torch {torch.__version__}")
    fp32 = gflops(torch.float32, args.size, args.repeats)
    bf16 = gflops(torch.bfloat16, args.size, args.repeats)
    print(f"fp32 {fp32:.0f} GFLOPS, bf16 {bf16:.0f} GFLOPS: bf16 / fp32 {bf16 / fp32:.2f}x")


if __name__ == "__main__":
    main()
