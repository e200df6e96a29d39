"""Reading the DPED release layout from a zip archive or a folder, without unpacking it.

Layout (the official code reads it like this)::

    <root>training_data/<phone>/N.jpg          <root>training_data/canon/N.jpg
    <root>test_data/patches/<phone>/N.jpg      <root>test_data/patches/canon/N.jpg
    <root>test_data/full_size_test_images/*.jpg

``<root>`` is usually ``dped/<phone>/``, but copies of DPED circulate under other names, so the
root is found by looking for the phone's training folder anywhere in the archive. Patches are
decoded with ``decode_patch``.
"""

from __future__ import annotations

import io
import os
import re
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import simplejpeg
from PIL import Image, UnidentifiedImageError

from gan.config import PHONES

DSLR = "canon"
SPLIT_FOLDERS = {"train": "training_data/", "test": "test_data/patches/"}
FULL_SIZE_FOLDER = "test_data/full_size_test_images/"
_PATCH_RE = re.compile(
    r"^(?P<root>.*?)(?P<split>training_data/|test_data/patches/)(?P<side>[^/]+)/(?P<index>\d+)\.jpe?g$",
    re.IGNORECASE)
_LOCAL_HEADER = 30  # bytes of a zip local file header before the name and extra field
_COLUMNS = ("offset", "compressed", "size", "method", "crc", "flags")  # the member table
_FULL_RE = re.compile(r"^(?P<root>.*?)test_data/full_size_test_images/[^/]+\.(jpe?g|png)$",
                      re.IGNORECASE)


class LayoutError(ValueError):
    """The archive or folder does not hold the DPED layout for the requested phone."""


class DpedSource:
    """Random access to the files of a DPED copy: a zip archive or an extracted folder.

    Names are relative, '/'-separated paths. For a zip, the central directory is read once into a
    compact table (zipfile's own ZipInfo objects cost ~600 bytes per member: 200 MB for DPED
    iPhone's 320k files) and members are read with one ``pread`` each. Reads never move a file
    position, so processes forked after opening may share the source.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self._fd = -1
        self._names: list[str] = []
        self._index: dict[str, int] = {}
        self._table = np.empty((0, len(_COLUMNS)), np.int64)
        self._fallback: zipfile.ZipFile | None = None
        if self.path.is_dir():
            return
        if not self.path.exists():
            raise FileNotFoundError(f"{self.path}: no such archive or folder")
        try:
            with zipfile.ZipFile(self.path) as zf:
                infos = [i for i in zf.infolist() if not i.is_dir()]
        except zipfile.BadZipFile as exc:
            raise LayoutError(f"{self.path}: not a zip archive or a folder ({exc}); the download "
                              "stage normalises tar archives and folders to a zip") from None
        self._names = [i.filename for i in infos]
        self._index = {name: k for k, name in enumerate(self._names)}
        self._table = np.array([(i.header_offset, i.compress_size, i.file_size, i.compress_type,
                                 i.CRC, i.flag_bits) for i in infos], np.int64).reshape(-1, len(_COLUMNS))
        del infos
        self._fd = os.open(self.path, os.O_RDONLY)

    @property
    def is_zip(self) -> bool:
        return self._fd >= 0

    def names(self) -> list[str]:
        if self.is_zip:
            return self._names
        names = []
        for dirpath, dirnames, filenames in os.walk(self.path):
            dirnames.sort()
            rel = os.path.relpath(dirpath, self.path)
            prefix = "" if rel == "." else rel.replace(os.sep, "/") + "/"
            names.extend(prefix + f for f in sorted(filenames))
        return names

    def read(self, name: str) -> bytes:
        """The member's bytes. Raises KeyError for an unknown name, ValueError for a damaged one."""
        if not self.is_zip:
            return (self.path / name).read_bytes()
        offset, csize, usize, ctype, crc, flags = (int(v) for v in self._table[self._index[name]])
        if ctype not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED) or flags & 1:
            # Other codecs and encryption: zipfile's general path (opened on first need).
            if self._fallback is None:
                self._fallback = zipfile.ZipFile(self.path)
            return self._fallback.read(name)
        # One pread per member instead of ZipFile.read's seek/read sequence (about six system
        # calls): this is the hot path of the extract stage, 320k members for DPED iPhone.
        guess = _LOCAL_HEADER + len(name.encode()) + 64 + csize
        blob = os.pread(self._fd, guess, offset)
        if blob[:4] != b"PK\x03\x04":
            raise ValueError(f"{self.path}: {name}: bad local header (damaged archive)")
        name_len, extra_len = struct.unpack("<HH", blob[26:30])
        start = _LOCAL_HEADER + name_len + extra_len
        if len(blob) < start + csize:
            blob = os.pread(self._fd, start + csize, offset)
        data = blob[start:start + csize]
        if len(data) != csize:
            raise ValueError(f"{self.path}: {name}: archive ends inside the member")
        if ctype == zipfile.ZIP_DEFLATED:
            try:
                data = zlib.decompress(data, -15)
            except zlib.error as exc:
                raise ValueError(f"{self.path}: {name}: {exc}") from None
        if len(data) != usize or zlib.crc32(data) != crc:
            raise ValueError(f"{self.path}: {name}: CRC mismatch (damaged archive)")
        return data

    def close(self) -> None:
        if self._fallback is not None:
            self._fallback.close()
            self._fallback = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

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


def decode_patch(data: bytes) -> np.ndarray:
    """JPEG bytes -> (H, W, 3) uint8 RGB. Raises ValueError with the decoder's reason.

    simplejpeg (libjpeg-turbo without PIL's per-image overhead) decodes DPED's small patches
    about 2.5x faster than PIL; in strict mode it also fails on truncated data. Anything it
    refuses (another format, CMYK, a damaged file) goes through PIL, which either decodes it
    or gives the error to report.
    """
    try:
        return simplejpeg.decode_jpeg(data, colorspace="RGB", strict=True)
    except ValueError:
        pass
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()  # decode now: a truncated file fails here, not later
            rgb = im if im.mode == "RGB" else im.convert("RGB")
            return np.asarray(rgb)
    except UnidentifiedImageError:  # its message names an anonymous BytesIO: say what it means
        raise ValueError("not a JPEG, nor any image format Pillow reads (or a damaged one)") \
            from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ValueError(str(exc) or type(exc).__name__) from None
