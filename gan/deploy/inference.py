"""Enhancing whole photos of any size with a trained generator: tiled inference with blending.

A 12 MP photo through the Dense U-Net at once needs activations of tens of channels at full
resolution, over 10 GB on a CPU; DPED's full-size test photos would not fit a small machine, and
a 48 MP photo would not fit a GPU. So the photo is cut into overlapping tiles, each tile is
enhanced on its own, and the tiles are blended back:

- Tiles start on the generator's down-sampling grid (a multiple of ``2**depth`` for the Dense
  U-Net), so every tile pools and up-samples exactly the pixels the whole image would: inside a
  tile, away from its edges, the result equals whole-image inference.
- Near a tile's edge the convolutions see padding instead of the neighbour's pixels, so the edge
  is where a tile is least right. On the sides that border another tile, the outer quarter of
  the overlap gets weight 0 and the middle half a linear ramp to 1; the neighbour's ramp mirrors
  it, so the weights sum to one and the blend is seamless, and each pixel comes from the tile(s)
  that see it with context on every side.
- Peak memory is one tile's activations plus the image buffers (input, weighted sum and weight
  sum: 7 floats per pixel), independent of the photo's size.

The generator works on (N, 3, H, W) float in [0, 1]; this module works on (H, W, 3) float32
arrays in [0, 1] (what gan.deploy.photo_io reads and writes).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from gan.networks import size_multiple

DEFAULT_TILE = 512
# Measured on the default run's generator (bench/tiling_accuracy.py: 400x400 photo, 192 px
# tiles), the largest difference from whole-image inference: 9.8 grey levels at 16 px of
# overlap, 2.5 at 32, 0.9 at 48, 0.20 at 64 (less than the rounding to 8 bits), 0.02 at 96.
DEFAULT_OVERLAP = 64


@dataclass(frozen=True)
class Tile:
    top: int
    left: int
    height: int
    width: int


def plan_tiles(height: int, width: int, tile: int, overlap: int, multiple: int = 1) -> list[Tile]:
    """Overlapping tiles that cover a height x width image.

    tile: the largest side (0 or >= the image side: one tile); overlap: pixels shared by
    neighbours (at least that many). Per axis: as few tiles as ``tile`` and ``overlap`` allow,
    each only as long as needed to cover the axis with that overlap (a 720-pixel side with
    tile 512 and overlap 64 gets two tiles of 392, not two of 512: the work is 1.2x the
    photo's instead of 1.7x), spread evenly. Tiles start on multiples of ``multiple``; aligning
    a start down can lengthen a tile by up to ``multiple - 1`` pixels.
    """
    if tile < 0 or overlap < 0:
        raise ValueError(f"tile and overlap must be >= 0, got tile={tile}, overlap={overlap}")
    if tile and overlap >= tile:
        raise ValueError(f"overlap ({overlap}) must be smaller than the tile ({tile})")
    if tile and tile < 2 * multiple:
        raise ValueError(f"tile ({tile}) must be at least {2 * multiple} pixels for this generator")

    def spans(size: int) -> list[tuple[int, int]]:
        if not tile or size <= tile:
            return [(0, size)]
        count = math.ceil((size - overlap) / (tile - overlap))
        # n tiles of length L overlapping by o cover n L - (n - 1) o pixels.
        length = math.ceil((size + (count - 1) * overlap) / count)
        length = min(size, -(-length // multiple) * multiple)  # whole grid cells: no padding
        starts = sorted({(k * (size - length) // (count - 1)) // multiple * multiple
                         for k in range(count)})  # onto the down-sampling grid
        # Each tile reaches at least ``overlap`` into the next (aligning a start down can
        # otherwise shrink the shared band, or open a gap when overlap < multiple).
        ends = [min(size, max(s + length, following + overlap))
                for s, following in zip(starts, starts[1:])] + [size]
        return list(zip(starts, ends))

    return [Tile(top, left, bottom - top, right - left)
            for top, bottom in spans(height) for left, right in spans(width)]


def _ramp(length: int, overlap: int, rise: bool, fall: bool) -> np.ndarray:
    """1-D blending weights of a tile: 1 inside; at a side shared with a neighbour, 0 over the
    outer quarter of the overlap (the pixels that saw the most padding, the least accurate),
    then a linear ramp up to 1 over its middle half. The neighbour's ramp mirrors it across the
    middle of the shared band, so the two sum to one there: the blend is seamless, and every
    pixel is covered by a weight > 0 (the band is at least ``overlap`` wide)."""
    w = np.ones(length, np.float32)
    if overlap:
        margin = overlap // 4
        steps = np.arange(min(overlap, length), dtype=np.float32)
        ramp = np.clip((steps - margin + 0.5) / (overlap - 2 * margin), 0.0, 1.0)
        if rise:
            w[:len(ramp)] = np.minimum(w[:len(ramp)], ramp)
        if fall:
            w[length - len(ramp):] = np.minimum(w[length - len(ramp):], ramp[::-1])
    return w


def enhance_array(generator: nn.Module, rgb: np.ndarray, device: torch.device | str = "cpu",
                  tile: int = DEFAULT_TILE, overlap: int = DEFAULT_OVERLAP,
                  on_tile: Callable[[int, int], None] | None = None,
                  dtype: torch.dtype | None = None) -> np.ndarray:
    """Enhance an (H, W, 3) float image in [0, 1] -> (H, W, 3) float32 in [0, 1].

    tile=0 runs the whole image at once. on_tile(done, total) is called after each tile (for a
    progress bar). The generator must be in eval mode on ``device``. ``dtype`` (bf16, fp16):
    the convolutions run under autocast in it; the input, the global residual's sum and the
    output stay fp32 (gan.runtime.resolve_inference_precision picks it).
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise ValueError(f"expected an (H, W, 3) image, got shape {rgb.shape}")
    height, width = rgb.shape[:2]
    tiles = plan_tiles(height, width, tile, overlap, size_multiple(generator))
    device = torch.device(device)
    # channels_last: oneDNN's CPU convolutions are faster in it (bench/README.md, enhance), and
    # the (H, W, 3) result comes out without a copy. The conversion is in place, idempotent,
    # and costs a copy of the weights once.
    generator.to(memory_format=torch.channels_last)
    if len(tiles) == 1:
        out = _run(generator, rgb, device, dtype)
        if on_tile is not None:
            on_tile(1, 1)
        return out

    total = np.zeros((height, width, 3), np.float32)
    weight = np.zeros((height, width, 1), np.float32)
    for done, t in enumerate(tiles, 1):
        bottom, right = t.top + t.height, t.left + t.width
        enhanced = _run(generator, rgb[t.top:bottom, t.left:right], device, dtype)
        wy = _ramp(t.height, overlap, rise=t.top > 0, fall=bottom < height)
        wx = _ramp(t.width, overlap, rise=t.left > 0, fall=right < width)
        w = (wy[:, None] * wx[None, :])[..., None]
        total[t.top:bottom, t.left:right] += enhanced * w
        weight[t.top:bottom, t.left:right] += w
        if on_tile is not None:
            on_tile(done, len(tiles))
    total /= weight
    return total


@torch.inference_mode()
def _run(generator: nn.Module, rgb: np.ndarray, device: torch.device,
         dtype: torch.dtype | None = None) -> np.ndarray:
    """One tile through the generator: (h, w, 3) -> (h, w, 3) float32, clipped to [0, 1]."""
    # (h, w, 3) memory viewed as (1, 3, h, w) is already channels_last: no copy here either.
    x = torch.from_numpy(np.ascontiguousarray(rgb, dtype=np.float32)).permute(2, 0, 1)[None]
    with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
        y = generator(x.to(device))
    return y[0].float().clamp_(0, 1).permute(1, 2, 0).cpu().numpy()
