"""gan.data.archive: refusing unsafe archives and normalising zip / tar / folder inputs to one zip."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from gan.data.archive import ArchiveError, UnsafeArchiveError, archive_kind, check_tar, check_zip, to_zip
from tests.conftest import temporaries

# A small DPED-like tree: phone and DSLR patches side by side.
TREE = {
    "a/training_data/iphone/0.jpg": b"\xff\xd8iphone-0" + bytes(range(256)) * 4,
    "a/training_data/iphone/1.jpg": b"\xff\xd8iphone-1" * 50,
    "a/training_data/canon/0.jpg": b"\xff\xd8canon-0" * 70,
    "a/test_data/patches/iphone/0.jpg": b"\xff\xd8test" * 3,
}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _zip_contents(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist() if not info.is_dir()}


def _make_zip(path: Path, members: dict[str, bytes], symlinks: dict[str, str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(zipfile.ZipInfo(name), data)  # ZipInfo keeps the name exactly as given
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, target)
    return path


def _tar_entry(name: str, data: bytes = b"", **attrs: object) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 1_700_000_000
    for key, value in attrs.items():
        setattr(info, key, value)
    return info, data


def _make_tar(path: Path, entries: list[tuple[tarfile.TarInfo, bytes]], mode: str = "w") -> Path:
    with tarfile.open(path, mode) as archive:
        for info, data in entries:
            archive.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return path


def _tree_tar(path: Path, mode: str = "w:gz") -> Path:
    entries = [_tar_entry("a", type=tarfile.DIRTYPE)]
    entries += [_tar_entry(name, data) for name, data in TREE.items()]
    return _make_tar(path, entries, mode)


def _assert_refused_cleanly(src: Path, tmp_path: Path, member: str) -> None:
    """to_zip refuses `src`, names the member, and leaves neither dest nor a temporary behind."""
    dest = tmp_path / "out" / "dped.zip"
    with pytest.raises(UnsafeArchiveError) as refusal:
        to_zip(src, dest, progress=False)
    assert repr(member) in str(refusal.value) and str(src) in str(refusal.value)
    assert not dest.exists()
    assert not temporaries(dest.parent)


# ------------------------------------------------------------------ refusals


@pytest.mark.parametrize("name", ["../evil.txt", "/abs.txt", "a/../../evil.txt", "..\\evil.txt", "C:/evil.txt"])
def test_zip_with_escaping_name_is_refused(tmp_path: Path, name: str) -> None:
    src = _make_zip(tmp_path / "bad.zip", {"ok.jpg": b"x", name: b"evil"})
    with pytest.raises(UnsafeArchiveError, match="member"):
        check_zip(src)
    _assert_refused_cleanly(src, tmp_path, name)


def test_zip_with_escaping_symlink_is_refused(tmp_path: Path) -> None:
    src = _make_zip(tmp_path / "bad.zip", {"ok.jpg": b"x"}, symlinks={"a/link": "../../etc/passwd"})
    with pytest.raises(UnsafeArchiveError, match="points outside the archive"):
        check_zip(src)
    _assert_refused_cleanly(src, tmp_path, "a/link")


def test_zip_with_inner_symlink_is_accepted(tmp_path: Path) -> None:
    src = _make_zip(tmp_path / "ok.zip", {"a/b/x.jpg": b"x"}, symlinks={"a/link": "b/x.jpg"})
    assert check_zip(src) == 2


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        (_tar_entry("../x", b"evil"), "'..'"),
        (_tar_entry("/abs/x", b"evil"), "absolute path"),
        (_tar_entry("a/link", type=tarfile.SYMTYPE, linkname="/etc/passwd"), "absolute path '/etc/passwd'"),
        (_tar_entry("a/link", type=tarfile.SYMTYPE, linkname="../../x"), "outside the archive"),
        (_tar_entry("a/hard", type=tarfile.LNKTYPE, linkname="../x"), "outside the archive"),
        (_tar_entry("a/dev", type=tarfile.CHRTYPE), "device file"),
        (_tar_entry("a/pipe", type=tarfile.FIFOTYPE), "FIFO"),
    ],
)
def test_tar_with_unsafe_member_is_refused(tmp_path: Path, entry: tuple[tarfile.TarInfo, bytes], problem: str) -> None:
    src = _make_tar(tmp_path / "bad.tar.gz", [_tar_entry("a/ok.jpg", b"fine"), entry], "w:gz")
    with pytest.raises(UnsafeArchiveError) as refusal:
        check_tar(src)
    assert repr(entry[0].name) in str(refusal.value) and problem in str(refusal.value)
    _assert_refused_cleanly(src, tmp_path, entry[0].name)


def test_folder_with_symlink_outside_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    src = tmp_path / "dped"
    (src / "a").mkdir(parents=True)
    (src / "a" / "0.jpg").write_bytes(b"x")
    os.symlink(outside, src / "a" / "leak.jpg")
    _assert_refused_cleanly(src, tmp_path, "a/leak.jpg")


# ------------------------------------------------------------------ repacking


def test_tar_gz_repacks_to_zip_with_same_names_and_bytes(tmp_path: Path) -> None:
    src = _tree_tar(tmp_path / "dped.tar.gz")
    assert check_tar(src) == len(TREE) + 1  # + the directory entry
    dest = tmp_path / "out" / "dped.zip"
    assert to_zip(src, dest, progress=False) == "repacked"
    assert _zip_contents(dest) == TREE
    with zipfile.ZipFile(dest) as archive:
        assert {info.compress_type for info in archive.infolist()} == {zipfile.ZIP_STORED}
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    assert not temporaries(dest.parent)


def test_tar_with_dot_prefix_and_links_repacks_regular_files(tmp_path: Path) -> None:
    entries = [_tar_entry("./" + name, data) for name, data in TREE.items()]
    entries.append(_tar_entry("./a/alias.jpg", type=tarfile.SYMTYPE, linkname="training_data/canon/0.jpg"))
    src = _make_tar(tmp_path / "dped.tar.xz", entries, "w:xz")
    dest = tmp_path / "dped.zip"
    assert to_zip(src, dest, progress=False) == "repacked"
    assert _zip_contents(dest) == TREE


def test_repacking_the_same_tar_twice_gives_identical_bytes(tmp_path: Path) -> None:
    src = _tree_tar(tmp_path / "dped.tar", mode="w")
    first, second = tmp_path / "one.zip", tmp_path / "two.zip"
    to_zip(src, first, progress=False)
    to_zip(src, second, progress=False)
    assert first.read_bytes() == second.read_bytes()


def test_folder_repacks_to_zip_with_same_names_and_bytes(tmp_path: Path) -> None:
    src = tmp_path / "dped"
    for name, data in TREE.items():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_bytes(data)
    # A symlink that stays inside the folder is followed and packed as a regular file.
    os.symlink("0.jpg", src / "a/training_data/canon/copy.jpg")
    dest = src / "dped.zip"  # dest inside the folder must not pack itself
    assert to_zip(src, dest, progress=False) == "repacked"
    expected = dict(TREE, **{"a/training_data/canon/copy.jpg": TREE["a/training_data/canon/0.jpg"]})
    assert _zip_contents(dest) == expected
    with zipfile.ZipFile(dest) as archive:
        assert archive.namelist() == sorted(archive.namelist())  # deterministic walk order

    first = dest.read_bytes()
    to_zip(src, dest, progress=False)  # the existing dest.zip in the folder is skipped too
    assert dest.read_bytes() == first


def test_zip_is_copied_byte_for_byte(tmp_path: Path) -> None:
    src = _make_zip(tmp_path / "dped.zip", TREE)
    dest = tmp_path / "out" / "normalised.zip"
    assert to_zip(src, dest, progress=False) == "copied"
    assert _sha(dest) == _sha(src)


def test_existing_dest_is_untouched_on_refusal(tmp_path: Path) -> None:
    dest = tmp_path / "dped.zip"
    dest.write_bytes(b"previous good archive")
    src = _make_zip(tmp_path / "bad.zip", {"../evil.txt": b"evil"})
    with pytest.raises(UnsafeArchiveError):
        to_zip(src, dest, progress=False)
    assert dest.read_bytes() == b"previous good archive"
    assert not temporaries(tmp_path)


# ------------------------------------------------------------------ kind detection


def test_kind_is_decided_by_content_not_name(tmp_path: Path) -> None:
    assert archive_kind(_make_zip(tmp_path / "really_a_zip.tar", TREE)) == "zip"
    assert archive_kind(_tree_tar(tmp_path / "really_a_tgz.zip")) == "tar"
    assert archive_kind(_tree_tar(tmp_path / "plain.bin", mode="w")) == "tar"
    assert archive_kind(tmp_path) == "folder"


def test_text_file_is_not_an_archive(tmp_path: Path) -> None:
    text = tmp_path / "dped.zip"
    text.write_text("<html>403 Forbidden</html>")
    with pytest.raises(ArchiveError) as failure:
        archive_kind(text)
    assert str(text) in str(failure.value) and "zip" in str(failure.value) and "folder" in str(failure.value)
    with pytest.raises(ArchiveError):
        to_zip(text, tmp_path / "out.zip", progress=False)
    assert not (tmp_path / "out.zip").exists()


def test_missing_input_is_named(tmp_path: Path) -> None:
    with pytest.raises(ArchiveError, match="does not exist"):
        archive_kind(tmp_path / "nowhere.zip")


def test_truncated_tar_gz_is_an_archive_error(tmp_path: Path) -> None:
    whole = _tree_tar(tmp_path / "dped.tar.gz").read_bytes()
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(whole[: len(whole) // 2])
    dest = tmp_path / "out.zip"
    with pytest.raises(ArchiveError):
        to_zip(broken, dest, progress=False)
    assert not dest.exists() and not temporaries(tmp_path)
