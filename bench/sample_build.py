"""Seconds to build the sample archive (params.yaml's sizes: 2,400 + 240 pairs, seed 0), and its
sha256; with ``--against REV``, the same build by the sample module of a git revision, runs
alternating, so a change to gan/data/sample.py is timed against what it replaced.

    python bench/sample_build.py [--runs 2] [--against a2dbd6b]
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from revision import module_at  # noqa: E402 (bench/revision.py)
from gan.data import sample as current  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--against", default=None, help="a git revision to time as well")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        builders = {"this tree": current}
        if args.against:
            # gan/sample.py before the gan/ layout change
            builders[args.against] = module_at(args.against, ("gan/data/sample.py", "gan/sample.py"),
                                               Path(folder))
        for run in range(args.runs):
            for name, module in builders.items():
                out = Path(folder) / f"{run}-{len(name)}.zip"
                began = time.perf_counter()
                module.write_sample_zip(out, "iphone", 2400, 240, 0)
                seconds = time.perf_counter() - began
                digest = hashlib.sha256(out.read_bytes()).hexdigest()[:12]
                print(f"{name:12s} run {run + 1}: {seconds:6.2f} s  sha256 {digest}...")


if __name__ == "__main__":
    main()
