"""NPEA: naturalness preserved enhancement for non-uniform illumination images.

Reference: S. Wang, J. Zheng, H.-M. Hu, B. Li, "Naturalness preserved enhancement algorithm for
non-uniform illumination images", IEEE TIP 22(9):3538-3548, 2013. The specification followed here
is ../shared/reference/BASELINES.md ("NPEA"); the authors' code exists only as MATLAB P-code.

Pipeline (numbers are the steps of BASELINES.md):

1. scale the image so that its maximum is 255;
2. lightness L = max(R, G, B), rounded to an integer level;
3. raise L to at least its floor (10th-percentile level + 1), then to at least 10;
4. bright-pass filter: L' (``bright_pass``), an illumination estimate with L' >= L, rounded;
5. reflectance R_c = I_c / L';
6. bi-log transformation of the illumination: L_m = T(L') (``bilog_transform``), one global,
   strictly increasing tone curve per image;
7. output = R_c * L_m, rounded to the nearest integer and clipped to [0, 255].

Where each part comes from. Three sources, marked in the comments below as [paper], [measured]
and [guess]:

- [paper]: the paper and BASELINES.md: steps 1-5 and 7 as listed, the bright-pass filter's
  definition (15x15 local maximum, 31x31 window, sigma = 3), the floor of at least 10, the
  output as reflectance times mapped illumination.
- [measured]: what issue 14 measured on the authors' own P-code outputs (9 full-size pairs
  published in the repository baidut/OpenCE, branch gh-pages, ``images/*__npe.PNG``): the
  bright-pass works on rounded integer lightness, mirrors borders without repeating the edge
  pixel (numpy's "reflect"), rounds its output; the floor is the 10th-percentile level + 1;
  after the bright-pass, everything is one gain per pixel (channel ratios kept within 0.5 %);
  and step 6 is a fixed global curve T(L') through about (30, 130), (90, 145), (130, 168),
  (190, 213), (250, 253) for normally lit images, 1.2-1.4 times brighter for dark ones (input
  mean below about 50). The paper's outline of step 6 (a log-domain histogram
  specification) is not followed: the authors' outputs contradict it (bench/README.md, "NPEA
  against its authors' outputs").
- [guess]: what neither source fixes: the curve's ends below 30 and at 255, the interpolation
  between the measured points, and the dark-image rule (``dark_factor``); each is explained
  where it is defined.

Nothing here is a port of the authors' code.

Speed: the bright-pass filter dominates. It is computed exactly (no value quantisation, no
spatial subsampling) as masked window sums over array shifts; the inner 15x15 block of offsets
needs no comparison (see ``bright_pass``), so 736 of the 961 offsets remain, handled one window
row at a time on tiles shared by a thread pool. Step 6 is a 256-entry lookup table, since L' is
an integer level. Speed and memory figures: bench/README.md (bench/baselines_bench.py).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from scipy import ndimage
from scipy.interpolate import PchipInterpolator

# Step 3: the illumination floor. Dark pixels are lifted to the floor so that the reflectance
# I / L' of near-black noise is not amplified to full range.
FLOOR_PERCENTILE = 10.0  # [paper] the 10th percentile of L ...
FLOOR_OFFSET = 1  # [measured] ... is its level + 1 in the authors' outputs (see _floored_lightness)
FLOOR_VALUE = 10.0  # [paper] and at least 10

# Step 4: the bright-pass filter of BASELINES.md ("BiFltL1" in the authors' later code). [paper]
LOCAL_MAX_SIZE = 15  # M = 15x15 local maximum of L
WINDOW_SIZE = 31  # the filter averages M over a 31x31 window
SIGMA = 3.0  # weight exp((L(x) - M(y)) / (2 sigma^2)), linear in the difference
BORDER_MODE = "reflect"  # [measured] d c b | a b c d | c b a: the edge pixel is not repeated

# Step 6: the bi-log curve T(L') for normally lit images (see bilog_transform). The five inner
# points are [measured]; the two ends are [guess]es, explained in bilog_transform.
CURVE_POINTS = ((0.0, 122.5), (30.0, 130.0), (90.0, 145.0), (130.0, 168.0), (190.0, 213.0),
                (250.0, 253.0), (255.0, 255.0))
# Step 6 for dark images (see dark_factor): [measured] images whose input mean is below about 50
# come out 1.2-1.4 times brighter than the curve; the rule below is a [guess].
DARK_MEAN = 50.0  # at and above this input mean: the plain curve (factor 1)
DARK_FULL_MEAN = 25.0  # at and below this input mean: the largest factor
DARK_MAX_FACTOR = 1.4

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
# The curve through CURVE_POINTS: a constant, built once.
_CURVE = PchipInterpolator(*zip(*CURVE_POINTS), extrapolate=False)


def npea(image: np.ndarray) -> np.ndarray:
    """Enhance one photo with NPEA: (H, W, 3) uint8 RGB -> (H, W, 3) uint8 RGB.

    Any size from 1x1 up works; black, white and flat images come back without NaN or warnings
    (a black image stays black: its reflectance is 0 everywhere).
    """
    image = _check_image(image)
    scale = _full_range_scale(image)  # step 1
    illum = _rounded_illumination(image)  # steps 1-4, (H, W) uint8 in [10, 255]
    # Steps 5-7 [measured: one gain per pixel]: R_c * L_m = (scale * I_c / L') * T(L'). L' is an
    # integer level, so the gain scale * T(L') / L' is a 256-entry table (L' >= 10: no 0 / 0).
    levels = np.arange(1, 256, dtype=np.float64)
    table = np.zeros(256, np.float32)
    table[1:] = bilog_transform(levels, dark_factor(float(image.mean()))) * (scale / levels)
    gain = table[illum]  # (H, W) float32
    # Step 7: output = gain * I_c, rounded half up (MATLAB's round for positive values) and
    # clipped. The reflectance scale * I_c / L' can exceed 1 by at most 0.5 / L', since L' is at
    # least the rounded, not the exact, scaled maximum; the clip catches that at the top.
    out = image.astype(np.float32)
    out *= gain[..., None]
    out += np.float32(0.5)
    np.floor(out, out=out)
    np.clip(out, 0.0, 255.0, out=out)
    return out.astype(np.uint8)


def illumination(image: np.ndarray) -> np.ndarray:
    """Steps 1-4: the rounded bright-pass illumination L' of an image.

    image: (H, W, 3) uint8 RGB. Returns (H, W) float32 holding integer levels in [10, 255], with
    L' >= round(max(R, G, B)) of the image after step 1's scaling (maximum 255).
    """
    image = _check_image(image)
    return _rounded_illumination(image).astype(np.float32)


def _rounded_illumination(image: np.ndarray) -> np.ndarray:
    """Steps 1-4 [measured: rounded in, rounded out]: (H, W) uint8 L' in [10, 255]."""
    filtered = bright_pass(_floored_lightness(image))  # exact, float32, >= L
    # Round half up. The floored lightness is integer, so rounding keeps L' >= L.
    filtered += np.float32(0.5)
    np.floor(filtered, out=filtered)
    np.clip(filtered, 0.0, 255.0, out=filtered)  # only float rounding could pass 255
    return filtered.astype(np.uint8)


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

    The result is exact (float32, not rounded); step 4's rounding is the caller's
    (``illumination``, ``npea``), so that this function can be checked against the definition.

    Borders [measured]: L is mirror-extended by 15 + 7 pixels without repeating the edge pixel
    (numpy's "reflect": d c b | a b c d | c b a), as the authors' outputs show; M is the 15x15
    maximum of the extended L, and windows that reach past the border use the extended M.

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
    extended = np.pad(L, radius + core, mode=BORDER_MODE)
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


def bilog_transform(illum: np.ndarray, dark: float = 1.0) -> np.ndarray:
    """Step 6, the bi-log transformation: map the illumination L' to L_m = T(L').

    illum: float array of any shape, the bright-pass illumination in [0, 255] (values outside
    are clipped to it; in ``npea`` L' is an integer level in [10, 255]). dark: the dark-image
    factor, in [1, 2) (``dark_factor``; 1 for a normally lit image).
    Returns L_m, float32 of the same shape, in [T(0), 255], with T(255) = 255. The curve is one
    global curve per image, strictly increasing: a brighter illumination is always mapped
    higher, so step 6 itself never changes a lightness order.

    What is measured and what is chosen:

    (a) [measured] The curve. On the authors' outputs, the mapped illumination is one global
        curve, nearly the same for every normally lit image, through about (30, 130),
        (90, 145), (130, 168), (190, 213), (250, 253): slope about 0.25 below 90 and 0.72 above
        120. It does not depend on the image's histogram; the paper's outline (a log-domain
        histogram specification, which this module implemented before) does not fit it. The
        name "bi-log" is kept for the step; nothing here is logarithmic any more.
    (b) [guess] The top end, (255, 255). After step 1 the brightest illumination is 255, and it
        stays 255: white stays white and the curve never needs a clip, which would merge the
        brightest levels. The measured (250, 253) with the slope 0.67 of the last measured
        stretch extrapolates to 256, so 255 is within the measurements' scatter.
    (c) [guess] The bottom end, (0, 122.5). No point below 30 was measured; L' only goes there
        when step 3's floor is under 30, in photos whose darkest tenth is near black. The curve
        continues the measured slope 0.25 of (30, 130) -> (90, 145) in a straight line:
        T(0) = 130 - 30 * 0.25. The other obvious end, (0, 0), would need a slope of 4.3 between
        0 and 30, a steep ramp that stretches the noise of near-black regions and that nothing
        in the authors' curve suggests.
    (d) [guess] Between the points: a monotone piecewise cubic (PCHIP, Fritsch-Carlson; scipy's
        PchipInterpolator). It passes exactly through every point, is strictly increasing where
        the points are, and never overshoots between them, as a natural cubic spline can over
        sparse points; and its slope is continuous, unlike straight segments, whose jump at 90
        (0.25 -> 0.58) would draw a visible contour across smooth gradients such as skies. On
        (0, 30) it is the straight line of (c); up to 250 its slope stays within 0.21-0.79,
        and it falls to 0.38 over the short last stretch to (255, 255).
    (e) [measured: dark images are 1.2-1.4 times brighter; guess: how] For a dark image the
        curve is raised by the factor k = ``dark``, rolled off so that 255 stays 255:

            T_k(L') = k T(L') / (1 + (k - 1) (T(L') / 255)^2).

        Where dark images have most of their illumination (T about 130-150) this multiplies by
        k / (1 + (k - 1) (T / 255)^2), 1.14-1.12 for k = 1.2 and 1.27-1.23 for k = 1.4, and by
        exactly 1 at the top: the brightening reaches the middle of the measured 1.2-1.4, not
        its top (a larger k would; every step of k costs lightness order, see dark_factor).
        With s = T / 255 <= 1 its derivative in T is k (1 - (k - 1) s^2) / (1 + (k - 1) s^2)^2,
        positive for k < 2, so it is strictly increasing and the order of the illumination is
        kept; a plain min(255, k T) would merge every illumination above T = 255 / k into one
        level, and every merged pair of illuminations is a lightness order lost.
        k = 1 returns T itself.
    """
    if not 1.0 <= dark < 2.0:
        raise ValueError(f"bilog_transform: dark must be in [1, 2), got {dark}")
    illum = np.asarray(illum, dtype=np.float64)
    mapped = _CURVE(np.clip(illum, 0.0, 255.0))  # (a)-(d)
    if dark != 1.0:  # (e)
        mapped = dark * mapped / (1.0 + (dark - 1.0) * (mapped / 255.0) ** 2)
    return mapped.astype(np.float32)


def dark_factor(mean_level: float) -> float:
    """The dark-image factor of step 6 (e), from the input's mean level.

    mean_level: the mean of the input image's R, G and B values (before step 1), in [0, 255].
    Returns k in [1, DARK_MAX_FACTOR]: 1 at and above DARK_MEAN = 50, DARK_MAX_FACTOR = 1.4 at
    and below DARK_FULL_MEAN = 25, a straight line between.

    [measured] The authors' outputs of dark images (input mean below about 50) are 1.2-1.4
    times brighter than the curve of normally lit images.
    [guess] Everything else: the rule that makes the factor is unknown. This one is the simplest
    continuous rule that spans the measured range: continuous in the mean (no jump at 50, so
    two nearly equal photos on either side of the threshold are enhanced nearly alike), larger
    for darker images, and never beyond the largest factor measured. It reaches 1.2 at a mean
    of 37.5. Through the roll-off of ``bilog_transform`` (e), k = 1.4 brightens the dark end of
    the curve 1.23-1.28 times. The authors' rule may depend on something else altogether (the
    illumination's histogram, the floor); their outputs of dark images are the way to check.
    The cost: for the bundled photos darkened into [0, 80] the factor (1.22-1.31 there) doubles
    the lightness order error against k = 1 (LOE 47-92 -> 90-173; bench/README.md).
    """
    if not 0.0 <= mean_level <= 255.0:
        raise ValueError(f"dark_factor: the mean level must be in [0, 255], got {mean_level}")
    darkness = (DARK_MEAN - mean_level) / (DARK_MEAN - DARK_FULL_MEAN)
    return 1.0 + (DARK_MAX_FACTOR - 1.0) * min(1.0, max(0.0, darkness))


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


def _floored_lightness(image: np.ndarray) -> np.ndarray:
    """Steps 1-3: L = round(255 max(R, G, B) / max of the image), raised to the floor.

    image: (H, W, 3) uint8. Returns (H, W) float32 holding integer levels in [10, 255].

    [measured] The authors' bright-pass works on integer lightness: the scaled maximum is
    rounded (half up) to a level, computed as 255 v / top for each level v so that exact halves
    (v = 100 of a top of 200: 127.5) are exact in floating point and round up. The floor is
    F = p + 1, where p is the 10th-percentile level: the smallest level v with at least 10 % of
    the pixels at or below v. (The "+ 1" is what their outputs show; a 1-based histogram index
    used as a level would produce it, but that is only a possible explanation.) [paper] F is
    raised to at least 10. [guess] F is capped at 255, the top level, which only matters when
    over 90 % of the image is at 255.
    """
    peak = np.maximum(np.maximum(image[..., 0], image[..., 1]), image[..., 2])  # (H, W) uint8
    top = int(peak.max())
    if 0 < top < 255:  # a table over the 256 levels: round(255 v / top), half up
        table = np.floor(np.arange(256) * 255.0 / top + 0.5).clip(0, 255).astype(np.uint8)
        peak = table[peak]
    cumulative = np.cumsum(np.bincount(peak.ravel(), minlength=256))
    # the first level whose cumulative count reaches 10 % of the pixels
    # (in percent of counts, so that 10 % of 100 pixels is exactly 10, not 10.000000000000002)
    level = int(np.searchsorted(cumulative * 100.0, FLOOR_PERCENTILE * peak.size, side="left"))
    floor = min(max(level + FLOOR_OFFSET, FLOOR_VALUE), 255.0)
    L = peak.astype(np.float32)
    return np.maximum(L, np.float32(floor), out=L)
