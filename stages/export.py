"""export command: a trained generator checkpoint -> one deployable TorchScript or ONNX file.

    ppe export                                  # models/generator.pt -> models/generator.ts
    ppe export --format onnx                    # -> models/generator.onnx (needs the extra)
    ppe export --model iphone-dped-mini         # the shipped model -> models/iphone-dped-mini.ts

Without --model it exports the pipeline's models/generator.pt, or the shipped model when none
was trained (a fresh clone), and says which.
    ppe export --model other.pt --out /srv/enhancer.onnx --format onnx --force

Outside the DAG, like enhance: a deployment step, run when a model is to be shipped. The file is
exported to a temporary name beside the output, checked there, and only then renamed to the
output: a file that fails the parity check never takes an output's place (nor replaces a good
one under --force). The check runs the exported file and the PyTorch model on two random
inputs, an odd size and a different batch and size, so a file whose shapes were baked in fails
it. How the export works and why: gan/deploy/export.py.
"""

from __future__ import annotations

import time
from enum import Enum
from pathlib import Path

import typer

from stages.common import fail, reports_write_errors

# float32 through another runtime: measured differences are ~4e-7 for the Dense U-Net and
# ~2e-5 for DPED's ResNet in ONNX Runtime (its instance norm sums in another order), 0 to 6e-8
# in TorchScript; 1e-4 is 1/40 of an 8-bit grey level. Here, not in gan.deploy.export, because
# --help shows it and that module imports torch.
TOLERANCE = 1e-4
TRAINED = "models/generator.pt"  # what the pipeline's train stage writes


class Format(str, Enum):
    torchscript = "torchscript"
    onnx = "onnx"


@reports_write_errors
def main(
    model: str | None = typer.Option(None, help="trained generator checkpoint, or a registered "
                                     "name such as iphone-dped-mini (default: "
                                     f"{TRAINED}, or the shipped model when none was trained)"),
    fmt: Format = typer.Option(Format.torchscript, "--format",
                               # No square brackets in help texts: Typer reads them as markup.
                               help="torchscript (needs only torch) or onnx (needs the "
                                    "optional 'export' extra of ppe-gan)"),
    out: Path | None = typer.Option(None, help="output file (default: the model's path with "
                                               ".ts or .onnx)"),
    check: bool = typer.Option(True, help=f"compare the exported file with the PyTorch model "
                                          f"on two random inputs; fail above {TOLERANCE:g}"),
    force: bool = typer.Option(False, "--force", help="overwrite an existing output file"),
) -> None:
    """Export the generator to TorchScript or ONNX, with dynamic batch, height and width."""
    from gan.checkpoint import CheckpointError, load_generator
    from gan.deploy.export import (EXPORT_PACKAGES, RUNTIME_PACKAGES, SUFFIXES, ExportError,
                                   ParityError, check_parity_on_shapes, export, require_onnx)
    from gan.deploy.pretrained import registry, resolve_model
    from gan.fsio import atomic_path

    fmt_name = fmt.value
    if model is None:
        from gan.deploy.pretrained import DEFAULT_MODEL

        model = TRAINED if Path(TRAINED).exists() else DEFAULT_MODEL
        if model == DEFAULT_MODEL:
            typer.echo(f"no trained {TRAINED}: exporting the shipped model {DEFAULT_MODEL}")
    try:
        named = model in registry()
        model_path = resolve_model(model)
    except CheckpointError as exc:
        fail(str(exc))
    if out is None:  # beside the model; a registered one's in models/, not among the shipped
        out = (Path("models") / (model + SUFFIXES[fmt_name]) if named
               else model_path.with_suffix(SUFFIXES[fmt_name]))
    model = model_path
    if out.resolve() == model.resolve():
        fail(f"{out}: the output would overwrite the model checkpoint; choose another --out")
    if out.exists() and not force:
        fail(f"{out} already exists; pass --force to overwrite it")
    try:
        if fmt_name == "onnx":  # before the model: a missing extra is the first thing to fix
            require_onnx(*EXPORT_PACKAGES, *(RUNTIME_PACKAGES if check else ()),
                         task="--format onnx" + (" with the parity check" if check else ""))
        generator = load_generator(model, "cpu")
    except (CheckpointError, ExportError) as exc:
        fail(str(exc))

    # Export under a temporary name in the output's folder (gan.fsio); it becomes `out` only
    # once checked, and is removed on any failure.
    try:
        with atomic_path(out) as staging:
            began = time.perf_counter()
            export(generator, staging, fmt_name)
            seconds = time.perf_counter() - began
            typer.echo(f"exported the {generator.kind} generator to {fmt_name} in {seconds:.1f} s "
                       f"({staging.stat().st_size / 1e6:.2f} MB)")
            if check:
                check_parity_on_shapes(generator, staging, fmt_name, TOLERANCE,
                                       on_result=print_parity)
    except ParityError as exc:  # before ExportError, which it is
        fail(f"{exc}; {out} was not written")
    except (ExportError, OSError) as exc:
        fail(f"{out}: {exc}")
    typer.echo(f"wrote {out}")


def print_parity(shape: tuple[int, ...], difference: float) -> None:
    """One line per checked shape, the failing one's included, so a failure shows its figure."""
    from gan.deploy.export import shape_text

    typer.echo(f"parity on {shape_text(shape)}: max abs difference {difference:.2e}")
