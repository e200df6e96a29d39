"""enhance: the DSLR-quality version of your own photos, any size, any common format.

    enhance photo.jpg holiday/ "raw/*.png" -o enhanced/     # the shipped iphone-dped-mini model
    enhance photo.jpg -o out/ --model models/generator.pt   # the pipeline's own
    enhance holiday/ -o out/ --compare compare.html          # plus a before/after page
    python -m stages enhance IMG_0001.jpg -o out/ --method npea

Inputs are files, folders (every supported image inside, recursively; the sub-folders are kept
under OUTDIR) and glob patterns (expanded here too, for shells that do not). Each output keeps
its input's name (``--ext`` changes the format) and follows its format rules (gan.deploy.photo_io).
One bad file is reported and the batch goes on; the exit code is 1 when any file failed. The
planning and the run: gan/deploy/batch.py.
"""

from __future__ import annotations

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
    model: str = typer.Option(DEFAULT_MODEL, help="generator (--method ours): a .pt checkpoint, "
                              "an exported .onnx file or a registered name "
                              "(models/pretrained/registry.json)"),
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
    threads: int = typer.Option(0, min=0, help="CPU threads (0: $PPE_THREADS when set, else "
                                "the cores other work leaves idle)"),
    max_pixels: int = typer.Option(DEFAULT_MAX_PIXELS, min=1,
                                   help="refuse photos with more pixels (decompression bombs)"),
    compare: Path | None = typer.Option(None, help="also write this HTML page: a before/after "
                                        "slider per photo, 1:1 zoom, images embedded"),
    progress: bool = typer.Option(True, help="progress bars"),
) -> None:
    """Enhance photos with the trained generator (or a classical baseline)."""
    from gan.deploy.batch import BatchInterrupted, plan_jobs, run_jobs
    from gan.deploy.compare import ComparePage
    from stages.common import clear_dead_temporaries, fail

    if out is None and not suffix:
        fail("say where the photos go: -o FOLDER, or --suffix (e.g. _enhanced) to write each "
             "beside its input")
    if out is not None and out.exists() and not out.is_dir():
        fail(f"-o {out}: exists and is not a folder; -o names the folder the photos go to")
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
        from gan.runtime import apply_threads

        apply_threads(threads)
        enhance = make_enhancer(method, model, device, tile, overlap, precision, engine)
    except (ValueError, RuntimeError) as exc:  # CheckpointError is a ValueError
        fail(str(exc))
    jobs = plan_jobs(inputs, out, ext, suffix)
    if not jobs:
        fail("no inputs")
    label = method_label(method, model)
    page = None
    if compare is not None:
        page = ComparePage(compare, f"enhance, {label}: before / after")
    if out is None:  # outputs beside the inputs; -o's folder was cleared as the command began
        clear_dead_temporaries(sorted({job.target.parent for job in jobs
                                       if job.target and not job.problem}))
    try:
        outcomes = run_jobs(jobs, enhance, force, quality, max_pixels, progress, page, label)
    except BatchInterrupted as stop:
        print_summary(stop.outcomes)
        print_page(page)
        typer.secho("interrupted: the photos marked ok are complete; no partial file was left",
                    fg=typer.colors.RED, err=True)
        raise typer.Exit(130) from None
    print_page(page)
    print_summary(outcomes)
    failed = sum(o.failed for o in outcomes)
    if failed:
        typer.secho(f"{failed} of {len(outcomes)} failed", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)


def make_enhancer(method: EnhanceMethod, model: str, device: str, tile: int, overlap: int,
                  precision: str = "auto", engine: str = "auto"):
    """The enhance function of the chosen method (gan.deploy.batch); the model is loaded here,
    once, so that a bad --model fails before any photo is touched. The baselines are picked
    here because the deploy wing does not import the evaluation wing that holds them."""
    from gan.deploy.batch import baseline_enhancer, generator_enhancer

    if method is EnhanceMethod.ours:
        return generator_enhancer(model, device, tile, overlap, precision, engine)
    if method is EnhanceMethod.clhe:
        from gan.evaluation.baselines.clhe import clhe as baseline
    else:
        from gan.evaluation.baselines.npea import npea as baseline
    return baseline_enhancer(baseline)


def method_label(method: EnhanceMethod, model: str) -> str:
    """How the compare page names the "after" photos."""
    return f"ours ({Path(model).name})" if method is EnhanceMethod.ours else method.value


def print_page(page) -> None:
    """Where the compare page went, once run_jobs has closed it (none without a photo)."""
    if page is None:
        return
    if page.count == 0:
        typer.secho(f"{page.path}: not written, no photo was enhanced", fg=typer.colors.YELLOW,
                    err=True)
    else:
        typer.echo(f"{page.path}: {page.count} photo(s) before / after")


def print_summary(outcomes) -> None:
    """A plain table: file, size, seconds, result; then what was skipped, and why."""
    from gan.deploy.batch import skipped_lines, summary_rows

    for row in summary_rows(outcomes):
        typer.echo(row)
    for line in skipped_lines(outcomes):
        typer.secho(line, fg=typer.colors.YELLOW)


def cli() -> None:
    """The ``enhance`` console command."""
    app = typer.Typer(add_completion=False)
    app.command()(main)
    app()
