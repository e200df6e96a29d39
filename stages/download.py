"""download stage: DPED from mirrors or a local copy, PIRM 2018's DPED pairs, or the embedded
sample -> data/raw/dped.zip.

Whatever the input (a downloaded zip or tar, a local archive, an extracted folder, the PIRM
challenge repository, or the sample built from bundled photos), the output is one zip in the DPED
layout, so the extract stage reads a single, random-access format, and DVC caches one file
instead of 320k small ones.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer

from gan.config import DataConfig
from stages.common import fail, reports_write_errors, write_json
from stages.params import PARAMS, ParamsError, load_params
SAMPLE_ORIGIN = "scikit-image bundled photos through a simulated phone camera (gan/data/sample.py)"


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
    from gan.config import SplitError
    from gan.fsio import atomic_path

    dest = out / "dped.zip"
    try:
        cfg = load_params(params).data  # checked there: the source, counts, pin, PIRM split
        builders = {"sample": build_sample, "dped": fetch_dped, "pirm": fetch_pirm}
        # Validate first, replace last: the new archive is built beside the old one and takes
        # its place only once its layout has been checked, so a failed run keeps a good
        # data/raw/dped.zip.
        with atomic_path(dest) as staging:
            info = builders[cfg.source](cfg, staging, downloads, progress)
            info.update(describe(staging, cfg.phone))
        info["archive"] = str(dest)
        write_json(record, info)
    except (ParamsError, DownloadError, ArchiveError, UnsafeArchiveError, LayoutError, SplitError,
            FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    typer.echo(f"{dest}: {info['pairs']['train']} training and {info['pairs']['test']} test pairs, "
               f"{info['full_size']} full-size photos (sha256 {info['sha256'][:12]}...)")


def build_sample(cfg: DataConfig, dest: Path, downloads: Path, progress: bool) -> dict:
    from tqdm import tqdm

    from gan.data.sample import write_sample_zip
    from gan.fsio import sha256_of

    train, test = cfg.sample_train_pairs, cfg.sample_test_pairs
    with tqdm(total=train + test, unit="pair", desc="sample", disable=not progress) as bar:
        write_sample_zip(dest, cfg.phone, train, test, cfg.seed, on_pair=lambda: bar.update())
    return {"source": "sample", "origin": SAMPLE_ORIGIN, "seed": cfg.seed,
            "sha256": sha256_of(dest)}


def fetch_dped(cfg: DataConfig, dest: Path, downloads: Path, progress: bool) -> dict:
    from gan.data.archive import archive_kind, check_zip, to_zip
    from gan.data.fetch import download
    from gan.fsio import sha256_of

    if cfg.archive:
        local, digest = local_copy(cfg.archive, cfg.sha256, "DPED")
        to_zip(local, dest, progress=progress)
        return {"source": "dped", "origin": str(local.resolve()),
                "sha256": digest or sha256_of(dest),
                "sha256_of": "archive" if digest else "zip repacked from the folder"}

    fetched = download(cfg.urls, downloads / "dped", part_dir=downloads, sha256=cfg.sha256,
                       retries=cfg.retries, progress=progress)
    try:
        if archive_kind(fetched.path) == "zip":
            check_zip(fetched.path)
            os.replace(fetched.path, dest)  # same file system: no second copy of several GB
        else:
            to_zip(fetched.path, dest, progress=progress)
    finally:  # accepted or refused (an unsafe or unreadable archive), it is not kept twice
        fetched.path.unlink(missing_ok=True)
    return {"source": "dped", "origin": fetched.url, "sha256": fetched.sha256,
            "sha256_of": "archive"}


def fetch_pirm(cfg: DataConfig, dest: Path, downloads: Path, progress: bool) -> dict:
    """PIRM 2018's DPED iPhone pairs (the ai-challenge repository, from data.pirm_urls or the
    copy at data.archive), split by PIRM index as data.pirm_train / data.pirm_test say."""
    from gan.data.archive import archive_kind, check_zip, to_zip
    from gan.data.fetch import download
    from gan.config import format_indices, parse_split
    from gan.data.pirm import normalise
    from gan.fsio import sha256_of

    train, test = parse_split(cfg.pirm_train, cfg.pirm_test)  # the indices (checked on loading)
    if cfg.archive:
        local, digest = local_copy(cfg.archive, cfg.sha256, "ai-challenge repository")
        origin = str(local.resolve())
    else:
        fetched = download(cfg.pirm_urls, downloads / "pirm", part_dir=downloads,
                           sha256=cfg.sha256, retries=cfg.retries, progress=progress)
        local, digest, origin = fetched.path, fetched.sha256, fetched.url
    try:
        kind = archive_kind(local)
        if kind == "tar":  # DpedSource reads zips and folders: repack first (42 MB, seconds)
            repacked = downloads / "pirm-repacked.zip"
            to_zip(local, repacked, progress=progress)
            try:
                done = normalise(repacked, dest, train, test, progress)
            finally:
                repacked.unlink(missing_ok=True)
        else:
            if kind == "zip":
                check_zip(local)  # a readable zip without unsafe names, said as such
            done = normalise(local, dest, train, test, progress)
    finally:
        if not cfg.archive:
            local.unlink(missing_ok=True)  # the download was complete; only dest is kept
    return {"source": "pirm", "origin": origin, "sha256": digest or sha256_of(dest),
            "sha256_of": "archive" if digest else "zip normalised from the folder",
            "pirm_root": done.root,
            # The K-th pair of a split is the K-th of its PIRM indices in increasing order.
            "pirm_indices": {"train": format_indices(done.train),
                             "test": format_indices(done.test)},
            "pirm_full_size": done.full_size}


def local_copy(archive: str, pin: str | None, what: str) -> tuple[Path, str | None]:
    """data.archive as a path that exists, and its sha256 when it is a file (checked against the
    pin); a folder has no digest of its own."""
    from gan.data.fetch import DownloadError
    from gan.fsio import sha256_of

    local = Path(os.path.expanduser(archive))
    if not local.exists():
        raise FileNotFoundError(f"data.archive: {local} does not exist (give a zip, tar, "
                                f"tar.gz or an extracted {what} folder)")
    digest = None
    if local.is_file():
        digest = sha256_of(local)
        if pin and digest != pin:
            raise DownloadError(f"data.archive: {local} has sha256 {digest}, but data.sha256 "
                                f"pins {pin}; fix the pin or use the right file")
    return local, digest


def describe(dest: Path, phone: str) -> dict:
    """Check that the zip holds the phone's DPED layout (failing here, not later) and count it."""
    from gan.data.dped import DpedSource, find_layout

    with DpedSource(dest) as source:
        layout = find_layout(source.names(), phone)
    return {"phone": phone, "archive": str(dest), "bytes": dest.stat().st_size,
            "layout_root": layout.root,
            "pairs": {split: len(pairs) for split, pairs in layout.pairs.items()},
            "full_size": len(layout.full_size)}


if __name__ == "__main__":  # `python -m stages.download`: this stage alone, as dvc.yaml runs it
    typer.run(main)
