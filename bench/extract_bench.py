"""Benchmark of the extract stage: pairs/s and peak memory from a zip of 100x100 JPEG pairs.

    python bench/extract_bench.py --pairs 20000
    python bench/extract_bench.py --pairs 160471      # DPED iPhone's size

Builds a DPED-layout zip (deflated, as DPED's own zip is) from a pool of distinct pairs repeated
under new indices: the real DPED pairs of ../shared/dped-mini when present, else simulated pairs
(gan.data.sample), so decoding costs what real patches cost. Then runs the
real stage command (``python -m stages extract``) twice, once with one worker as the baseline
and once with every core, sampling the summed RSS of the stage's process tree.

Targets (issue 2): >= 1,500 pairs/s on a 2-core machine; peak RSS under 1 GB whatever the size.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

import psutil
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gan.data.sample import sample_pairs  # noqa: E402


DPED_MINI = ROOT.parent / "shared" / "dped-mini" / "iphone"


def pair_pool(pool_size: int = 512) -> tuple[str, list[tuple[bytes, bytes]]]:
    """Distinct (phone, dslr) JPEG pairs to repeat: real DPED pairs when dped-mini is here
    (their JPEGs are larger and slower to decode than the sample's), else sample pairs."""
    if DPED_MINI.is_dir():
        pool = []
        for folder in ("training_data", "test_data/patches"):
            for phone in sorted((DPED_MINI / folder / "iphone").glob("*.jpg")):
                canon = DPED_MINI / folder / "canon" / phone.name
                pool.append((phone.read_bytes(), canon.read_bytes()))
        return f"{len(pool)} real DPED pairs from {DPED_MINI}", pool
    pool = [(p.phone_jpeg, p.dslr_jpeg) for p in sample_pairs("train", pool_size, seed=1)]
    return f"{len(pool)} simulated sample pairs", pool


def build_zip(path: Path, pairs: int, pool: list[tuple[bytes, bytes]]) -> None:
    pool_size = len(pool)
    test = max(1, pairs // 40)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for split, folder, count in (("train", "training_data", pairs - test),
                                     ("test", "test_data/patches", test)):
            for i in range(count):
                phone, dslr = pool[i % pool_size]
                zf.writestr(f"dped/iphone/{folder}/iphone/{i}.jpg", phone)
                zf.writestr(f"dped/iphone/{folder}/canon/{i}.jpg", dslr)


def run_stage(zip_path: Path, work: Path, workers: int) -> dict:
    params = {"data": {"phone": "iphone"},
              "extract": {"patch": 100, "crop": 96, "max_shift": 2, "min_ncc": 0.5,
                          "subpixel": False, "workers": workers}}
    params_path = work / f"params-{workers}.yaml"
    params_path.write_text(yaml.safe_dump(params))
    metrics = work / f"extract-{workers}.json"
    cmd = [sys.executable, "-m", "stages", "extract", "--params", str(params_path), "--raw",
           str(zip_path), "--out", str(work / f"patches-{workers}"), "--metrics", str(metrics),
           "--no-progress"]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT)
    # Forked workers share the parent's pages, so summing RSS would count those twice: the total
    # is the sum of PSS (each shared page split among its sharers); the stage process's own
    # peak is reported as RSS too.
    peak = {"total": 0, "main": 0}
    done = threading.Event()

    def sample() -> None:
        root = psutil.Process(proc.pid)
        while not done.is_set():
            try:
                procs = [root, *root.children(recursive=True)]
                pss = [p.memory_full_info().pss for p in procs]
                peak["total"] = max(peak["total"], sum(pss))
                peak["main"] = max(peak["main"], root.memory_info().rss)
            except psutil.Error:
                pass
            time.sleep(1.0)  # reading smaps costs CPU the stage should have

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    code = proc.wait()
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    if code != 0:
        raise SystemExit(f"extract stage failed with exit code {code}")
    report = json.loads(metrics.read_text())
    return {"workers": report["workers"], "pairs": report["pairs_read"],
            "stage_pairs_per_s": report["pairs_per_s"], "wall_s": round(wall, 1),
            "wall_pairs_per_s": round(report["pairs_read"] / wall, 1),
            "peak_pss_all_processes_mb": round(peak["total"] / 2**20),
            "peak_rss_stage_process_mb": round(peak["main"] / 2**20)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=20000)
    parser.add_argument("--baseline-pairs", type=int, default=5000,
                        help="pairs for the one-worker baseline run (a prefix-sized zip)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where the zip and outputs go (default: a temporary folder)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        work = Path(tmp)
        print(f"machine: {os.cpu_count()} cores, "
              f"{psutil.virtual_memory().total / 2**30:.1f} GiB memory, python {sys.version.split()[0]}")
        what, pool = pair_pool()
        print(f"pairs: {what}, repeated under new indices")
        small = work / "small.zip"
        build_zip(small, args.baseline_pairs, pool)
        os.sync()
        base = run_stage(small, work, workers=1)
        print("baseline, 1 worker:", json.dumps(base))
        for out in work.glob("patches-*"):
            subprocess.run(["rm", "-rf", str(out)], check=True)

        big = work / "big.zip"
        t0 = time.perf_counter()
        build_zip(big, args.pairs, pool)
        print(f"built {big.stat().st_size / 2**20:.0f} MiB zip of {args.pairs} pairs "
              f"in {time.perf_counter() - t0:.0f} s")
        os.sync()  # the zip's write-back must not compete with the measured run
        full = run_stage(big, work, workers=0)
        print("all cores:", json.dumps(full))
        print(f"speed-up over one worker: {full['stage_pairs_per_s'] / base['stage_pairs_per_s']:.2f}x; "
              f"DPED iPhone's 160,471 pairs would take "
              f"{160471 / full['stage_pairs_per_s']:.0f} s")


if __name__ == "__main__":
    main()
