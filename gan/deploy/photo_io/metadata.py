"""EXIF and ICC metadata: the orientation read and applied, the EXIF to carry, the ICC profile to
embed.

**Orientation is applied, then reset to 1 in the carried EXIF.** The pixels come out upright,
so a viewer that honoured the original tag on the output would rotate a second time. In
JPEG/PNG/WebP EXIF the tag's two bytes are patched in place rather than the EXIF re-serialised:
maker notes hold absolute offsets that re-serialising can break. TIFF input has no separate EXIF
block (its IFD0 holds the image structure too), so only descriptive tags (Make, Model,
DateTime, ...) and the Exif and GPS sub-IFDs are carried from it.
"""

from __future__ import annotations

import struct
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from gan.deploy.photo_io.formats import _METADATA_FORMATS

_EXIF_PREFIX = b"Exif\x00\x00"
_ORIENTATION = 0x0112
_EXIF_IFD, _GPS_IFD, _INTEROP_IFD = 0x8769, 0x8825, 0xA005
# IFD0 tags that describe the photo rather than how its pixels are stored: the ones worth
# carrying out of a TIFF (whose IFD0 also holds StripOffsets, Compression, ...).
_DESCRIPTIVE_TAGS = {
    270: "ImageDescription",
    271: "Make",
    272: "Model",
    305: "Software",
    306: "DateTime",
    315: "Artist",
    33432: "Copyright",
}


def _orient(array: np.ndarray, orientation: int) -> np.ndarray:
    """The stored (H, W, ...) array made upright per EXIF orientation 1-8 (a view, no copy)."""
    turned = array.swapaxes(0, 1)
    return {
        2: array[:, ::-1],  # mirrored left-right
        3: array[::-1, ::-1],  # rotated 180
        4: array[::-1],  # mirrored top-bottom
        5: turned,  # transposed
        6: turned[:, ::-1],  # rotated 90 counter-clockwise when stored: turn it clockwise
        7: turned[::-1, ::-1],  # transversed
        8: turned[::-1],  # rotated 90 clockwise when stored: turn it counter-clockwise
    }.get(orientation, array)


def _patched_orientation(exif: bytes) -> bytes | None:
    """The EXIF with IFD0's Orientation set to 1, every other byte as it was; None if unparsable."""
    tiff = memoryview(exif)[len(_EXIF_PREFIX):]
    try:
        order = {b"II": "<", b"MM": ">"}[bytes(tiff[:2])]
        (ifd0,) = struct.unpack_from(order + "I", tiff, 4)
        (count,) = struct.unpack_from(order + "H", tiff, ifd0)
        for entry in range(ifd0 + 2, ifd0 + 2 + 12 * count, 12):
            tag, kind = struct.unpack_from(order + "HH", tiff, entry)
            if tag == _ORIENTATION and kind == 3:  # SHORT, as the standard says
                patched = bytearray(exif)
                struct.pack_into(order + "H", patched, len(_EXIF_PREFIX) + entry + 8, 1)
                return bytes(patched)
        return exif  # no Orientation tag: nothing to reset
    except (KeyError, struct.error):
        return None


def _descriptive_exif(source: Image.Exif) -> bytes | None:
    """New EXIF with source's descriptive IFD0 tags and its Exif/GPS sub-IFDs; Orientation 1."""
    exif = Image.Exif()
    for tag in _DESCRIPTIVE_TAGS:
        if tag in source:
            exif[tag] = source[tag]
    for ifd_tag in (_EXIF_IFD, _GPS_IFD):
        sub = dict(source.get_ifd(ifd_tag))
        if _INTEROP_IFD in sub:  # a pointer into the source file: carry its contents instead
            interop = source.get_ifd(_INTEROP_IFD)
            sub.pop(_INTEROP_IFD)
            if interop:
                sub[_INTEROP_IFD] = dict(interop)
        if sub:
            exif[ifd_tag] = sub
    if not len(exif):
        return None
    exif[_ORIENTATION] = 1
    return exif.tobytes()


def _tiff_orientation(im: Image.Image) -> int:
    """The orientation a TIFF's pixels are still in, once Pillow has loaded them or not.

    Pillow 13 applies a TIFF's orientation itself when it loads the pixels, and deletes the
    tag then; tifffile-decoded pixels (16-bit) and older Pillows leave the tag to us.
    """
    return im.tag_v2.get(_ORIENTATION, 1)


def _exif_and_orientation(path: Path, im: Image.Image) -> tuple[bytes | None, int]:
    """(EXIF to carry, with Orientation reset to 1; the orientation the pixels are stored in).

    Call after decoding: a PNG's eXIf chunk may follow its pixels.
    """
    try:
        raw = im.info.get("exif")
        if raw:  # JPEG, PNG, WebP: a self-contained EXIF block
            raw = raw if raw.startswith(_EXIF_PREFIX) else _EXIF_PREFIX + raw
            source = Image.Exif()
            source.load(raw)
            carried = _patched_orientation(raw) or _descriptive_exif(source)
            orientation = source.get(_ORIENTATION, 1)
        else:  # TIFF (its tags live in the image's own IFD0), or an image without EXIF
            source = im.getexif()
            carried = _descriptive_exif(source)
            orientation = (_tiff_orientation(im) if im.format == "TIFF"
                           else source.get(_ORIENTATION, 1))
    except Exception as exc:  # damaged EXIF must not cost the photo
        warnings.warn(f"{path}: its EXIF metadata is damaged and is not carried ({exc})",
                      stacklevel=3)
        return None, 1
    return carried, orientation if orientation in range(1, 9) else 1


def _output_icc(icc: bytes | None, fmt: str, gray: bool) -> bytes | None:
    """The profile to embed, if the format holds one and it fits the pixels written."""
    if not icc or fmt not in _METADATA_FORMATS:
        return None
    space = icc[16:20]  # ICC header: the profile's colour space
    if (space == b"GRAY") != gray:  # e.g. a grayscale photo written as RGB WebP
        return None
    return icc
