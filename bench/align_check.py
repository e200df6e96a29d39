"""Injected shifts on real DPED pairs: how often each aligner recovers a known translation.

    python bench/align_check.py                # this tree against the aligner before issue 14
    python bench/align_check.py --against REV --repeats 5

Real pairs already carry an unknown residual shift s, so the truth is not known; what is known
is how far the check moves the content. From each of dped-mini's 200 real 100x100 pairs it cuts
two 98x98 windows: the DSLR window centred (rows and columns 1-98 of the patch), the phone
window moved by -d (starting at row 1 - dy, column 1 - dx). Relative to the DSLR content the
phone content then sits at s + d: a whole-pixel translation of real pixels, with no resampling
and no padding (the one-pixel frame the windows leave supplies the pixels that come into view,
so no aligner sees made-up borders). For each of the 8 non-zero d with |dx|, |dy| <= 1 an aligner
*recovers* d when its estimate on the moved pair minus its estimate on the unmoved pair (d = 0,
the same windows) is exactly d. Every aligner runs on the same windows with the extract stage's
margin: max_shift 2, crop 94 (the production window); and, to show what the window's edge costs,
max_shift 3, crop 92. Pairs whose DSLR crop is flat (luminance standard deviation below
gan.data.align.FLAT_STD) are left out: NCC, and so every aligner here, has nothing to go on.

What it measures: whether the estimate follows the content. An exhaustive search over a window
follows it exactly (moving the content by d moves every candidate's score by d), except where
its best candidate sits on or beyond the window's edge: after the move it falls outside, or one
from outside comes in. So its failures are the pairs whose best match lies at the edge, and an
aligner that does worse than it loses pairs for another reason. "at edge" counts the failures
where the estimate on the unmoved or the moved pair lies on the window's edge; "on edge", the
real pairs whose estimate lies there when aligned as extract aligns them (100x100, crop 96).
What it does not measure: whether the estimate is right in absolute terms (an aligner could
follow the content and still be off by a constant). For that, the second figure: the exact
recovery of the known shifts of 800 simulated pairs (gan.data.sample, seed 0, training pairs
0-799: the real JPEG, noise and tone differences of a simulated phone, at the production
geometry 100x100, crop 96, max_shift 2).

Speed: align_pairs on batches of 256 real pairs (dped-mini's, repeated), with one BLAS thread as
each extract worker runs it, ``--repeats`` times each, the aligners alternating; pairs/s of
each run. The reference exhaustive search is written plainly (25 calls of ``ncc``), for its
answers, not its speed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from revision import module_at  # noqa: E402 (bench/revision.py)
from gan.data import align  # noqa: E402
from gan.data.dped import decode_patch  # noqa: E402
from gan.data.sample import sample_pairs  # noqa: E402

DPED_MINI = ROOT.parent / "shared" / "dped-mini" / "iphone"
BEFORE = "018c895ea140d2deb8ac837d5f847315fcc10008"  # the tree before issue 14's aligner
INJECT = 1  # largest injected shift per axis, pixels
BATCH = 256  # pairs per align_pairs call in the speed runs, as the extract stage's chunks

# An aligner: (phone, dslr) (N, H, W, 3) uint8, max_shift, crop -> (dx, dy) int arrays.
Aligner = Callable[[np.ndarray, np.ndarray, int, int], tuple[np.ndarray, np.ndarray]]


def load_pairs(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """dped-mini's real pairs, training then test, by index: two (N, 100, 100, 3) uint8."""
    phone, dslr = [], []
    for split in ("training_data", "test_data/patches"):
        files = sorted((folder / split / "iphone").glob("*.jpg"), key=lambda p: int(p.stem))
        for file in files:
            phone.append(decode_patch(file.read_bytes()))
            dslr.append(decode_patch((folder / split / "canon" / file.name).read_bytes()))
    return np.stack(phone), np.stack(dslr)


def of_module(module) -> Aligner:
    def run(phone, dslr, max_shift, crop):
        shift = module.align_pairs(phone, dslr, max_shift, crop).shift
        return shift.dx, shift.dy
    return run


def exhaustive_reference(phone: np.ndarray, dslr: np.ndarray, max_shift: int,
                         crop: int) -> tuple[np.ndarray, np.ndarray]:
    """Every shift within +-max_shift scored by ``ncc`` (float64) on luminance, one at a time;
    the best wins (the first in row order on a tie); flat pairs get (0, 0)."""
    phone_y, dslr_y = align.luminance(phone), align.luminance(dslr)
    n, h, w = dslr_y.shape
    my, mx = (h - crop) // 2, (w - crop) // 2
    target = dslr_y[:, my:my + crop, mx:mx + crop]
    candidates = [(dx, dy) for dy in range(-max_shift, max_shift + 1)
                  for dx in range(-max_shift, max_shift + 1)]
    scores = np.stack([align.ncc(phone_y[:, my + dy:my + dy + crop, mx + dx:mx + dx + crop],
                                 target) for dx, dy in candidates], axis=1)
    scores = np.nan_to_num(scores, nan=-np.inf)
    best = np.array(candidates)[scores.argmax(axis=1)]
    best[np.isneginf(scores.max(axis=1))] = 0
    return best[:, 0], best[:, 1]


def injected(phone: np.ndarray, dslr: np.ndarray,
             d: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The check's windows of every pair, the phone content moved by d = (dx, dy)."""
    side = phone.shape[1] - 2 * INJECT
    y0, x0 = INJECT - d[1], INJECT - d[0]
    return (np.ascontiguousarray(phone[:, y0:y0 + side, x0:x0 + side]),
            np.ascontiguousarray(dslr[:, INJECT:INJECT + side, INJECT:INJECT + side]))


def not_flat(dslr: np.ndarray, max_shift: int) -> np.ndarray:
    """(N,) bool: the check's DSLR crop (unmoved windows, margin max_shift) is not flat."""
    window = injected(dslr, dslr, (0, 0))[1]
    y = align.luminance(window[:, max_shift:-max_shift, max_shift:-max_shift])
    return y.reshape(len(y), -1).std(axis=1) >= align.FLAT_STD


SHIFTS = [(dx, dy) for dy in range(-INJECT, INJECT + 1) for dx in range(-INJECT, INJECT + 1)]


def estimates(aligner: Aligner, phone: np.ndarray, dslr: np.ndarray,
              max_shift: int) -> dict[tuple[int, int], np.ndarray]:
    """The aligner's (N, 2) estimates on the check's windows, for each d in SHIFTS (0 included)."""
    crop = phone.shape[1] - 2 * INJECT - 2 * max_shift
    return {d: np.stack(aligner(*injected(phone, dslr, d), max_shift, crop), axis=1)
            for d in SHIFTS}


def recovery(found: dict[tuple[int, int], np.ndarray], keep: np.ndarray,
             max_shift: int) -> tuple[int, int, int]:
    """(recovered, cases, failures at the window's edge) over the 8 non-zero shifts and the
    pairs in ``keep``."""
    base = found[(0, 0)]
    hits = cases = edge = 0
    for d in SHIFTS:
        if d == (0, 0):
            continue
        ok = (found[d] - base == d).all(axis=1)
        at_edge = ((np.abs(base) == max_shift) | (np.abs(found[d]) == max_shift)).any(axis=1)
        hits += int((ok & keep).sum())
        cases += int(keep.sum())
        edge += int((~ok & keep & at_edge).sum())
    return hits, cases, edge


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DPED_MINI,
                        help="dped-mini's iphone folder (training_data/, test_data/patches/)")
    parser.add_argument("--against", default=BEFORE, help="the git revision of the aligner to "
                        "compare with (default: the tree before issue 14)")
    parser.add_argument("--repeats", type=int, default=3, help="speed runs per aligner")
    parser.add_argument("--simulated", type=int, default=800, help="simulated pairs to check")
    args = parser.parse_args()
    if not (args.data / "training_data").is_dir():
        raise SystemExit(f"{args.data}: no dped-mini here (expected training_data/ and "
                         "test_data/patches/); pass --data")

    phone, dslr = load_pairs(args.data)
    print(f"{len(phone)} real pairs from {args.data}; {args.simulated} simulated pairs")
    with tempfile.TemporaryDirectory() as folder:
        aligners: dict[str, Aligner] = {
            f"before ({args.against[:7]})": of_module(
                module_at(args.against, ("gan/data/align.py",), Path(folder))),
            "exhaustive NCC (reference)": exhaustive_reference,
            "this tree": of_module(align),
        }
    print("left out as flat: " + ", ".join(
        f"{int((~not_flat(dslr, s)).sum())} pairs (+-{s} window)" for s in (2, 3)))

    simulated = list(sample_pairs("train", args.simulated, seed=0))
    sim_phone = np.stack([decode_patch(p.phone_jpeg) for p in simulated])
    sim_dslr = np.stack([decode_patch(p.dslr_jpeg) for p in simulated])
    truth = np.array([(p.dx, p.dy) for p in simulated])

    print(f"\n{'aligner':30s} {'injected, +-2 window':>32s} {'injected, +-3 window':>32s} "
          f"{'simulated, exact':>17s} {'on edge':>8s}")
    found = {}
    for name, aligner in aligners.items():
        cells = []
        for max_shift in (2, 3):
            found[name, max_shift] = estimates(aligner, phone, dslr, max_shift)
            hits, cases, edge = recovery(found[name, max_shift], not_flat(dslr, max_shift),
                                         max_shift)
            cells.append(f"{hits / cases:6.1%} ({hits}/{cases}, {edge} at edge)")
        dx, dy = aligner(sim_phone, sim_dslr, 2, 96)
        exact = np.mean((dx == truth[:, 0]) & (dy == truth[:, 1]))
        dx, dy = aligner(phone, dslr, 2, 96)  # the real pairs as extract aligns them
        on_edge = int(((np.abs(dx) == 2) | (np.abs(dy) == 2)).sum())
        print(f"{name:30s} {cells[0]:>32s} {cells[1]:>32s} {exact:17.2%} {on_edge:8d}")
    print(f"{'on edge':30s} real 100x100 pairs whose estimate (max_shift 2, crop 96) is on the "
          "window's edge")
    names = list(aligners)
    for other in names[:-1]:
        same = sum(int((found[names[-1], s][d] == found[other, s][d]).all(axis=1).sum())
                   for s in (2, 3) for d in SHIFTS)
        print(f"{names[-1]} and {other}: the same estimate in {same} of "
              f"{2 * len(SHIFTS) * len(phone)} cases of the check (both windows, d = 0 included)")

    batch = np.resize(np.arange(len(phone)), BATCH)
    big_phone, big_dslr = phone[batch], dslr[batch]
    runs: dict[str, list[float]] = {name: [] for name in aligners}
    with threadpool_limits(1):
        for _ in range(args.repeats):
            for name, aligner in aligners.items():
                start = time.perf_counter()
                aligner(big_phone, big_dslr, 2, 96)
                runs[name].append(BATCH / (time.perf_counter() - start))
    print(f"\nalign_pairs speed, batches of {BATCH} real 100x100 pairs, crop 96, max_shift 2, "
          "one thread (pairs/s, each run):")
    for name, speeds in runs.items():
        print(f"{name:30s} " + "  ".join(f"{s:7,.0f}" for s in speeds))


if __name__ == "__main__":
    main()
