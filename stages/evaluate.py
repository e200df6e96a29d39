"""evaluate stage: every method on every test pair, DPED protocol -> metrics/eval.json and more.

Methods: the input as it is, CLHE, NPEA, the trained generator (``ours``) and any extra generator
checkpoints named in ``evaluate.extra_models``. Geometries: the aligned 96x96 test crops of the
extract stage (primary) and the raw 100x100 test patches as DPED and PIRM scored them. On the
full-size test photos (no DSLR twin) each method gets its lightness order error, its NIQE (beside
the input's) and its speed.

Beside PSNR, SSIM and MS-SSIM, each method's summary in metrics/eval.json has its look against
the DSLR targets (gan.look): detail_ratio, contrast_ratio, saturation_ratio (1.0 = the
target's) and black_diff (grey levels, 0 = the target's). metrics/eval_per_patch.csv has one
row per method, geometry and patch: method, geometry, index, psnr, ssim, ms_ssim, the output's
detail, contrast, black and saturation, and the DSLR target's as target_detail, target_contrast,
target_black and target_saturation (the same in every method's row of a patch, so that each row
compares on its own). The scoring itself: gan/evaluation/evaluate.py (``evaluate``).
"""

from __future__ import annotations

from pathlib import Path

import typer

from stages.common import fail, reports_write_errors, write_json, write_text
from stages.params import PARAMS, ParamsError, load_params


@reports_write_errors
def main(
    params: Path = typer.Option(PARAMS, help="params file (reads data.phone and evaluate)"),
    patches: Path = typer.Option(Path("data/patches"), help="aligned patches (extract stage)"),
    raw: Path = typer.Option(Path("data/raw/dped.zip"), help="DPED-layout zip (download stage)"),
    model: Path = typer.Option(Path("models/generator.pt"), help="trained generator"),
    metrics: Path = typer.Option(Path("metrics/eval.json"), help="summary metrics (output)"),
    per_patch: Path = typer.Option(Path("metrics/eval_per_patch.csv"), help="per-patch scores"),
    out: Path = typer.Option(Path("data/eval"), help="enhanced samples for the report (output)"),
    progress: bool = typer.Option(True, help="show a progress bar"),
) -> None:
    """Score input, CLHE, NPEA and the generator(s) against the DSLR test patches."""
    from gan.checkpoint import CheckpointError
    from gan.data.dped import LayoutError
    from gan.evaluation.evaluate import (ScoringError, evaluate, evaluation_methods,
                                         scoring_geometries)

    try:
        all_params = load_params(params)
        phone_name, cfg = all_params.data.phone, all_params.evaluate
        saved, saved_photos = cfg.saved_patches, cfg.saved_photos  # all settings before any work
        methods = evaluation_methods(model, cfg.extra_models, cfg.device, cfg.batch_size,
                                     cfg.clhe_white_balance)
        geometries = scoring_geometries(patches, raw, phone_name)
    except (ParamsError, CheckpointError, LayoutError, FileNotFoundError, ValueError,
            RuntimeError) as exc:
        fail(str(exc))
    try:
        done = evaluate(methods, geometries, patches / "full_size", out,
                        saved, saved_photos, progress)
    except ScoringError as exc:
        fail(str(exc))
    write_json(metrics, done.report)
    write_text(per_patch, done.table.to_csv(index=False, float_format="%.6g"))
    for geometry, by_method in done.summary.items():
        typer.echo(f"{geometry}: " + "; ".join(
            f"{name} {s['psnr']:.2f} dB / {s['ms_ssim']:.4f}" for name, s in by_method.items()))


if __name__ == "__main__":  # `python -m stages.evaluate`: this stage alone, as dvc.yaml runs it
    typer.run(main)
