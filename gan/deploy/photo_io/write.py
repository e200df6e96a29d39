"""``write_photo``: enhanced float RGB written as the photo it came from was read.

- **Writes are atomic** (gan.fsio): a uniquely named hidden temporary file in the output's
  folder, fsync'ed, then renamed; on any exception, KeyboardInterrupt included, it is removed.
- **Memory**: a write quantises in strips of about a megapixel into one integer array, so it
  holds no more than a couple of full-size copies.
"""

from __future__ import annotations

import contextlib
import struct
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import numpy as np

from gan.deploy.photo_io.encode import _encode
from gan.deploy.photo_io.formats import (
    _ALPHA_FORMATS,
    _GRAY_FORMATS,
    _METADATA_FORMATS,
    _SIXTEEN_BIT_FORMATS,
    _check_writer,
    output_format,
)
from gan.deploy.photo_io.metadata import _output_icc
from gan.deploy.photo_io.photo import Photo, PhotoError, _fail, _os_problem
from gan.fsio import atomic_path
from gan.pixels import LUMA_BT601

_JPEG_MAX_EXIF = 65533  # one APP1 segment, its length field included
_STRIP_PIXELS = 1 << 20  # quantise about a megapixel at a time


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
