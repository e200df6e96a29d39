"""download stage: DPED from mirrors or a local copy, or the embedded sample -> data/raw/dped.zip.

Whatever the input (a downloaded zip or tar, a local archive, an extracted folder, or the sample
built from bundled photos), the output is one zip in the DPED layout, so the extract stage reads
a single, random-access format, and DVC caches one file instead of 320k small ones.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer

from stages.common import PARAMS, ParamsError, fail, load_params, pick, section, write_json

KEYS = ("source", "phone", "urls", "sha256", "archive", "retries", "seed", "sample_train_pairs",
        "sample_test_pairs")
SAMPLE_ORIGIN = "scikit-image bundled photos through a simulated phone camera (gan/sample.py)"


def main(
    params: Path = typer.Option(PARAMS, help="params file (reads its data section)"),
    out: Path = typer.Option(Path("data/raw"), help="output folder (a DVC out)"),
    record: Path = typer.Option(Path("data/source.json"),
                                help="provenance of the accepted archive: origin, sha256, counts"),
    downloads: Path = typer.Option(Path("data/downloads"),
                                   help="partial downloads, kept between runs to resume"),
    progress: bool = typer.Option(True, help="show progress bars"),
) -> None:
    """Fetch DPED (mirrors, or data.archive) or build the sample, as data/raw/dped.zip."""
    from gan.archive import ArchiveError, UnsafeArchiveError
    from gan.dped import LayoutError
    from gan.fetch import DownloadError

    try:
        cfg = pick(section(load_params(params), "data", params), KEYS, "data")
        out.mkdir(parents=True, exist_ok=True)
        dest = out / "dped.zip"
        if cfg["source"] == "sample":
            info = build_sample(cfg, dest, progress)
        elif cfg["source"] == "dped":
            info = fetch_dped(cfg, dest, downloads, progress)
        else:
            raise ParamsError(f"data.source must be 'sample' or 'dped', got {cfg['source']!r}")
        info.update(describe(dest, cfg["phone"]))
        write_json(record, info)
    except (ParamsError, DownloadError, ArchiveError, UnsafeArchiveError, LayoutError,
            FileNotFoundError, ValueError) as exc:  # ValueError: a malformed data.sha256 pin
        fail(str(exc))
    typer.echo(f"{dest}: {info['pairs']['train']} training and {info['pairs']['test']} test pairs, "
               f"{info['full_size']} full-size photos (sha256 {info['sha256'][:12]}...)")


def build_sample(cfg: dict, dest: Path, progress: bool) -> dict:
    from tqdm import tqdm

    from gan.fetch import sha256_of
    from gan.sample import write_sample_zip

    train, test = int(cfg["sample_train_pairs"]), int(cfg["sample_test_pairs"])
    if train < 1 or test < 1:
        raise ParamsError("data.sample_train_pairs and data.sample_test_pairs must be positive")
    with tqdm(total=train + test, unit="pair", desc="sample", disable=not progress) as bar:
        write_sample_zip(dest, cfg["phone"], train, test, int(cfg["seed"]),
                         on_pair=lambda: bar.update())
    return {"source": "sample", "origin": SAMPLE_ORIGIN, "seed": int(cfg["seed"]),
            "sha256": sha256_of(dest)}


def fetch_dped(cfg: dict, dest: Path, downloads: Path, progress: bool) -> dict:
    from gan.archive import archive_kind, check_zip, to_zip
    from gan.fetch import DownloadError, download, sha256_of

    pin = (cfg["sha256"] or "").strip().lower() or None
    if cfg["archive"]:
        local = Path(os.path.expanduser(str(cfg["archive"])))
        if not local.exists():
            raise FileNotFoundError(f"data.archive: {local} does not exist (give a zip, tar, "
                                    "tar.gz or an extracted DPED folder)")
        digest = None
        if local.is_file():
            digest = sha256_of(local)
            if pin and digest != pin:
                raise DownloadError(f"data.archive: {local} has sha256 {digest}, but data.sha256 "
                                    f"pins {pin}; fix the pin or use the right file")
        to_zip(local, dest, progress=progress)
        return {"source": "dped", "origin": str(local.resolve()),
                "sha256": digest or sha256_of(dest),
                "sha256_of": "archive" if digest else "zip repacked from the folder"}

    urls = [str(u) for u in (cfg["urls"] or [])]
    fetched = download(urls, downloads / "dped", part_dir=downloads, sha256=pin,
                       retries=int(cfg["retries"]), progress=progress)
    if archive_kind(fetched.path) == "zip":
        check_zip(fetched.path)
        os.replace(fetched.path, dest)  # same file system: no second copy of several GB
    else:
        to_zip(fetched.path, dest, progress=progress)
        fetched.path.unlink()
    return {"source": "dped", "origin": fetched.url, "sha256": fetched.sha256,
            "sha256_of": "archive"}


def describe(dest: Path, phone: str) -> dict:
    """Check that the zip holds the phone's DPED layout (failing here, not later) and count it."""
    from gan.dped import DpedSource, find_layout

    with DpedSource(dest) as source:
        layout = find_layout(source.names(), phone)
    return {"phone": phone, "archive": str(dest), "bytes": dest.stat().st_size,
            "layout_root": layout.root,
            "pairs": {split: len(pairs) for split, pairs in layout.pairs.items()},
            "full_size": len(layout.full_size)}


if __name__ == "__main__":  # `python -m stages.download`: this stage alone, as dvc.yaml runs it
    typer.run(main)
