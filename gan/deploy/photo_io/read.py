"""``read_photo``: a photo file to upright float RGB plus what writing it back needs.

Memory: a read holds the decoded integers and the float32 result (about 4 + 12 bytes a pixel for
8-bit RGB).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gan.deploy.photo_io.decode import _decode
from gan.deploy.photo_io.metadata import _exif_and_orientation, _orient
from gan.deploy.photo_io.opening import _open_image, _pillow_limit_off
from gan.deploy.photo_io.photo import Photo

DEFAULT_MAX_PIXELS = 200_000_000  # refuse decompression bombs; a 100 MP camera is well inside


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
