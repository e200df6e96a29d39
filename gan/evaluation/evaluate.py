"""Scoring enhancement methods against the DSLR targets, the DPED way.

A *method* turns a batch of phone images, (N, H, W, 3) uint8, into enhanced images, (N, 3, H, W)
float in [0, 1]: the input itself (identity), the classical baselines CLHE and NPEA, and trained
generators. Every method is scored per patch with PSNR, SSIM and MS-SSIM (gan.metrics, the DPED
protocol) and timed, so methods can be compared per second of compute as well as per dB.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gan.deploy.inference import DEFAULT_OVERLAP, DEFAULT_TILE, enhance_array
from gan.metrics import mean_finite, ms_ssim, psnr, ssim
from gan.data.patches import to_tensor

Enhance = Callable[[np.ndarray], torch.Tensor]


@dataclass
class Method:
    name: str
    enhance: Enhance  # (N, H, W, 3) uint8 -> (N, 3, H, W) float in [0, 1]
    # One full-size photo, (H, W, 3) uint8 -> (H, W, 3) uint8, when it needs another path than
    # a batch of one (a generator: tiled, so memory does not grow with the photo).
    photo: Callable[[np.ndarray], np.ndarray] | None = None

    def enhance_photo(self, image: np.ndarray) -> np.ndarray:
        if self.photo is not None:
            return self.photo(image)
        return to_uint8(self.enhance(image[None]))[0]


def per_image(fn: Callable[[np.ndarray], np.ndarray]) -> Enhance:
    """Lift an (H, W, 3) uint8 -> (H, W, 3) uint8 function (the baselines) to a batch method."""
    def enhance(batch: np.ndarray) -> torch.Tensor:
        return to_tensor(np.stack([fn(image) for image in batch]))
    return enhance


def generator_method(generator: torch.nn.Module, device: torch.device,
                     batch_size: int = 32) -> Enhance:
    """A trained generator as a method; its float output is scored as it is (clipped by PSNR)."""
    @torch.no_grad()
    def enhance(batch: np.ndarray) -> torch.Tensor:
        outputs = []
        for start in range(0, len(batch), batch_size):
            x = to_tensor(batch[start:start + batch_size]).to(device)
            outputs.append(generator(x).float().clamp(0, 1).cpu())
        return torch.cat(outputs)
    return enhance


def generator_photo(generator: torch.nn.Module, device: torch.device,
                    tile: int = DEFAULT_TILE, overlap: int = DEFAULT_OVERLAP
                    ) -> Callable[[np.ndarray], np.ndarray]:
    """A generator on one full-size photo, tiled (gan.deploy.inference): uint8 in, uint8 out."""
    def enhance(image: np.ndarray) -> np.ndarray:
        out = enhance_array(generator, image.astype(np.float32) / 255.0, device, tile, overlap)
        return np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)
    return enhance


def identity_method() -> Method:
    return Method("input", to_tensor)


def baseline_methods(white_balance: bool = False) -> list[Method]:
    from gan.evaluation.baselines.clhe import clhe
    from gan.evaluation.baselines.npea import npea

    return [Method("clhe", per_image(lambda im: clhe(im, white_balance=white_balance))),
            Method("npea", per_image(npea))]


@dataclass
class Scores:
    """Per-patch scores of one method on one geometry."""

    psnr: np.ndarray
    ssim: np.ndarray
    ms_ssim: np.ndarray
    seconds: float  # enhancing only, not scoring

    def summary(self) -> dict[str, float | int]:
        mean, infinite = mean_finite(torch.from_numpy(self.psnr))
        return {"psnr": round(mean, 3), "psnr_infinite": infinite,
                "ssim": round(float(self.ssim.mean()), 4),
                "ms_ssim": round(float(self.ms_ssim.mean()), 4), "patches": len(self.psnr)}


def score_method(method: Method, phone: np.ndarray, dslr: np.ndarray,
                 chunk: int = 256) -> tuple[Scores, np.ndarray]:
    """Enhance and score ``phone`` against ``dslr`` ((N, H, W, 3) uint8 each), chunk by chunk.

    Returns the scores and the enhanced images of the chunk-sized prefix as uint8 (what the
    report shows comes from the first rows, and keeping all outputs would cost N x H x W x 3).
    """
    results: dict[str, list[np.ndarray]] = {"psnr": [], "ssim": [], "ms_ssim": []}
    seconds = 0.0
    first = None
    for start in range(0, len(phone), chunk):
        began = time.perf_counter()
        out = method.enhance(phone[start:start + chunk])
        seconds += time.perf_counter() - began
        target = to_tensor(dslr[start:start + chunk])
        results["psnr"].append(psnr(out, target).numpy())
        results["ssim"].append(ssim(out, target).numpy())
        results["ms_ssim"].append(ms_ssim(out, target).numpy())
        if first is None:
            first = to_uint8(out)
    scores = Scores(*(np.concatenate(results[k]) for k in ("psnr", "ssim", "ms_ssim")), seconds)
    return scores, first


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) float in [0, 1] -> (N, H, W, 3) uint8, rounded."""
    return (images.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()


def load_photo(path: Path) -> np.ndarray:
    from PIL import Image, ImageOps

    with Image.open(path) as im:
        return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
