"""train stage: data/patches -> models/generator.pt, training curves, metrics/train.json.

Checkpoints go to models/checkpoints/last.pt (a persistent DVC output): a run that was stopped
resumes there. With ``train.gpus > 1`` the stage starts itself again under torchrun, one process
per GPU (or per CPU process with the gloo backend), each on its own shard of the patches.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import typer

from stages.common import fail, reports_write_errors, write_json
from stages.params import PARAMS, ParamsError, load_params


# A generator this far below the input on validation is not written without --accept-worse;
# closer than that (a smoke test's few steps) it is written with a warning.
WORSE_REFUSED_DB = 1.0


@reports_write_errors
def main(
    params: Path = typer.Option(PARAMS, help="params file (reads model, loss, train)"),
    data: Path = typer.Option(Path("data/patches"), help="patch arrays of the extract stage"),
    model: Path = typer.Option(Path("models/generator.pt"), help="trained generator (output)"),
    checkpoint: Path = typer.Option(Path("models/checkpoints/last.pt"),
                                    help="resumable training state (persists between runs)"),
    metrics: Path = typer.Option(Path("metrics/train.json"), help="final metrics (output)"),
    curves: Path = typer.Option(Path("metrics/train"), help="folder of the training curves (CSV)"),
    progress: bool = typer.Option(True, help="show a progress bar"),
    accept_worse: bool = typer.Option(
        False, "--accept-worse", help="write the model even when it scores below the input on "
                                      "validation (by default it is refused: it would make "
                                      "photos worse than doing nothing)"),
) -> None:
    """Train the GAN (generator + discriminator) on the aligned patches."""
    from gan.data.patches import data_fingerprint
    from gan.losses import VGGWeightsError
    from gan.train import RunSpec, TrainingDiverged
    from gan.training_run import finish_run, run_training, write_curves

    try:
        all_params = load_params(params)
        spec = RunSpec.from_params(all_params,
                                   data_fingerprint(data) if data.exists() else "missing")
        spec_params = RunSpec.sections(all_params)  # the model's provenance
    except ParamsError as exc:
        fail(str(exc))

    if spec.train.gpus > 1 and "WORLD_SIZE" not in os.environ:
        raise typer.Exit(relaunch_under_torchrun(spec.train.gpus, [
            "--params", str(params), "--data", str(data), "--model", str(model), "--checkpoint",
            str(checkpoint), "--metrics", str(metrics), "--curves", str(curves),
            "--progress" if progress else "--no-progress",
            *(["--accept-worse"] if accept_worse else [])]))
    try:
        result, trainer = run_training(spec, data, checkpoint, curves, progress, say=typer.echo)
    except (TrainingDiverged, VGGWeightsError, FileNotFoundError, RuntimeError,
            ValueError) as exc:  # ValueError: a patch array that is not one, a bad PPE_THREADS
        if type(exc).__name__ == "OutOfMemoryError":  # CUDA's: named with its settings
            raise
        fail(str(exc))
    if trainer.dist.main:
        gain = result.validation["psnr"] - result.baseline["psnr"]
        scores = (f"the trained generator scores {result.validation['psnr']:.2f} dB on "
                  f"validation, {-gain:.2f} dB below the input's {result.baseline['psnr']:.2f} dB")
        if not gain >= -WORSE_REFUSED_DB and not accept_worse:  # `not >=` also catches NaN
            write_curves(trainer, curves)
            fail(f"{scores}: it would make photos worse than leaving them alone, so {model} was "
                 f"not written (the run stays in {checkpoint}; see {curves}). Change the settings "
                 "and run again, or pass --accept-worse to write it anyway")
        if gain < 0:  # a short or smoke run: written, but never silently
            typer.secho(f"warning: {scores}; written anyway, as it is within "
                        f"{WORSE_REFUSED_DB:g} dB (a short run?)", fg=typer.colors.YELLOW, err=True)
        write_outputs(trainer, result, spec_params, model, metrics, curves, params)
        typer.echo(f"{model}: step {result.step}, validation PSNR "
                   f"{result.validation['psnr']:.2f} dB ({gain:+.2f} dB over the input), MS-SSIM "
                   f"{result.validation['ms_ssim']:.4f}; {result.patches_per_s:.1f} patches/s on "
                   f"{trainer.device} ({trainer.precision})")
    finish_run()


def relaunch_under_torchrun(processes: int, args: list[str]) -> int:
    """Run this stage again under torchrun with one process per GPU; return its exit code."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc_per_node={processes}", "-m", "stages.train", *args]
    typer.echo(f"starting {processes} processes: {' '.join(cmd)}")
    return subprocess.call(cmd)


def write_outputs(trainer, result, spec_params: dict, model: Path, metrics: Path,
                  curves: Path, params: Path = PARAMS) -> None:
    """The generator with its provenance, the curves, metrics/train.json."""
    from gan.checkpoint import save_generator
    from gan.training_run import provenance, train_metrics, write_curves

    save_generator(model, trainer.output_generator,
                   provenance(trainer, result, spec_params, params))
    write_curves(trainer, curves)
    write_json(metrics, train_metrics(trainer, result))


if __name__ == "__main__":  # `python -m stages.train`: this stage alone, as dvc.yaml runs it
    typer.run(main)
