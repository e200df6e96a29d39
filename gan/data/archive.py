"""Accept the dataset as a zip, a tar (plain, .gz, .bz2, .xz) or an extracted folder.

Whatever the user points ``data.archive`` at is checked for members that could
write outside the extraction folder (zip-slip / tar-slip: absolute names, '..'
components, links that escape, device files) and normalised to one zip, so the
rest of the pipeline only ever reads zips. The output is written atomically (gan.fsio), so
``dest`` is either complete or untouched.
"""

from __future__ import annotations

import logging
import os
import posixpath
import re
import shutil
import stat
import tarfile
import zipfile
from pathlib import Path
from typing import BinaryIO

from tqdm import tqdm

from gan.fsio import atomic_path

__all__ = ["UnsafeArchiveError", "ArchiveError", "archive_kind", "check_zip", "check_tar", "to_zip"]

log = logging.getLogger(__name__)

ACCEPTED = "a zip, a tar (plain, .gz, .bz2 or .xz) or an extracted folder"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
# A fixed timestamp makes the repacked zip depend only on names and bytes.
_FIXED_DATE = (1980, 1, 1, 0, 0, 0)
_COPY_CHUNK = 1 << 20
# No real link target is longer than PATH_MAX; a bigger "target" is not a link.
_MAX_LINK_TARGET = 4096
_DRIVE = re.compile(r"^[A-Za-z]:")


class UnsafeArchiveError(ValueError):
    """A member could write outside the extraction folder (zip-slip / tar-slip)."""


class ArchiveError(ValueError):
    """The input is unreadable, damaged or not one of the accepted formats."""


def archive_kind(path: Path) -> str:
    """'zip', 'tar' or 'folder', decided by the content, not by the file name."""
    if path.is_dir():
        return "folder"
    if not path.exists():
        raise ArchiveError(f"{path} does not exist. Expected {ACCEPTED}; check data.archive in params.yaml.")
    if not path.is_file():
        raise ArchiveError(f"{path} is not a regular file or folder. Expected {ACCEPTED}.")
    with open(path, "rb") as handle:
        head = handle.read(4)
    if head in _ZIP_MAGICS:
        return "zip"
    if _is_tar(path):
        return "tar"
    raise ArchiveError(
        f"{path} is neither a zip nor a tar archive (its first bytes are {head!r}). "
        f"Accepted inputs are {ACCEPTED}; point data.archive in params.yaml at one of those."
    )


def _is_tar(path: Path) -> bool:
    try:
        return tarfile.is_tarfile(path)
    except (OSError, EOFError):  # e.g. a gzip file that is truncated or not a tar inside
        return False


def check_zip(path: Path) -> int:
    """Validate every member of a zip; return the member count.

    Raises UnsafeArchiveError for a dangerous member, ArchiveError when the zip
    cannot be read.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            for info in members:
                _refuse_bad_name(path, info.filename)
                if stat.S_ISLNK(info.external_attr >> 16):
                    _refuse_bad_link(path, info.filename, _zip_link_target(path, archive, info), from_member=True)
            return len(members)
    except zipfile.BadZipFile as err:
        raise ArchiveError(f"{path} is not a readable zip ({err}); download it again or use another copy.") from None


def _zip_link_target(path: Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> str:
    """A zip symlink stores its target as the member's data."""
    if info.file_size > _MAX_LINK_TARGET:
        raise UnsafeArchiveError(
            f"Refusing {path}: member {info.filename!r} is marked as a symlink but its target "
            f"is {info.file_size} bytes long, which no real link has."
        )
    return archive.read(info).decode("utf-8", errors="replace")


def check_tar(path: Path) -> int:
    """Validate every member of a tar / tar.gz / tar.bz2 / tar.xz; return the member count.

    Reads the archive once, as a stream, so compressed tars need no random access.
    """
    count = 0
    try:
        with tarfile.open(path, mode="r|*") as archive:
            for member in archive:
                _refuse_bad_tar_member(path, member)
                count += 1
    except (tarfile.TarError, EOFError) as err:
        raise _unreadable_tar(path, err) from None
    return count


def _unreadable_tar(path: Path, err: Exception) -> ArchiveError:
    return ArchiveError(f"{path} is not a readable tar archive ({err}); download it again or use another copy.")


def to_zip(src: Path, dest: Path, progress: bool = True) -> str:
    """Normalise `src` (zip, tar, tar.gz, folder) into the zip `dest`.

    Returns 'copied' when `src` already was a zip (byte-for-byte copy, so its
    sha256 is unchanged) and 'repacked' otherwise. `src` is validated before its
    contents can reach `dest`; on any error `dest` is left untouched and no
    temporary file remains.
    """
    kind = archive_kind(src)
    with atomic_path(dest) as tmp:
        if kind == "zip":
            check_zip(src)
            shutil.copyfile(src, tmp)
            return "copied"
        if kind == "tar":
            _tar_to_zip(src, tmp, progress)
        else:
            _folder_to_zip(src, tmp, skip={tmp.resolve(), dest.resolve()}, progress=progress)
    return "repacked"


# ---------------------------------------------------------------- member checks


def _unsafe(archive: Path, name: str, problem: str) -> UnsafeArchiveError:
    return UnsafeArchiveError(
        f"Refusing {archive}: member {name!r} {problem}. Extracting it could write outside the "
        "dataset folder (zip-slip / tar-slip), so the archive is not used. Get the dataset from a "
        "trusted source, or extract it yourself, check it, and point data.archive at the folder."
    )


def _is_absolute(name: str) -> bool:
    """Absolute on any platform: '/x', '\\x' (normalised before) or a Windows drive 'C:'."""
    return name.startswith("/") or bool(_DRIVE.match(name))


def _refuse_bad_name(archive: Path, name: str) -> None:
    normal = name.replace("\\", "/")
    if _is_absolute(normal):
        raise _unsafe(archive, name, "has an absolute path")
    if ".." in normal.split("/"):
        raise _unsafe(archive, name, "has a '..' path component")


def _refuse_bad_link(archive: Path, name: str, target: str, *, from_member: bool) -> None:
    """Refuse a link whose target is absolute or resolves outside the archive root.

    Symlink targets are relative to the member's folder (`from_member=True`);
    tar hardlink targets name another member, so they are relative to the root.
    The check is lexical: it does not follow chains of links inside the archive,
    which is fine here because the repacked zip never contains links.
    """
    normal = target.replace("\\", "/")
    if _is_absolute(normal):
        raise _unsafe(archive, name, f"is a link to the absolute path {target!r}")
    base = posixpath.dirname(name.replace("\\", "/")) if from_member else ""
    resolved = posixpath.normpath(posixpath.join(base, normal))
    if resolved == ".." or resolved.startswith("../"):
        raise _unsafe(archive, name, f"is a link to {target!r}, which points outside the archive")


def _refuse_bad_tar_member(archive: Path, member: tarfile.TarInfo) -> None:
    _refuse_bad_name(archive, member.name)
    if member.isreg() or member.isdir():
        return
    if member.issym():
        _refuse_bad_link(archive, member.name, member.linkname, from_member=True)
    elif member.islnk():
        _refuse_bad_link(archive, member.name, member.linkname, from_member=False)
    elif member.ischr() or member.isblk():
        raise _unsafe(archive, member.name, "is a device file")
    elif member.isfifo():
        raise _unsafe(archive, member.name, "is a FIFO (named pipe)")
    else:
        raise _unsafe(archive, member.name, f"has the unsupported tar member type {member.type!r}")


# ---------------------------------------------------------------- repacking


def _zip_name(name: str) -> str:
    """'./a\\b.jpg' -> 'a/b.jpg'. Safe because '..' and absolute names were refused."""
    return posixpath.normpath(name.replace("\\", "/"))


def _new_zip(path: Path) -> zipfile.ZipFile:
    # The payload is JPEG, which does not compress: storing is faster and loses nothing.
    return zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True)


def _write_entry(archive: zipfile.ZipFile, name: str, size: int, data: BinaryIO) -> None:
    """Stream one file into the zip with fixed metadata, so output bytes are reproducible."""
    info = zipfile.ZipInfo(name, date_time=_FIXED_DATE)
    info.compress_type = zipfile.ZIP_STORED
    info.external_attr = (stat.S_IFREG | 0o644) << 16
    # Knowing the size up front lets zipfile write zip64 headers for members over 2 GiB.
    info.file_size = size
    with archive.open(info, "w") as out:
        shutil.copyfileobj(data, out, _COPY_CHUNK)


def _tar_to_zip(src: Path, tmp: Path, progress: bool) -> None:
    """Stream a (compressed) tar into a zip in one pass, checking each member first.

    Each member is validated before any of its data is written, and the caller
    deletes `tmp` on any error, so an unsafe archive never produces output.
    Progress is in bytes of `src` read, the only measure with a known total
    when the tar is compressed.
    """
    written: set[str] = set()
    skipped_links = 0
    try:
        with open(src, "rb") as raw, tarfile.open(fileobj=raw, mode="r|*") as archive, _new_zip(tmp) as out, tqdm(
            total=src.stat().st_size,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=f"repack {src.name}",
            disable=not progress,
        ) as bar:
            for member in archive:
                _refuse_bad_tar_member(src, member)
                if member.isreg():
                    name = _zip_name(member.name)
                    _refuse_duplicate(src, name, written)
                    data = archive.extractfile(member)
                    assert data is not None  # extractfile only returns None for non-regular members
                    _write_entry(out, name, member.size, data)
                elif member.issym() or member.islnk():
                    skipped_links += 1
                bar.update(raw.tell() - bar.n)
    except (tarfile.TarError, EOFError) as err:
        raise _unreadable_tar(src, err) from None
    if skipped_links:
        log.warning("%s: skipped %d link member(s); only regular files are repacked", src, skipped_links)


def _refuse_duplicate(src: Path, name: str, written: set[str]) -> None:
    # tar lets a later member overwrite an earlier one; a zip cannot express that.
    if name in written:
        raise ArchiveError(f"{src} contains the file {name!r} more than once; a zip cannot hold both copies.")
    written.add(name)


def _folder_to_zip(src: Path, tmp: Path, *, skip: set[Path], progress: bool) -> None:
    """Write the regular files under `src` into a zip, in sorted (deterministic) order."""
    files = _folder_files(src, skip)  # walks and validates everything before writing
    with _new_zip(tmp) as out:
        for name, path in tqdm(files, unit="file", desc=f"repack {src.name}", disable=not progress):
            with open(path, "rb") as data:
                _write_entry(out, name, os.fstat(data.fileno()).st_size, data)


def _folder_files(root: Path, skip: set[Path]) -> list[tuple[str, Path]]:
    """(zip name, path) for every regular file under `root`.

    Symlinks are followed only when they resolve inside `root`; others are
    refused, since following them would pack files from elsewhere on the disk.
    """
    root_real = root.resolve()
    found: list[tuple[str, Path]] = []

    def visit(folder: Path, prefix: str, seen: frozenset[Path]) -> None:
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            path = Path(entry.path)
            name = prefix + entry.name
            real = path.resolve()
            if entry.is_symlink() and not real.is_relative_to(root_real):
                raise _unsafe(root, name, f"is a symlink to {os.readlink(path)!r}, which resolves outside the folder")
            if real in skip:
                continue  # our own output, when dest lies inside the folder
            if real.is_dir():
                if real in seen:  # a symlink back to a parent folder would loop forever
                    raise ArchiveError(f"{root}: the symlink {name!r} loops back to a parent folder; remove it.")
                visit(path, name + "/", seen | {real})
            elif real.is_file():
                found.append((name, path))
            elif entry.is_symlink() and not real.exists():
                raise ArchiveError(f"{root}: the symlink {name!r} points to a missing file; fix or remove it.")
            else:
                log.warning("%s: skipped %r, which is not a regular file", root, name)

    visit(root, "", frozenset({root_real}))
    return found

