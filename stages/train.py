"""train stage: data/patches -> models/generator.pt, training curves, metrics/train.json.

Checkpoints go to models/checkpoints/last.pt (a persistent DVC output): a run that was stopped
resumes there. With ``train.gpus > 1`` the stage starts itself again under torchrun, one process
per GPU (or per CPU process with the gloo backend), each on its own shard of the patches.
"""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import typer

from stages.common import fail, reports_write_errors, write_json, write_text
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
        result, trainer = run(spec, data, checkpoint, curves, progress)
    except (TrainingDiverged, VGGWeightsError, FileNotFoundError, RuntimeError) as exc:
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
        typer.echo(f"{model}: step {result.step}, validation PSNR {result.validation['psnr']:.2f} dB "
                   f"({gain:+.2f} dB over the input), MS-SSIM {result.validation['ms_ssim']:.4f}; "
                   f"{result.patches_per_s:.1f} patches/s on {trainer.device} ({trainer.precision})")
    _leave_process_group()


def relaunch_under_torchrun(processes: int, args: list[str]) -> int:
    """Run this stage again under torchrun with one process per GPU; return its exit code."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc_per_node={processes}", "-m", "stages.train", *args]
    typer.echo(f"starting {processes} processes: {' '.join(cmd)}")
    return subprocess.call(cmd)


def run(spec, data: Path, checkpoint: Path, curves: Path, progress: bool):
    from tqdm import tqdm

    from gan.runtime import keep_freed_memory, resolve_device
    from gan.train import Trainer, init_distributed

    keep_freed_memory()  # each step allocates the same large activations again (process-wide)
    distributed = init_distributed(resolve_device(spec.train.device).type)
    trainer = Trainer(spec, data, checkpoint, distributed)
    message = trainer.try_resume()
    if distributed.main:
        typer.echo(message)
    bar = tqdm(total=spec.train.steps, initial=trainer.step, unit="step", desc="train",
               disable=not (progress and distributed.main))

    def on_step(step: int, row: dict[str, float]) -> None:
        bar.update(1)
        if trainer.losses:
            bar.set_postfix(loss=f"{row['total']:.4f}",
                            patches_s=f"{trainer.losses[-1]['patches_per_s']:.1f}", refresh=False)

    with bar:
        result = trainer.fit(on_step=on_step, on_log=lambda: write_curves(trainer, curves))
    return result, trainer


def write_curves(trainer, curves: Path) -> None:
    """The training curves as CSV (DVC plots): every loss term, D(real), D(fake), validation."""
    write_text(curves / "losses.csv", _csv(trainer.losses))
    write_text(curves / "validation.csv", _csv(trainer.val))


def _csv(rows: list[dict[str, float]]) -> str:
    buf = io.StringIO()
    fields = list(dict.fromkeys(k for row in rows for k in row))
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    writer.writerows({k: _short(v) for k, v in row.items()} for row in rows)
    return buf.getvalue()


def _short(value: Any) -> Any:
    return f"{value:.6g}" if isinstance(value, float) else value


def write_outputs(trainer, result, spec_params: dict, model: Path, metrics: Path,
                  curves: Path, params: Path = PARAMS) -> None:
    from gan.checkpoint import save_generator
    from gan.runtime import describe_device

    provenance = {
        "params": spec_params,
        "git_revision": git_revision(params),
        "data": trainer.spec.data,
        "steps": result.step,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "torch": str(__import__("torch").__version__),  # a str subclass weights_only refuses
        "device": str(trainer.device),
        "hardware": describe_device(trainer.device),  # recorded where it trained
        "precision": trainer.precision,
        "sessions": result.sessions,  # steps, seconds and machine of each session kept
    }
    save_generator(model, trainer.output_generator, provenance)
    write_curves(trainer, curves)
    write_json(metrics, {
        "step": result.step,
        "seconds": round(result.seconds, 1),
        "sessions": len(result.sessions),  # > 1: stopped and resumed (provenance has each)
        "patches_per_s": round(result.patches_per_s, 1),
        "device": str(trainer.device),
        "precision": trainer.precision,
        "loss": {k: round(v, 5) for k, v in result.final.items()},
        "val": {"psnr": round(result.validation["psnr"], 3),
                "ms_ssim": round(result.validation["ms_ssim"], 4)},
        "input": {"psnr": round(result.baseline["psnr"], 3),
                  "ms_ssim": round(result.baseline["ms_ssim"], 4)},
        "psnr_gain_db": round(result.validation["psnr"] - result.baseline["psnr"], 3),
    })


# Tracked files whose changes do not make the code dirty: the run's params (its model, loss and
# train sections are in the model's provenance; a model card adds extract, and the data split
# from source.json) and the lock DVC rewrites after every stage. An experiment (`dvc exp run
# -S ...`, params.yaml edited for a PIRM split) changes only these.
NOT_CODE = ("params.yaml", "dvc.lock")


def git_revision(params: Path | None = None, cwd: Path | None = None) -> str | None:
    """HEAD's commit, with '+dirty' when tracked files differ from it, except NOT_CODE and the
    run's own ``params`` file; None outside git."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True, check=True,
                              cwd=cwd).stdout

    try:
        rev = git("rev-parse", "HEAD").strip()
        top = Path(git("rev-parse", "--show-toplevel").strip())
        # -z: paths as they are (no quoting), a rename as "new NUL old".
        entries = git("status", "--porcelain", "-z", "--untracked-files=no").split("\0")
    except (OSError, subprocess.CalledProcessError):
        return None
    exempt = {(top / name).resolve() for name in NOT_CODE}
    if params is not None:
        exempt.add(Path(cwd or Path.cwd(), params).resolve())
    changed, skip = [], False
    for entry in filter(None, entries):
        if skip:  # the old name of a rename
            skip = False
            continue
        skip = any(status in "RC" for status in entry[:2])
        changed.append((top / entry[3:]).resolve())
    return rev + ("+dirty" if any(path not in exempt for path in changed) else "")


def _leave_process_group() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":  # `python -m stages.train`: this stage alone, as dvc.yaml runs it
    typer.run(main)
