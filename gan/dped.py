"""Reading the DPED release layout from a zip archive or a folder, without unpacking it.

Layout (the official code reads it like this)::

    <root>training_data/<phone>/N.jpg          <root>training_data/canon/N.jpg
    <root>test_data/patches/<phone>/N.jpg      <root>test_data/patches/canon/N.jpg
    <root>test_data/full_size_test_images/*.jpg

``<root>`` is usually ``dped/<phone>/``, but copies of DPED circulate under other names, so the
root is found by looking for the phone's training folder anywhere in the archive.
"""

from __future__ import annotations

import os
import re
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

PHONES = ("iphone", "blackberry", "sony")
DSLR = "canon"
SPLIT_FOLDERS = {"train": "training_data/", "test": "test_data/patches/"}
FULL_SIZE_FOLDER = "test_data/full_size_test_images/"
_PATCH_RE = re.compile(
    r"^(?P<root>.*?)(?P<split>training_data/|test_data/patches/)(?P<side>[^/]+)/(?P<index>\d+)\.jpe?g$",
    re.IGNORECASE)
_LOCAL_HEADER = 30  # bytes of a zip local file header before the name and extra field
_FULL_RE = re.compile(r"^(?P<root>.*?)test_data/full_size_test_images/[^/]+\.(jpe?g|png)$",
                      re.IGNORECASE)


class LayoutError(ValueError):
    """The archive or folder does not hold the DPED layout for the requested phone."""


class DpedSource:
    """Random access to the files of a DPED copy: a zip archive or an extracted folder.

    Open one per process (a zip handle must not be shared across processes). Names are relative,
    '/'-separated paths.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self._zip: zipfile.ZipFile | None = None
        self._members: dict[str, zipfile.ZipInfo] = {}
        self._fd = -1
        if self.path.is_dir():
            return
        if not self.path.exists():
            raise FileNotFoundError(f"{self.path}: no such archive or folder")
        try:
            self._zip = zipfile.ZipFile(self.path)
        except zipfile.BadZipFile as exc:
            raise LayoutError(f"{self.path}: not a zip archive or a folder ({exc}); the download "
                              "stage normalises tar archives and folders to a zip") from None
        self._members = {info.filename: info for info in self._zip.infolist()}
        self._fd = os.open(self.path, os.O_RDONLY)

    def names(self) -> list[str]:
        if self._zip is not None:
            return [i.filename for i in self._zip.infolist() if not i.is_dir()]
        names = []
        for dirpath, dirnames, filenames in os.walk(self.path):
            dirnames.sort()
            rel = os.path.relpath(dirpath, self.path)
            prefix = "" if rel == "." else rel.replace(os.sep, "/") + "/"
            names.extend(prefix + f for f in sorted(filenames))
        return names

    def read(self, name: str) -> bytes:
        """The member's bytes. Raises KeyError for an unknown name, ValueError for a damaged one."""
        if self._zip is None:
            return (self.path / name).read_bytes()
        info = self._members[name]
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED) or info.flag_bits & 1:
            return self._zip.read(name)  # other codecs and encryption: the general path
        return self._read_member(info)

    def _read_member(self, info: zipfile.ZipInfo) -> bytes:
        # One pread per member instead of ZipFile.read's seek/read sequence (about six system
        # calls): this is the hot path of the extract stage, 320k members for DPED iPhone.
        guess = _LOCAL_HEADER + len(info.orig_filename.encode()) + 64 + info.compress_size
        blob = os.pread(self._fd, guess, info.header_offset)
        if blob[:4] != b"PK\x03\x04":
            raise ValueError(f"{self.path}: {info.filename}: bad local header (damaged archive)")
        name_len, extra_len = struct.unpack("<HH", blob[26:30])
        start = _LOCAL_HEADER + name_len + extra_len
        end = start + info.compress_size
        if len(blob) < end:
            blob = os.pread(self._fd, end, info.header_offset)
        data = blob[start:end]
        if len(data) != info.compress_size:
            raise ValueError(f"{self.path}: {info.filename}: archive ends inside the member")
        if info.compress_type == zipfile.ZIP_DEFLATED:
            try:
                data = zlib.decompress(data, -15)
            except zlib.error as exc:
                raise ValueError(f"{self.path}: {info.filename}: {exc}") from None
        if zlib.crc32(data) != info.CRC:
            raise ValueError(f"{self.path}: {info.filename}: CRC mismatch (damaged archive)")
        return data

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()
            os.close(self._fd)
            self._zip = None

    def __enter__(self) -> "DpedSource":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class Pair:
    """One phone/DSLR pair; a side is None when the release lacks that file."""

    split: str  # 'train' | 'test'
    index: int
    phone: str | None
    dslr: str | None


@dataclass
class DpedLayout:
    root: str  # prefix inside the source, e.g. 'dped/iphone/'
    phone: str
    pairs: dict[str, list[Pair]] = field(default_factory=dict)  # split -> pairs sorted by index
    full_size: list[str] = field(default_factory=list)


def find_layout(names: list[str], phone: str) -> DpedLayout:
    """Locate the DPED layout of ``phone`` among the file names of a source.

    Pairs are matched by index; an index present on one side only becomes a Pair with the other
    side None (the caller counts it), never an error. Raises LayoutError when no phone training
    folder is found, or when several roots hold one (ambiguous).
    """
    if phone not in PHONES:
        raise LayoutError(f"unknown phone {phone!r}: DPED has {', '.join(PHONES)}")
    sides: dict[str, dict[tuple[str, str], dict[int, str]]] = {}
    phones_seen: set[str] = set()
    for name in names:
        m = _PATCH_RE.match(name)
        if not m:
            continue
        side = m["side"].lower()
        phones_seen.add(side)
        if side not in (phone, DSLR):
            continue
        split = "train" if m["split"].lower() == "training_data/" else "test"
        sides.setdefault(m["root"], {}).setdefault((split, side), {})[int(m["index"])] = name

    roots = [r for r, found in sides.items() if ("train", phone) in found]
    if not roots:
        seen = ", ".join(sorted(phones_seen - {DSLR})) or "none"
        raise LayoutError(
            f"no DPED training folder for phone {phone!r} (expected .../training_data/{phone}/N.jpg "
            f"beside .../training_data/{DSLR}/N.jpg); phone folders found: {seen}. Set data.phone "
            "to one of those, or check that the archive holds the DPED patch release.")
    if len(roots) > 1:
        raise LayoutError(f"several DPED trees for phone {phone!r}: {', '.join(sorted(roots))}; "
                          "keep one copy in the archive")
    root = roots[0]
    found = sides[root]
    layout = DpedLayout(root=root, phone=phone)
    for split in SPLIT_FOLDERS:
        phone_files = found.get((split, phone), {})
        dslr_files = found.get((split, DSLR), {})
        layout.pairs[split] = [Pair(split, i, phone_files.get(i), dslr_files.get(i))
                               for i in sorted(phone_files.keys() | dslr_files.keys())]
    layout.full_size = sorted(
        (n for n in names if (m := _FULL_RE.match(n)) and m["root"] == root),
        key=_natural_key)
    return layout


def _natural_key(name: str) -> list[object]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]
