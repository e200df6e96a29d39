"""enhance: the DSLR-quality version of your own photos, any size, any common format.

    enhance photo.jpg holiday/ "raw/*.png" -o enhanced/     # the shipped iphone-dped-mini model
    enhance photo.jpg -o out/ --model models/generator.pt   # the pipeline's own
    enhance holiday/ -o out/ --compare compare.html          # plus a before/after page
    python -m stages enhance IMG_0001.jpg -o out/ --method npea

Inputs are files, folders (every supported image inside, recursively; the sub-folders are kept
under OUTDIR) and glob patterns (expanded here too, for shells that do not). Each output keeps
its input's name (``--ext`` changes the format) and follows its format rules (gan.deploy.photo_io).
One bad file is reported and the batch goes on; the exit code is 1 when any file failed.
"""

from __future__ import annotations

import glob
import time
import warnings
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import typer

from gan.deploy.inference import DEFAULT_OVERLAP, DEFAULT_TILE
from gan.deploy.photo_io import DEFAULT_MAX_PIXELS, SUFFIXES
from gan.deploy.pretrained import DEFAULT_MODEL
from stages.common import reports_write_errors


class EnhanceMethod(str, Enum):
    ours = "ours"
    clhe = "clhe"
    npea = "npea"


@dataclass
class Job:
    source: Path | None  # None: the input named nothing readable (``problem`` says why)
    target: Path | None
    label: str  # what the user typed or the file found, for the summary
    problem: str = ""


@dataclass
class Outcome:
    label: str
    size: str = ""
    seconds: float = 0.0
    result: str = "pending"

    @property
    def failed(self) -> bool:
        return self.result.startswith("error")


@reports_write_errors
def main(
    inputs: list[str] = typer.Argument(..., metavar="INPUT...",
                                       help="photos, folders or glob patterns"),
    out: Path | None = typer.Option(None, "--out", "-o",
                                    help="output folder (created if needed); the photos keep "
                                         "their names (and subfolders), plus --suffix"),
    suffix: str = typer.Option("", help="added to each output's name before its extension, "
                                        "e.g. _enhanced; without -o the outputs go beside "
                                        "their inputs"),
    model: str = typer.Option(DEFAULT_MODEL, help="generator (--method ours): a checkpoint file or "
                              "a registered name (models/pretrained/registry.json)"),
    method: EnhanceMethod = typer.Option(EnhanceMethod.ours, help="ours (the GAN), clhe or npea"),
    device: str = typer.Option("auto", help="auto | cpu | cuda | cuda:N | mps (auto: a CUDA GPU, "
                                            "else Apple's MPS, else the CPU)"),
    engine: str = typer.Option("auto", help="auto | torch | onnxruntime (auto: ONNX Runtime for "
                                            "an exported .onnx --model, else torch)"),
    precision: str = typer.Option("auto", help="auto | fp32 | bf16 | fp16 (auto: bf16 where the "
                                               "hardware computes it, else fp32; fp16: CUDA only)"),
    tile: int = typer.Option(DEFAULT_TILE, help="tile side in pixels (0: whole photo at once)"),
    overlap: int = typer.Option(DEFAULT_OVERLAP, help="pixels shared by neighbouring tiles"),
    quality: int = typer.Option(95, min=1, max=100, help="JPEG / WebP / HEIC / AVIF quality"),
    ext: str = typer.Option("", help="output format by suffix, e.g. png (default: the input's)"),
    force: bool = typer.Option(False, "--force", help="overwrite existing outputs"),
    max_pixels: int = typer.Option(DEFAULT_MAX_PIXELS, min=1,
                                   help="refuse photos with more pixels (decompression bombs)"),
    compare: Path | None = typer.Option(None, help="also write this HTML page: a before/after "
                                        "slider per photo, 1:1 zoom, images embedded"),
    progress: bool = typer.Option(True, help="progress bars"),
) -> None:
    """Enhance photos with the trained generator (or a classical baseline)."""
    from stages.common import fail

    if out is None and not suffix:
        fail("say where the photos go: -o FOLDER, or --suffix (e.g. _enhanced) to write each "
             "beside its input")
    if any(c in suffix for c in "/\\") or suffix in (".", ".."):
        fail(f"--suffix {suffix!r}: a suffix is part of a file name, without / or \\")
    if ext and ("." + ext.lower().lstrip(".")) not in SUFFIXES:
        fail(f"--ext {ext}: not a supported output format; use one of "
             f"{', '.join(sorted({s.lstrip('.') for s in SUFFIXES}))}")
    if compare is not None:
        if compare.suffix.lower() not in (".html", ".htm"):
            fail(f"--compare {compare}: the page is HTML; name it e.g. compare.html")
        if compare.exists() and not force:
            fail(f"--compare {compare} exists; pass --force to overwrite it")
    try:
        enhance = make_enhancer(method, model, device, tile, overlap, precision, engine)
    except (ValueError, RuntimeError) as exc:  # CheckpointError is a ValueError
        fail(str(exc))
    jobs = plan_jobs(inputs, out, ext, suffix)
    if not jobs:
        fail("no inputs")
    page = None
    if compare is not None:
        from gan.deploy.compare import ComparePage

        page = ComparePage(compare, f"enhance, {method_label(method, model)}: before / after")
    outcomes = run_jobs(jobs, enhance, force, quality, max_pixels, progress, page,
                        method_label(method, model))
    print_summary(outcomes)
    failed = sum(o.failed for o in outcomes)
    if failed:
        typer.secho(f"{failed} of {len(outcomes)} failed", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)


def make_enhancer(method: EnhanceMethod, model: str, device: str, tile: int, overlap: int,
                  precision: str = "auto", engine: str = "auto"):
    """enhance(rgb float (H, W, 3), on_tile) -> rgb float (H, W, 3), for the chosen method.
    Loading the model here, once, makes a bad --model fail before any photo is touched."""
    import numpy as np

    if method is EnhanceMethod.ours:
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
            return enhance_array(generator, rgb, torch_device, tile, overlap, on_tile, dtype)
        return run_generator

    from gan.pixels import float_to_uint8

    if method is EnhanceMethod.clhe:
        from gan.evaluation.baselines.clhe import clhe as baseline
    else:
        from gan.evaluation.baselines.npea import npea as baseline

    def run_baseline(rgb, on_tile=None):
        # The baselines are defined on 8-bit RGB (their histograms have 256 levels).
        image = float_to_uint8(rgb)
        return baseline(image).astype(np.float32) / 255.0
    return run_baseline


ENGINES = ("auto", "torch", "onnxruntime")


def method_label(method: EnhanceMethod, model: str) -> str:
    """How the compare page names the "after" photos."""
    return f"ours ({Path(model).name})" if method is EnhanceMethod.ours else method.value


def onnx_enhancer(model: str, device: str, precision: str, tile: int, overlap: int):
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
        return enhance_array(generator, rgb, torch.device("cpu"), tile, overlap, on_tile)
    return run_onnx


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
            found = sorted(p for p in path.rglob("*") if p.is_file()
                           and p.suffix.lower() in SUFFIXES
                           # a rerun with --suffix must not enhance the last run's outputs
                           and not (suffix and p.stem.endswith(suffix)))
            if not found:
                jobs.append(Job(None, None, given, f"{given}: no supported images in the folder"))
            jobs += [Job(p, target(p, p.relative_to(path)), str(p)) for p in found]
        elif path.exists() or not glob.has_magic(given):
            # A missing file is a job too: reading it gives the precise error for the summary.
            jobs.append(Job(path, target(path, Path(path.name)), given))
        else:
            matches = sorted(Path(m) for m in glob.glob(given, recursive=True))
            files = [m for m in matches if m.is_file()]
            if not files:
                jobs.append(Job(None, None, given, f"{given}: the pattern matches no file"))
            jobs += [Job(m, target(m, Path(m.name)), str(m)) for m in files]
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


def run_jobs(jobs: list[Job], enhance, force: bool, quality: int, max_pixels: int,
             progress: bool, page=None, label: str = "enhanced") -> list[Outcome]:
    """Each job in turn; with ``page`` (a gan.deploy.compare.ComparePage) each photo written is
    added to it, and the page is put in place at the end, also after Ctrl-C (with the photos
    finished by then)."""
    from tqdm import tqdm

    from gan.deploy.photo_io import PhotoError, read_photo, write_photo
    from gan.errors import first_line
    from gan.fsio import remove_stale_temporaries

    for folder in sorted({job.target.parent for job in jobs if not job.problem}):
        removed = remove_stale_temporaries(folder)
        if removed:
            typer.secho(f"{folder}: removed {len(removed)} temporary file(s) that a killed run "
                        "left behind", fg=typer.colors.YELLOW, err=True)
    outcomes: list[Outcome] = []
    bar = tqdm(jobs, desc="photos", unit="photo", disable=not progress)
    try:
        for job in bar:
            outcome = Outcome(job.label)
            outcomes.append(outcome)
            if job.problem:
                outcome.result = f"error: {job.problem}"
                continue
            if job.target.exists() and not force:
                outcome.result = f"error: {job.target} exists; pass --force to overwrite it"
                continue
            began = time.perf_counter()
            try:
                photo = read_photo(job.source, max_pixels=max_pixels)
                height, width = photo.rgb.shape[:2]
                outcome.size = f"{width}x{height}"
                with tqdm(desc=job.source.name, unit="tile", leave=False,
                          disable=not progress) as tiles:
                    def on_tile(done: int, total: int) -> None:
                        tiles.total = total
                        tiles.update(done - tiles.n)
                    enhanced = enhance(photo.rgb, on_tile)
                job.target.parent.mkdir(parents=True, exist_ok=True)
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    write_photo(job.target, enhanced, like=photo, quality=quality,
                                overwrite=force)
                # e.g. an alpha channel a JPEG cannot hold: the photo is written, the user told
                notes = "; ".join(str(w.message) for w in caught)
                outcome.result = f"ok ({notes})" if notes else "ok"
            except PhotoError as exc:
                outcome.result = f"error: {exc}"
            except (MemoryError, RuntimeError) as exc:  # e.g. out of memory in a tile
                outcome.result = (f"error: {job.label}: {type(exc).__name__}: "
                                  f"{first_line(exc)} (try a smaller --tile)")
            except OSError as exc:
                outcome.result = f"error: {job.target}: cannot write: {exc.strerror or exc}"
            outcome.seconds = time.perf_counter() - began
            if page is not None and not outcome.failed:
                # Outside the photo's own try: a page that cannot be written stops the batch
                # with the page's name (the photos written so far stay).
                add_to_page(page, job, photo.rgb, enhanced, label, outcome.seconds)
            photo = enhanced = None  # a 12 MP pair is 290 MB of float32: not kept meanwhile
    except KeyboardInterrupt:
        bar.close()
        if outcomes and outcomes[-1].result == "pending":
            outcomes[-1].result = "interrupted: no file written"
        print_summary(outcomes)
        finish_page(page)
        typer.secho("interrupted: the photos marked ok are complete; no partial file was left",
                    fg=typer.colors.RED, err=True)
        raise typer.Exit(130) from None
    except BaseException:
        if page is not None:
            page.discard()
        raise
    bar.close()
    finish_page(page)
    return outcomes


def add_to_page(page, job: Job, before, after, label: str, seconds: float) -> None:
    from gan.deploy.compare import comparison
    from gan.pixels import float_to_uint8

    page.add(comparison(job.label, float_to_uint8(before), {label: float_to_uint8(after)},
                        note=f"{seconds:.1f} s"))


def finish_page(page) -> None:
    if page is None:
        return
    written = page.close()
    if written is None:
        typer.secho(f"{page.path}: not written, no photo was enhanced", fg=typer.colors.YELLOW,
                    err=True)
    else:
        typer.echo(f"{written}: {page.count} photo(s) before / after")


def print_summary(outcomes: list[Outcome]) -> None:
    """A plain table: file, size, seconds, result."""
    rows = [("file", "size", "seconds", "result")]
    rows += [(o.label, o.size, f"{o.seconds:.2f}" if o.size else "", o.result) for o in outcomes]
    widths = [min(60, max(len(r[i]) for r in rows)) for i in range(3)]
    for row in rows:
        cells = [row[i].ljust(widths[i]) for i in range(3)]
        typer.echo("  ".join(cells) + "  " + row[3])


def cli() -> None:
    """The ``enhance`` console command."""
    app = typer.Typer(add_completion=False)
    app.command()(main)
    app()
