"""The three sources of the raw data, made into one DPED-layout zip with its provenance.

DPED (from its mirrors or a local copy: a zip, a tar or an extracted folder), PIRM 2018's DPED
iPhone pairs (the ai-challenge repository, split by PIRM index) or the sample built from bundled
photos: whatever the input, the output is one zip in the DPED layout, so that extraction reads a
single random-access format and DVC caches one file instead of 320k small ones. The zip is built
beside the old one and replaces it only once its layout has been checked, so a failed run keeps
a good one. What comes back is the provenance (origin, sha256, counts) that the download stage
records in data/source.json.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tqdm import tqdm

from gan.config import DataConfig, format_indices, parse_split
from gan.data.archive import archive_kind, check_zip, to_zip
from gan.data.dped import DpedSource, find_layout
from gan.data.fetch import DownloadError, download
from gan.data.pirm import normalise
from gan.data.sample import write_sample_zip
from gan.fsio import atomic_path, sha256_of

SAMPLE_ORIGIN = "scikit-image bundled photos through a simulated phone camera (gan/data/sample.py)"


def build_raw_zip(spec: DataConfig, dest: Path, downloads: Path, progress: bool
                  ) -> dict[str, Any]:
    """Make ``dest`` (a DPED-layout zip) from params.yaml's data section (checked when it was
    built: the source is one of gan.config.SOURCES, the pin normalised, the PIRM split sound)
    and return its provenance. Partial downloads are kept under ``downloads`` between runs, to
    resume. The zip replaces ``dest`` only once its layout for ``spec.phone`` has been found
    (LayoutError otherwise)."""
    builders = {"sample": build_sample, "dped": fetch_dped, "pirm": fetch_pirm}
    with atomic_path(dest) as staging:
        info = builders[spec.source](spec, staging, downloads, progress)
        info.update(describe(staging, spec.phone))
    info["archive"] = str(dest)
    return info


def build_sample(spec: DataConfig, dest: Path, downloads: Path, progress: bool) -> dict:
    """The sample: bundled photos through a simulated phone camera, seeded (no download)."""
    train, test = spec.sample_train_pairs, spec.sample_test_pairs
    with tqdm(total=train + test, unit="pair", desc="sample", disable=not progress) as bar:
        write_sample_zip(dest, spec.phone, train, test, spec.seed, on_pair=lambda: bar.update())
    return {"source": "sample", "origin": SAMPLE_ORIGIN, "seed": spec.seed,
            "sha256": sha256_of(dest)}


def fetch_dped(spec: DataConfig, dest: Path, downloads: Path, progress: bool) -> dict:
    """DPED from the local copy at ``spec.archive``, else from the first mirror that works."""
    if spec.archive:
        local, digest = local_copy(spec.archive, spec.sha256, "DPED")
        to_zip(local, dest, progress=progress)
        return {"source": "dped", "origin": str(local.resolve()),
                "sha256": digest or sha256_of(dest),
                "sha256_of": "archive" if digest else "zip repacked from the folder"}

    fetched = download(spec.urls, downloads / "dped", part_dir=downloads, sha256=spec.sha256,
                       retries=spec.retries, progress=progress)
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


def fetch_pirm(spec: DataConfig, dest: Path, downloads: Path, progress: bool) -> dict:
    """PIRM 2018's DPED iPhone pairs (the ai-challenge repository, from ``spec.pirm_urls`` or the
    copy at ``spec.archive``), split by PIRM index as ``spec.pirm_train`` / ``pirm_test`` say."""
    train, test = parse_split(spec.pirm_train, spec.pirm_test)  # the indices (checked before)
    if spec.archive:
        local, digest = local_copy(spec.archive, spec.sha256, "ai-challenge repository")
        origin = str(local.resolve())
    else:
        fetched = download(spec.pirm_urls, downloads / "pirm", part_dir=downloads,
                           sha256=spec.sha256, retries=spec.retries, progress=progress)
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
        if not spec.archive:
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
    local = Path(os.path.expanduser(archive))
    if not local.exists():
        raise FileNotFoundError(f"data.archive: {local} does not exist (give a zip, tar, "
                                f"tar.gz or an extracted {what} folder)")
    digest = None
    if local.is_dir() and pin:  # the pin would otherwise be ignored without a word
        raise DownloadError(f"data.archive: {local} is a folder, which has no sha256 of its "
                            "own, but data.sha256 pins one; set data.sha256 to null, or point "
                            "data.archive at the archive file the pin is for")
    if local.is_file():
        digest = sha256_of(local)
        if pin and digest != pin:
            raise DownloadError(f"data.archive: {local} has sha256 {digest}, but data.sha256 "
                                f"pins {pin}; fix the pin or use the right file")
    return local, digest


def describe(dest: Path, phone: str) -> dict:
    """Check that the zip holds the phone's DPED layout (failing here, not later) and count it."""
    with DpedSource(dest) as source:
        layout = find_layout(source.names(), phone)
    return {"phone": phone, "archive": str(dest), "bytes": dest.stat().st_size,
            "layout_root": layout.root,
            "pairs": {split: len(pairs) for split, pairs in layout.pairs.items()},
            "full_size": len(layout.full_size)}
