"""NIQE, the Natural Image Quality Evaluator: a no-reference score for the full-size photos.

Mittal, Soundararajan and Bovik, "Making a 'completely blind' image quality analyzer", IEEE Signal
Processing Letters 20(3), 2013. NIQE fits a multivariate Gaussian to natural-scene statistics of
96x96 blocks of a photo (the shape and spread of locally normalised luma and of the products of
neighbouring pixels, at two scales) and returns its distance to the Gaussian fitted once on a
corpus of pristine photos (``niqe_pris_params.npz``, from BasicSR: see NOTICE-niqe.md). Lower
is more natural; it needs no reference, so it scores photos that have no DSLR twin.

The definition is BasicSR's ``calculate_niqe`` with its defaults (input_order HWC, convert_to
'y'), which its authors checked against the MATLAB release, arithmetic included: the luma is
MATLAB's rgb2ycbcr Y (BT.601, 16..235), rounded, and the normalisation runs in float32 as
BasicSR's does (see ``_normalise``: on photos with flat areas that moves NIQE by up to 0.04
against float64). bench/niqe_check.py compares the two: within 0.0005 on 12 images. pyiqa's
'niqe' shares the features, the pristine model and the distance but by default takes the luma
as YIQ's Y (0..255, MATLAB's rgb2gray, as the MATLAB release does) and works in float64, so its
figures on colour photos differ from these.

Cost (bench/README.md): about 0.15-0.2 s per megapixel on one core (0.5 s for a 3 MP photo).
Memory: the luma, its padded copy and its half-size one (3 bytes a pixel) and one strip of
blocks in flight (``STRIP_PIXELS``); 120 MB allocated at peak for a 12 MP photo.
"""

from __future__ import annotations

import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy.ndimage import correlate1d
from scipy.special import gamma

PRISTINE = Path(__file__).resolve().with_name("niqe_pris_params.npz")
BLOCK = 96  # the release's block size, blocks without overlap
RADIUS = 3  # of the 7-tap local-normalisation window: rows a strip needs beyond its blocks
STRIP_PIXELS = 1 << 21  # pixels of blocks scored at once: 8-16 MB per array in flight

# Moment matching for the generalised Gaussian shape: the release's grid 0.2:0.001:10 and
# rho(a) = G(2/a)^2 / (G(1/a) G(3/a)), which increases with a (so a sorted lookup finds the
# nearest grid point, as the release's argmin over the whole grid does).
SHAPES = 0.2 + 0.001 * np.arange(9801)
RHO = gamma(2 / SHAPES) ** 2 / (gamma(1 / SHAPES) * gamma(3 / SHAPES))
SPREAD = np.sqrt(gamma(1 / SHAPES) / gamma(3 / SHAPES))  # standard deviation -> scale beta
MEAN = gamma(2 / SHAPES) / gamma(1 / SHAPES)  # (beta_r - beta_l) -> AGGD mean, the paper's eq. 8
SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))  # horizontal, vertical and the two diagonals


def niqe(image: np.ndarray, crop_border: int = 0) -> float:
    """NIQE of ``image``, (H, W, 3) uint8 RGB or (H, W) uint8 greyscale (taken as the luma).

    Lower is more natural: 2.5-3 for the DPED full-size phone photos and 2.6-4.1 for
    scikit-image's photos, 7-8 for them blurred (sigma 2 px), more for noise (9 at sigma 20
    grey levels, 32 for uniform noise). ``crop_border`` pixels are dropped on each side first;
    then the image is cut to whole 96x96 blocks (it needs at least two, else ValueError).
    Returns NaN when fewer than two blocks have texture (a flat image), where the release's
    statistics are undefined (BasicSR raises LinAlgError there).
    """
    if image.dtype != np.uint8 or not (image.ndim == 2 or image.ndim == 3 and image.shape[2] == 3):
        raise ValueError(f"NIQE expects an (H, W, 3) RGB or (H, W) greyscale uint8 image, "
                         f"got shape {image.shape} and dtype {image.dtype}")
    if crop_border < 0:
        raise ValueError(f"crop_border must be 0 or more, got {crop_border}")
    if crop_border:
        image = image[crop_border:-crop_border, crop_border:-crop_border]
    height, width = image.shape[:2]
    rows, cols = height // BLOCK, width // BLOCK
    if not scorable(image.shape):
        raise ValueError(
            f"NIQE needs at least two {BLOCK}x{BLOCK} blocks, but the image is {height}x{width} "
            f"after crop_border={crop_border}: it needs at least {BLOCK} pixels on one side and "
            f"{2 * BLOCK} on the other")
    y = luma(image) if image.ndim == 3 else image
    y = y[:rows * BLOCK, :cols * BLOCK]
    features = np.concatenate([block_features(y, BLOCK),
                               block_features(half_size(y), BLOCK // 2)], axis=1)
    return distance(features)


def scorable(shape: tuple[int, ...]) -> bool:
    """Whether an image of ``shape`` ((H, W, ...)) holds the two whole blocks NIQE needs."""
    return (shape[0] // BLOCK) * (shape[1] // BLOCK) >= 2


def luma(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (H, W) uint8: BT.601 Y in 16..235 as MATLAB's rgb2ycbcr gives it,
    rounded (the release scores integer luma).

    The arithmetic is BasicSR's step for step, so that the integer luma is the same: float32
    where it is float32, and the weighted sum through np.dot on BGR (a BLAS call, whose float64
    sum can differ in the last bit from a plain numpy sum). Otherwise a pixel or two per photo
    whose Y lies that close to a half level round the other way (up to 0.0005 of NIQE on the
    check's images). Computed in strips of rows to spare full-size float copies."""
    out = np.empty(image.shape[:2], np.uint8)
    for top in range(0, len(image), 256):
        bgr = image[top:top + 256, :, ::-1].astype(np.float32) / np.float32(255)
        y = np.dot(bgr, [24.966, 128.553, 65.481]) + 16.0  # float64
        out[top:top + 256] = np.round((y / 255).astype(np.float32) * np.float32(255))
    return out


def half_size(y: np.ndarray) -> np.ndarray:
    """MATLAB's imresize(y, 0.5) (bicubic, antialiased), the release's second scale: (H, W) ->
    (H/2, W/2) float32 for even H and W, unrounded (float32 as BasicSR's: the normalisation
    takes it so anyway). Both passes are one 8-tap filter at stride 2 over the image mirrored
    by 3 pixels (MATLAB's symmetric padding), summed in float64."""
    taps = _half_taps()
    height, width = y.shape
    padded = np.pad(y, 3, mode="symmetric")
    out = np.empty((height // 2, width // 2), np.float32)
    step = max(1, STRIP_PIXELS // width)
    for top in range(0, height // 2, step):
        bottom = min(top + step, height // 2)
        rows = _stride2(padded[2 * top:2 * bottom + 6].astype(np.float64), taps, axis=0)
        out[top:bottom] = _stride2(rows, taps, axis=1)
    return out


def _half_taps() -> np.ndarray:
    """The weights of the 8 inputs of one output pixel: Keys' cubic (a = -0.5) stretched by 2 to
    antialias, at distances 3.5 .. -3.5 input pixels, normalised to sum 1."""
    x = np.abs(np.arange(3.5, -4.0, -1.0) / 2)
    cubic = np.where(x <= 1, 1.5 * x**3 - 2.5 * x**2 + 1,
                     np.where(x <= 2, -0.5 * x**3 + 2.5 * x**2 - 4 * x + 2, 0.0))
    return cubic / cubic.sum()


def _stride2(x: np.ndarray, taps: np.ndarray, axis: int) -> np.ndarray:
    """Output i = sum_k taps[k] * x[2i + k] along ``axis`` (whose length is 2n + 6)."""
    x = np.moveaxis(x, axis, 0)
    n = (len(x) - len(taps) + 2) // 2
    out = sum(tap * x[k:k + 2 * n:2] for k, tap in enumerate(taps))
    return np.moveaxis(out, 0, axis)


def block_features(image: np.ndarray, size: int) -> np.ndarray:
    """The 18 NIQE features of each ``size`` x ``size`` block of ``image`` (whose sides are
    multiples of ``size``), in row-major block order: (blocks, 18) float64.

    The image is normalised (mean-subtracted, contrast-normalised, the paper's eq. 1) a strip of
    block rows at a time, with ``RADIUS`` real rows around each strip so that the result is the
    whole image's, borders replicated as the release does."""
    height, width = image.shape
    cols = width // size
    step = max(1, STRIP_PIXELS // (size * width))
    features = []
    for top in range(0, height, step * size):
        bottom = min(top + step * size, height)
        above, below = min(top, RADIUS), min(height - bottom, RADIUS)
        slab = image[top - above:bottom + below]
        slab = np.pad(slab, ((RADIUS - above, RADIUS - below), (0, 0)), mode="edge")
        normalised = _normalise(slab)[RADIUS:-RADIUS]
        blocks = normalised.reshape(-1, size, cols, size).swapaxes(1, 2).reshape(-1, size, size)
        features.append(_features(blocks))
    return np.concatenate(features)


def _normalise(x: np.ndarray) -> np.ndarray:
    """(x - mu) / (sigma + 1) with the local mean and deviation under the 7x7 Gaussian window
    (sigma 7/6), float32 like BasicSR's (see below); the window is applied as two 1-D passes.

    BasicSR filters a float32 image: scipy sums in float64 but stores mu and E[x^2] as float32,
    and sigma^2 = E[x^2] - mu^2 is then taken in float32, where cancellation leaves a few 1e-3
    grey levels^2 of noise on flat areas (a blown-out sky: sigma 0.06 instead of 0). On
    near-flat blocks that moves NIQE by up to 0.04 (astronaut), so it is kept, on purpose."""
    window = _window()

    def blur(a: np.ndarray) -> np.ndarray:
        a = a.astype(np.float64)
        return correlate1d(correlate1d(a, window, axis=0, mode="nearest"),
                           window, axis=1, mode="nearest").astype(np.float32)

    x = x.astype(np.float32)  # BasicSR's (integer) luma, or its float32 half-size image
    mu = blur(x)
    sigma = np.sqrt(np.abs(blur(x * x) - mu * mu))
    return (x - mu) / (sigma + np.float32(1))


@lru_cache(maxsize=1)
def _window() -> np.ndarray:
    g = np.exp(-np.arange(-RADIUS, RADIUS + 1) ** 2 / (2 * (7 / 6) ** 2))
    return g / g.sum()


def _features(blocks: np.ndarray) -> np.ndarray:
    """(n, s, s) normalised blocks -> (n, 18): the shape and mean scale of an AGGD fitted to the
    coefficients, then shape, mean and both scales of one fitted to the products of neighbours
    in each of four directions (``np.roll``: the release wraps around within the block)."""
    index, left, right = _aggd(blocks)
    columns = [SHAPES[index], (left + right) / 2]
    for shift in SHIFTS:
        index, left, right = _aggd(blocks * np.roll(blocks, shift, axis=(1, 2)))
        columns += [SHAPES[index], (right - left) * MEAN[index], left, right]
    return np.stack(columns, axis=1)


def _aggd(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Moment-matching fit of an asymmetric generalised Gaussian to each of (n, ...) samples:
    the grid index of its shape, and its left and right scales. A sample without negative or
    without positive values gets NaN scales and the grid's first shape, 0.2, as the release's
    argmin over NaNs gives."""
    x = x.reshape(len(x), -1).astype(np.float64)
    square = x * x
    negative, positive = x < 0, x > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        left = np.sqrt(np.sum(square, axis=1, where=negative) / negative.sum(axis=1))
        right = np.sqrt(np.sum(square, axis=1, where=positive) / positive.sum(axis=1))
        ratio = left / right
        rho = np.abs(x).mean(axis=1) ** 2 / square.mean(axis=1)
        rho = rho * (ratio**3 + 1) * (ratio + 1) / (ratio**2 + 1) ** 2
    index = _nearest(rho)
    return index, left * SPREAD[index], right * SPREAD[index]


def _nearest(rho: np.ndarray) -> np.ndarray:
    """Index of the grid point whose RHO is nearest ``rho`` (the lower one on a tie), 0 for NaN."""
    upper = np.clip(np.searchsorted(RHO, rho), 1, len(RHO) - 1)
    lower = upper - 1
    index = np.where((RHO[lower] - rho) ** 2 <= (RHO[upper] - rho) ** 2, lower, upper)
    return np.where(np.isnan(rho), 0, index)


def distance(features: np.ndarray) -> float:
    """The NIQE distance of (blocks, 36) features to the pristine model (the paper's eq. 10):
    sqrt((mu_p - mu)^T pinv((S_p + S) / 2) (mu_p - mu)), with mu the NaN-ignoring mean and S the
    covariance of the blocks without NaN."""
    mu_pristine, cov_pristine = _pristine()
    with warnings.catch_warnings():  # a feature NaN in every block: its mean is NaN, and so is NIQE
        warnings.simplefilter("ignore", RuntimeWarning)
        mu = np.nanmean(features, axis=0)
    complete = features[~np.isnan(features).any(axis=1)]
    if len(complete) < 2:
        return float("nan")
    cov = np.cov(complete, rowvar=False)
    diff = mu_pristine - mu
    return float(np.sqrt(diff @ np.linalg.pinv((cov_pristine + cov) / 2) @ diff))


@lru_cache(maxsize=1)
def _pristine() -> tuple[np.ndarray, np.ndarray]:
    """The pristine model: mean (36,) and covariance (36, 36) of the features."""
    try:
        with np.load(PRISTINE) as params:
            return params["mu_pris_param"].ravel(), params["cov_pris_param"]
    except (OSError, KeyError) as exc:
        raise FileNotFoundError(
            f"{PRISTINE}: NIQE's pristine model is missing or unreadable ({exc}); it ships with "
            f"the package: reinstall it (pip install -e .)") from exc
