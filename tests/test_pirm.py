"""data.source: pirm: PIRM 2018's DPED pairs found in the ai-challenge repository, split by index
and normalised to the DPED layout; the download stage with it, mirrors on 127.0.0.1.

The synthetic tests need nothing outside the repository; the round trip through dped-mini (PIRM
pairs 0-199 in DPED's layout) skips where ../shared/dped-mini is absent.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import re
import shutil
import socket
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from PIL import Image

from gan.data.dped import DpedSource, LayoutError, find_layout
from gan.data.pirm import check_split, find_pirm, normalise
from gan.config import SplitError, format_indices, parse_indices, parse_split
from tests.conftest import jpeg, local_http_server, temporaries
from tests.test_download_stage import run_download

TOP = "ai-challenge-master/"  # GitHub's archive zip puts every path under the repository folder
UNRELATED = {  # the rest of the repository, which must be ignored
    "README.md": b"# ai-challenge",
    "super-resolution/val/0.png": b"not a patch",
    "super-resolution/patches/iphone/0.jpg": b"not DPED either",
    "models_pretrained/dped_iphone.index": b"weights",
}


def png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def pirm_files(pairs: int = 10, photos: int = 2, seed: int = 0) -> dict[str, bytes]:
    """The dped/ folder of the ai-challenge repository in miniature: small random JPEG pairs
    (each file distinct) and PNG photos, plus unrelated folders; names relative to its top."""
    rng = np.random.default_rng(seed)
    files = dict(UNRELATED)
    for i in range(pairs):
        for side in ("iphone", "canon"):
            files[f"dped/patches/{side}/{i}.jpg"] = jpeg(rng.integers(0, 256, (8, 8, 3), np.uint8))
    for i in range(photos):
        files[f"dped/HD_res/{i}.png"] = png(rng.integers(0, 256, (12, 16, 3), np.uint8))
    return files


def write_zip(path: Path, files: dict[str, bytes], top: str = TOP) -> Path:
    """A zip as GitHub builds it: deflated members under ``top``, folder entries included."""
    folders = {top + f.rsplit("/", 1)[0] + "/" for f in files if "/" in f}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        if top:
            zf.writestr(top, b"")
        for folder in sorted(folders):
            zf.writestr(folder, b"")
        for name, data in files.items():
            zf.writestr(top + name, data)
    return path


@pytest.fixture
def pirm_zip(tmp_path) -> Path:
    return write_zip(tmp_path / "ai-challenge-master.zip", pirm_files())


def listing(files: dict[str, bytes], top: str = TOP) -> list[str]:
    return [top + name for name in files]


# -- the split params ---------------------------------------------------------------------------

@pytest.mark.parametrize("spec, want", [
    ("0-159", list(range(160))),
    ("0-2,5-6", [0, 1, 2, 5, 6]),
    (" 3 - 5 , 1 ", [1, 3, 4, 5]),
    ("7", [7]),
    (7, [7]),
    ("4-4", [4]),
    ("0-3,2-5", [0, 1, 2, 3, 4, 5]),  # overlapping ranges of one split merge
    ("", []),
    (None, []),
])
def test_split_specs_parse_to_sorted_indices(spec, want):
    assert parse_indices(spec, "data.pirm_train") == want


@pytest.mark.parametrize("spec, says", [
    ("a-b", r"'a-b' is not an index or a range"),
    ("1,,2", r"'' in '1,,2' is not an index"),
    ("-3", r"'-3' is not an index"),
    ("0-9, 5-", r"'5-' in '0-9, 5-' is not an index"),
    ("0-99;200-299", r"is not an index or a range"),
    ("9-3", r"the range '9-3' runs backwards; write 3-9"),
    ("0-1,9-3", r"the range '9-3' in '0-1,9-3' runs backwards"),
    (True, r"got True"),
    (1.5, r"got 1\.5"),
    ([0, 1], r"got \[0, 1\]"),
])
def test_malformed_split_specs_are_named(spec, says):
    with pytest.raises(SplitError, match=r"^data\.pirm_test: .*" + says):
        parse_indices(spec, "data.pirm_test")


def test_format_indices_reads_back_and_abbreviates():
    indices = [0, 1, 2, 5, 7, 8, 20]
    assert format_indices(indices) == "0-2,5,7-8,20"
    assert parse_indices(format_indices(indices), "k") == indices
    assert format_indices(range(0, 40, 2), limit=3) == "0,2,4,...,38"
    assert format_indices([1, 2, 3, 9], limit=3) == "1-3,9"


def test_the_default_split_is_dped_minis_plus_200_test_pairs():
    train, test = parse_split("0-159", "160-399")
    assert train == list(range(160)) and test == list(range(160, 400))


def test_an_index_in_both_splits_is_refused():
    with pytest.raises(SplitError, match=r"data\.pirm_train \(0-159\) and data\.pirm_test "
                                         r"\(150-399\) share 10 indices: 150-159; a pair must "
                                         r"be in one split only"):
        parse_split("0-159", "150-399")
    with pytest.raises(SplitError, match=r"share 1 index: 5;"):
        parse_split("0-5", "5-9")


@pytest.mark.parametrize("train, test, key", [("", "0-9", "train"), ("0-9", None, "test")])
def test_an_empty_split_is_refused(train, test, key):
    with pytest.raises(SplitError, match=rf"data\.pirm_{key}: the split is empty"):
        parse_split(train, test)


def as_kind(archive: Path, folder: Path, kind: str) -> Path:
    """The archive itself ("zip"), or its contents unpacked into ``folder`` ("folder")."""
    if kind == "folder":
        shutil.unpack_archive(archive, folder)
        return folder
    return archive


# -- finding the layout -------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["zip", "folder"])
def test_the_layout_is_found_in_a_zip_or_a_folder(tmp_path, pirm_zip, kind):
    source = as_kind(pirm_zip, tmp_path / "extracted", kind)
    with DpedSource(source) as src:
        layout = find_pirm(src.names())
    assert layout.root == TOP
    assert sorted(layout.pairs) == list(range(10))
    assert layout.pairs[3] == (f"{TOP}dped/patches/iphone/3.jpg", f"{TOP}dped/patches/canon/3.jpg")
    assert layout.full_size == [f"{TOP}dped/HD_res/0.png", f"{TOP}dped/HD_res/1.png"]
    assert layout.one_sided == {}


def test_the_repository_folder_itself_has_an_empty_root():
    layout = find_pirm(listing(pirm_files(3), top=""))
    assert layout.root == "" and sorted(layout.pairs) == [0, 1, 2]


def test_an_index_with_one_side_is_not_a_pair():
    files = pirm_files(4)
    del files["dped/patches/canon/2.jpg"]
    layout = find_pirm(listing(files))
    assert sorted(layout.pairs) == [0, 1, 3] and layout.one_sided == {2: "iphone"}


def test_a_source_without_the_layout_says_what_was_expected_and_found():
    with pytest.raises(LayoutError) as failure:
        find_pirm(listing(UNRELATED), "repo.zip")
    message = str(failure.value)
    assert message.startswith("repo.zip: no PIRM 2018 DPED patches")
    assert ("expected <anything>/dped/patches/iphone/N.jpg beside "
            "<anything>/dped/patches/canon/N.jpg") in message
    assert message.endswith(f"found 4 files under {TOP}")  # no hint: nothing like DPED there


def test_the_dped_release_layout_is_recognised_and_redirected():
    release = ["dped/iphone/training_data/iphone/0.jpg", "dped/iphone/training_data/canon/0.jpg"]
    with pytest.raises(LayoutError, match=r"found 2 files under dped/; this looks like the DPED "
                                          r"release layout .* data\.source: dped reads"):
        find_pirm(release)


def test_a_folder_below_dped_is_explained():
    inside = [n.removeprefix("dped/") for n in pirm_files(2) if n.startswith("dped/")]
    with pytest.raises(LayoutError, match=r"found 6 files under HD_res/, patches/; this is the dped/ "
                                          r"folder itself: point at the folder that holds dped/"):
        find_pirm(inside)


def test_two_copies_are_ambiguous():
    names = listing(pirm_files(2), top="a/") + listing(pirm_files(2), top="b/c/")
    with pytest.raises(LayoutError, match=r"several PIRM DPED folders: a/dped/, b/c/dped/; keep one copy"):
        find_pirm(names)


def test_one_sided_patches_only_are_refused():
    names = [f"{TOP}dped/patches/iphone/{i}.jpg" for i in range(3)]
    with pytest.raises(LayoutError, match=r"holds 3 iphone and 0 canon patches but no index on both sides"):
        find_pirm(names)


def test_absent_indices_are_named_and_abbreviated():
    files = pirm_files(10)
    files["dped/patches/iphone/10.jpg"] = b"one side only"
    layout = find_pirm(listing(files))
    check_split(layout, [0, 1], [2, 3], "src")  # all present: no error
    with pytest.raises(SplitError, match=r"^data\.pirm_test names 1 index; src has no pair for 1 "
                                         r"of them: 10; of these, 10 has one side only"):
        check_split(layout, [0, 1], [10], "src")
    with pytest.raises(SplitError, match=r"share 1 index: 1;"):  # called directly, not via parse_split
        check_split(layout, [0, 1], [1, 2], "src")
    with pytest.raises(SplitError) as failure:
        check_split(layout, range(0, 6), range(6, 400), "src.zip")
    assert str(failure.value) == ("data.pirm_test names 394 indices; src.zip has no pair for "
                                  "390 of them: 10-399; of these, 10 has one side only; the pairs "
                                  "it has are 0-9")
    with pytest.raises(SplitError, match=r"^data\.pirm_train names 50 indices; src\.zip has no "
                                         r"pair for 45 of them: 10,12,14,16,18,20,22,24,\.\.\.,98; "):
        check_split(layout, range(0, 100, 2), [9], "src.zip")


# -- normalising ------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["zip", "folder"])
def test_normalise_renumbers_per_split_and_copies_bytes(tmp_path, pirm_zip, kind):
    source = as_kind(pirm_zip, tmp_path / "extracted", kind)
    files = pirm_files()
    train, test = parse_split("0,2-3", "5,7-9")
    dest = tmp_path / "raw" / "dped.zip"
    done = normalise(source, dest, train, test)
    assert (done.root, done.train, done.test, done.full_size) == (TOP, [0, 2, 3], [5, 7, 8, 9],
                                                                  ["0.png", "1.png"])
    with zipfile.ZipFile(dest) as zf:
        got = {info.filename: zf.read(info) for info in zf.infolist()}
    want = {}
    for folder, indices in (("training_data", train), ("test_data/patches", test)):
        for k, index in enumerate(indices):
            for side in ("iphone", "canon"):
                want[f"dped/iphone/{folder}/{side}/{k}.jpg"] = files[f"dped/patches/{side}/{index}.jpg"]
    for name in ("0.png", "1.png"):
        want[f"dped/iphone/test_data/full_size_test_images/{name}"] = files[f"dped/HD_res/{name}"]
    assert got == want  # exactly these members, byte for byte: nothing re-encoded, nothing else
    layout = find_layout(list(got), "iphone")  # and the extract stage reads it as DPED
    assert layout.root == "dped/iphone/"
    assert {s: [p.index for p in pairs] for s, pairs in layout.pairs.items()} == {
        "train": [0, 1, 2], "test": [0, 1, 2, 3]}
    assert len(layout.full_size) == 2
    assert sorted(p.name for p in dest.parent.iterdir()) == ["dped.zip"]


def test_nothing_is_written_when_an_index_is_absent(tmp_path, pirm_zip):
    dest = tmp_path / "dped.zip"
    dest.write_bytes(b"the previous archive")
    with pytest.raises(SplitError, match=r"no pair for 2 of them: 10-11;"):
        normalise(pirm_zip, dest, [0], [9, 10, 11])
    assert dest.read_bytes() == b"the previous archive"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ai-challenge-master.zip", "dped.zip"]


def test_a_damaged_member_leaves_dest_untouched(tmp_path, pirm_zip, monkeypatch):
    dest = tmp_path / "dped.zip"
    dest.write_bytes(b"the previous archive")
    read = DpedSource.read
    calls = []

    def failing_read(self, name):
        calls.append(name)
        if len(calls) == 3:
            raise ValueError(f"{self.path}: {name}: CRC mismatch (damaged archive)")
        return read(self, name)

    monkeypatch.setattr(DpedSource, "read", failing_read)
    with pytest.raises(ValueError, match="CRC mismatch"):
        normalise(pirm_zip, dest, [0, 1], [2])
    assert dest.read_bytes() == b"the previous archive"
    assert not temporaries(tmp_path)


# -- the download stage with data.source: pirm -------------------------------------------------

def run_pirm(tmp_path: Path, **changes):
    return run_download(tmp_path, **{"source": "pirm", **changes})


@pytest.mark.parametrize("kind", ["zip", "folder", "tar.gz"])
def test_the_stage_normalises_a_local_copy(tmp_path, pirm_zip, kind):
    source = pirm_zip
    if kind == "folder":
        source = tmp_path / "extracted" / "ai-challenge-master"
        shutil.unpack_archive(pirm_zip, source.parent)
    elif kind == "tar.gz":
        source = tmp_path / "ai-challenge-master.tar.gz"
        with tarfile.open(source, "w:gz") as tar:
            for name, data in pirm_files().items():
                info = tarfile.TarInfo(TOP + name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    before = hashlib.sha256(source.read_bytes()).hexdigest() if source.is_file() else None
    result = run_pirm(tmp_path, archive=str(source), pirm_train="0-5", pirm_test="6-9")
    assert result.exit_code == 0, result.output
    raw = tmp_path / "raw" / "dped.zip"
    record = json.loads((tmp_path / "source.json").read_text())
    assert record["source"] == "pirm" and record["origin"] == str(source.resolve())
    if kind == "folder":
        assert record["sha256"] == hashlib.sha256(raw.read_bytes()).hexdigest()
        assert record["sha256_of"] == "zip normalised from the folder"
        assert record["pirm_root"] == ""
    else:
        assert record["sha256"] == before and record["sha256_of"] == "archive"
        assert record["pirm_root"] == TOP
        assert source.exists()  # a local copy is the user's: never deleted
    assert record["pirm_indices"] == {"train": "0-5", "test": "6-9"}
    assert record["pairs"] == {"train": 6, "test": 4} and record["full_size"] == 2
    with DpedSource(raw) as got:
        assert got.read("dped/iphone/test_data/patches/canon/1.jpg") == \
            pirm_files()["dped/patches/canon/7.jpg"]
    assert not (tmp_path / "downloads").exists() or not list((tmp_path / "downloads").iterdir())


@pytest.mark.parametrize("changes, says", [
    ({"phone": "sony"}, "data.phone is 'sony', but data.source: pirm has iphone pairs only"),
    ({"pirm_train": "0-x"}, "data.pirm_train: '0-x' is not an index or a range"),
    ({"pirm_test": "5-9"}, "data.pirm_train (0-5) and data.pirm_test (5-9) share 1 index: 5;"),
    ({"pirm_test": ""}, "data.pirm_test: the split is empty"),
    ({"pirm_test": "6-20"}, "data.pirm_test names 15 indices; "),  # the local copy lacks 10-20
])
def test_bad_split_params_fail_before_anything_is_written(tmp_path, pirm_zip, changes, says):
    urls = {"pirm_urls": ["http://127.0.0.1:9/never.zip"]}  # nobody listens: a try would fail
    local = {"archive": str(pirm_zip)} if changes.get("pirm_test") == "6-20" else urls
    result = run_pirm(tmp_path, **{"pirm_train": "0-5", "pirm_test": "6-9", **local, **changes})
    assert result.exit_code == 1
    assert says in result.output
    assert "Could not download" not in result.output  # refused before any download was tried
    if changes.get("pirm_test") == "6-20":
        assert "has no pair for 11 of them: 10-20; the pairs it has are 0-9" in result.output
    assert not (tmp_path / "raw" / "dped.zip").exists()
    assert not (tmp_path / "source.json").exists()


def test_a_source_that_is_not_pirm_is_a_layout_error(tmp_path):
    other = write_zip(tmp_path / "other.zip", UNRELATED)
    result = run_pirm(tmp_path, archive=str(other))
    assert result.exit_code == 1
    assert "no PIRM 2018 DPED patches; expected <anything>/dped/patches/iphone/N.jpg" in result.output
    assert not (tmp_path / "raw" / "dped.zip").exists()


ETAG = '"ai-challenge-v1"'


@dataclass
class Mirror:
    """A tiny HTTP server on 127.0.0.1: ``files`` path -> bytes; ``behaviour`` path -> 403 or
    drop (the first whole-file GET sends half, then hangs up); Range requests are answered."""

    base: str = ""
    files: dict[str, bytes] = field(default_factory=dict)
    behaviour: dict[str, str] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def url(self, path: str) -> str:
        return self.base + path


class _Handler(http.server.BaseHTTPRequestHandler):
    mirror: Mirror

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.mirror.requests.append((self.path, headers))
        behaviour = self.mirror.behaviour.get(self.path, "ok")
        body = self.mirror.files.get(self.path)
        if behaviour == "403" or body is None:
            self.send_error(403 if behaviour == "403" else 404)
            return
        m = re.fullmatch(r"bytes=(\d+)-", headers.get("range", ""))
        start = int(m[1]) if m and headers.get("if-range") == ETAG else 0
        self.send_response(206 if start else 200)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(len(body) - start))
        self.send_header("ETag", ETAG)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.end_headers()
        if behaviour == "drop" and not start:
            self.mirror.behaviour[self.path] = "ok"  # drop once
            self.wfile.write(body[:len(body) // 2])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        self.wfile.write(body[start:])


@pytest.fixture
def mirror() -> Iterator[Mirror]:
    state = Mirror()
    with local_http_server(_Handler, mirror=state) as base:
        state.base = base
        yield state


def test_a_dropped_download_resumes_after_a_failing_mirror(tmp_path, mirror, pirm_zip):
    payload = pirm_zip.read_bytes()
    mirror.files["/master.zip"] = payload
    mirror.behaviour.update({"/forbidden.zip": "403", "/master.zip": "drop"})
    urls = [mirror.url("/forbidden.zip"), mirror.url("/master.zip")]
    result = run_pirm(tmp_path, pirm_urls=urls, pirm_train="0-7", pirm_test="8-9", retries=1)
    assert result.exit_code == 0, result.output
    seen = [h for path, h in mirror.requests if path == "/master.zip"]
    assert len(seen) == 2 and "range" not in seen[0]
    assert seen[1]["range"] == f"bytes={len(payload) // 2}-"  # the second try resumed
    record = json.loads((tmp_path / "source.json").read_text())
    assert record["origin"] == urls[1]
    assert record["sha256"] == hashlib.sha256(payload).hexdigest()
    assert record["pairs"] == {"train": 8, "test": 2}
    assert list((tmp_path / "downloads").iterdir()) == []  # the archive is gone once normalised


def dped_mini_as_pirm(dped_mini: Path, dest: Path) -> Path:
    """dped-mini in the ai-challenge layout: training pair i is PIRM pair i, test pair j is PIRM
    pair 160 + j, the full-size JPEGs become HD_res PNGs (as in the repository)."""
    files = dict(UNRELATED)
    offsets = {"training_data": 0, "test_data/patches": 160}
    for folder, offset in offsets.items():
        for side in ("iphone", "canon"):
            for path in (dped_mini / "iphone" / folder / side).glob("*.jpg"):
                files[f"dped/patches/{side}/{offset + int(path.stem)}.jpg"] = path.read_bytes()
    for path in sorted((dped_mini / "iphone" / "test_data" / "full_size_test_images").glob("*.jpg")):
        with Image.open(path) as im:
            files[f"dped/HD_res/{path.stem}.png"] = png(np.asarray(im.convert("RGB")))
    return write_zip(dest, files)


def test_the_default_split_reproduces_dped_mini(tmp_path, mirror, dped_mini):
    served = dped_mini_as_pirm(dped_mini, tmp_path / "master.zip")
    payload = served.read_bytes()
    mirror.files["/master.zip"] = payload
    digest = hashlib.sha256(payload).hexdigest()
    url = mirror.url("/master.zip")
    # The fixture has PIRM pairs 0-199 only, so the test split stops at 199 instead of 399.
    result = run_pirm(tmp_path, pirm_urls=[url], pirm_train="0-159", pirm_test="160-199",
                      sha256=digest)
    assert result.exit_code == 0, result.output
    raw = tmp_path / "raw" / "dped.zip"
    with DpedSource(raw) as got:
        names = got.names()
        compared = 0
        for folder in ("training_data", "test_data/patches"):
            for side in ("iphone", "canon"):
                for path in (dped_mini / "iphone" / folder / side).glob("*.jpg"):
                    assert got.read(f"dped/iphone/{folder}/{side}/{path.name}") == path.read_bytes()
                    compared += 1
        assert compared == 2 * (160 + 40)
        with zipfile.ZipFile(served) as zf:
            for name in ("0.png", "1.png"):
                assert got.read(f"dped/iphone/test_data/full_size_test_images/{name}") == \
                    zf.read(f"{TOP}dped/HD_res/{name}")
    assert len(names) == compared + 2  # nothing else
    record = json.loads((tmp_path / "source.json").read_text())
    assert record["source"] == "pirm" and record["origin"] == url
    assert record["sha256"] == digest and record["sha256_of"] == "archive"
    assert record["pirm_indices"] == {"train": "0-159", "test": "160-199"}
    assert record["pairs"] == {"train": 160, "test": 40} and record["full_size"] == 2
    assert list((tmp_path / "downloads").iterdir()) == []
