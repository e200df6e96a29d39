"""A DPED-sized archive, made here: the release's counts in the release's layout (issue 23).

DPED's host is gone and nothing can be downloaded here, yet users will run the pipeline on the
real release: 160,471 iPhone training pairs and 4,353 test pairs of 100x100 JPEGs, plus
full-size phone photos. This writes an archive of that shape, so that every stage can be
rehearsed and measured at that scale:

    python bench/dped_scale.py /tmp/dped-scale.zip                 # the release's counts
    python bench/dped_scale.py /tmp/small.zip --train 2000 --test 200 --full-size 2

The pairs come from the embedded sample's simulated camera (gan.data.sample: bundled photos as
the DSLR side; a small-sensor pipeline, noise, JPEG at quality 72-90 and a +-2 px shift as the
phone side), about 4.3 KB a patch as the release's ~5 KB. Each pair depends only on (seed,
split, index), and the zip has fixed member dates, so the archive is the same bytes for a seed
whatever the number of workers. Worker processes build ranges of pairs; the parent writes the
zip in index order (stored: JPEGs do not compress). Full-size photos are the sample's test
scenes resized to the iPhone 3GS's 2048x1536 and taken through the same camera.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gan.data.sample import (TEST_PHOTOS, Shot, bundled_photo, jpeg_bytes, phone_profile,  # noqa: E402
                             sample_pairs, simulate_phone)
from gan.fsio import atomic_path  # noqa: E402

RELEASE_TRAIN = 160_471  # DPED iPhone's training pairs (reference/DPED.md)
RELEASE_TEST = 4_353  # and its test pairs
FULL_SIZE = (2048, 1536)  # the iPhone 3GS's photos, width x height
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
CHUNK = 400  # pairs per task: ~3.4 MB of JPEGs back through the pipe


def _pairs_task(args: tuple[str, int, int, int]) -> list[tuple[int, bytes, bytes]]:
    split, start, count, seed = args
    return [(p.index, p.phone_jpeg, p.dslr_jpeg) for p in sample_pairs(split, count, seed, start)]


def _full_size_task(args: tuple[int, int, tuple[int, int]]) -> tuple[str, bytes]:
    """The k-th full-size photo: a test scene resized to ``size`` through the phone camera."""
    k, seed, size = args
    scene = np.asarray(Image.fromarray(bundled_photo(TEST_PHOTOS[k % len(TEST_PHOTOS)]))
                       .resize(size, Image.Resampling.LANCZOS))
    rng = np.random.default_rng([seed, 2, k])
    shot = Shot.draw(rng)
    phone = simulate_phone(scene, (0, 0), scene.shape[:2], phone_profile(seed), shot, rng)
    return f"{k}.jpg", jpeg_bytes(phone, shot.jpeg_quality)


def _store(zf: zipfile.ZipFile, name: str, payload: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
    info.compress_type = zipfile.ZIP_STORED
    info.external_attr = 0o644 << 16
    zf.writestr(info, payload)


def build(dest: Path, train: int = RELEASE_TRAIN, test: int = RELEASE_TEST, full_size: int = 10,
          seed: int = 0, workers: int = 0, phone: str = "iphone",
          size: tuple[int, int] = FULL_SIZE, progress: bool = True) -> dict[str, float]:
    """Write the archive atomically; return its figures (pairs, bytes, seconds...)."""
    workers = workers or len(os.sched_getaffinity(0))
    root = f"dped/{phone}"
    folders = {"train": f"{root}/training_data", "test": f"{root}/test_data/patches"}
    tasks = [(split, start, min(CHUNK, count - start), seed)
             for split, count in (("train", train), ("test", test))
             for start in range(0, count, CHUNK)]
    began = time.perf_counter()
    patch_bytes = done = 0
    # fork: the workers inherit the imported modules (scikit-image's photos load once each).
    with atomic_path(dest) as tmp, zipfile.ZipFile(tmp, "w") as zf, \
            multiprocessing.get_context("fork").Pool(workers) as pool:
        photos = pool.map_async(_full_size_task, [(k, seed, size) for k in range(full_size)])
        for (split, *_), pairs in zip(tasks, pool.imap(_pairs_task, tasks)):
            for index, phone_jpeg, dslr_jpeg in pairs:
                _store(zf, f"{folders[split]}/{phone}/{index}.jpg", phone_jpeg)
                _store(zf, f"{folders[split]}/canon/{index}.jpg", dslr_jpeg)
                patch_bytes += len(phone_jpeg) + len(dslr_jpeg)
            done += len(pairs)
            if progress and (done // CHUNK) % 25 == 0:
                rate = done / (time.perf_counter() - began)
                print(f"  {done:,} of {train + test:,} pairs, {rate:.0f} pairs/s", flush=True)
        for name, payload in photos.get():
            _store(zf, f"{root}/test_data/full_size_test_images/{name}", payload)
    seconds = time.perf_counter() - began
    return {"train_pairs": train, "test_pairs": test, "full_size": full_size,
            "bytes": dest.stat().st_size, "mean_patch_bytes": round(patch_bytes / max(1, 2 * done)),
            "seconds": round(seconds, 1), "pairs_per_s": round(done / seconds, 1),
            "workers": workers}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dest", type=Path, help="the zip to write (replaced atomically)")
    parser.add_argument("--train", type=int, default=RELEASE_TRAIN, help="training pairs")
    parser.add_argument("--test", type=int, default=RELEASE_TEST, help="test pairs")
    parser.add_argument("--full-size", type=int, default=10, help="full-size test photos")
    parser.add_argument("--size", default="x".join(map(str, FULL_SIZE)),
                        help="full-size photos' WIDTHxHEIGHT")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--phone", default="iphone")
    parser.add_argument("--workers", type=int, default=0, help="processes; 0 = all cores")
    args = parser.parse_args(argv)
    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        parser.error(f"--size: expected WIDTHxHEIGHT, got {args.size!r}")
    if args.train < 1 or args.test < 1 or args.full_size < 0:
        parser.error("--train and --test must be positive, --full-size not negative")
    args.dest.parent.mkdir(parents=True, exist_ok=True)
    figures = build(args.dest, args.train, args.test, args.full_size, args.seed, args.workers,
                    args.phone, (width, height))
    print(f"{args.dest}: {figures['train_pairs']:,} training and {figures['test_pairs']:,} test "
          f"pairs, {figures['full_size']} full-size photos; {figures['bytes'] / 1e9:.2f} GB, "
          f"{figures['mean_patch_bytes']:,} bytes a patch; {figures['seconds']:.0f} s "
          f"({figures['pairs_per_s']:.0f} pairs/s, {figures['workers']} workers)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
