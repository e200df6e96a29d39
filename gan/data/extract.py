"""Extract and align: DPED pairs (100x100 JPEGs) -> aligned 96x96 uint8 patch arrays.

Work is split into chunks of pairs. Each worker process opens the source once and, per chunk,
decodes the JPEGs, aligns the whole chunk in one vectorised pass (gan.data.align) and returns the
kept crops; the parent writes them in order to streaming .npy files, so memory stays flat in
the number of pairs. A bad file costs only its own pair: it is counted by reason and named in
the per-pair table.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from gan.config import ExtractConfig
from gan.data.align import align_pairs
from gan.data.dped import DpedLayout, DpedSource, Pair, decode_patch
from gan.data.npyio import NpyAppender
from gan.fsio import write_bytes
from gan.runtime import keep_freed_memory

# Why a pair was dropped ('ok' when kept), in the order they are checked.
REASONS = ("ok", "missing_phone", "missing_dslr", "unreadable_phone", "unreadable_dslr",
           "wrong_size", "flat", "low_ncc")
SIDES = ("phone", "dslr")
CHUNK = 256  # pairs per task: large enough to vectorise the alignment, small enough to stay lean


@dataclass
class PairRow:
    """One line of pairs.csv."""

    split: str
    index: int
    dx: int | None
    dy: int | None
    ncc: float | None
    kept: bool
    reason: str
    row: int = -1  # row in the split's .npy arrays when kept
    fx: float | None = None  # sub-pixel shift, when asked for
    fy: float | None = None
    detail: str = ""  # the decoder's message for unreadable files, the sizes for wrong_size


@dataclass
class ChunkResult:
    rows: list[PairRow]
    phone: np.ndarray  # (k, crop, crop, 3) uint8, the kept pairs in order
    dslr: np.ndarray


def process_chunk(source: DpedSource, pairs: list[Pair], cfg: ExtractConfig) -> ChunkResult:
    """Decode, check, align and score one chunk of pairs."""
    rows: list[PairRow] = []
    good: list[tuple[int, np.ndarray, np.ndarray]] = []  # (position in rows, phone, dslr)
    for pair in pairs:
        row = PairRow(pair.split, pair.index, None, None, None, False, "ok")
        rows.append(row)
        if pair.phone is None or pair.dslr is None:
            row.reason = "missing_phone" if pair.phone is None else "missing_dslr"
            row.detail = pair.dslr if pair.phone is None else pair.phone
            continue
        images = []
        for side, name in (("phone", pair.phone), ("dslr", pair.dslr)):
            try:
                images.append(decode_patch(source.read(name)))
            except (ValueError, KeyError, OSError) as exc:
                row.reason = f"unreadable_{side}"
                row.detail = f"{name}: {exc}"
                break
        if row.reason != "ok":
            continue
        phone, dslr = images
        expected = (cfg.patch, cfg.patch, 3)
        if phone.shape != expected or dslr.shape != expected:
            row.reason = "wrong_size"
            row.detail = (f"phone {phone.shape[1]}x{phone.shape[0]}, dslr {dslr.shape[1]}x"
                          f"{dslr.shape[0]}, expected {cfg.patch}x{cfg.patch}")
            continue
        good.append((len(rows) - 1, phone, dslr))

    empty = np.empty((0, cfg.crop, cfg.crop, 3), np.uint8)
    if not good:
        return ChunkResult(rows, empty, empty)
    aligned = align_pairs(np.stack([g[1] for g in good]), np.stack([g[2] for g in good]),
                          cfg.max_shift, cfg.crop, subpixel=cfg.subpixel)
    keep = []
    for k, (pos, _, _) in enumerate(good):
        row = rows[pos]
        row.dx, row.dy = int(aligned.shift.dx[k]), int(aligned.shift.dy[k])
        if cfg.subpixel:
            row.fx, row.fy = round(float(aligned.shift.fx[k]), 3), round(float(aligned.shift.fy[k]), 3)
        score = float(aligned.ncc[k])
        if np.isnan(score):
            row.reason = "flat"
        else:
            row.ncc = round(score, 4)
            row.reason = "ok" if score >= cfg.min_ncc else "low_ncc"
        row.kept = row.reason == "ok"
        if row.kept:
            keep.append(k)
    return ChunkResult(rows, aligned.phone[keep], aligned.dslr[keep])


# The source the worker processes read: set by the parent just before it forks them, so they
# inherit its member table instead of each parsing the archive's directory again.
_worker_source: DpedSource | None = None


_worker_ready = False


def _prepare_worker() -> None:
    # Done on a worker's first task rather than as a Pool initializer: an initializer that
    # raises makes the Pool respawn workers forever, while a task that raises reaches the parent.
    global _worker_ready
    if not _worker_ready:
        # One process per core already: BLAS threads in each would only contend for the cores.
        threadpool_limits(1)
        keep_freed_memory()
        _worker_ready = True


@dataclass
class SpilledChunk:
    """A chunk whose crops a worker wrote to spill files instead of sending them back."""

    rows: list[PairRow]
    files: dict[str, Path]  # side -> raw uint8 crops, kept pairs in order
    count: int


def _run_chunk(args: tuple[int, list[Pair], ExtractConfig, Path]) -> SpilledChunk:
    # Sending ~14 MB of crops per chunk back through a pipe (pickle, copy, unpickle, write)
    # halved the throughput of two workers on two cores. Writing them to a spill file that the
    # parent appends with a kernel-side copy costs a fraction of that.
    seq, pairs, cfg, spill_dir = args
    _prepare_worker()
    assert _worker_source is not None
    result = process_chunk(_worker_source, pairs, cfg)
    files = {}
    for side, crops in (("phone", result.phone), ("dslr", result.dslr)):
        files[side] = spill_dir / f"{seq:07d}.{side}"
        try:
            with open(files[side], "wb") as f:
                f.write(crops.tobytes())
        except OSError as error:  # a failed write() names no file: name it for the parent
            raise OSError(error.errno, error.strerror, str(files[side])) from None
    return SpilledChunk(result.rows, files, len(result.phone))


def _chunks(layout: DpedLayout) -> Iterator[list[Pair]]:
    for split in ("train", "test"):
        pairs = layout.pairs.get(split, [])
        for start in range(0, len(pairs), CHUNK):
            yield pairs[start:start + CHUNK]


@dataclass
class ExtractSummary:
    rows: list[PairRow]
    kept: dict[str, int]  # split -> kept pairs
    full_size: list[str]  # copied photo file names
    full_size_skipped: dict[str, str]  # name -> reason
    seconds: float
    workers: int

    def metrics(self) -> dict[str, object]:
        """The numbers metrics/extract.json reports."""
        read = len(self.rows)
        kept_rows = [r for r in self.rows if r.kept]
        dropped = Counter(r.reason for r in self.rows if not r.kept)
        by_split = {}
        for split in ("train", "test"):
            split_rows = [r for r in self.rows if r.split == split]
            by_split[split] = {"read": len(split_rows), "kept": self.kept.get(split, 0)}
        nccs = [r.ncc for r in kept_rows if r.ncc is not None]
        return {
            "pairs_read": read,
            "kept": len(kept_rows),
            "dropped": {reason: dropped.get(reason, 0) for reason in REASONS[1:]},
            "by_split": by_split,
            # Per axis only: `dvc metrics show` prints one column per key, and pairs.csv has
            # every pair's (dx, dy) for finer questions.
            "shift_histogram": {
                "dx": _histogram(r.dx for r in kept_rows),
                "dy": _histogram(r.dy for r in kept_rows),
            },
            "ncc_mean": round(float(np.mean(nccs)), 4) if nccs else None,
            "full_size_photos": len(self.full_size),
            "full_size_skipped": len(self.full_size_skipped),
            "seconds": round(self.seconds, 2),
            "pairs_per_s": round(read / self.seconds, 1) if self.seconds > 0 else None,
            "workers": self.workers,
        }


def _histogram(values: Iterator[int | None]) -> dict[str, int]:
    counts = Counter(v for v in values if v is not None)
    return {str(k): counts[k] for k in sorted(counts)}


def default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def extract(source_path: Path, layout: DpedLayout, out_dir: Path, cfg: ExtractConfig,
            workers: int = 0, on_progress: Callable[[int], None] | None = None) -> ExtractSummary:
    """Align every pair of ``layout`` and write ``{train,test}_{phone,dslr}.npy`` into out_dir.

    Also copies the full-size test photos into ``out_dir/full_size/``. Each .npy file appears
    only when complete. ``on_progress(n)`` is called with the number of pairs just processed.
    """
    workers = workers or default_workers()
    start = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    writers = {(split, side): NpyAppender(out_dir / f"{split}_{side}.npy", (cfg.crop, cfg.crop, 3))
               for split in ("train", "test") for side in SIDES}
    rows: list[PairRow] = []
    kept: Counter[str] = Counter()
    spill_dir = out_dir / ".spill"
    try:
        for result in _map_chunks(source_path, layout, cfg, workers, spill_dir):
            for row in result.rows:
                if row.kept:
                    row.row = kept[row.split]
                    kept[row.split] += 1
            if result.rows:
                split = result.rows[0].split
                for side in SIDES:
                    if isinstance(result, SpilledChunk):
                        writers[(split, side)].append_file(result.files[side], result.count)
                        result.files[side].unlink()
                    else:
                        writers[(split, side)].append(getattr(result, side))
            rows.extend(result.rows)
            if on_progress is not None:
                on_progress(len(result.rows))
    except BaseException:
        for writer in writers.values():
            writer.abort()
        raise
    finally:
        shutil.rmtree(spill_dir, ignore_errors=True)
    for writer in writers.values():
        writer.close()
    copied, skipped = copy_full_size(source_path, layout, out_dir / "full_size")
    return ExtractSummary(rows=rows, kept=dict(kept), full_size=copied, full_size_skipped=skipped,
                          seconds=time.perf_counter() - start, workers=workers)


def _map_chunks(source_path: Path, layout: DpedLayout, cfg: ExtractConfig, workers: int,
                spill_dir: Path) -> Iterator[ChunkResult | SpilledChunk]:
    global _worker_source
    with DpedSource(source_path) as source:
        if workers == 1:
            for chunk in _chunks(layout):
                yield process_chunk(source, chunk, cfg)
            return
        spill_dir.mkdir(parents=True, exist_ok=True)
        tasks = ((seq, chunk, cfg, spill_dir) for seq, chunk in enumerate(_chunks(layout)))
        # fork: workers inherit the imported modules and the open source at no cost (reads are
        # preads, which share a file descriptor safely); nothing here holds threads or GPUs.
        _worker_source = source
        try:
            ctx = multiprocessing.get_context("fork")
            with ctx.Pool(workers) as pool:
                # imap hands out tasks ahead of the results being consumed; spill files of
                # finished chunks wait on disk (page cache) in order, so memory stays flat.
                yield from pool.imap(_run_chunk, tasks)
        finally:
            _worker_source = None


def copy_full_size(source_path: Path, layout: DpedLayout,
                   dest: Path) -> tuple[list[str], dict[str, str]]:
    """Copy the full-size test photos that decode; return (copied names, {skipped: reason})."""
    copied: list[str] = []
    skipped: dict[str, str] = {}
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    with DpedSource(source_path) as source:
        for name in layout.full_size:
            base = name.rsplit("/", 1)[-1]
            data = source.read(name)
            try:
                decode_patch(data)
            except ValueError as exc:
                skipped[base] = str(exc)
                continue
            write_bytes(dest / base, data)
            copied.append(base)
    return copied, skipped


def rows_table(rows: list[PairRow]) -> list[dict[str, object]]:
    """pairs.csv rows: split, index, dx, dy, ncc, kept, reason, then row, fx, fy, detail."""
    return [asdict(r) for r in rows]
