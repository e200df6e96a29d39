"""Encoding quantised pixels (uint8 or uint16, (H, W, C)) into a file, format by format.

Pillow writes 8-bit JPEG, PNG, WebP, BMP, HEIF and AVIF; libpng (imagecodecs) writes 16-bit PNG,
which Pillow cannot (decode says why). The HEIF and AVIF encoder settings are measured against
the encoders' defaults in bench/README.md, "Photo formats".

**TIFF output via tifffile** for 8 and 16 bits alike: Deflate with a horizontal predictor
(lossless, widely read), ICC profile, descriptive IFD0 tags; the Exif and GPS sub-IFDs are
appended after tifffile is done and IFD0's pointers patched, because tifffile cannot write
them and Pillow's libtiff writer fails on them when compressing.
"""

from __future__ import annotations

import os
import struct
import zlib
from typing import IO, Any

import imagecodecs
import numpy as np
import tifffile
from PIL import Image, TiffImagePlugin

from gan.deploy.photo_io.metadata import (
    _DESCRIPTIVE_TAGS,
    _EXIF_IFD,
    _EXIF_PREFIX,
    _GPS_IFD,
    _INTEROP_IFD,
    _ORIENTATION,
)

# zlib level 3, not the default 6: a fraction of the time for a file a few percent larger
_PNG_ZLIB_LEVEL = 3


def _save_pillow(fh: IO[bytes], pixels: np.ndarray, fmt: str, icc: bytes | None,
                 exif: bytes | None, quality: int) -> None:
    """JPEG, WebP, BMP, HEIF, AVIF and 8-bit PNG: pixels (H, W, C) uint8 -> L, LA, RGB or
    RGBA."""
    im = Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels)
    options: dict[str, Any] = {}
    if icc:
        options["icc_profile"] = icc
    if exif:
        options["exif"] = exif
    if fmt == "JPEG":
        # 4:4:4 chroma at high quality: enhancement is about colour, don't halve its resolution
        options.update(quality=quality, subsampling=0 if quality >= 90 else 2)
    elif fmt == "PNG":
        options["compress_level"] = _PNG_ZLIB_LEVEL
    elif fmt == "WEBP":
        # lossy colour, lossless alpha (alpha_quality 100); exact keeps colour under alpha 0
        options.update(quality=quality, alpha_quality=100, exact=True)
    elif fmt == "HEIF":  # pillow-heif (x265), chroma 4:2:0: what every HEIC reader decodes
        # x265's "ultrafast" preset: its default takes as long as enhancing the photo itself
        options.update(quality=quality, enc_params={"preset": "ultrafast"})
    elif fmt == "AVIF":  # Pillow (libavif); grayscale gets 4:0:0 by default
        # speed 9 of 10: libavif's default is several times slower, for files hardly smaller
        options.update(quality=quality, speed=9)
        if pixels.shape[2] >= 3 and quality >= 90:
            options["subsampling"] = "4:4:4"
    im.save(fh, format=fmt, **options)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _save_png16(fh: IO[bytes], pixels: np.ndarray, icc: bytes | None, exif: bytes | None) -> None:
    """16-bit PNG by libpng (imagecodecs), with iCCP and eXIf chunks inserted after IHDR."""
    data = imagecodecs.png_encode(pixels[..., 0] if pixels.shape[2] == 1 else pixels,
                                  level=_PNG_ZLIB_LEVEL)
    extra = b""
    if icc:  # profile name, NUL, compression method 0 (zlib), compressed profile
        extra += _png_chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc))
    if exif:
        extra += _png_chunk(b"eXIf", exif.removeprefix(_EXIF_PREFIX))
    header_end = 8 + 8 + 13 + 4  # signature, then IHDR: length + type, 13 data bytes, CRC
    fh.write(data[:header_end])
    fh.write(extra)
    fh.write(memoryview(data)[header_end:])


def _tiff_exif(exif: bytes | None) -> tuple[dict[str, Any], list[tuple], dict[int, dict]]:
    """EXIF as tifffile arguments: (keyword arguments, extratags, sub-IFDs to append)."""
    if not exif:
        return {"software": False}, [], {}
    source = Image.Exif()
    source.load(exif)
    text = {tag: str(source[tag]).encode("utf-8", "replace") for tag in _DESCRIPTIVE_TAGS
            if tag in source}
    # tifffile writes these three itself, from keyword arguments only
    kwargs: dict[str, Any] = {"software": text.pop(305, False),
                              "description": text.pop(270, None)}
    if 306 in text:
        kwargs["datetime"] = text.pop(306).decode("ascii", "replace")
    extratags: list[tuple] = [(tag, "s", 0, value, True) for tag, value in text.items()]
    extratags.append((_ORIENTATION, "H", 1, 1, True))
    subifds = {tag: dict(source.get_ifd(tag)) for tag in (_EXIF_IFD, _GPS_IFD)}
    subifds = {tag: sub for tag, sub in subifds.items() if sub}
    if _EXIF_IFD in subifds and _INTEROP_IFD in subifds[_EXIF_IFD]:
        interop = source.get_ifd(_INTEROP_IFD)
        subifds[_EXIF_IFD][_INTEROP_IFD] = dict(interop)
        if not interop:
            del subifds[_EXIF_IFD][_INTEROP_IFD]
    # tifffile refuses to write IFD-pointer tags, so IFD0 gets a placeholder (LONG 0) under the
    # tag number just below, which keeps the entries sorted when it is renamed afterwards
    extratags += [(tag - 1, "I", 1, 0, True) for tag in subifds]
    return kwargs, extratags, subifds


def _append_tiff_subifds(fh: IO[bytes], subifds: dict[int, dict]) -> None:
    """Append each sub-IFD at the end of a little-endian TIFF; make IFD0's placeholder for it
    (tag number minus one, see _tiff_exif) the real pointer."""
    fh.seek(4)
    (ifd0,) = struct.unpack("<I", fh.read(4))
    fh.seek(ifd0)
    (count,) = struct.unpack("<H", fh.read(2))
    entries = fh.read(12 * count)
    for index in range(count):
        tag = struct.unpack_from("<H", entries, 12 * index)[0] + 1
        if tag not in subifds:
            continue
        end = fh.seek(0, os.SEEK_END)
        if end % 2:  # TIFF offsets are word-aligned
            end += fh.write(b"\x00")
        ifd = TiffImagePlugin.ImageFileDirectory_v2(ifh=b"II*\x00\x08\x00\x00\x00", group=tag)
        for key, value in subifds[tag].items():
            ifd[key] = value
        fh.write(ifd.tobytes(end))
        fh.seek(ifd0 + 2 + 12 * index)
        fh.write(struct.pack("<HHII", tag, 4, 1, end))  # tag, LONG, one value: the offset


def _save_tiff(fh: IO[bytes], pixels: np.ndarray, icc: bytes | None, exif: bytes | None) -> None:
    """8- or 16-bit TIFF by tifffile: Deflate + predictor, ICC profile, EXIF."""
    channels = pixels.shape[2]
    kwargs, extratags, subifds = _tiff_exif(exif)
    if icc:  # InterColorProfile, UNDEFINED bytes (as a tag: older tifffiles lack iccprofile=)
        extratags.append((34675, 7, len(icc), icc, True))
    tifffile.imwrite(
        fh,
        pixels[..., 0] if channels == 1 else pixels,
        byteorder="<",
        bigtiff=False,
        photometric="rgb" if channels >= 3 else "minisblack",
        extrasamples=("unassalpha",) if channels in (2, 4) else None,
        compression="zlib",
        predictor=True,
        metadata=None,  # no tifffile JSON in ImageDescription
        extratags=extratags,
        **kwargs,
    )
    if subifds:
        _append_tiff_subifds(fh, subifds)


def _encode(fh: IO[bytes], pixels: np.ndarray, fmt: str, icc: bytes | None, exif: bytes | None,
            quality: int) -> None:
    if fmt == "TIFF":
        _save_tiff(fh, pixels, icc, exif)
    elif fmt == "PNG" and pixels.dtype == np.uint16:
        _save_png16(fh, pixels, icc, exif)
    else:
        _save_pillow(fh, pixels, fmt, icc, exif, quality)
