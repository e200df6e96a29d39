"""Image quality metrics, as the DPED / PIRM 2018 protocol defines them (../shared/reference/DPED.md)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch


def psnr(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """PSNR per image, in dB: (N, C, H, W) float in [0, 1] -> (N,).

    Both images are clipped to [0, 1] and the peak value is 1, as in the DPED protocol. Identical
    images give +inf: average with ``mean_finite``, never with a plain mean.
    """
    if output.shape != target.shape:
        raise ValueError(f"psnr: shapes differ: {tuple(output.shape)} vs {tuple(target.shape)}")
    return _by_slices(_psnr, output, target)


def _psnr(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    diff = output.clamp(0, 1).double() - target.clamp(0, 1).double()
    mse = diff.pow(2).flatten(1).mean(dim=1)
    return -10.0 * torch.log10(mse)  # log10(0) = -inf, so identical images give +inf


def mean_finite(values: torch.Tensor) -> tuple[float, int]:
    """(mean over the finite values, number of infinite ones): PSNR of saturated patches is +inf."""
    finite = torch.isfinite(values)
    mean = values[finite].mean().item() if finite.any() else math.nan
    return mean, int((~finite).sum().item())


# MS-SSIM as the DPED / PIRM evaluation script computes it (DPED.md, "Evaluation protocol").
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
_K1, _K2 = 0.01, 0.03
_WINDOW, _SIGMA = 11, 1.5
# Images per pass: the float64 intermediates of one pass (blurred moments at 5 scales; PSNR's
# difference) take up to 20x the input's float32 bytes, 0.6 GB for evaluate's chunk of 256
# patches of 96x96. An image's score depends on that image alone, so slicing changes no value.
_IMAGES_PER_PASS = 32


def _gaussian_1d(size: int, sigma: float) -> torch.Tensor:
    """One axis of the protocol's window: odd sizes centred on a pixel, even sizes between two.

    The protocol's 2-D window exp(-(x^2 + y^2) / 2 sigma^2) / sum is the outer product of this
    normalised 1-D Gaussian with itself, so filtering by rows then columns gives the same result
    at a fraction of the cost (22 instead of 121 multiply-adds per pixel).
    """
    radius = size // 2
    offset, stop = (0.5, radius) if size % 2 == 0 else (0.0, radius + 1)
    axis = torch.arange(-radius, stop, dtype=torch.float64) + offset
    g = torch.exp(-(axis**2) / (2.0 * sigma**2))
    return g / g.sum()


def _ssim_and_cs(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image SSIM and contrast-structure term at one scale, 'valid' Gaussian filtering;
    the window shrinks to the image at small scales, its sigma scaled by the same factor."""
    size = min(_WINDOW, a.shape[-2], a.shape[-1])
    taps = _gaussian_1d(size, size * _SIGMA / _WINDOW).tolist()

    def blur(x: torch.Tensor) -> torch.Tensor:
        """'valid' Gaussian filtering, rows then columns, as a weighted sum of shifted views:
        on a CPU this is ~6x faster than a grouped float64 conv2d (which has no fast kernel)."""
        for axis in (-2, -1):
            length = x.shape[axis] - size + 1
            out = x.narrow(axis, 0, length) * taps[0]
            for k in range(1, size):
                out.add_(x.narrow(axis, k, length), alpha=taps[k])
            x = out
        return x

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a * mu_a
    var_b = blur(b * b) - mu_b * mu_b
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = (_K1 * 255.0) ** 2, (_K2 * 255.0) ** 2
    v1 = 2.0 * cov + c2
    v2 = var_a + var_b + c2
    ssim = ((2.0 * mu_a * mu_b + c1) * v1) / ((mu_a * mu_a + mu_b * mu_b + c1) * v2)
    return ssim.flatten(1).mean(dim=1), (v1 / v2).flatten(1).mean(dim=1)


def ssim(output: torch.Tensor, target: torch.Tensor,
         dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """SSIM per image with the protocol's settings: (N, 3, H, W) in [0, 1] -> (N,).

    RGB scaled to 0..255, Gaussian window 11x11 with sigma 1.5 (shrunk for images smaller than
    11 px), K1 = 0.01, K2 = 0.03, 'valid' filtering, the mean over pixels and channels: the
    single-scale term the MS-SSIM of the protocol starts from (scikit-image's
    structural_similarity with gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
    data_range=255 gives the same value).
    """
    if output.shape != target.shape:
        raise ValueError(f"ssim: shapes differ: {tuple(output.shape)} vs {tuple(target.shape)}")
    return _by_slices(lambda a, b: _ssim_and_cs(a.to(dtype) * 255.0, b.to(dtype) * 255.0)[0],
                      output, target)


def ms_ssim(output: torch.Tensor, target: torch.Tensor,
            dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """MS-SSIM per image, as the DPED / PIRM protocol computes it: (N, 3, H, W) in [0, 1] -> (N,).

    RGB scaled to 0..255 (not clipped, as in the official script); Gaussian window 11x11,
    sigma 1.5, shrunk at small scales; K1 = 0.01, K2 = 0.03; 'valid' filtering; 5 scales with
    the standard weights; between scales a 2x2 box filter with reflect padding, then every second
    pixel; the product of the first four contrast-structure terms and the last scale's SSIM,
    each raised to its weight. Computed in float64 like the official script; ``dtype=float32``
    is 4x faster on a CPU and agrees to 1e-4 per image (enough for training-time validation).
    """
    terms = ms_ssim_terms(output, target, dtype)
    weights = torch.tensor(MS_SSIM_WEIGHTS, dtype=dtype)
    return (terms ** weights).prod(dim=1)


def ms_ssim_terms(output: torch.Tensor, target: torch.Tensor,
                  dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The factors of the protocol's MS-SSIM per image, (N, 3, H, W) -> (N, 5): the
    contrast-structure terms of scales 1-4 and the SSIM of scale 5 (before their weights).
    Shows at which scale an output loses to another (bench/msssim_probe.py)."""
    if output.shape != target.shape:
        raise ValueError(f"ms_ssim: shapes differ: {tuple(output.shape)} vs {tuple(target.shape)}")
    return _by_slices(lambda a, b: _ms_ssim_terms(a, b, dtype), output, target)


def _ms_ssim_terms(output: torch.Tensor, target: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    a = output.to(dtype) * 255.0
    b = target.to(dtype) * 255.0
    levels = len(MS_SSIM_WEIGHTS)
    terms = []
    for level in range(levels):
        ssim, cs = _ssim_and_cs(a, b)
        terms.append(cs if level < levels - 1 else ssim)
        if level < levels - 1:
            a, b = _halve(a), _halve(b)
    return torch.stack(terms, dim=1)


def _by_slices(score: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
               output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``score`` over ``_IMAGES_PER_PASS`` images at a time (its per-image results joined)."""
    if len(output) <= _IMAGES_PER_PASS:
        return score(output, target)
    return torch.cat([score(output[k:k + _IMAGES_PER_PASS], target[k:k + _IMAGES_PER_PASS])
                      for k in range(0, len(output), _IMAGES_PER_PASS)])


def _halve(x: torch.Tensor) -> torch.Tensor:
    """2x2 box filter (reflecting at the far edges, like scipy.ndimage's 'reflect'), then every
    second pixel: out[i] = mean(x[2i], x[2i + 1]) per axis."""
    x = torch.nn.functional.pad(x, (0, 1, 0, 1), mode="replicate")  # reflect of a 1-px edge
    x = (x[..., :-1, :] + x[..., 1:, :]) / 2
    x = (x[..., :, :-1] + x[..., :, 1:]) / 2
    return x[..., ::2, ::2]
