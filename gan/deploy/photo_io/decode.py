"""Decoding every pixel of an opened photo, as stored (before orientation), to uint8 or uint16.

- **Pillow for 8-bit, tifffile/imagecodecs for 16-bit.** Pillow (13.0) has no mode for
  16-bit colour: it opens a 16-bit RGB(A) PNG or TIFF as 8-bit ``RGB``/``RGBA`` (keeping the high
  byte) and cannot write one at all; only single-channel ``I;16`` keeps 16 bits. So files with 16
  bits per sample go through tifffile (TIFF; pure Python on numpy) and imagecodecs (PNG via
  libpng; tifffile also needs it to decode LZW, PackBits and JPEG-compressed TIFFs, which
  Photoshop and Lightroom write). Pillow still parses every header, so the size check, the ICC
  profile and the EXIF come from one place.
- **CMYK** is converted to RGB with LittleCMS (PIL.ImageCms, perceptual intent) from its embedded
  profile to sRGB, and an sRGB profile travels instead of the CMYK one; without a profile Pillow's
  plain (naive) conversion is all there is.
"""

from __future__ import annotations

import functools
import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import imagecodecs
import numpy as np
import tifffile
from PIL import Image, ImageCms

from gan.deploy.photo_io.photo import PhotoError, _fail


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
