"""Enhancing a batch of photo files: which files, where each output goes, and the run itself.

``plan_jobs`` turns what a user named (files, folders, glob patterns) into one job per photo
with its output path, and marks the jobs it must refuse (nothing found, two inputs to one output,
an output that would replace its input). ``run_jobs`` enhances them in turn: one bad file is
recorded in its Outcome and the batch goes on; every output is written atomically
(gan.deploy.photo_io), so Ctrl-C leaves complete photos only. ``generator_enhancer`` and
``baseline_enhancer`` make the enhance function that ``run_jobs`` calls on each photo.

Error messages name the command-line options (``--force``, ``--tile``, ``--engine``) because
they are what a user of the ``enhance`` command reads.
"""

from __future__ import annotations

import glob
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from gan.deploy.compare import ComparePage, comparison
from gan.deploy.photo_io import SUFFIXES, PhotoError, read_photo, write_photo
from gan.errors import first_line
from gan.pixels import float_to_uint8

ENGINES = ("auto", "torch", "onnxruntime")

# rgb float (H, W, 3) in [0, 1] and an optional on_tile(done, total) -> rgb float (H, W, 3)
Enhance = Callable[..., np.ndarray]


@dataclass
class Job:
    source: Path | None  # None: the input named nothing readable (``problem`` says why)
    target: Path | None
    label: str  # what the user typed or the file found, for the summary
    problem: str = ""
    skip: str = ""  # why this file is passed over (not a failure): NOT_A_PHOTO, ALREADY_DONE
    caption: str = ""  # its name relative to the input given (the compare page's caption)


NOT_A_PHOTO = "not a format enhance reads"
ALREADY_DONE = "already enhanced (--force redoes it)"


@dataclass
class Outcome:
    label: str
    size: str = ""
    seconds: float = 0.0
    result: str = "pending"

    @property
    def failed(self) -> bool:
        return self.result.startswith("error")

    @property
    def skipped(self) -> str:
        """Why the photo was passed over, or ''."""
        return self.result.removeprefix("skipped: ") if self.result.startswith("skipped") else ""


class BatchInterrupted(KeyboardInterrupt):
    """Ctrl-C during run_jobs, with the outcomes so far: the photos marked ok are complete, the
    one in progress is marked as interrupted, and no partial file was left."""

    def __init__(self, outcomes: list[Outcome]):
        super().__init__("interrupted")
        self.outcomes = outcomes


# -- the enhance functions ----------------------------------------------------------------------

def generator_enhancer(model: str, device: str, tile: int, overlap: int,
                       precision: str = "auto", engine: str = "auto") -> Enhance:
    """A generator checkpoint (a file or a registered name) or an exported .onnx file as an
    enhance function, tiled. Loading the model here, once, makes a bad model fail before any
    photo is touched (ValueError, RuntimeError; CheckpointError is a ValueError)."""
    from gan.checkpoint import load_generator
    from gan.deploy.inference import enhance_array, plan_tiles
    from gan.deploy.pretrained import resolve_model
    from gan.runtime import keep_freed_memory, resolve_device, resolve_inference_precision

    plan_tiles(1, 1, tile, overlap)  # checks tile / overlap before the model loads
    keep_freed_memory()  # every tile allocates the same large blocks (see gan.runtime)
    if engine not in ENGINES:
        raise ValueError(f"--engine must be {', '.join(ENGINES)}, got {engine!r}")
    onnx_file = str(model).lower().endswith(".onnx")
    if engine == "onnxruntime" and not onnx_file:
        raise ValueError(f"--engine onnxruntime runs an exported file; export {model} with "
                         "`ppe export --format onnx` and pass the .onnx file as --model")
    if onnx_file and engine != "torch":  # auto: an .onnx file is run by ONNX Runtime
        return onnx_enhancer(model, device, precision, tile, overlap)
    torch_device = resolve_device(device, auto_mps=True)
    dtype = resolve_inference_precision(precision, torch_device)
    generator = load_generator(resolve_model(model), torch_device)

    def run_generator(rgb, on_tile=None):
        return finite_output(enhance_array(generator, rgb, torch_device, tile, overlap, on_tile,
                                           dtype), model)
    return run_generator


class ModelOutputError(RuntimeError):
    """The generator's output holds NaN or infinity (nothing of it is written)."""


def finite_output(enhanced: np.ndarray, model: str) -> np.ndarray:
    """``enhanced`` itself, or ModelOutputError naming the model: a NaN becomes black when
    quantised, and the photo would be written as if all were well."""
    if not np.isfinite(enhanced).all():
        raise ModelOutputError(f"{model}: the generator's output is not finite (NaN or "
                               "infinity); nothing was written")
    return enhanced


def onnx_enhancer(model: str, device: str, precision: str, tile: int, overlap: int) -> Enhance:
    """An exported .onnx generator through ONNX Runtime on the CPU, tiled as the torch engine."""
    import torch

    from gan.deploy.export import OnnxGenerator
    from gan.deploy.inference import enhance_array

    if device not in ("auto", "cpu"):
        raise ValueError(f"--engine onnxruntime runs on the CPU here, not on {device}; use "
                         "--device cpu (or the torch engine with the .pt checkpoint)")
    if precision not in ("auto", "fp32"):
        raise ValueError(f"--engine onnxruntime runs the exported file in fp32, not {precision}")
    generator = OnnxGenerator(model)

    def run_onnx(rgb, on_tile=None):
        return finite_output(enhance_array(generator, rgb, torch.device("cpu"), tile, overlap,
                                           on_tile), model)
    return run_onnx


def baseline_enhancer(baseline: Callable[[np.ndarray], np.ndarray]) -> Enhance:
    """A classical method on (H, W, 3) uint8 (CLHE, NPEA: their histograms have 256 levels)
    as an enhance function on float RGB. The caller passes it in, so that deploy does not
    import the evaluation wing, which imports deploy."""
    def run_baseline(rgb, on_tile=None):
        return baseline(float_to_uint8(rgb)).astype(np.float32) / 255.0
    return run_baseline


# -- planning ---------------------------------------------------------------------------------

def plan_jobs(inputs: list[str], out: Path | None, ext: str, suffix: str = "") -> list[Job]:
    """One job per photo found; inputs that name nothing become failed jobs (reported).
    Outputs go to ``out`` under the input's name (and subfolder); ``suffix`` is added to the
    name's stem; with ``out`` None, each output goes beside its input."""
    jobs: list[Job] = []

    def target(photo: Path, relative: Path) -> Path:
        return (out / relative) if out is not None else photo

    for given in inputs:
        path = Path(given)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file()
                           and not p.name.startswith(".")  # hidden: .DS_Store, temporaries
                           # a rerun with --suffix must not enhance the last run's outputs
                           and not (suffix and p.stem.endswith(suffix)))
            found = [p for p in files if p.suffix.lower() in SUFFIXES]
            if not found:
                jobs.append(Job(None, None, given, f"{given}: no supported images in the folder"))
            jobs += [Job(p, target(p, p.relative_to(path)), str(p),
                         caption=p.relative_to(path).as_posix()) for p in found]
            jobs += [Job(p, None, str(p), skip=NOT_A_PHOTO) for p in files
                     if p.suffix.lower() not in SUFFIXES]
        elif path.exists() or not glob.has_magic(given):
            # A missing file is a job too: reading it gives the precise error for the summary.
            jobs.append(Job(path, target(path, Path(path.name)), given, caption=path.name))
        else:
            matches = sorted(Path(m) for m in glob.glob(given, recursive=True))
            files = [m for m in matches if m.is_file()]
            if not files:
                jobs.append(Job(None, None, given, f"{given}: the pattern matches no file"))
            jobs += [Job(m, target(m, Path(m.name)), str(m), caption=m.name) for m in files]
    extension = "." + ext.lower().lstrip(".") if ext else None
    for job in jobs:
        if job.target is not None:
            job.target = job.target.with_name(
                job.target.stem + suffix + (extension or job.target.suffix))
    _mark_clashes(jobs)
    return jobs


def _mark_clashes(jobs: list[Job]) -> None:
    """Two inputs that would write one output, or an output that is its own input: refused
    (never silently overwrite a photo the user gave us, even with --force)."""
    seen: dict[Path, str] = {}
    for job in jobs:
        if job.target is None or job.problem:
            continue
        key = job.target.resolve()
        if job.source is not None and job.source.exists() and key == job.source.resolve():
            job.problem = f"{job.label}: the output would replace the input; choose another -o"
        elif key in seen:
            job.problem = f"{job.label}: same output file as {seen[key]} ({job.target})"
        else:
            seen[key] = job.label


# -- running ----------------------------------------------------------------------------------

def run_jobs(jobs: list[Job], enhance: Enhance, force: bool, quality: int, max_pixels: int,
             progress: bool, page: ComparePage | None = None,
             label: str = "enhanced") -> list[Outcome]:
    """Each job in turn, its outcome recorded. With ``page``, each photo written is added to it
    under ``label``, and the page is put in place at the end, also after Ctrl-C (with the photos
    finished by then); on any other error it is discarded. Ctrl-C raises BatchInterrupted."""
    outcomes: list[Outcome] = []
    bar = tqdm(jobs, desc="photos", unit="photo", disable=not progress)
    try:
        for job in bar:
            outcome = Outcome(job.label)
            outcomes.append(outcome)
            written = _run_job(job, outcome, enhance, force, quality, max_pixels, progress)
            if page is not None and written is not None:
                # Outside the photo's own error handling: a page that cannot be written stops
                # the batch with the page's name (the photos written so far stay).
                _add_to_page(page, job, *written, label, outcome.seconds)
            written = None  # a 12 MP pair is 290 MB of float32: not kept meanwhile
    except KeyboardInterrupt:
        bar.close()
        if outcomes and outcomes[-1].result == "pending":
            outcomes[-1].result = "interrupted: no file written"
        _close(page)
        raise BatchInterrupted(outcomes) from None
    except BaseException:
        if page is not None:
            page.discard()
        raise
    bar.close()
    _close(page)
    return outcomes


def _run_job(job: Job, outcome: Outcome, enhance: Enhance, force: bool, quality: int,
             max_pixels: int, progress: bool) -> tuple[np.ndarray, np.ndarray] | None:
    """Read, enhance and write one photo, its result in ``outcome``; the photo before and after
    (float RGB) when it was written, for the compare page."""
    if job.problem:
        outcome.result = f"error: {job.problem}"
        return None
    if job.skip or (job.target.exists() and not force):
        outcome.result = f"skipped: {job.skip or ALREADY_DONE}"
        return None
    began = time.perf_counter()
    try:
        photo = read_photo(job.source, max_pixels=max_pixels)
        height, width = photo.rgb.shape[:2]
        outcome.size = f"{width}x{height}"
        with tqdm(desc=job.source.name, unit="tile", leave=False, disable=not progress) as tiles:
            def on_tile(done: int, total: int) -> None:
                tiles.total = total
                tiles.update(done - tiles.n)
            enhanced = enhance(photo.rgb, on_tile)
        job.target.parent.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            write_photo(job.target, enhanced, like=photo, quality=quality, overwrite=force)
        # e.g. an alpha channel a JPEG cannot hold: the photo is written, the user told
        notes = "; ".join(str(w.message) for w in caught)
        outcome.result = f"ok ({notes})" if notes else "ok"
    except (PhotoError, ModelOutputError) as exc:
        outcome.result = f"error: {exc}"
    except (MemoryError, RuntimeError) as exc:  # e.g. out of memory in a tile
        outcome.result = (f"error: {job.label}: {type(exc).__name__}: "
                          f"{first_line(exc)} (try a smaller --tile)")
    except OSError as exc:
        outcome.result = f"error: {job.target}: cannot write: {exc.strerror or exc}"
    outcome.seconds = time.perf_counter() - began
    return None if outcome.failed else (photo.rgb, enhanced)


def _add_to_page(page: ComparePage, job: Job, before: np.ndarray, after: np.ndarray,
                 label: str, seconds: float) -> None:
    page.add(comparison(job.caption or job.label, float_to_uint8(before),
                        {label: float_to_uint8(after)},
                        note=f"{seconds:.1f} s"))


def _close(page: ComparePage | None) -> None:
    """Put the page in place; one without a photo is not written (see ComparePage.close)."""
    if page is not None:
        page.close()


def skipped_lines(outcomes: list[Outcome], names: int = 5) -> list[str]:
    """One line per reason photos were passed over: how many, why, and the first few."""
    by_reason: dict[str, list[str]] = {}
    for outcome in outcomes:
        if outcome.skipped:
            by_reason.setdefault(outcome.skipped, []).append(Path(outcome.label).name)
    lines = []
    for reason, labels in by_reason.items():
        shown = ", ".join(labels[:names]) + (f" and {len(labels) - names} more"
                                              if len(labels) > names else "")
        lines.append(f"{len(labels)} skipped: {reason}: {shown}")
    return lines


def summary_rows(outcomes: list[Outcome]) -> list[str]:
    """The outcomes as a plain table, one line each under a header: file, size, seconds,
    result (the file column at most 60 characters wide, the result never cut)."""
    rows = [("file", "size", "seconds", "result")]
    rows += [(o.label, o.size, f"{o.seconds:.2f}" if o.size else "", o.result) for o in outcomes]
    widths = [min(60, max(len(r[i]) for r in rows)) for i in range(3)]
    return ["  ".join(row[i].ljust(widths[i]) for i in range(3)) + "  " + row[3] for row in rows]
