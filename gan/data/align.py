"""Per-pair alignment of DPED patches: exhaustive NCC search over the shifts, aligned crops.

DPED's phone and DSLR patches (100x100) are only roughly registered; a few pixels of residual
translation remain. The 96x96 training crop leaves a margin of 2 pixels on each side, which is
room to line the two sides up per pair before cropping.

Sign convention (shared by everything in this module): ``dx > 0`` means the phone content sits
``dx`` pixels to the right of the DSLR content, i.e. ``phone[y + dy, x + dx] ~ dslr[y, x]``. The DSLR
crop is centred (it starts at ``margin``); the phone crop starts at ``margin + dx`` (rows likewise).

How the shift is found, and why. Every shift within +-max_shift on each axis (25 candidates for
the default of 2) is scored by the luminance NCC of the phone crop at that shift against the
centred DSLR crop (``ncc_surface``), and the best one wins (``best_shift``; on a tie, the one
nearest to zero shift). The search is exhaustive, so its answer follows the content: move the
phone content by d and every candidate's score moves by d with it, so the answer does too,
unless the best candidate sits on the window's edge. And the score that picks the shift is the
one extract keeps or drops the pair by (``min_ncc``).

Phase correlation refined by NCC near its peak was used before and is not: its window stays put
while the content moves, so its answer need not follow the content. The candidates' covariances
are dot products over strided views of one phone region (no FFT, no copies) and their means and
variances come from running sums, which makes the exhaustive search the cheaper of the two
(bench/README.md, "Alignment: injected shifts on dped-mini", has the recovery rates and speeds).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gan.pixels import LUMA_BT601  # the usual "luminance" of 8-bit sRGB photos

# Below this standard deviation (in 8-bit levels) a crop is treated as flat: NCC is undefined.
FLAT_STD = 0.5


def luminance(rgb: np.ndarray) -> np.ndarray:
    """(..., H, W, 3) uint8 or float -> (..., H, W) float32 luminance, same scale as the input."""
    flat = rgb.reshape(-1, 3).astype(np.float32, copy=False)
    return (flat @ LUMA_BT601).reshape(rgb.shape[:-1])  # 2-D matmul: faster than a 4-D one


@dataclass(frozen=True)
class Shift:
    """Chosen translations for a batch: integer (dx, dy), the sub-pixel refinement, and the
    NCC of every candidate."""

    dx: np.ndarray  # (N,) int, phone content right of DSLR content when > 0
    dy: np.ndarray  # (N,) int, phone content below DSLR content when > 0
    fx: np.ndarray  # (N,) float, sub-pixel dx (equals dx when sub-pixel refinement is off)
    fy: np.ndarray  # (N,) float
    surface: np.ndarray  # (N, 2s+1, 2s+1) NCC of each candidate, [dy + s, dx + s]; NaN if flat


def ncc_surface(phone_y: np.ndarray, dslr_y: np.ndarray, max_shift: int,
                crop: int) -> np.ndarray:
    """Luminance NCC of every candidate shift within +-max_shift: (N, 2s+1, 2s+1) float64.

    phone_y, dslr_y: (N, H, W) float luminance, one shape. Entry [dy + s, dx + s] is ``ncc`` of
    the phone crop starting at (margin + dy, margin + dx) and the centred DSLR crop, both
    crop x crop; NaN where either crop is flat (standard deviation below FLAT_STD levels).
    """
    if phone_y.shape != dslr_y.shape or phone_y.ndim != 3:
        raise ValueError(f"expected two (N, H, W) batches of one shape, got {phone_y.shape} "
                         f"and {dslr_y.shape}")
    n, h, w = dslr_y.shape
    margin_y, margin_x = (h - crop) // 2, (w - crop) // 2
    if not 0 < crop <= min(h, w) or not 0 <= max_shift <= min(margin_y, margin_x):
        raise ValueError(f"a {crop}px crop of {h}x{w} images leaves a margin of "
                         f"{min(margin_y, margin_x)}px: max_shift {max_shift} does not fit; "
                         "use a smaller crop or max_shift")
    m = 2 * max_shift + 1
    side = crop + m - 1  # the phone area every candidate crop of a pair draws from
    y0, x0 = margin_y - max_shift, margin_x - max_shift
    # NCC does not change when a constant is subtracted from one side: working relative to the
    # region's mean keeps the numbers small, and with them the float32 rounding.
    region = phone_y[:, y0:y0 + side, x0:x0 + side].astype(np.float32)
    region -= region.mean(axis=(1, 2), keepdims=True, dtype=np.float64).astype(np.float32)
    # Each candidate's mean and variance from running sums (accumulated in float64).
    area = crop * crop
    mean = _window_sums(region, crop) / area
    std = np.sqrt(np.maximum(_window_sums(np.square(region), crop) / area - mean * mean, 0.0))
    target = dslr_y[:, margin_y:margin_y + crop, margin_x:margin_x + crop].astype(np.float32)
    target -= target.mean(axis=(1, 2), keepdims=True, dtype=np.float64).astype(np.float32)
    target_std = np.sqrt(np.einsum("nij,nij->n", target, target, dtype=np.float64) / area)
    # The covariances: one dot product per candidate, over strided views of the region (no
    # copies); the target is zero-mean, so the phone crop's own mean drops out.
    cov = np.empty((n, m, m))
    for oy in range(m):
        for ox in range(m):
            part = region[:, oy:oy + crop, ox:ox + crop]
            cov[:, oy, ox] = np.einsum("nij,nij->n", part, target)
    denom = std * target_std[:, None, None] * area
    with np.errstate(divide="ignore", invalid="ignore"):
        score = np.clip(cov / denom, -1.0, 1.0)  # float32 rounding aside
    score[(std < FLAT_STD) | (target_std[:, None, None] < FLAT_STD)] = np.nan
    return score


def _window_sums(x: np.ndarray, k: int) -> np.ndarray:
    """float64 sums over every k x k window of x, (N, k + m - 1, k + m - 1) -> (N, m, m): the
    first window summed, each next one by adding the column (row) that enters and subtracting
    the one that leaves."""
    n, rows, cols = x.shape
    m = cols - k + 1
    across = np.empty((n, rows, m))  # sums of k columns, for each horizontal offset
    across[:, :, 0] = x[:, :, :k].sum(axis=2, dtype=np.float64)
    for o in range(1, m):
        across[:, :, o] = across[:, :, o - 1] + x[:, :, o + k - 1] - x[:, :, o - 1]
    out = np.empty((n, m, m))
    out[:, 0] = across[:, :k].sum(axis=1)
    for o in range(1, m):
        out[:, o] = out[:, o - 1] + across[:, o + k - 1] - across[:, o - 1]
    return out


def best_shift(surface: np.ndarray, max_shift: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The best-scoring candidate of each surface (N, 2s+1, 2s+1): (dx, dy, ncc).

    Among equal scores the candidate nearest to zero shift wins. Where every candidate is NaN
    (a flat pair) the shift is (0, 0) and the ncc NaN.
    """
    n, m, _ = surface.shape
    oy, ox = np.divmod(np.arange(m * m), m)
    order = np.argsort((oy - max_shift) ** 2 + (ox - max_shift) ** 2, kind="stable")
    flat = surface.reshape(n, -1)
    scores = np.nan_to_num(flat[:, order], nan=-np.inf)
    pick = order[scores.argmax(axis=1)]  # all -inf: the first, which is (0, 0)
    dx = (ox[pick] - max_shift).astype(np.int64)
    dy = (oy[pick] - max_shift).astype(np.int64)
    return dx, dy, flat[np.arange(n), pick]


def subpixel_shift(surface: np.ndarray, dx: np.ndarray, dy: np.ndarray,
                   max_shift: int) -> tuple[np.ndarray, np.ndarray]:
    """Refine integer shifts to sub-pixel ones with a parabola along each axis of the surface.

    The parabola runs through the chosen candidate and its two neighbours; on the edge of the
    search window, through the chosen candidate and the next two inwards. Offsets are clipped
    to half a pixel; where a sample is NaN (flat) or the parabola does not open downwards, the
    integer shift is kept.
    """
    n, m, _ = surface.shape
    if m < 3:
        return dx * 1.0, dy * 1.0
    batch = np.arange(n)
    py, px = dy + max_shift, dx + max_shift  # positions in the surface

    def refine(pos: np.ndarray, sample) -> np.ndarray:
        mid = np.clip(pos, 1, m - 2)  # the middle of the three samples
        offset = _parabola(sample(mid - 1), sample(mid), sample(mid + 1)) + (mid - pos)
        return np.where(np.isfinite(offset), np.clip(offset, -0.5, 0.5), 0.0)

    fy = dy + refine(py, lambda p: surface[batch, p, px])
    fx = dx + refine(px, lambda p: surface[batch, py, p])
    return fx.astype(np.float64), fy.astype(np.float64)


def _parabola(left: np.ndarray, center: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Vertex offset of the parabola through three equally spaced samples, relative to the
    middle one; NaN where it has no maximum (it does not open downwards, or a sample is NaN)."""
    denom = left - 2.0 * center + right
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denom < 0, 0.5 * (left - right) / denom, np.nan)



def crop_aligned(phone: np.ndarray, dslr: np.ndarray, dx: np.ndarray, dy: np.ndarray,
                 crop: int) -> tuple[np.ndarray, np.ndarray]:
    """Cut the crop x crop windows that line up.

    phone, dslr: (N, H, W, C), same shape. The DSLR window is centred; the phone window starts at
    ``margin + dx`` / ``margin + dy``. Returns two (N, crop, crop, C) arrays of the input dtype.
    """
    n, h, w = dslr.shape[:3]
    margin_y, margin_x = (h - crop) // 2, (w - crop) // 2
    if (np.abs(dy) > margin_y).any() or (np.abs(dx) > margin_x).any():
        raise ValueError(f"a shift exceeds the {margin_x}-pixel margin of {h}x{w} patches")
    dslr_out = np.ascontiguousarray(dslr[:, margin_y:margin_y + crop, margin_x:margin_x + crop])
    phone_out = np.empty_like(dslr_out)
    for i in range(n):
        y0 = margin_y + int(dy[i])
        x0 = margin_x + int(dx[i])
        phone_out[i] = phone[i, y0:y0 + crop, x0:x0 + crop]
    return phone_out, dslr_out


def ncc(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Zero-mean normalised cross-correlation per image.

    a, b: (N, H, W) float (luminance). Returns (N,) float64 in [-1, 1]; NaN where either image is
    flat (standard deviation below FLAT_STD levels), since a flat image correlates with nothing.
    """
    a = a.reshape(a.shape[0], -1).astype(np.float64)
    b = b.reshape(b.shape[0], -1).astype(np.float64)
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    sa = np.sqrt(np.einsum("ij,ij->i", a, a) / a.shape[1])
    sb = np.sqrt(np.einsum("ij,ij->i", b, b) / b.shape[1])
    with np.errstate(divide="ignore", invalid="ignore"):
        score = np.einsum("ij,ij->i", a, b) / a.shape[1] / (sa * sb)
    score[(sa < FLAT_STD) | (sb < FLAT_STD)] = np.nan
    return score


@dataclass(frozen=True)
class Aligned:
    """Result of aligning a batch of pairs."""

    phone: np.ndarray  # (N, crop, crop, 3) uint8
    dslr: np.ndarray  # (N, crop, crop, 3) uint8
    shift: Shift  # the chosen shifts
    ncc: np.ndarray  # (N,) float64 luminance NCC of the aligned crops, NaN for flat pairs


def align_pairs(phone: np.ndarray, dslr: np.ndarray, max_shift: int, crop: int,
                subpixel: bool = False) -> Aligned:
    """Find each pair's translation, crop the aligned windows and score them.

    phone, dslr: (N, H, W, 3) uint8 patches (DPED: 100x100). Every shift within +-max_shift is
    scored by luminance NCC (``ncc_surface``) and the best one is cut (``best_shift``); with
    ``subpixel`` the shift is also refined to a fraction of a pixel (the crops stay on the
    integer grid).
    """
    if phone.shape != dslr.shape or phone.ndim != 4 or phone.shape[-1] != 3:
        raise ValueError(f"expected two (N, H, W, 3) batches of one shape, got {phone.shape} "
                         f"and {dslr.shape}")
    surface = ncc_surface(luminance(phone), luminance(dslr), max_shift, crop)
    dx, dy, score = best_shift(surface, max_shift)
    if subpixel:
        fx, fy = subpixel_shift(surface, dx, dy, max_shift)
    else:
        fx, fy = dx * 1.0, dy * 1.0
    shift = Shift(dx=dx, dy=dy, fx=fx, fy=fy, surface=surface)
    phone_crop, dslr_crop = crop_aligned(phone, dslr, dx, dy, crop)
    return Aligned(phone=phone_crop, dslr=dslr_crop, shift=shift, ncc=score)
