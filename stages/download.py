"""download stage: DPED from mirrors or a local copy, PIRM 2018's DPED pairs, or the embedded
sample -> data/raw/dped.zip.

Whatever the input (a downloaded zip or tar, a local archive, an extracted folder, the PIRM
challenge repository, or the sample built from bundled photos), the output is one zip in the DPED
layout, so the extract stage reads a single, random-access format, and DVC caches one file
instead of 320k small ones. How each source becomes that zip: gan/data/sources.py.
"""

from __future__ import annotations

from pathlib import Path

import typer

from stages.common import (PARAMS, ParamsError, fail, load_params, pick, reports_write_errors,
                           section, write_json)

KEYS = ("source", "phone", "urls", "sha256", "archive", "retries", "seed", "sample_train_pairs",
        "sample_test_pairs", "pirm_urls", "pirm_train", "pirm_test")


@reports_write_errors
def main(
    params: Path = typer.Option(PARAMS, help="params file (reads its data section)"),
    out: Path = typer.Option(Path("data/raw"), help="output folder (a DVC out)"),
    record: Path = typer.Option(Path("data/source.json"),
                                help="provenance of the accepted archive: origin, sha256, counts"),
    downloads: Path = typer.Option(Path("data/downloads"),
                                   help="partial downloads, kept between runs to resume"),
    progress: bool = typer.Option(True, help="show progress bars"),
) -> None:
    """Fetch DPED or PIRM's DPED pairs (mirrors, or data.archive) or build the sample, as
    data/raw/dped.zip."""
    from gan.data.archive import ArchiveError, UnsafeArchiveError
    from gan.data.dped import LayoutError
    from gan.data.fetch import DownloadError
    from gan.data.sources import SOURCES, SourceSpec, build_raw_zip
    from gan.data.splits import SplitError

    dest = out / "dped.zip"
    try:
        cfg = pick(section(load_params(params), "data", params), KEYS, "data")
        if cfg["source"] not in SOURCES:
            raise ParamsError("data.source must be 'sample', 'dped' or 'pirm', "
                              f"got {cfg['source']!r}")
        recheck_source_keys(cfg)
        info = build_raw_zip(SourceSpec(**cfg), dest, downloads, progress)
        write_json(record, info)
    except (ParamsError, DownloadError, ArchiveError, UnsafeArchiveError, LayoutError, SplitError,
            FileNotFoundError, ValueError) as exc:  # ValueError: a malformed data.sha256 pin
        fail(str(exc))
    typer.echo(f"{dest}: {info['pairs']['train']} training and {info['pairs']['test']} test pairs, "
               f"{info['full_size']} full-size photos (sha256 {info['sha256'][:12]}...)")


def recheck_source_keys(cfg: dict) -> None:
    """The data keys that only the chosen source needs, checked before anything is built."""
    from gan.data.pirm import PHONE

    if cfg["source"] == "sample":
        train, test = int(cfg["sample_train_pairs"]), int(cfg["sample_test_pairs"])
        if train < 1 or test < 1:
            raise ParamsError("data.sample_train_pairs and data.sample_test_pairs must be "
                              "positive")
    if cfg["source"] == "pirm" and cfg["phone"] != PHONE:
        raise ParamsError(f"data.phone is {cfg['phone']!r}, but data.source: pirm has {PHONE} "
                          f"pairs only; set data.phone to {PHONE}")


if __name__ == "__main__":  # `python -m stages.download`: this stage alone, as dvc.yaml runs it
    typer.run(main)
