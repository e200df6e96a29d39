"""NPEA: naturalness preserved enhancement for non-uniform illumination images.

Reference: S. Wang, J. Zheng, H.-M. Hu, B. Li, "Naturalness preserved enhancement algorithm for
non-uniform illumination images", IEEE TIP 22(9):3538-3548, 2013. The specification followed here
is ../shared/reference/BASELINES.md ("NPEA"); the authors' code exists only as MATLAB P-code.

Pipeline (numbers are the steps of BASELINES.md):

1. scale the image so that its maximum is 255;
2. lightness L = max(R, G, B);
3. raise L to at least its 10th percentile, then to at least 10;
4. bright-pass filter: L' (``bright_pass``), an illumination estimate with L' >= L;
5. reflectance R_c = I_c / L', which lies in [0, 1] because L' >= L >= I_c;
6. bi-log transformation of the illumination: L_m = T(L') (``bilog_transform``), a monotone
   tone curve built by a histogram specification in the log domain;
7. output = R_c * L_m, rounded to the nearest integer and clipped to [0, 255].

Steps 1-5 and 7 follow the specification literally. Step 6 is only known in outline (a log-domain
histogram specification driven by a weighted histogram of the log illumination, the paper's
eqs. 14-22); the version here is designed from that description and every choice is explained in
``bilog_transform``. Nothing here is a port of the authors' code.

Speed: the bright-pass filter dominates. It is computed exactly (no value quantisation, no
spatial subsampling) as masked window sums over array shifts; the inner 15x15 block of offsets
needs no comparison (see ``bright_pass``), so 736 of the 961 offsets remain, handled one window
row at a time on tiles shared by a thread pool. Speed and memory figures: bench/README.md
(bench/baselines_bench.py).
"""

from __future__ import annotations

import math
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from scipy import ndimage

# Step 3: the illumination floor. Dark pixels are lifted to the 10th percentile of L (and to at
# least 10) so that the reflectance I / L' of near-black noise is not amplified to full range.
FLOOR_PERCENTILE = 10.0
FLOOR_VALUE = 10.0

# Step 4: the bright-pass filter of BASELINES.md ("BiFltL1" in the authors' later code).
LOCAL_MAX_SIZE = 15  # M = 15x15 local maximum of L
WINDOW_SIZE = 31  # the filter averages M over a 31x31 window
SIGMA = 3.0  # weight exp((L(x) - M(y)) / (2 sigma^2)), linear in the difference

# Step 6: the bi-log transformation (see bilog_transform for what each constant does and why).
BILOG_BINS = 256  # histogram bins across the log-illumination range [log 11, log 256]
BILOG_GAMMA = 0.25  # weighted histogram: a bin holding h pixels weighs h ** gamma
BILOG_BALANCE = 0.5  # 0 = keep the illumination (naturalness), 1 = full specification (detail)

# Largest exponent range (in units of 2 sigma^2) the factorised bright-pass weights can hold:
# float32 underflows below exp(-87), float64 below exp(-708); keep a margin for the sums.
_FLOAT32_EXPONENT_RANGE = 80.0
_FLOAT64_EXPONENT_RANGE = 700.0

# Pixels per tile in the bright-pass loop: the tile's (2, 31, h, w) partial sums (about 8 MB)
# stay in the last-level cache, and each kernel still has enough work to amortise its launch.
_TILE_PIXELS = 1 << 15
# Serialises the save / set / restore of torch's process-wide thread count (see
# _add_outer_window_sums); it holds no data.
_THREADS_LOCK = threading.Lock()


def npea(image: np.ndarray) -> np.ndarray:
    """Enhance one photo with NPEA: (H, W, 3) uint8 RGB -> (H, W, 3) uint8 RGB.

    Any size from 1x1 up works; black, white and flat images come back without NaN or warnings
    (a black image stays black: its reflectance is 0 everywhere).
    """
    image = _check_image(image)
    scale = _full_range_scale(image)  # step 1
    illum = bright_pass(_floored_lightness(image, scale))  # steps 2-4, (H, W) float32 in [10, 255]
    mapped = bilog_transform(illum)  # step 6, (H, W) float32
    # Steps 5 and 7 together: R_c * L_m = (scale * I_c / L') * L_m, one gain per pixel. R_c is in
    # [0, 1] because L' >= L = scale * max(I_c), so the product is at most L_m <= 255; the clip
    # only trims float rounding, and rint rounds to the nearest integer (halves to even).
    gain = mapped
    gain *= np.float32(scale)
    gain /= illum
    out = image.astype(np.float32)
    out *= gain[..., None]
    np.rint(out, out=out)
    np.clip(out, 0.0, 255.0, out=out)
    return out.astype(np.uint8)


def illumination(image: np.ndarray) -> np.ndarray:
    """Steps 1-4: the bright-pass filtered illumination L' of an image.

    image: (H, W, 3) uint8 RGB. Returns (H, W) float32; L' >= max(R, G, B) of the image after
    step 1's scaling (maximum 255) and L' >= 10 everywhere.
    """
    image = _check_image(image)
    return bright_pass(_floored_lightness(image, _full_range_scale(image)))


def bright_pass(L: np.ndarray, sigma: float = SIGMA) -> np.ndarray:
    """The bright-pass filter of step 4, computed exactly.

    L: (H, W) real array, the floored lightness of step 3 (any finite values work).
    Returns L': (H, W) float32 with L' >= L.

    With M the 15x15 local maximum of L, for each pixel x and each y in the 31x31 window around x

        w(x, y) = exp((L(x) - M(y)) / (2 sigma^2))  if M(y) >= L(x), else 0,
        L'(x)   = sum_y w(x, y) M(y) / sum_y w(x, y).

    Only values M(y) >= L(x) take part, so L' is a weighted mean of numbers >= L(x): L' >= L, and
    the reflectance I / L' stays in [0, 1]. y = x always takes part (M(x) >= L(x)), so the
    denominator is never 0.

    Borders: L is mirror-extended (symmetric, edge pixel repeated) by 15 + 7 pixels; M is the
    15x15 maximum of the extended L, and windows that reach past the border use the extended M.

    How it is computed:
    - exp((L(x) - M(y)) / 2 sigma^2) = exp(L(x) / 2 sigma^2) * exp(-M(y) / 2 sigma^2), and the
      first factor cancels between numerator and denominator, so the weights reduce to the
      per-pixel image E = exp(-(M - min M) / 2 sigma^2) (min M keeps the largest weight at 1);
      the filter becomes two masked window sums, of E * M and of E, with mask M(y) >= L(x).
    - For |dy|, |dx| <= 7 the mask is always true: x lies inside the 15x15 window that defines
      M(y), so M(y) >= L(x). Those 225 offsets are one plain 15x15 box sum; only the 736 outer
      offsets of the 31x31 window need the comparison.
    - The outer offsets are a loop over array shifts, one window row of offsets at a time, on
      tiles shared by a pool of threads (``_add_outer_window_sums``).
    """
    L = np.asarray(L)
    if L.ndim != 2 or L.size == 0 or not np.issubdtype(L.dtype, np.number):
        raise ValueError(f"bright_pass: expected a non-empty (H, W) real array, got shape "
                         f"{L.shape} dtype {L.dtype}")
    if not np.all(np.isfinite(L)):
        raise ValueError("bright_pass: L contains NaN or inf; pass finite lightness values")
    if not sigma > 0:
        raise ValueError(f"bright_pass: sigma must be > 0, got {sigma}")
    height, width = L.shape
    radius = WINDOW_SIZE // 2  # 15
    core = LOCAL_MAX_SIZE // 2  # 7: offsets within this Chebyshev radius always pass the mask

    # The weights are computed as exp(-(M - min M) / 2 sigma^2) (see above), which float32 holds
    # for ranges up to 80 * 2 sigma^2 (1440 grey levels at sigma = 3); beyond, float64.
    spread = (float(L.max()) - float(L.min())) / (2.0 * sigma * sigma)
    if spread > _FLOAT64_EXPONENT_RANGE:
        raise ValueError(f"bright_pass: the range of L ({float(L.max() - L.min()):.4g}) is too "
                         f"large for sigma={sigma} (the weights would underflow); rescale L or "
                         f"raise sigma")
    dtype = np.float32 if spread <= _FLOAT32_EXPONENT_RANGE else np.float64
    L = np.ascontiguousarray(L, dtype=dtype)

    # M on the mirror-extended L: extend by radius + core, take the 15x15 maximum, then drop the
    # core margin, whose maxima would see past the extension. M[i + 15, j + 15] is pixel (i, j).
    extended = np.pad(L, radius + core, mode="symmetric")
    M = ndimage.maximum_filter(extended, size=LOCAL_MAX_SIZE, mode="nearest")
    M = np.ascontiguousarray(M[core:-core, core:-core])  # (H + 30, W + 30)
    # Elementwise preparation in numpy, single-threaded: torch's multi-threaded kernels stall
    # when another process shares the cores (see _add_outer_window_sums).
    E = np.exp((M.min() - M) * dtype(1.0 / (2.0 * sigma * sigma)))  # weights, common factor dropped
    Z = np.stack([E * M, E])  # (2, H + 30, W + 30): numerator and denominator terms

    # Inner 15x15 offsets: plain window sums, as separable running means (scipy accumulates in
    # double precision) times the window area; the 7-pixel margin of ``inner`` is then dropped.
    inner = Z[:, radius - core:radius + core + height, radius - core:radius + core + width]
    for axis in (1, 2):
        inner = ndimage.uniform_filter1d(inner, LOCAL_MAX_SIZE, axis=axis)
    sums = inner[:, core:core + height, core:core + width] * dtype(LOCAL_MAX_SIZE ** 2)
    _add_outer_window_sums(torch.from_numpy(sums), torch.from_numpy(M), torch.from_numpy(Z),
                           torch.from_numpy(L), radius, core)  # shares memory: fills ``sums``
    result = sums[0] / sums[1]
    # Mathematically L' >= L; the maximum only removes float rounding (e.g. a flat region, where
    # every term equals L and the quotient may come out one ulp low).
    return np.maximum(result, L, out=result).astype(np.float32, copy=False)


def _add_outer_window_sums(sums: torch.Tensor, M: torch.Tensor, Z: torch.Tensor,
                           L: torch.Tensor, radius: int, core: int) -> None:
    """Add the masked sums over the outer offsets of the window to ``sums``, in place.

    sums: (2, H, W), the numerator and denominator so far. M: (H + 2r, W + 2r) contiguous local
    maxima, Z: (2, H + 2r, W + 2r) contiguous terms (E * M, E), L: (H, W) thresholds; r = radius.
    For every offset (dy, dx) with core < max(|dy|, |dx|) <= radius and every pixel x,
    sums[:, x] += Z[:, x + (dy, dx)] * (M[x + (dy, dx)] >= L[x]).

    The image is cut into tiles of about 32k pixels (at least one per worker), and the tiles are
    shared among a pool of threads, one per torch thread, each running torch single-threaded.
    Why not torch's own multi-threading: each tile costs ~90 small kernels, and torch's OpenMP
    workers synchronise at the end of every kernel; when another process keeps a core busy
    (an evaluation running beside training, a test suite), every such barrier waits for a
    descheduled thread, and a 512x512 image went from 0.1 s to several seconds. Independent
    tiles in independent threads degrade gracefully instead (torch releases the GIL in
    kernels). torch's thread count is process-wide, so it is set to 1 for the duration of the
    pool and restored afterwards, under a lock so that concurrent calls cannot interleave the
    save and the restore.
    """
    _, height, width = sums.shape
    workers = max(1, torch.get_num_threads())
    tile_w = min(width, _TILE_PIXELS)
    tile_h = max(1, min(height, _TILE_PIXELS // tile_w))
    if height * width < workers * _TILE_PIXELS:  # small image: one tile per worker
        tile_h = max(1, -(-height // workers))
    tiles = [(top, min(height, top + tile_h), left, min(width, left + tile_w))
             for top in range(0, height, tile_h) for left in range(0, width, tile_w)]

    # Autograd modes are thread-local: a caller inside torch.inference_mode() hands over
    # inference tensors, which the pool's threads (outside it) could not update in place.
    # Plain arithmetic needs no autograd anywhere, so the workers always run in inference mode.
    def run(tile: tuple[int, int, int, int]) -> None:
        top, bottom, left, right = tile
        with torch.inference_mode():
            sums[:, top:bottom, left:right] += _tile_window_sums(M, Z, L, tile, radius, core)

    with _THREADS_LOCK:
        previous = torch.get_num_threads()
        try:
            with ThreadPoolExecutor(workers, initializer=torch.set_num_threads,
                                    initargs=(1,)) as pool:
                for _ in pool.map(run, tiles):  # consume, so that worker errors are raised
                    pass
        finally:
            torch.set_num_threads(previous)


def _tile_window_sums(M: torch.Tensor, Z: torch.Tensor, L: torch.Tensor,
                      tile: tuple[int, int, int, int], radius: int, core: int) -> torch.Tensor:
    """The outer-offset masked sums of one tile (rows top:bottom, columns left:right): (2, h, w).

    The offsets of one window row dy are handled together: a strided view of shape (k, h, w),
    whose first axis steps dx by one column, shows k shifted copies of the tile without copying,
    so a row of offsets costs two kernels (compare, multiply-add) instead of 2k; that keeps the
    launch overhead small for 100x100 patches.
    """
    top, bottom, left, right = tile
    h, w = bottom - top, right - left
    rows_m, cols_m = M.shape
    span = 2 * radius + 1
    thresholds = L[top:bottom, left:right]
    mask = torch.empty(span, h, w, dtype=M.dtype)
    partial = torch.zeros(2, span, h, w, dtype=M.dtype)
    for dy in range(-radius, radius + 1):
        if abs(dy) > core:  # (first dx, number of consecutive dx)
            runs = [(-radius, span)]
        else:  # the middle of the row lies in the always-true inner block
            runs = [(-radius, radius - core), (core + 1, radius - core)]
        for dx, k in runs:
            start = (top + radius + dy) * cols_m + left + radius + dx
            shifted_m = M.as_strided((k, h, w), (1, cols_m, 1), start)
            shifted_z = Z.as_strided((2, k, h, w), (rows_m * cols_m, 1, cols_m, 1), start)
            torch.ge(shifted_m, thresholds, out=mask[:k])  # 1.0 where M(y) >= L(x), else 0.0
            partial[:, :k].addcmul_(shifted_z, mask[:k])
    return partial.sum(dim=1)


def bilog_transform(illum: np.ndarray, balance: float = BILOG_BALANCE) -> np.ndarray:
    """Step 6, the bi-log transformation: map the illumination L' to L_m.

    illum: float array of any shape (normally (H, W)), the bright-pass illumination, expected in
    [10, 255] (values below 0 are treated as 0). balance: in [0, 1], how far each level moves
    towards the specified histogram (0 returns the illumination unchanged).
    Returns L_m, float32 of the same shape, in [min L', max(255, max L')]. The mapping is one
    global tone curve, monotone non-decreasing in L': a brighter illumination is never mapped
    below a darker one, so the lightness order of the illumination is kept.

    The paper (eqs. 14-22) maps the illumination by a histogram specification in the log domain
    driven by a weighted histogram of the log illumination; its exact equations are not
    reproduced here. This is a design from that description:

    (a) Log domain. z = log(1 + L'). By Weber-Fechner, perceived brightness follows the log of
        luminance, so equal steps in z are about equal perceived steps, and the histogram is
        taken over z, not over L'. "+1" keeps z finite at 0. After step 3, L' is in [10, 255].
    (b) Histogram. BILOG_BINS = 256 equal bins in z over [log 11, log 256] (widened if some z
        falls outside). A bin is then about 1.2 % of luminance wide, under the ~2 % Weber
        fraction, so binning never merges levels an observer could tell apart. The range is
        fixed, not taken from the image, so equal illumination always lands in the same bin.
    (c) Weighted histogram. Bin k, holding h_k pixels, is weighted w_k = h_k ** BILOG_GAMMA with
        BILOG_GAMMA = 1/4. A plain histogram (gamma = 1) lets one large flat region (sky, a wall)
        claim most of the output range, the classic over-enhancement of histogram
        equalisation; gamma = 0 ignores the content and only counts which levels occur. With
        1/4, a level 16 times as populous claims twice the output range, not 16 times: every
        occupied level keeps a share, populous levels get somewhat more contrast, empty levels
        get none. A power keeps the curve independent of the image size (scaling every count
        by s scales every weight by s**gamma, which the normalisation below removes), so a
        patch and its 12 MP original get the same curve. (A log of the counts, log(1 + h_k),
        the other natural choice, is not size-independent.)
    (d) Specification target. The cumulative weighted histogram C(z), piecewise linear between
        bin edges and renormalised to 0 at the image's darkest and 1 at its brightest
        illumination, is matched to a uniform spread of display illumination from the darkest
        illumination L'_min up to 255: L_eq = L'_min + (255 - L'_min) C(z), u = log(1 + L_eq).
        Display values are gamma coded and roughly perceptually uniform, so a uniform spread is
        the "every level gets its share" target; starting at L'_min means the darkest
        illumination is never darkened, ending at 255 stretches a dim image to full range.
        Where the log illumination is evenly occupied, C is linear in z and u = log(1 + a +
        b log(1 + L')), a logarithm of the logarithm (this implementation's reading of
        "bi-log"), which passes through (L'_min, L'_min) and (255, 255) and lies above the
        identity, so dark regions gain most.
    (e) Balance between naturalness and detail. The full specification lifts the midtones a lot
        (an evenly occupied [10, 255] illumination would map 128 to ~202, 30 to ~91). Each level
        is moved part of the way, in the log domain: z_m = (1 - b) z + b u, b = ``balance``
        = BILOG_BALANCE = 0.5, L_m = exp(z_m) - 1. In 1-D this is exactly the specification
        towards the displacement interpolant (the quantile average) of the image's own
        log-illumination histogram (b = 0: natural, unchanged) and the target of (d) (b = 1:
        most detail in the dark); b = 0.5 weights both equally (128 -> ~161, 30 -> ~52 above).
    (f) Evaluation. The curve is computed at the bin edges inside [L'_min, L'_max] plus those two
        ends, and applied by linear interpolation in L' between these knots: one interpolation
        per pixel; between knots 1.2 % apart the curve is smooth, so this changes L_m by far
        less than one grey level.

    Monotonicity: C is a cumulative sum of non-negative weights, so non-decreasing; u increases
    with C; z_m is a non-negative combination of z and u; exp increases; so the knot values are
    non-decreasing and linear interpolation keeps that. A single illumination level has no
    histogram to redistribute and is returned unchanged.
    """
    if not 0.0 <= balance <= 1.0:
        raise ValueError(f"bilog_transform: balance must be in [0, 1], got {balance}")
    illum = np.maximum(np.asarray(illum, dtype=np.float32), np.float32(0.0))
    if illum.size == 0:
        return illum
    low, high = float(illum.min()), float(illum.max())
    if not high > low:  # one illumination level: nothing to redistribute
        return illum

    z = np.log1p(illum)  # (a), float32 is plenty for binning
    lo = min(math.log1p(FLOOR_VALUE), math.log1p(low))  # (b)
    hi = max(math.log1p(255.0), math.log1p(high))
    index = ((z - np.float32(lo)) * np.float32(BILOG_BINS / (hi - lo))).astype(np.int64)
    np.clip(index, 0, BILOG_BINS - 1, out=index)
    counts = np.bincount(index.ravel(), minlength=BILOG_BINS).astype(np.float64)
    del z, index

    weights = counts ** BILOG_GAMMA  # (c); 0 ** gamma = 0: empty bins claim nothing
    edges = np.linspace(lo, hi, BILOG_BINS + 1)
    cdf = np.concatenate([[0.0], np.cumsum(weights)])

    z_low, z_high = math.log1p(low), math.log1p(high)  # (d), (f): knots in [z_low, z_high]
    knots = np.concatenate([[z_low], edges[(edges > z_low) & (edges < z_high)], [z_high]])
    c = np.interp(knots, edges, cdf)
    if not c[-1] > c[0]:  # only if the two levels are closer than float resolution
        return illum
    C = (c - c[0]) / (c[-1] - c[0])
    u = np.log1p(low + (255.0 - low) * C)
    mapped_knots = np.expm1((1.0 - balance) * knots + balance * u)  # (e)
    mapped_knots = np.maximum.accumulate(mapped_knots)  # only guards float rounding
    out = np.interp(illum.ravel(), np.expm1(knots), mapped_knots)  # (f)
    return out.astype(np.float32).reshape(illum.shape)


def _check_image(image: np.ndarray) -> np.ndarray:
    """The image as an (H, W, 3) uint8 array, or an error that says what is wrong."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"npea: expected an (H, W, 3) RGB image, got shape {image.shape}")
    if image.dtype != np.uint8:
        raise TypeError(f"npea: expected uint8 pixels in [0, 255], got {image.dtype}; convert "
                        f"with np.clip(x, 0, 255).round().astype(np.uint8) first")
    return image


def _full_range_scale(image: np.ndarray) -> float:
    """Step 1: the factor 255 / max that gives the image a maximum of 255 (1 for black)."""
    peak = int(image.max())
    return 255.0 / peak if peak > 0 else 1.0


def _floored_lightness(image: np.ndarray, scale: float) -> np.ndarray:
    """Steps 2-3: L = max(R, G, B) of the scaled image, raised to its 10th percentile and to 10.

    image: (H, W, 3) uint8; scale: step 1's factor. Returns (H, W) float32 in [10, 255].
    The percentile is numpy's default definition (linear interpolation between the order
    statistics at position 0.1 (n - 1)), computed exactly from the 256-bin histogram of the
    uint8 maximum, which is faster than sorting 12 million floats.
    """
    peak = np.maximum(np.maximum(image[..., 0], image[..., 1]), image[..., 2])  # (H, W) uint8
    cumulative = np.cumsum(np.bincount(peak.ravel(), minlength=256))
    position = FLOOR_PERCENTILE / 100.0 * (peak.size - 1)
    below = int(position)
    # the k-th smallest value (0-based) is the first level whose cumulative count exceeds k
    lower, upper = np.searchsorted(cumulative, [below, min(below + 1, peak.size - 1)], side="right")
    percentile = lower + (position - below) * (upper - lower)
    floor = max(percentile * scale, FLOOR_VALUE)
    L = peak.astype(np.float32)
    L *= np.float32(scale)
    return np.maximum(L, np.float32(floor), out=L)
