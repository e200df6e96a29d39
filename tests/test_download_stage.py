"""The download stage end to end: sample, local archives and folders, mirrors on 127.0.0.1."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import shutil
import tarfile
import threading
import zipfile
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from gan.data.dped import DpedSource, find_layout
from gan.data.sample import write_sample_zip
from stages.app import app
from tests.conftest import temporaries


def data_params(path: Path, **changes) -> Path:
    data = {"source": "sample", "phone": "iphone", "urls": [], "sha256": None, "archive": None,
            "retries": 0, "seed": 0, "sample_train_pairs": 30, "sample_test_pairs": 10,
            "pirm_urls": [], "pirm_train": "0-159", "pirm_test": "160-399", **changes}
    path.write_text(yaml.safe_dump({"data": data}))
    return path


def run_download(tmp_path: Path, **changes):
    params = data_params(tmp_path / "params.yaml", **changes)
    args = ["download", "--params", str(params), "--out", str(tmp_path / "raw"), "--record",
            str(tmp_path / "source.json"), "--downloads", str(tmp_path / "downloads"),
            "--no-progress"]
    return CliRunner().invoke(app, args)


def layout_of(zip_path: Path):
    with DpedSource(zip_path) as source:
        return find_layout(source.names(), "iphone")


@pytest.fixture(scope="module")
def dped_zip(tmp_path_factory) -> Path:
    """A small DPED-layout zip (the sample generator makes real JPEG pairs quickly)."""
    path = tmp_path_factory.mktemp("dped") / "dped.zip"
    write_sample_zip(path, "iphone", train_pairs=12, test_pairs=4, seed=9)
    return path


@pytest.fixture(scope="module")
def dped_folder(dped_zip, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("extracted")
    shutil.unpack_archive(dped_zip, folder)
    return folder


def test_sample_source_builds_the_layout_and_records_its_sha256(tmp_path):
    result = run_download(tmp_path)
    assert result.exit_code == 0, result.output
    archive = tmp_path / "raw" / "dped.zip"
    record = json.loads((tmp_path / "source.json").read_text())
    assert record["source"] == "sample"
    assert record["sha256"] == hashlib.sha256(archive.read_bytes()).hexdigest()
    assert record["pairs"] == {"train": 30, "test": 10} and record["full_size"] == 2
    assert len(layout_of(archive).pairs["train"]) == 30


def test_a_local_zip_is_used_as_is(tmp_path, dped_zip):
    result = run_download(tmp_path, source="dped", archive=str(dped_zip))
    assert result.exit_code == 0, result.output
    copied = tmp_path / "raw" / "dped.zip"
    assert copied.read_bytes() == dped_zip.read_bytes()
    record = json.loads((tmp_path / "source.json").read_text())
    assert record["origin"] == str(dped_zip.resolve())
    assert record["sha256"] == hashlib.sha256(dped_zip.read_bytes()).hexdigest()


@pytest.mark.parametrize("kind", ["folder", "tar.gz"])
def test_a_local_folder_or_tarball_is_repacked(tmp_path, dped_zip, dped_folder, kind):
    source = dped_folder
    if kind == "tar.gz":
        source = tmp_path / "dped.tar.gz"
        with tarfile.open(source, "w:gz") as tar:
            tar.add(dped_folder / "dped", arcname="dped")
    result = run_download(tmp_path, source="dped", archive=str(source))
    assert result.exit_code == 0, result.output
    repacked = layout_of(tmp_path / "raw" / "dped.zip")
    assert [p.index for p in repacked.pairs["train"]] == list(range(12))
    with DpedSource(tmp_path / "raw" / "dped.zip") as got, DpedSource(dped_zip) as want:
        name = "dped/iphone/training_data/canon/5.jpg"
        assert got.read(name) == want.read(name)


def test_a_pinned_checksum_that_does_not_match_is_refused(tmp_path, dped_zip):
    result = run_download(tmp_path, source="dped", archive=str(dped_zip), sha256="0" * 64)
    assert result.exit_code == 1
    assert "pins 0000" in result.output and "sha256" in result.output
    assert not (tmp_path / "raw" / "dped.zip").exists()


def test_a_pin_with_a_folder_is_refused_not_ignored(tmp_path, dped_folder):
    result = run_download(tmp_path, source="dped", archive=str(dped_folder), sha256="ab" * 32)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"data.archive: {dped_folder} is a folder, which has no sha256" in result.output
    assert "set data.sha256 to null" in result.output
    assert not (tmp_path / "raw" / "dped.zip").exists()


def test_an_archive_without_the_phone_is_a_clear_error(tmp_path, dped_zip):
    result = run_download(tmp_path, source="dped", archive=str(dped_zip), phone="sony")
    assert result.exit_code == 1
    assert "no DPED training folder for phone 'sony'" in result.output
    assert "found: iphone" in result.output


def test_a_missing_local_archive_is_named(tmp_path):
    result = run_download(tmp_path, source="dped", archive=str(tmp_path / "nowhere.zip"))
    assert result.exit_code == 1
    assert "nowhere.zip does not exist" in result.output


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        if self.path.startswith("/forbidden"):
            self.send_error(403)
        else:
            super().do_GET()


@pytest.fixture
def mirror(tmp_path, dped_zip):
    served = tmp_path / "www"
    served.mkdir()
    shutil.copy(dped_zip, served / "dped.zip")
    handler = functools.partial(_Handler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_download_falls_through_to_a_working_mirror(tmp_path, mirror, dped_zip):
    digest = hashlib.sha256(dped_zip.read_bytes()).hexdigest()
    urls = [f"{mirror}/forbidden/dped.zip", f"{mirror}/dped.zip"]
    result = run_download(tmp_path, source="dped", urls=urls, sha256=digest.upper())
    assert result.exit_code == 0, result.output
    assert (tmp_path / "raw" / "dped.zip").read_bytes() == dped_zip.read_bytes()
    record = json.loads((tmp_path / "source.json").read_text())
    assert record["origin"] == urls[1] and record["sha256"] == digest
    assert not list((tmp_path / "downloads").glob("*.part"))


def test_every_mirror_failing_explains_each_and_the_local_alternative(tmp_path, mirror):
    urls = [f"{mirror}/forbidden/dped.zip", f"{mirror}/missing.zip"]
    result = run_download(tmp_path, source="dped", urls=urls)
    assert result.exit_code == 1
    assert f"{urls[0]}: HTTP 403" in result.output
    assert f"{urls[1]}: HTTP 404" in result.output
    assert "data.archive" in result.output and "403 since 2022" in result.output
    assert not (tmp_path / "raw" / "dped.zip").exists()


def test_an_unknown_source_is_refused(tmp_path):
    result = run_download(tmp_path, source="flickr")
    assert result.exit_code == 1
    assert "data.source must be 'sample', 'dped' or 'pirm', got 'flickr'" in result.output


def test_a_failed_download_keeps_the_good_archive(tmp_path, dped_zip):
    assert run_download(tmp_path, source="dped", archive=str(dped_zip)).exit_code == 0
    good = (tmp_path / "raw" / "dped.zip").read_bytes()
    not_dped = tmp_path / "holiday-photos"
    (not_dped / "2024").mkdir(parents=True)
    (not_dped / "2024" / "beach.jpg").write_bytes(b"a photo")
    result = run_download(tmp_path, source="dped", archive=str(not_dped))
    assert result.exit_code == 1 and "no DPED training folder" in result.output
    assert (tmp_path / "raw" / "dped.zip").read_bytes() == good
    assert not temporaries(tmp_path / "raw")


@pytest.fixture
def slip_mirror(tmp_path):
    """A mirror serving a zip whose member would write outside the extraction folder."""
    served = tmp_path / "www"
    served.mkdir()
    with zipfile.ZipFile(served / "dped.zip", "w") as archive:
        archive.writestr("dped/iphone/training_data/iphone/0.jpg", b"x")
        archive.writestr("../../outside.txt", b"zip slip")
    handler = functools.partial(_Handler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_refused_unsafe_download_is_not_left_in_downloads(tmp_path, slip_mirror):
    result = run_download(tmp_path, source="dped", urls=[f"{slip_mirror}/dped.zip"])
    assert result.exit_code == 1 and "outside.txt" in result.output
    assert not (tmp_path / "raw" / "dped.zip").exists()
    assert [p.name for p in (tmp_path / "downloads").rglob("*") if p.is_file()] == []
