"""gan.fsio: the one atomic write. A target is replaced whole or not at all."""

from __future__ import annotations

import errno
import hashlib
import subprocess
import sys

import pytest

from gan.fsio import (AtomicTarget, WriteError, as_write_error, atomic_open, atomic_path,
                      remove_stale_temporaries, sha256_of, temporary_name, write_bytes,
                      write_text)
from tests.conftest import temporaries


def test_a_successful_write_replaces_the_target_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "deep" / "folder" / "out.bin"
    write_bytes(target, b"first")
    write_text(target, "second")
    assert target.read_text() == "second"
    assert not temporaries(tmp_path)


@pytest.mark.parametrize("error", [RuntimeError("disk on fire"), KeyboardInterrupt()])
def test_an_error_or_ctrl_c_keeps_the_old_target_and_removes_the_temporary(tmp_path, error):
    target = tmp_path / "out.bin"
    target.write_bytes(b"good")
    with pytest.raises(type(error)):
        with atomic_open(target) as handle:
            handle.write(b"half")
            raise error
    assert target.read_bytes() == b"good"
    assert not temporaries(tmp_path)


def test_temporaries_are_unique_hidden_and_beside_the_target(tmp_path):
    target = tmp_path / "model.pt"
    with atomic_path(target) as first, atomic_path(target) as second:
        assert first != second
        assert first.parent == second.parent == tmp_path
        assert first.name.startswith(".model.pt.") and first.name.endswith(".tmp")
        first.write_bytes(b"one")
        second.write_bytes(b"two")
    assert target.read_bytes() == b"one"  # the outer block finishes last and wins
    assert not temporaries(tmp_path)


def test_a_writer_that_never_creates_the_temporary_fails_and_keeps_the_target(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"good")
    with pytest.raises(FileNotFoundError):
        with atomic_path(target):
            pass  # nothing written: there is nothing to rename
    assert target.read_bytes() == b"good"


def test_make_folders_false_leaves_a_missing_folder_to_the_writer(tmp_path):
    with pytest.raises(FileNotFoundError):
        with atomic_path(tmp_path / "missing" / "out.jpg", make_folders=False) as temporary:
            temporary.write_bytes(b"x")
    assert not (tmp_path / "missing").exists()


def test_atomic_target_commits_or_discards(tmp_path):
    kept, dropped = AtomicTarget(tmp_path / "kept.npy"), AtomicTarget(tmp_path / "dropped.npy")
    kept.temporary.write_bytes(b"rows")
    dropped.temporary.write_bytes(b"rows")
    assert kept.commit() == tmp_path / "kept.npy"
    dropped.discard()
    assert (tmp_path / "kept.npy").read_bytes() == b"rows"
    assert not (tmp_path / "dropped.npy").exists() and not temporaries(tmp_path)


def test_atomic_open_refuses_a_mode_that_is_not_a_write(tmp_path):
    with pytest.raises(ValueError, match="not a write mode"):
        with atomic_open(tmp_path / "x", "ab"):
            pass


def test_sha256_of_reads_in_chunks(tmp_path):
    payload = bytes(range(256)) * 1000
    (tmp_path / "f").write_bytes(payload)
    assert sha256_of(tmp_path / "f", chunk=1000) == hashlib.sha256(payload).hexdigest()


def test_a_full_disk_is_one_line_naming_the_target_and_leaves_nothing(tmp_path):
    target = tmp_path / "model.pt"
    target.write_bytes(b"good")
    with pytest.raises(WriteError) as caught:
        with atomic_path(target) as temporary:
            temporary.write_bytes(b"half")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert str(caught.value) == f"{target}: cannot write: no space left on the device"
    assert caught.value.errno == errno.ENOSPC and caught.value.path == target
    assert target.read_bytes() == b"good" and not temporaries(tmp_path)


def test_other_os_errors_pass_through_unchanged(tmp_path):
    missing = FileNotFoundError(errno.ENOENT, "No such file", "input.jpg")
    with pytest.raises(FileNotFoundError) as caught:
        with atomic_path(tmp_path / "out.bin"):
            raise missing
    assert caught.value is missing and not temporaries(tmp_path)
    assert as_write_error(tmp_path / "x", missing) is missing


def test_an_exclusive_write_never_replaces_a_file_that_appeared_meanwhile(tmp_path):
    target = tmp_path / "photo.jpg"
    with pytest.raises(FileExistsError):
        with atomic_path(target, exclusive=True) as temporary:
            temporary.write_bytes(b"ours")
            target.write_bytes(b"theirs")  # another writer got there first
    assert target.read_bytes() == b"theirs" and not temporaries(tmp_path)
    with atomic_path(tmp_path / "new.jpg", exclusive=True) as temporary:
        temporary.write_bytes(b"ours")
    assert (tmp_path / "new.jpg").read_bytes() == b"ours" and not temporaries(tmp_path)


def test_only_temporaries_of_writers_that_are_gone_are_removed(tmp_path):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    stale = tmp_path / f".out.npy.{int(gone.stdout)}-aaaaaaaaaaaa.tmp"
    mine = temporary_name(tmp_path / "out.npy")
    unrelated = tmp_path / ".hidden-but-not-ours.tmp"
    for path in (stale, mine, unrelated):
        path.write_bytes(b"x")
    assert remove_stale_temporaries(tmp_path) == [stale]
    assert mine.exists() and unrelated.exists()
    assert remove_stale_temporaries(tmp_path / "missing") == []


def test_an_exclusive_write_without_hard_links_still_claims_the_name_once(tmp_path, monkeypatch):
    def no_links(source, target):
        raise OSError(errno.EPERM, "Operation not permitted")  # e.g. FAT, some network shares

    monkeypatch.setattr("gan.fsio.os.link", no_links)
    target = tmp_path / "photo.jpg"
    with atomic_path(target, exclusive=True) as temporary:
        temporary.write_bytes(b"ours")
    assert target.read_bytes() == b"ours" and not temporaries(tmp_path)
    with pytest.raises(FileExistsError):
        with atomic_path(target, exclusive=True) as temporary:
            temporary.write_bytes(b"second")
    assert target.read_bytes() == b"ours" and not temporaries(tmp_path)
