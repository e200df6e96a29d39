"""A training run as the train stage drives it, and what it leaves on record.

:func:`run_training` joins the torchrun process group (when there is one), resumes the run's
checkpoint (the training state of gan.checkpoint) and trains, writing the curves DVC plots
(:func:`write_curves`) as it goes; :func:`finish_run` leaves the group. What a finished run
leaves: :func:`provenance`, the record the saved generator carries of how it was made (the
params, the code's revision, the data, each session's steps, time and machine), so that a model
card can say it without the run at hand, and :func:`train_metrics`, metrics/train.json's figures.
"""

from __future__ import annotations

import csv
import io
import subprocess
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from gan.fsio import write_text
from gan.runtime import apply_threads, describe_device, keep_freed_memory, resolve_device
from gan.train import RunSpec, Trainer, TrainResult, init_distributed


def run_training(spec: RunSpec, data: Path, checkpoint: Path, curves: Path,
                 progress: bool = True,
                 say: Callable[[str], None] = print) -> tuple[TrainResult, Trainer]:
    """Train the run ``spec`` describes on the patches in ``data``, resumed from ``checkpoint``
    when that belongs to the run (``say`` reports what resuming did), with a progress bar when
    ``progress``, writing the curves into the folder ``curves`` whenever new log rows exist.
    Under torchrun rank 0 alone reports and writes. Returns the result and the trainer (whose
    generator the caller saves)."""
    from tqdm import tqdm

    keep_freed_memory()  # each step allocates the same large activations again (process-wide)
    # Only when PPE_THREADS asks: the thread count can change a run's last bits, and a
    # reproduced run must not depend on how busy the machine was when it started.
    apply_threads(auto=False)
    distributed = init_distributed(resolve_device(spec.train.device).type)
    trainer = Trainer(spec, data, checkpoint, distributed)
    message = trainer.try_resume()
    if distributed.main:
        say(message)
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


def finish_run() -> None:
    """Leave the process group :func:`run_training` joined (nothing to do for a run alone)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def provenance(trainer: Trainer, result: TrainResult, params: dict[str, dict[str, Any]],
               params_file: Path | None = None) -> dict[str, Any]:
    """What the saved generator records of how it was made: ``params`` (the sections of
    params.yaml the run read: RunSpec.sections), the code's revision (:func:`git_revision`;
    edits to ``params_file``, the run's own params, are not code), the data's fingerprint, when,
    with which torch, where, and the sessions that made its steps."""
    return {
        "params": params,
        "git_revision": git_revision(params_file),
        "data": trainer.spec.data,
        "steps": result.step,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "torch": str(torch.__version__),  # a str subclass weights_only refuses
        "device": str(trainer.device),
        "hardware": describe_device(trainer.device),  # recorded where it trained
        "precision": trainer.precision,
        "sessions": result.sessions,  # steps, seconds and machine of each session kept
    }


def train_metrics(trainer: Trainer, result: TrainResult) -> dict[str, Any]:
    """metrics/train.json's figures: the run's steps, time and speed, the last losses, and the
    generator's validation scores beside the input's own."""
    return {
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
    }


def write_curves(trainer: Trainer, curves: Path) -> None:
    """The training curves as CSV (DVC plots): every loss term, D(real), D(fake), validation."""
    write_text(curves / "losses.csv", curves_csv(trainer.losses))
    write_text(curves / "validation.csv", curves_csv(trainer.val))


def curves_csv(rows: list[dict[str, float]]) -> str:
    """Log rows (Trainer.losses or Trainer.val) as CSV, one column per key, floats to 6
    significant digits."""
    buf = io.StringIO()
    fields = list(dict.fromkeys(k for row in rows for k in row))
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    writer.writerows({k: _short(v) for k, v in row.items()} for row in rows)
    return buf.getvalue()


def _short(value: Any) -> Any:
    return f"{value:.6g}" if isinstance(value, float) else value


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
