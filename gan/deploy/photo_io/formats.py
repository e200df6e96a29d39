"""The formats photo_io reads and writes: output suffixes, what each format can store, and the
HEIF/AVIF plugins.

**HEIC/HEIF through pillow-heif, AVIF through Pillow itself.** pillow-heif (libheif with
libde265/x265) is a Pillow plugin for HEIF only; Pillow (11.3+) reads and writes AVIF natively with
libavif. The plugin is registered lazily, the first time a file that looks like ISO-BMFF (``ftyp``)
is read or a ``.heic``/``.heif`` is written (its import loads libheif), once, and with no options,
so pillow-heif's global options stay at their defaults; what that changes for the rest of the
process is only that Pillow then also knows the "HEIF" format. photo_io's own reads still name
their formats, HEIF before AVIF unless the file's brands say AVIF (Pillow's AVIF opener also claims
the generic ``mif1`` brand). Without pillow-heif a HEIC file is a PhotoError saying how to install
it. Both decoders give 8 bits per sample (10- and 12-bit files are reduced to 8: pillow-heif as a
Pillow plugin converts them, and Pillow's AVIF decoder has no 16-bit mode), and both formats are
written with 8 bits. Orientation: libheif applies the file's rotation/mirror (irot/imir) itself and
pillow-heif resets the EXIF tag to 1, so HEIF pixels arrive upright; Pillow's AVIF opener instead
reports irot/imir as the EXIF orientation, which is then applied as for JPEG (metadata). When
writing AVIF, Pillow moves the EXIF orientation into the container and re-serialises the EXIF (the
one format whose EXIF is not carried byte for byte). HEIC is written 4:2:0 and in colour always
(4:4:4 and monochrome need HEVC profiles that Apple's decoders lack); AVIF gets 4:4:4 chroma at
quality 90+, as JPEG does, and grayscale stays grayscale.
"""

from __future__ import annotations

import threading
from pathlib import Path

from gan.deploy.photo_io.photo import _fail

SUFFIXES: dict[str, str] = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".png": "PNG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
    ".bmp": "BMP",
    ".heic": "HEIF",
    ".heif": "HEIF",
    ".avif": "AVIF",
}

_READ_FORMATS = ("JPEG", "PNG", "TIFF", "WEBP", "BMP")  # no EPS (Ghostscript), no exotica
_ALPHA_FORMATS = {"PNG", "TIFF", "WEBP", "HEIF", "AVIF"}
_SIXTEEN_BIT_FORMATS = {"PNG", "TIFF"}
_METADATA_FORMATS = {"JPEG", "PNG", "TIFF", "WEBP", "HEIF", "AVIF"}  # can hold ICC and EXIF
# WebP has no grayscale, HEIC's (HEVC RExt) is not widely decoded: both written as RGB
_GRAY_FORMATS = {"JPEG", "PNG", "TIFF", "BMP", "AVIF"}
_AVIF_BRANDS = {b"avif", b"avis"}
_HEIF_INSTALL = ("reading and writing HEIC/HEIF needs the pillow-heif package, which is not "
                 "installed: pip install pillow-heif")
_AVIF_INSTALL = ("this Pillow was built without AVIF support (libavif); install a Pillow wheel "
                 "of 11.3 or later: pip install -U pillow")


_heif_lock = threading.Lock()
_heif_state: bool | None = None  # None: not tried yet; then whether pillow-heif is registered


def _heif_ready() -> bool:
    """Register pillow-heif's HEIF opener and saver with Pillow, the first time only (its import
    loads libheif); False if pillow-heif is not installed."""
    global _heif_state
    with _heif_lock:
        if _heif_state is None:
            try:
                import pillow_heif
            except ImportError:
                _heif_state = False
            else:
                pillow_heif.register_heif_opener()  # no options: its global defaults stay
                _heif_state = True
        return _heif_state


def _avif_ready() -> bool:
    from PIL import features

    return bool(features.check_module("avif"))


def _ftyp_brands(head: bytes) -> list[bytes] | None:
    """The major and compatible brands of an ISO-BMFF file (HEIF, AVIF) from its first bytes,
    as far as they reach; None if the file does not start with an ftyp box."""
    if len(head) < 12 or head[4:8] != b"ftyp":
        return None
    end = min(len(head), max(16, int.from_bytes(head[:4], "big")))
    return [head[8:12]] + [head[at : at + 4] for at in range(16, end - 3, 4)]


def _read_formats(path: Path, head: bytes) -> tuple[str, ...]:
    """The Pillow formats to try on a file that starts with ``head``; HEIF and AVIF need their
    plugins, registered here when the file looks like one (and refused clearly without)."""
    brands = _ftyp_brands(head)
    if brands is None:
        return _READ_FORMATS
    if _AVIF_BRANDS.intersection(brands):
        if not _avif_ready():
            raise _fail(path, f"it is an AVIF image, but {_AVIF_INSTALL}")
        return ("AVIF", "HEIF") if _heif_ready() else ("AVIF",)
    if not _heif_ready():
        raise _fail(path, f"it looks like a HEIC/HEIF image, but {_HEIF_INSTALL}")
    return ("HEIF", "AVIF") if _avif_ready() else ("HEIF",)


def _check_writer(path: Path, fmt: str) -> None:
    """PhotoError if the plugin that writes ``fmt`` is missing (before anything is written)."""
    if fmt == "HEIF" and not _heif_ready():
        raise _fail(path, f"cannot write HEIC/HEIF: {_HEIF_INSTALL}")
    if fmt == "AVIF" and not _avif_ready():
        raise _fail(path, f"cannot write AVIF: {_AVIF_INSTALL}")


def output_format(path: Path) -> str:
    """The format an output path's suffix names (case-insensitive), e.g. "JPEG" for .JPG."""
    path = Path(path)
    try:
        return SUFFIXES[path.suffix.lower()]
    except KeyError:
        known = ", ".join(SUFFIXES)
        found = f"'{path.suffix}'" if path.suffix else "no suffix"
        problem = f"cannot tell the output format from {found}; use one of {known}"
        raise _fail(path, problem) from None
