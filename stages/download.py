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

from stages.common import fail, reports_write_errors, write_json
from stages.params import PARAMS, ParamsError, load_params


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
    from gan.config import SplitError
    from gan.data.archive import ArchiveError, UnsafeArchiveError
    from gan.data.dped import LayoutError
    from gan.data.fetch import DownloadError
    from gan.data.sources import build_raw_zip

    dest = out / "dped.zip"
    try:
        # checked on loading (gan.config.DataConfig): the source, its keys, the pin, the split
        info = build_raw_zip(load_params(params).data, dest, downloads, progress)
        write_json(record, info)
    except (ParamsError, DownloadError, ArchiveError, UnsafeArchiveError, LayoutError, SplitError,
            FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    typer.echo(f"{dest}: {info['pairs']['train']} training and {info['pairs']['test']} test pairs, "
               f"{info['full_size']} full-size photos (sha256 {info['sha256'][:12]}...)")


if __name__ == "__main__":  # `python -m stages.download`: this stage alone, as dvc.yaml runs it
    typer.run(main)
