"""Pixel conventions every wing shares: how floats become 8-bit values, and what luma is."""

from __future__ import annotations

import numpy as np

# ITU-R BT.601 luma weights (R, G, B), as Pillow's convert("L") and DPED's alignment use them.
LUMA_BT601 = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def float_to_uint8(x: np.ndarray) -> np.ndarray:
    """Floats in [0, 1] (any shape) -> uint8, rounded to the nearest level (halves to even),
    values outside the range clipped."""
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)
