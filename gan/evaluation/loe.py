"""LOE, the lightness order error of the NPEA paper (lower is better).

Reference: S. Wang, J. Zheng, H.-M. Hu, B. Li, "Naturalness preserved enhancement algorithm for
non-uniform illumination images", IEEE TIP 22(9), 2013; the variant computed here is the one
../shared/reference/BASELINES.md ("LOE") defines: 15x15 local maximum of the lightness, then a
regular subsampling with step floor(min(m, n) / 50). Other published variants (resizing to
100x100, no local maximum) give different numbers and are not computed here.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

LOCAL_MAX_SIZE = 15  # the lightness is the 15x15 local maximum of max(R, G, B)
SAMPLES_PER_SIDE = 50  # step = floor(min(m, n) / 50): about 50 samples along the shorter side
_LEVELS = 256


def lightness_order_error(original: np.ndarray, enhanced: np.ndarray) -> float:
    """LOE between an image and its enhanced version; 0 when every lightness order is kept.

    original, enhanced: (H, W, 3) uint8 RGB of the same shape (any H, W >= 1).
    Returns the mean over sampled pixels x of RD(x), the number of sampled pixels y whose
    lightness order relative to x differs between the two images; in [0, number of samples).

    Definition (BASELINES.md):
    - L = round(max(R, G, B)), then its 15x15 local maximum with mirror padding; Le the same
      for the enhanced image. (With a maximum filter every border mode that reflects the image
      gives the same values, since the reflected pixels are pixels of the window anyway.)
    - keep the pixels (i * step, j * step), step = floor(min(m, n) / 50); images whose shorter
      side is under 50 pixels use step 1 (every pixel) instead of the undefined step 0.
    - U(p, q) = 1 if p >= q else 0; RD(x) = sum over sampled y of U(L(x), L(y)) XOR
      U(Le(x), Le(y)); LOE = mean over sampled x of RD(x).

    Computation: with a = L(y) and b = Le(y) over the samples,
    XOR(U1, U2) = U1 + U2 - 2 U1 U2, so RD(x) = #{a <= L(x)} + #{b <= Le(x)}
    - 2 #{a <= L(x) and b <= Le(x)}. The lightness takes 256 integer values, so the three counts
    are read from cumulative (joint) histograms: O(samples + 256^2) time and memory, exact, and
    independent of how many samples there are.
    """
    L = _sampled_lightness(original, "original")
    Le = _sampled_lightness(enhanced, "enhanced")
    if L.shape != Le.shape:
        raise ValueError(f"lightness_order_error: images differ in size: {original.shape[:2]} vs "
                         f"{enhanced.shape[:2]}; compare an image with its own enhancement")
    a, b = L.ravel(), Le.ravel()
    at_most_a = np.cumsum(np.bincount(a, minlength=_LEVELS))  # [v] = #{y: L(y) <= v}
    at_most_b = np.cumsum(np.bincount(b, minlength=_LEVELS))
    joint = np.bincount(a * _LEVELS + b, minlength=_LEVELS * _LEVELS).reshape(_LEVELS, _LEVELS)
    at_most_both = joint.cumsum(axis=0).cumsum(axis=1)  # [p, q] = #{y: L(y) <= p, Le(y) <= q}
    rd = at_most_a[a] + at_most_b[b] - 2 * at_most_both[a, b]
    return float(rd.mean())


def _sampled_lightness(image: np.ndarray, name: str) -> np.ndarray:
    """(H, W, 3) image -> sampled local-maximum lightness, (h, w) int64 in [0, 255]."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"lightness_order_error: {name} must be an (H, W, 3) RGB image, got "
                         f"shape {image.shape}")
    if image.dtype != np.uint8:
        raise TypeError(f"lightness_order_error: {name} must be uint8 in [0, 255], got "
                        f"{image.dtype}; convert with np.clip(x, 0, 255).round().astype(np.uint8)")
    lightness = image.max(axis=2)  # already integers: round() is the identity for uint8
    lightness = ndimage.maximum_filter(lightness, size=LOCAL_MAX_SIZE, mode="mirror")
    step = max(1, min(image.shape[:2]) // SAMPLES_PER_SIDE)
    return lightness[::step, ::step].astype(np.int64)
