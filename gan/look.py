"""Look metrics: does an output *look* like the DSLR photo, beside how close it is to it?

PSNR and MS-SSIM reward being near the target pixel by pixel, and a soft, milky output that
hedges between possible answers scores well on both. What sets the DSLR look apart from the
phone's is four things a viewer sees at a glance, measured here per image on the luma
(BT.601, 0-255) and on the colours:

- detail: mean |3x3 Laplacian| of luma, no padding: fine texture and edge sharpness;
- contrast: standard deviation of luma: the global tonal spread;
- black: 1st percentile of luma: how deep the blacks go (a veiled, lifted shadow is the
  phone's and the soft output's signature);
- saturation: mean HSV saturation, (max - min) / max of RGB (0 where max is 0): colourfulness.

``look_summary`` compares a method with the DSLR targets as ratios of means (1.0 = the
target's) and the black level as a difference in grey levels (0 = the target's). A soft,
milky output has detail_ratio < 1 and black_diff > 0. The figures say nothing about *where*
the detail is: a detail gain bought by keeping the phone's noise shows up as detail_ratio near
or above 1 together with an MS-SSIM loss, so read the two together, never one alone.
"""

from __future__ import annotations

import numpy as np
import torch

LOOK_KEYS = ("detail", "contrast", "black", "saturation")

# gan.pixels.LUMA_BT601's weights, in float64 so that a flat grey image has exactly its level.
_LUMA = np.array([0.299, 0.587, 0.114])

# Pixels (images x height x width) scored at once: about 50 MB of float64 RGB, so memory stays
# flat however many images come in.
_BLOCK_PIXELS = 1 << 21


def look_stats(images: torch.Tensor | np.ndarray) -> dict[str, np.ndarray]:
    """Per-image look statistics under ``LOOK_KEYS``, each a float64 array of length N.

    images: (N, 3, H, W) float, clipped to [0, 1] first; or (N, H, W, 3) uint8 as numpy (the
    stored patches, a memmap is fine), read as they are. H and W are at least 3 (the Laplacian).
    Units: detail, contrast and black in grey levels (0-255); saturation in [0, 1].
    """
    if isinstance(images, np.ndarray):
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3:
            raise ValueError(f"look_stats: expected (N, H, W, 3) uint8, got {images.dtype} "
                             f"{images.shape}")
        height, width = images.shape[1:3]

        def rgb255(block):  # exact: uint8 levels are already the 0-255 scale
            return np.moveaxis(block.astype(np.float64), 3, 1)
    else:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"look_stats: expected (N, 3, H, W) float, got {tuple(images.shape)}")
        height, width = images.shape[2:]

        def rgb255(block):
            return block.detach().cpu().double().clamp(0, 1).mul(255).numpy()
    if height < 3 or width < 3:
        raise ValueError(f"look_stats: images of {height}x{width} pixels; the 3x3 Laplacian of "
                         "'detail' needs at least 3x3")
    per_block = max(1, _BLOCK_PIXELS // (height * width))
    parts: dict[str, list[np.ndarray]] = {k: [] for k in LOOK_KEYS}
    for start in range(0, len(images), per_block):
        for key, values in _block_stats(rgb255(images[start:start + per_block])).items():
            parts[key].append(values)
    return {k: np.concatenate(v) if v else np.zeros(0) for k, v in parts.items()}


def _block_stats(rgb: np.ndarray) -> dict[str, np.ndarray]:
    """(n, 3, H, W) float64 on the 0-255 scale -> the four statistics, each (n,)."""
    luma = np.einsum("c,nchw->nhw", _LUMA, rgb)
    centre = luma[:, 1:-1, 1:-1]
    laplacian = (luma[:, :-2, 1:-1] + luma[:, 2:, 1:-1] + luma[:, 1:-1, :-2]
                 + luma[:, 1:-1, 2:] - 4 * centre)
    flat = luma.reshape(len(luma), -1)
    high, low = rgb.max(axis=1), rgb.min(axis=1)
    saturation = np.divide(high - low, high, out=np.zeros_like(high), where=high > 0)
    return {"detail": np.abs(laplacian).mean(axis=(1, 2)),
            "contrast": flat.std(axis=1),
            "black": np.percentile(flat, 1, axis=1),
            "saturation": saturation.mean(axis=(1, 2))}


def look_summary(output: dict[str, np.ndarray], target: dict[str, np.ndarray],
                 keep: np.ndarray | None = None) -> dict[str, float]:
    """A method's look against the targets', aggregated over the images (``keep``: a boolean
    mask selecting some). Ratios of means, so that the large values of busy images are not
    drowned by the small ones of flat images: detail_ratio, contrast_ratio and
    saturation_ratio (1.0 = the target's, 3 decimals) and black_diff, output's mean black level
    minus the target's in grey levels (0 = the target's, 2 decimals). NaN where there is no
    image, or the targets' mean is 0."""
    lengths = {len(values) for values in (*output.values(), *target.values())}
    if len(lengths) > 1:
        raise ValueError(f"look_summary: output and target stats differ in length "
                         f"{sorted(lengths)}: score the same images")
    mask = slice(None) if keep is None else np.asarray(keep, dtype=bool)
    out = {k: _mean(output[k][mask]) for k in LOOK_KEYS}
    ref = {k: _mean(target[k][mask]) for k in LOOK_KEYS}
    return {"detail_ratio": _ratio(out["detail"], ref["detail"]),
            "contrast_ratio": _ratio(out["contrast"], ref["contrast"]),
            "black_diff": round(out["black"] - ref["black"], 2) + 0.0,  # + 0.0: never -0.0
            "saturation_ratio": _ratio(out["saturation"], ref["saturation"])}


def _ratio(value: float, reference: float) -> float:
    return round(value / reference, 3) if reference != 0 else float("nan")


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if len(values) else float("nan")
