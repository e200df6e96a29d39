"""Opening a photo file: the checks that give clearer errors than Pillow's, and the size checked
before any pixel is decoded.

**One pixel-limit check, ours.** ``max_pixels`` is checked on the header's width x height before
any pixel is decoded (WebP's size is read from its RIFF header first, because Pillow's WebP
opener already allocates the canvas). Pillow's own decompression-bomb limit is a process-wide
global that would otherwise refuse (or warn about) images that ``max_pixels`` allows, so it is
switched off while photo_io decodes and restored afterwards (reference-counted, so concurrent
reads in threads restore it once, last). Truncated files fail: ``ImageFile.LOAD_TRUNCATED_IMAGES``
is left False and every image is fully ``load()``-ed, inside the error handling (decode).
"""

from __future__ import annotations

import contextlib
import stat
import struct
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from PIL import Image, UnidentifiedImageError

from gan.deploy.photo_io.formats import _read_formats
from gan.deploy.photo_io.photo import _fail, _os_problem

# --------------------------------------------------------------------------------------------
# Pillow's global decompression-bomb limit

_limit_lock = threading.Lock()
_limit_users = 0
_saved_limit: int | None = None


@contextlib.contextmanager
def _pillow_limit_off() -> Iterator[None]:
    """Switch off Pillow's global pixel limit while photo_io decodes: max_pixels replaces it."""
    global _limit_users, _saved_limit
    with _limit_lock:
        if _limit_users == 0:
            _saved_limit = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = None
        _limit_users += 1
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            yield
    finally:
        with _limit_lock:
            _limit_users -= 1
            if _limit_users == 0:
                Image.MAX_IMAGE_PIXELS = _saved_limit


# --------------------------------------------------------------------------------------------
# Opening and checking a file


def _open_binary(path: Path) -> IO[bytes]:
    """The file opened for reading, after the checks that give clearer errors than Pillow's."""
    try:
        info = path.stat()
        if stat.S_ISDIR(info.st_mode):
            raise _fail(path, "is a folder, not an image file")
        if not stat.S_ISREG(info.st_mode):
            raise _fail(path, "is not a regular file")
        if info.st_size == 0:
            raise _fail(path, "the file is empty (0 bytes)")
        return open(path, "rb")
    except OSError as exc:
        raise _fail(path, f"cannot read it: {_os_problem(exc)}") from exc


def _megapixels(pixels: int) -> str:
    return f"{pixels / 1e6:.1f} MP"


def _check_pixels(path: Path, size: tuple[int, int], max_pixels: int | None) -> None:
    width, height = size
    if max_pixels is not None and width * height > max_pixels:
        raise _fail(
            path,
            f"the image is {width}x{height} ({_megapixels(width * height)}), over the limit of "
            f"{_megapixels(max_pixels)} ({max_pixels} pixels); raise max_pixels if you trust "
            "this file",
        )


def _webp_size(head: bytes) -> tuple[int, int] | None:
    """(width, height) from a WebP's first 30 bytes, or None if it is not a WebP."""
    if len(head) < 30 or head[:4] != b"RIFF" or head[8:12] != b"WEBP":
        return None
    chunk = head[12:16]
    if chunk == b"VP8X":  # extended: 24-bit canvas size minus one
        width, height = (int.from_bytes(head[at : at + 3], "little") + 1 for at in (24, 27))
        return width, height
    if chunk == b"VP8L":  # lossless: 14-bit sizes minus one, packed after a 0x2f signature
        bits = int.from_bytes(head[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 ":  # lossy: 14-bit sizes after the key frame's start code
        width, height = struct.unpack_from("<HH", head, 26)
        return width & 0x3FFF, height & 0x3FFF
    return None


@contextlib.contextmanager
def _open_image(path: Path, max_pixels: int | None) -> Iterator[tuple[Image.Image, IO[bytes]]]:
    """The image opened by Pillow (header only) and its file, with the size checked."""
    with _open_binary(path) as fh:
        try:
            head = fh.read(64)
            fh.seek(0)
        except OSError as exc:
            raise _fail(path, f"cannot read it: {_os_problem(exc)}") from exc
        if (size := _webp_size(head)) is not None:
            _check_pixels(path, size, max_pixels)
        formats = _read_formats(path, head)
        try:
            im = Image.open(fh, formats=formats)
        except UnidentifiedImageError as exc:
            raise _fail(path, "not a JPEG, PNG, TIFF, WebP, BMP, HEIC or AVIF image, or a "
                              "damaged one (Pillow cannot identify it)") from exc
        except Exception as exc:  # a damaged header: Pillow raises many kinds
            raise _fail(path, f"cannot read the image header ({exc})") from exc
        with im:
            _check_pixels(path, im.size, max_pixels)
            yield im, fh
