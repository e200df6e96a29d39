"""Reading and writing real photos for the ``enhance`` command.

``read_photo`` turns a JPEG, PNG, TIFF, WebP, BMP, HEIC/HEIF or AVIF file into a
:class:`Photo`: upright ``(H, W, 3) float32`` RGB in [0, 1] plus what is needed to write the result
back faithfully (alpha, bit depth, grayscale, EXIF, ICC profile). ``write_photo`` writes enhanced
RGB in the format the output suffix names, atomically.

Choices, and why:

- **Pillow for 8-bit, tifffile/imagecodecs for 16-bit.** Pillow (13.0) has no mode for
  16-bit colour: it opens a 16-bit RGB(A) PNG or TIFF as 8-bit ``RGB``/``RGBA`` (keeping the high
  byte) and cannot write one at all; only single-channel ``I;16`` keeps 16 bits. So files with 16
  bits per sample go through tifffile (TIFF; pure Python on numpy) and imagecodecs (PNG via
  libpng; tifffile also needs it to decode LZW, PackBits and JPEG-compressed TIFFs, which
  Photoshop and Lightroom write). Pillow still parses every header, so the size check, the ICC
  profile and the EXIF come from one place.
- **HEIC/HEIF through pillow-heif, AVIF through Pillow itself.** pillow-heif (libheif with
  libde265/x265) is a Pillow plugin for HEIF; since its 1.0 it no longer handles AVIF, which
  Pillow (11.3+) reads and writes natively with libavif. The plugin is registered lazily, the first
  time a file that looks like ISO-BMFF (``ftyp``) is read or a ``.heic``/``.heif`` is written (its
  import loads libheif), once, and with no options, so pillow-heif's global options stay at their
  defaults; what that changes for the rest of the process is only that Pillow then also knows the
  "HEIF" format. photo_io's own reads still name their formats, HEIF before AVIF unless the file's
  brands say AVIF (Pillow's AVIF opener also claims the generic ``mif1`` brand). Without
  pillow-heif a HEIC file is a PhotoError saying how to install it. Both decoders give 8 bits per
  sample (10- and 12-bit files are reduced to 8: pillow-heif as a Pillow plugin converts them,
  and Pillow's AVIF decoder has no 16-bit mode), and both formats are written with 8 bits.
  Orientation: libheif applies the file's rotation/mirror (irot/imir) itself and pillow-heif
  resets the EXIF tag to 1, so HEIF pixels arrive upright; Pillow's AVIF opener instead reports
  irot/imir as the EXIF orientation, which is then applied here as for JPEG. When writing AVIF,
  Pillow moves the EXIF orientation into the container and re-serialises the EXIF (the one
  format whose EXIF is not carried byte for byte). HEIC is written 4:2:0 and in colour always
  (4:4:4 and monochrome need HEVC profiles that Apple's decoders lack); AVIF gets 4:4:4 chroma at
  quality 90+, as JPEG does, and grayscale stays grayscale.
- **One pixel-limit check, ours.** ``max_pixels`` is checked on the header's width x height before
  any pixel is decoded (WebP's size is read from its RIFF header first, because Pillow's WebP
  opener already allocates the canvas). Pillow's own decompression-bomb limit is a process-wide
  global that would otherwise refuse (or warn about) images that ``max_pixels`` allows, so it is
  switched off while photo_io decodes and restored afterwards (reference-counted, so concurrent
  reads in threads restore it once, last). Truncated files fail: ``ImageFile.LOAD_TRUNCATED_IMAGES``
  is left False and every image is fully ``load()``-ed here, inside the error handling.
- **Orientation is applied, then reset to 1 in the carried EXIF.** The pixels come out upright,
  so a viewer that honoured the original tag on the output would rotate a second time. In
  JPEG/PNG/WebP EXIF the tag's two bytes are patched in place rather than the EXIF re-serialised:
  maker notes hold absolute offsets that re-serialising can break. TIFF input has no separate EXIF
  block (its IFD0 holds the image structure too), so only descriptive tags (Make, Model,
  DateTime, ...) and the Exif and GPS sub-IFDs are carried from it.
- **TIFF output via tifffile** for 8 and 16 bits alike: Deflate with a horizontal predictor
  (lossless, widely read), ICC profile, descriptive IFD0 tags; the Exif and GPS sub-IFDs are
  appended after tifffile is done and IFD0's pointers patched, because tifffile cannot write
  them and Pillow's libtiff writer fails on them when compressing.
- **CMYK** is converted to RGB with LittleCMS (PIL.ImageCms, perceptual intent) from its embedded
  profile to sRGB, and an sRGB profile travels instead of the CMYK one; without a profile Pillow's
  plain (naive) conversion is all there is.
- **Writes are atomic** (gan.fsio): a uniquely named hidden temporary file in the output's
  folder, fsync'ed, then renamed; on any exception, KeyboardInterrupt included, it is removed.
- **Memory**: a read holds the decoded integers and the float32 result (about 4 + 12 bytes a
  pixel for 8-bit RGB); a write quantises in strips of about a megapixel into one integer array,
  so neither holds more than a couple of full-size copies.

Not carried: XMP and IPTC metadata, further frames of multi-frame files, HEIF depth maps,
auxiliary images and thumbnails. 16-bit grayscale+alpha TIFFs cannot be read (Pillow cannot
identify them).
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import stat
import struct
import threading
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import imagecodecs
import numpy as np
import tifffile
from PIL import Image, ImageCms, TiffImagePlugin, UnidentifiedImageError

from gan.fsio import atomic_path
from gan.pixels import LUMA_BT601

DEFAULT_MAX_PIXELS = 200_000_000  # refuse decompression bombs; a 100 MP camera is well inside

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

_EXIF_PREFIX = b"Exif\x00\x00"
_JPEG_MAX_EXIF = 65533  # one APP1 segment, its length field included
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
_STRIP_PIXELS = 1 << 20  # quantise about a megapixel at a time
# zlib level for PNG: on a 12 MP photo level 3 takes a quarter of the default 6's time (1.6 s
# against 6.0 s) for a file 3% larger
_PNG_ZLIB_LEVEL = 3


class PhotoError(ValueError):
    """A photo cannot be read or written; the message names the file and the problem."""


@dataclass
class Photo:
    """A decoded photo and what is needed to write an enhanced version of it back.

    rgb: (H, W, 3) float32 in [0, 1], EXIF orientation already applied.
    alpha: (H, W) alpha exactly as stored (uint8 or uint16), oriented like rgb; None if none.
    bits: 8 or 16, the input's bit depth per channel.
    grayscale: the input was single-channel (L, I;16, LA, ...).
    exif: EXIF (starting b"Exif\\0\\0") to carry to the output, Orientation reset to 1; or None.
    icc_profile: ICC profile to carry; for CMYK input converted with its profile, sRGB.
    format: the input's format, e.g. "JPEG". mode: its PIL mode as read, e.g. "P", "I;16".
    """

    rgb: np.ndarray
    alpha: np.ndarray | None
    bits: int
    grayscale: bool
    exif: bytes | None
    icc_profile: bytes | None
    format: str
    mode: str


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


def _fail(path: Path, problem: str) -> PhotoError:
    return PhotoError(f"{path}: {problem}")


def _os_problem(exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return "no such file"
    if isinstance(exc, IsADirectoryError):
        return "is a folder, not an image file"
    if isinstance(exc, PermissionError):
        return "permission denied"
    return exc.strerror or str(exc)


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


# --------------------------------------------------------------------------------------------
# Decoding pixels


@dataclass
class _Pixels:
    values: np.ndarray  # (H, W, 1 or 3) uint8 or uint16, as stored (before orientation)
    alpha: np.ndarray | None  # (H, W), same dtype
    grayscale: bool
    icc_profile: bytes | None
    premultiplied: bool = False  # colour stored multiplied by alpha (TIFF associated alpha)


def _split_alpha(array: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """(H, W[, C]) -> (values (H, W, 1 or 3), alpha or None): channel 2 of 2 or 4 of 4 is alpha."""
    if array.ndim == 2:
        return array[..., None], None
    channels = array.shape[2]
    if channels in (2, 4):
        return array[..., : channels - 1], array[..., channels - 1]
    return array[..., :3], None


@functools.cache
def _srgb() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def _cmyk_to_rgb(path: Path, im: Image.Image,
                 icc: bytes | None) -> tuple[Image.Image, bytes | None]:
    """RGB from CMYK: through the embedded profile to sRGB when there is one (LittleCMS)."""
    if icc:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            rgb = ImageCms.profileToProfile(im, source, _srgb(), outputMode="RGB")
            return rgb, _srgb().tobytes()
        except (ImageCms.PyCMSError, OSError, ValueError) as exc:
            warnings.warn(f"{path}: its CMYK ICC profile cannot be used ({exc}); converting "
                          "to RGB without it, colours may be off", stacklevel=4)
    return im.convert("RGB"), None


# Modes Pillow hands out that are converted to one of L, LA, RGB, RGBA before use.
_CONVERT = {"1": "L", "La": "LA", "PA": "RGBA", "RGBa": "RGBA", "RGBX": "RGB", "YCbCr": "RGB",
            "LAB": "RGB", "HSV": "RGB"}


def _pillow_pixels(path: Path, im: Image.Image) -> _Pixels:
    """Decode with Pillow and normalise the mode to L, LA, RGB, RGBA or 16-bit L."""
    icc = im.info.get("icc_profile") or None
    im.load()
    mode = im.mode
    if mode == "CMYK":
        im, icc = _cmyk_to_rgb(path, im, icc)
    elif mode == "P":  # a palette with a transparent entry becomes alpha
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif mode in ("L", "RGB") and "transparency" in im.info:  # a tRNS colour key
        im = im.convert(mode + "A")
    elif mode in _CONVERT:
        im = im.convert(_CONVERT[mode])
    elif mode == "F":
        raise _fail(path, "32-bit floating-point images are not supported")
    array = np.asarray(im)
    if mode == "I":  # 32-bit integer grayscale (what older Pillows made of 16-bit): keep 16 bits
        array = np.clip(array, 0, 65535).astype(np.uint16)
    elif array.dtype.kind == "u" and array.dtype.itemsize == 2:
        array = array.astype(np.uint16, copy=False)  # I;16B and friends: native byte order
    values, alpha = _split_alpha(array)
    return _Pixels(values, alpha, values.shape[2] == 1, icc)


def _png_bit_depth(head: bytes) -> int | None:
    """Bits per sample from a PNG's IHDR, or None if the bytes are not a PNG header."""
    if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR" and len(head) >= 26:
        return head[24]
    return None


def _png16_pixels(fh: IO[bytes], im: Image.Image) -> _Pixels:
    """A 16-bit PNG of any colour type, decoded by libpng (imagecodecs) to native uint16."""
    fh.seek(0)
    values, alpha = _split_alpha(imagecodecs.png_decode(fh.read()))
    return _Pixels(values, alpha, values.shape[2] == 1, im.info.get("icc_profile") or None)


def _is_tiff16(im: Image.Image) -> bool:
    """A 16-bit grayscale or RGB TIFF (others, such as 16-bit CMYK, are left to Pillow)."""
    bits = im.tag_v2.get(258, (1,))
    bits = max(bits) if isinstance(bits, tuple) else int(bits)
    return bits == 16 and im.tag_v2.get(262) in (1, 2)  # photometric: BlackIsZero, RGB


def _tiff16_pixels(fh: IO[bytes], im: Image.Image) -> _Pixels:
    """The first page of a 16-bit TIFF, decoded by tifffile (imagecodecs for LZW etc.)."""
    fh.seek(0)
    with tifffile.TiffFile(fh) as tif:
        page = tif.pages[0]
        array = page.asarray()
        if array.ndim == 3 and page.planarconfig == tifffile.PLANARCONFIG.SEPARATE:
            array = np.moveaxis(array, 0, -1)  # (samples, H, W) -> (H, W, samples)
        associated = tuple(page.extrasamples[:1]) == (tifffile.EXTRASAMPLE.ASSOCALPHA,)
    if array.dtype != np.uint16:
        raise ValueError(f"expected 16-bit unsigned samples, found {array.dtype}")
    values, alpha = _split_alpha(array)
    return _Pixels(values, alpha, values.shape[2] == 1, im.info.get("icc_profile") or None,
                   premultiplied=associated and alpha is not None)


def _decode(path: Path, im: Image.Image, fh: IO[bytes]) -> _Pixels:
    """Every pixel decoded; any failure inside the decoders becomes a PhotoError."""
    try:
        if im.format == "PNG":
            fh.seek(0)
            if _png_bit_depth(fh.read(33)) == 16:
                return _png16_pixels(fh, im)
        elif im.format == "TIFF" and _is_tiff16(im):
            return _tiff16_pixels(fh, im)
        return _pillow_pixels(path, im)
    except PhotoError:
        raise
    except MemoryError as exc:
        width, height = im.size
        raise _fail(path, f"not enough memory to decode a {width}x{height} image") from exc
    except Exception as exc:  # truncated or corrupt data: Pillow, libpng and tifffile vary
        raise _fail(path, f"cannot decode the image data, the file is truncated or damaged "
                          f"({type(exc).__name__}: {str(exc).strip()})") from exc


# --------------------------------------------------------------------------------------------
# EXIF and orientation


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


# --------------------------------------------------------------------------------------------
# Reading


def _to_float(values: np.ndarray, maximum: int) -> np.ndarray:
    """(H, W, 1 or 3) integers, any strides -> (H, W, 3) float32 in [0, 1], in one pass."""
    height, width = values.shape[:2]
    rgb = np.empty((height, width, 3), dtype=np.float32)
    np.divide(values, np.float32(maximum), out=rgb, casting="unsafe")  # gray broadcasts to 3
    return rgb


def _unpremultiply(rgb: np.ndarray, alpha: np.ndarray, maximum: int) -> None:
    """Colour stored multiplied by alpha (TIFF associated alpha) divided back out, in place."""
    opacity = alpha.astype(np.float32) / maximum
    visible = opacity > 0
    rgb[visible] /= opacity[visible, None]
    np.clip(rgb, 0.0, 1.0, out=rgb)


def read_photo(path: Path, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Photo:
    """Read a JPEG, PNG, TIFF, WebP, BMP, HEIC/HEIF or AVIF photo: upright float RGB plus what
    writing needs.

    The file's width x height is checked against ``max_pixels`` (None: no limit) from its header,
    before decoding. Raises PhotoError, naming the file, for anything wrong with it.
    """
    path = Path(path)
    with _pillow_limit_off(), _open_image(path, max_pixels) as (im, fh):
        pixels = _decode(path, im, fh)
        exif, orientation = _exif_and_orientation(path, im)
        source_format, source_mode = im.format, im.mode
    maximum = np.iinfo(pixels.values.dtype).max
    rgb = _to_float(_orient(pixels.values, orientation), maximum)
    alpha = None
    if pixels.alpha is not None:
        alpha = np.ascontiguousarray(_orient(pixels.alpha, orientation))
        if pixels.premultiplied:
            _unpremultiply(rgb, alpha, maximum)
    return Photo(
        rgb=rgb,
        alpha=alpha,
        bits=16 if maximum == 65535 else 8,
        grayscale=pixels.grayscale,
        exif=exif,
        icc_profile=pixels.icc_profile,
        format=source_format or "",
        mode=source_mode,
    )


# --------------------------------------------------------------------------------------------
# Writing


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


def _check_rgb(path: Path, rgb: np.ndarray, like: Photo) -> None:
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3:
        shape = getattr(rgb, "shape", type(rgb).__name__)
        raise _fail(path, f"expected an (H, W, 3) RGB array to write, got {shape}")
    if not np.issubdtype(rgb.dtype, np.floating):
        raise _fail(path, f"expected float RGB in [0, 1] to write, got {rgb.dtype}")
    if rgb.shape[:2] != like.rgb.shape[:2]:
        raise _fail(path, f"the image to write is {rgb.shape[1]}x{rgb.shape[0]} but the photo it "
                          f"comes from is {like.rgb.shape[1]}x{like.rgb.shape[0]}")


def _quantise_into(out: np.ndarray, rgb: np.ndarray, gray: bool) -> None:
    """Fill out[..., :C] (C = 1 if gray else 3) from float RGB: luma if gray, clip, round.

    Works a strip of rows at a time so the float temporaries stay about a megapixel; NaN
    becomes 0.
    """
    height, width = rgb.shape[:2]
    maximum = np.float32(np.iinfo(out.dtype).max)
    rows = max(1, _STRIP_PIXELS // max(1, width))
    for top in range(0, height, rows):
        block = np.asarray(rgb[top : top + rows], dtype=np.float32)
        if gray:
            block = (block @ LUMA_BT601)[..., None]
        block = np.fmax(block, 0.0)  # fmax/fmin, unlike clip, turn NaN into a bound
        np.fmin(block, 1.0, out=block)
        block *= maximum
        np.rint(block, out=block)
        out[top : top + rows, :, : block.shape[2]] = block


def _scaled_alpha(alpha: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Alpha in another bit depth (uint8 <-> uint16), rounded; unchanged if already dtype."""
    if alpha.dtype == dtype:
        return alpha
    source_max, target_max = np.iinfo(alpha.dtype).max, np.iinfo(dtype).max
    scaled = (alpha.astype(np.uint32) * target_max + source_max // 2) // source_max
    return scaled.astype(dtype)


def _output_icc(icc: bytes | None, fmt: str, gray: bool) -> bytes | None:
    """The profile to embed, if the format holds one and it fits the pixels written."""
    if not icc or fmt not in _METADATA_FORMATS:
        return None
    space = icc[16:20]  # ICC header: the profile's colour space
    if (space == b"GRAY") != gray:  # e.g. a grayscale photo written as RGB WebP
        return None
    return icc


@contextlib.contextmanager
def _atomic_output(path: Path, overwrite: bool = True) -> Iterator[IO[bytes]]:
    """A file to write ``path``'s content to; it replaces ``path`` only if the body succeeds
    (gan.fsio). The folder must exist: a photo is never written to a folder made by mistake."""
    with atomic_path(path, make_folders=False, exclusive=not overwrite) as temporary:
        try:
            fh = open(temporary, "x+b")  # x: exclusive creation, never someone else's file
        except OSError as exc:
            reason = ("the folder does not exist" if isinstance(exc, FileNotFoundError)
                      else _os_problem(exc))
            raise _fail(path, f"cannot create the output file: {reason}") from exc
        with fh:
            yield fh


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
        # x265's "ultrafast" preset: 7x faster than its default on real photos (a 12 MP photo
        # in 1.6 s instead of 9), the same or better PSNR, files about 17% larger (bench/README.md,
        # "photo formats"); the default would cost as much as enhancing the photo.
        options.update(quality=quality, enc_params={"preset": "ultrafast"})
    elif fmt == "AVIF":  # Pillow (libavif); grayscale gets 4:0:0 by default
        # Encoder speed 9 of 10: 9x faster than the default on real photos, 0.3 dB lower at
        # 46 dB, 5% larger (bench/README.md, "photo formats").
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


def write_photo(path: Path, rgb: np.ndarray, like: Photo, quality: int = 95,
                overwrite: bool = True) -> None:
    """Write enhanced ``rgb`` ((H, W, 3) float, clipped to [0, 1]) as ``like`` was read.

    The format follows the suffix. Kept where the format allows: bit depth (16 for PNG/TIFF),
    grayscale (as ITU-R 601 luma; not for WebP and HEIC), alpha (PNG, TIFF, WebP, HEIC, AVIF;
    dropped with a warning for JPEG and BMP), the ICC profile and the EXIF (all but BMP). HEIC and
    AVIF are written with 8 bits. ``quality`` (1-100) applies to JPEG, WebP, HEIC and AVIF; PNG
    and TIFF are lossless. Atomic: ``path`` is replaced only by a complete
    file; with ``overwrite=False`` an existing ``path`` is never replaced, even one that another
    process creates while this one encodes. Raises PhotoError, naming the file, when it cannot
    be written.
    """
    path = Path(path)
    fmt = output_format(path)
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be 1-100, got {quality}")
    _check_writer(path, fmt)
    _check_rgb(path, rgb, like)
    dtype = np.dtype(np.uint16 if like.bits == 16 and fmt in _SIXTEEN_BIT_FORMATS else np.uint8)
    gray = like.grayscale and fmt in _GRAY_FORMATS
    alpha = like.alpha
    if alpha is not None and fmt not in _ALPHA_FORMATS:
        warnings.warn(f"{path}: {fmt} cannot store transparency; the alpha channel is dropped",
                      stacklevel=2)
        alpha = None
    colour = 1 if gray else 3
    pixels = np.empty(rgb.shape[:2] + (colour + (alpha is not None),), dtype=dtype)
    _quantise_into(pixels, rgb, gray)
    if alpha is not None:
        pixels[..., colour] = _scaled_alpha(alpha, dtype)
    icc = _output_icc(like.icc_profile, fmt, gray)
    exif = like.exif if fmt in _METADATA_FORMATS else None
    if exif and fmt == "JPEG" and len(exif) > _JPEG_MAX_EXIF:
        warnings.warn(f"{path}: the EXIF ({len(exif)} bytes) does not fit in a JPEG's "
                      f"{_JPEG_MAX_EXIF}-byte segment; it is not carried", stacklevel=2)
        exif = None
    try:
        with _atomic_output(path, overwrite) as fh:
            _encode(fh, pixels, fmt, icc, exif, quality)
    except PhotoError:
        raise
    except FileExistsError as exc:
        raise _fail(path, "it already exists (written meanwhile by another run?); pass --force "
                          "to overwrite it") from exc
    except OSError as exc:  # disk full, the path is a folder, ...
        raise _fail(path, f"cannot write it: {_os_problem(exc)}") from exc
    except (ValueError, RuntimeError, struct.error) as exc:  # an encoder refusing the image
        raise _fail(path, f"cannot encode it as {fmt} ({exc})") from exc
