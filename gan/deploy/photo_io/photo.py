"""The decoded photo (:class:`Photo`) and :class:`PhotoError`, raised for a file that cannot be
read or written, with the helpers that word its message."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


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
