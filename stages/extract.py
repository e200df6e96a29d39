"""extract stage: data/raw/dped.zip -> aligned 96x96 patch arrays, pairs.csv, metrics/extract.json."""

from __future__ import annotations

from pathlib import Path

import typer

from stages.common import fail, reports_write_errors, write_json, write_text
from stages.params import PARAMS, ParamsError, load_params


@reports_write_errors
def main(
    params: Path = typer.Option(PARAMS, help="params file (reads data.phone and extract)"),
    raw: Path = typer.Option(Path("data/raw/dped.zip"), help="DPED-layout zip or folder"),
    out: Path = typer.Option(Path("data/patches"), help="output folder (a DVC out)"),
    metrics: Path = typer.Option(Path("metrics/extract.json"), help="summary metrics file"),
    progress: bool = typer.Option(True, help="show a progress bar"),
) -> None:
    """Align each phone/DSLR pair and cut the 96x96 windows that line up."""
    import pandas as pd
    from tqdm import tqdm

    from gan.data.dped import DpedSource, LayoutError, find_layout
    from gan.data.extract import extract, rows_table
    from gan.fsio import atomic_folder

    try:
        all_params = load_params(params)
        phone, cfg = all_params.data.phone, all_params.extract
        with DpedSource(raw) as source:
            layout = find_layout(source.names(), phone)
    except (ParamsError, LayoutError, FileNotFoundError, ValueError) as exc:
        fail(str(exc))

    # Validate first, replace last: the patches are built in a staging folder beside `out`,
    # which replaces it only when both splits kept pairs; a failed run keeps the good ones.
    total = sum(len(p) for p in layout.pairs.values())
    with atomic_folder(out) as staging:
        with tqdm(total=total, unit="pair", desc="extract", disable=not progress) as bar:
            summary = extract(raw, layout, staging, cfg, workers=cfg.workers,
                              on_progress=bar.update)
        table = pd.DataFrame(rows_table(summary.rows)).to_csv(index=False)
        report = summary.metrics()
        for row in [r for r in summary.rows
                    if r.reason.startswith(("unreadable", "missing", "wrong"))][:10]:
            typer.secho(f"skipped {row.split} pair {row.index}: {row.reason}: {row.detail}",
                        fg=typer.colors.YELLOW, err=True)
        for name, why in summary.full_size_skipped.items():
            typer.secho(f"skipped full-size photo {name}: {why}", fg=typer.colors.YELLOW, err=True)
        if not summary.kept.get("train") or not summary.kept.get("test"):
            rejected = out.with_name(out.name + ".rejected-pairs.csv")
            write_text(rejected, table)
            fail(f"no usable {'training' if not summary.kept.get('train') else 'test'} pairs "
                 f"remain after extraction (dropped: {report['dropped']}); {out} was left as it "
                 f"was; see {rejected}")
        write_text(staging / "pairs.csv", table)
    write_json(metrics, report)
    typer.echo(f"{out}: kept {report['kept']} of {report['pairs_read']} pairs "
               f"({report['pairs_per_s']} pairs/s on {report['workers']} workers); "
               f"dropped {sum(report['dropped'].values())}: "
               + ", ".join(f"{k} {v}" for k, v in report["dropped"].items() if v))


if __name__ == "__main__":  # `python -m stages.extract`: this stage alone, as dvc.yaml runs it
    typer.run(main)
