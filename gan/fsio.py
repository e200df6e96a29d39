"""Files that are either complete or absent: the project's one atomic write.

Every output (models, checkpoints, patches, archives, photos, exports, JSON records) is first
written to a uniquely named hidden temporary file in the target's own folder (so the rename
cannot cross file systems, and two writers never share a temporary), flushed to the disk with
fsync, then renamed over the target, which POSIX makes atomic: a reader sees the old file or the
new one, never a half. On any error, Ctrl-C included, the temporary file is removed and the
target is untouched.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import numpy as np

TEMPORARY_SUFFIX = ".tmp"
# OS errors that can only mean the write itself failed: a full disk or quota, a file size
# limit, a read-only file system. They are reported as one line naming the file being written.
WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS}
_REASONS = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded",
            errno.EFBIG: "the file size limit was reached", errno.EROFS: "read-only file system"}


class WriteError(OSError):
    """A file could not be written; ``str()`` is one line naming it and the reason. Whatever
    was being written is gone (the temporary removed) and the previous file is untouched."""

    def __init__(self, path: Path | str, cause: OSError):
        reason = _REASONS.get(cause.errno, cause.strerror or str(cause))
        super().__init__(cause.errno, f"{path}: cannot write: {reason}")
        self.path = Path(path)

    def __str__(self) -> str:
        return self.strerror


def as_write_error(path: Path | str, error: OSError) -> OSError:
    """``error`` as a WriteError naming ``path`` when it is a failed write (WRITE_ERRNOS), else
    as it is (a missing input, a permission problem: the caller's to explain)."""
    if isinstance(error, WriteError) or error.errno not in WRITE_ERRNOS:
        return error
    return WriteError(path, error)


@contextmanager
def naming_write_errors(path: Path | str) -> Iterator[None]:
    """A failed write inside the block (WRITE_ERRNOS) is re-raised as a WriteError naming
    ``path``; any other error passes as it is."""
    try:
        yield
    except OSError as error:
        translated = as_write_error(path, error)
        if translated is error:
            raise
        raise translated from error


def temporary_name(path: Path) -> Path:
    """A hidden name beside ``path`` that no other writer uses: ``.<name>.<pid>-<random>.tmp``
    (the writer's process id lets a later run tell a killed writer's leftover from a live one's
    work in progress: remove_stale_temporaries)."""
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(6)}{TEMPORARY_SUFFIX}")


_TEMPORARY = re.compile(r"^\..+\.(?P<pid>\d+)-[0-9a-f]{12}" + re.escape(TEMPORARY_SUFFIX) + "$")


def remove_stale_temporaries(folder: Path | str) -> list[Path]:
    """Delete the temporaries in ``folder`` whose writer is gone: a process killed outright
    (SIGKILL, power loss) cannot run the clean-up of atomic_path. A temporary of a process that
    still runs on this machine is another run's work in progress and is left alone. Returns
    what was removed."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):  # nothing there to clean
        return removed
    for entry in entries:
        match = _TEMPORARY.match(entry.name)
        if match and entry.is_file(follow_symlinks=False) and not _alive(int(match["pid"])):
            Path(entry.path).unlink(missing_ok=True)
            removed.append(Path(entry.path))
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


class AtomicTarget:
    """The pieces of an atomic write for writers that outlive one ``with`` block (a streamed
    .npy appender): write to ``temporary``, then ``commit()`` or ``discard()``."""

    def __init__(self, path: Path | str, make_folders: bool = True):
        self.path = Path(path)
        if make_folders:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.temporary = temporary_name(self.path)

    def commit(self, exclusive: bool = False) -> Path:
        """Sync the temporary to the disk and rename it over the target. ``exclusive``: never
        replace an existing target (FileExistsError instead), decided by the file system at
        the moment the file appears, so two writers racing for one name cannot both win."""
        _fsync_file(self.temporary)
        if exclusive:
            _link_exclusively(self.temporary, self.path)
            self.temporary.unlink(missing_ok=True)  # gone already where the fallback renamed it
        else:
            os.replace(self.temporary, self.path)
        _fsync_folder(self.path.parent)
        return self.path

    def discard(self) -> None:
        self.temporary.unlink(missing_ok=True)


@contextmanager
def atomic_path(path: Path | str, make_folders: bool = True,
                exclusive: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write ``path``'s new content to (with any writer that takes a
    file name: ``torch.save``, ``zipfile``, an exporter); when the block succeeds the file is
    synced and renamed to ``path``. Missing parent folders are created unless
    ``make_folders`` is false (then a missing folder is the writer's error to report).
    ``exclusive``: fail with FileExistsError rather than replace an existing ``path``."""
    target = AtomicTarget(path, make_folders)
    try:
        with naming_write_errors(target.path):
            yield target.temporary
            target.commit(exclusive)
    except BaseException:
        target.discard()
        raise


@contextmanager
def atomic_open(path: Path | str, mode: str = "wb", **kwargs) -> Iterator[IO]:
    """``open`` for writing, atomically: the file object writes a temporary that replaces
    ``path`` when the block succeeds (``mode`` is "wb" or "w"; kwargs go to ``open``)."""
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open: mode {mode!r} is not a write mode ('wb' or 'w')")
    with atomic_path(path) as temporary, open(temporary, mode, **kwargs) as handle:
        yield handle


def write_bytes(path: Path | str, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically."""
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def write_text(path: Path | str, text: str) -> None:
    """Replace ``path`` with ``text`` (UTF-8) atomically."""
    write_bytes(path, text.encode("utf-8"))


@contextmanager
def atomic_folder(path: Path | str) -> Iterator[Path]:
    """Yield an empty staging folder to build ``path``'s new content in; when the block
    succeeds, the staging folder takes ``path``'s place (the old one is renamed aside, then
    removed), and when it fails the staging folder is removed and ``path`` is untouched. The
    swap is two renames, not one: a crash between them leaves the old content beside ``path``
    under a hidden ``.<name>.<random>.old`` name, never a half-written ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = temporary_name(path)
    staging.mkdir()
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    old = staging.with_name(staging.name[: -len(TEMPORARY_SUFFIX)] + ".old")
    if path.exists():
        os.replace(path, old)
    os.replace(staging, path)
    _fsync_folder(path.parent)
    shutil.rmtree(old, ignore_errors=True)


def write_npy(path: Path | str, array: np.ndarray) -> None:
    """``np.save``, atomically, for arrays that fit in memory twice (large ones stream through
    gan.data.npyio). Serialised in memory first: on a real file numpy writes with
    ``ndarray.tofile``, whose full-disk error carries no errno to report."""
    buffer = io.BytesIO()
    np.save(buffer, array)
    write_bytes(path, buffer.getbuffer())


def sha256_of(path: Path | str, chunk: int = 1 << 20) -> str:
    """The sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _link_exclusively(source: Path, target: Path) -> None:
    """Give ``source``'s complete content the name ``target`` only if no file has it: a hard
    link fails with EEXIST atomically. File systems without hard links get a create-exclusive
    placeholder, which the rename then fills (the check and the claim are one system call)."""
    try:
        os.link(source, target)
        return
    except FileExistsError:
        raise
    except OSError as error:
        if error.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS):
            raise
    os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    os.replace(source, target)


def _fsync_file(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable. Some file systems refuse fsync on a folder: the rename
    has happened either way, so that is not an error."""
    try:
        _fsync_file(folder)
    except OSError:
        pass
