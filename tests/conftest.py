"""Shared fixtures: tiny DPED-layout archives, the real dped-mini pairs when present."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
DPED_MINI = ROOT.parent / "shared" / "dped-mini"


def jpeg(rgb: np.ndarray, quality: int = 95) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def textured(rng: np.random.Generator, size: int) -> np.ndarray:
    """A smooth random colour texture, (size, size, 3) uint8: structure at several scales."""
    from scipy.ndimage import gaussian_filter

    noise = rng.random((size, size, 3))
    img = gaussian_filter(noise, (1.5, 1.5, 0)) + 0.5 * gaussian_filter(noise, (4, 4, 0))
    img = (img - img.min()) / (img.max() - img.min())
    return (img * 255).astype(np.uint8)


def shifted_pair(rng: np.random.Generator, dx: int, dy: int,
                 size: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """(phone, dslr) of one scene, the phone content (dx, dy) pixels right/below the DSLR's."""
    scene = textured(rng, size + 8)
    dslr = scene[4:4 + size, 4:4 + size]
    phone = scene[4 - dy:4 - dy + size, 4 - dx:4 - dx + size]
    return np.ascontiguousarray(phone), np.ascontiguousarray(dslr)


def write_dped_zip(path: Path, files: dict[str, bytes], root: str = "dped/iphone/") -> Path:
    """A zip with the given members (names relative to ``root``)."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(root + name, data)
    return path


@pytest.fixture
def dped_mini() -> Path:
    if not (DPED_MINI / "iphone" / "training_data").is_dir():
        pytest.skip("../shared/dped-mini is not present")
    return DPED_MINI
