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
compares on its own).
"""

from __future__ import annotations

import json
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
    import pandas as pd
    from tqdm import tqdm

    from gan.checkpoint import CheckpointError, load_generator
    from gan.data.dped import LayoutError
    from gan.data.patches import PatchPairs
    from gan.evaluation.evaluate import (Method, aligned_test_chunks, baseline_methods,
                                         full_size_scores, generator_method, generator_photo,
                                         identity_method, raw_test_chunks, score_methods)
    from gan.fsio import write_npy
    from gan.runtime import keep_freed_memory, resolve_device

    try:
        all_params = load_params(params)
        phone_name, cfg = all_params.data.phone, all_params.evaluate
        # the settings, taken before any work
        batch_size, saved, saved_photos = cfg.batch_size, cfg.saved_patches, cfg.saved_photos
        device = resolve_device(cfg.device)
        keep_freed_memory()  # batches and tiles allocate the same large blocks again and again
        methods = [identity_method(), *baseline_methods(cfg.clhe_white_balance)]
        for name, path in model_paths(model, cfg.extra_models).items():
            generator = load_generator(path, device)
            methods.append(Method(name, generator_method(generator, device, batch_size),
                                  photo=generator_photo(generator, device)))
        # Both geometries are read a chunk at a time while they are scored (memory flat in the
        # number of pairs); what can be checked before that is checked here.
        counts = {"aligned": len(PatchPairs(patches, "test")), "raw": count_raw_pairs(raw, phone_name)}
        geometries = {"aligned": lambda: aligned_test_chunks(patches),
                      "raw": lambda: raw_test_chunks(raw, phone_name)}
    except (ParamsError, CheckpointError, LayoutError, FileNotFoundError, ValueError,
            RuntimeError) as exc:
        fail(str(exc))

    summary: dict[str, dict] = {}
    tables = []
    samples = out / "patches"
    with tqdm(total=sum(counts.values()), desc="evaluate", unit="pair",
              disable=not progress) as bar:
        for geometry, chunks in geometries.items():
            bar.set_postfix_str(geometry)
            try:
                done = score_methods(methods, counted(chunks(), bar))
            except ValueError as exc:  # the raw archive held no decodable pair of one size
                fail(str(exc))
            summary[geometry] = {name: s.summary() for name, s in done.scores.items()}
            for name, scores in done.scores.items():
                tables.append(pd.DataFrame({
                    "method": name, "geometry": geometry, "index": done.indices,
                    "psnr": scores.psnr, "ssim": scores.ssim, "ms_ssim": scores.ms_ssim,
                    **scores.look, **{f"target_{k}": v for k, v in done.target_look.items()}}))
            if geometry == "raw":
                for name, first in done.first.items():
                    write_npy(samples / f"{name}.npy", first[:saved])
                write_npy(samples / "dslr.npy", done.first_dslr[:saved])
                write_text(samples / "index.json", json.dumps(done.indices[:saved].tolist()))

    photos = sorted((patches / "full_size").glob("*"))
    loe, niqe, speed = full_size_scores(methods[1:], photos, out / "full_size",
                                        saved_photos, progress)
    report = {**summary, "loe": loe, "niqe": niqe, "seconds_per_mp": speed,
              "methods": [m.name for m in methods], "full_size_photos": len(photos)}
    write_json(metrics, report)
    table = pd.concat(tables, ignore_index=True)
    write_text(per_patch, table.to_csv(index=False, float_format="%.6g"))
    for geometry, by_method in summary.items():
        typer.echo(f"{geometry}: " + "; ".join(
            f"{name} {s['psnr']:.2f} dB / {s['ms_ssim']:.4f}" for name, s in by_method.items()))


def counted(chunks, bar):
    """Pass the chunks through, advancing the progress bar by their pairs."""
    for chunk in chunks:
        yield chunk
        bar.update(len(chunk[0]))


def count_raw_pairs(raw: Path, phone_name: str) -> int:
    """The raw test pairs with both sides present (the progress bar's total; a pair that then
    does not decode is skipped by the scoring, not counted): checks the layout on the way."""
    from gan.data.dped import DpedSource, find_layout

    with DpedSource(raw) as source:
        pairs = find_layout(source.names(), phone_name).pairs["test"]
    return sum(p.phone is not None and p.dslr is not None for p in pairs)


def model_paths(model: Path, extras: list | None) -> dict[str, Path]:
    """``ours`` plus each extra checkpoint (a path, or a registered name such as the shipped
    iphone-dped-mini, sha256 checked) under its file name's stem (made unique)."""
    from gan.deploy.pretrained import resolve_model

    paths = {"ours": model}
    for extra in extras or []:
        path = resolve_model(str(extra))
        name = path.stem
        while name in paths or name in ("input", "clhe", "npea"):
            name += "_"
        paths[name] = path
    return paths


if __name__ == "__main__":  # `python -m stages.evaluate`: this stage alone, as dvc.yaml runs it
    typer.run(main)
