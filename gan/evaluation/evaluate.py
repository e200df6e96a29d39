"""Scoring enhancement methods against the DSLR targets, the DPED way.

A *method* turns a batch of phone images, (N, H, W, 3) uint8, into enhanced images, (N, 3, H, W)
float in [0, 1]: the input itself (identity), the classical baselines CLHE and NPEA, and trained
generators. Every method is scored per patch with PSNR, SSIM and MS-SSIM (gan.metrics, the DPED
protocol) and timed, so methods can be compared per second of compute as well as per dB.
Each output and each DSLR target also gets its look statistics (gan.look: detail, contrast,
black level, saturation), which say whether the output looks like the DSLR photo, not only how
near it is.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from PIL import Image
from tqdm import tqdm

from gan.data.dped import DpedSource, decode_patch, find_layout
from gan.data.patches import PatchPairs, to_tensor
from gan.deploy.inference import DEFAULT_OVERLAP, DEFAULT_TILE, enhance_array
from gan.deploy.photo_io import read_photo
from gan.evaluation.loe import lightness_order_error
from gan.evaluation.niqe import niqe, scorable
from gan.fsio import atomic_open
from gan.look import LOOK_KEYS, look_stats, look_summary
from gan.metrics import mean_finite, ms_ssim, psnr, ssim
from gan.pixels import float_to_uint8

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
        return float_to_uint8(out)
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
    look: dict[str, np.ndarray]  # the output's gan.look statistics, per patch
    target_look: dict[str, np.ndarray]  # the DSLR targets' (the same for every method)

    def summary(self) -> dict[str, float | int]:
        mean, infinite = mean_finite(torch.from_numpy(self.psnr))
        return {"psnr": round(mean, 3), "psnr_infinite": infinite,
                "ssim": round(float(self.ssim.mean()), 4),
                "ms_ssim": round(float(self.ms_ssim.mean()), 4), "patches": len(self.psnr),
                **look_summary(self.look, self.target_look)}


def score_method(method: Method, phone: np.ndarray, dslr: np.ndarray, chunk: int = 256,
                 target_look: dict[str, np.ndarray] | None = None) -> tuple[Scores, np.ndarray]:
    """Enhance and score ``phone`` against ``dslr`` ((N, H, W, 3) uint8 each), chunk by chunk.

    ``target_look``: ``gan.look.look_stats(dslr)``, passed in when the caller scores several
    methods on the same targets, so that it is computed once; computed here otherwise.
    Returns the scores and the enhanced images of the chunk-sized prefix as uint8 (what the
    report shows comes from the first rows, and keeping all outputs would cost N x H x W x 3).
    """
    results: dict[str, list[np.ndarray]] = {"psnr": [], "ssim": [], "ms_ssim": []}
    looks: dict[str, list[np.ndarray]] = {k: [] for k in LOOK_KEYS}
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
        for key, values in look_stats(out).items():
            looks[key].append(values)
        if first is None:
            first = to_uint8(out)
    if target_look is None:
        target_look = look_stats(dslr)  # blocks of images inside: memory flat in N
    look = {k: np.concatenate(v) for k, v in looks.items()}
    scores = Scores(*(np.concatenate(results[k]) for k in ("psnr", "ssim", "ms_ssim")), seconds,
                    look, target_look)
    return scores, first


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) float in [0, 1] -> (N, H, W, 3) uint8, rounded."""
    return float_to_uint8(images.permute(0, 2, 3, 1).numpy())


# -- the test data ----------------------------------------------------------------------------

def aligned_test_pairs(patches: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The extract stage's aligned test crops: phone, DSLR ((N, H, W, 3) uint8) and row index."""
    test = PatchPairs(patches, "test")
    return np.asarray(test.phone), np.asarray(test.dslr), np.arange(len(test))


def raw_test_pairs(raw: Path, phone_name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The raw test pairs of a DPED-layout archive that decode to two images of one size, as
    DPED and PIRM scored them: phone, DSLR ((N, H, W, 3) uint8) and the pairs' DPED indices."""
    phones, dslrs, indices = [], [], []
    with DpedSource(raw) as source:
        for pair in find_layout(source.names(), phone_name).pairs["test"]:
            if pair.phone is None or pair.dslr is None:
                continue
            try:
                phone = decode_patch(source.read(pair.phone))
                dslr = decode_patch(source.read(pair.dslr))
            except ValueError:
                continue
            if phone.shape == dslr.shape and (not phones or phone.shape == phones[0].shape):
                phones.append(phone)
                dslrs.append(dslr)
                indices.append(pair.index)
    if not phones:
        raise ValueError(f"{raw}: no decodable test pairs of one size")
    return np.stack(phones), np.stack(dslrs), np.asarray(indices)


# -- full-size photos -------------------------------------------------------------------------

def read_rgb8(path: Path) -> np.ndarray:
    """A photo as (H, W, 3) uint8, upright, through the decoder ``enhance`` ships
    (gan.deploy.photo_io: EXIF orientation, CMYK and 16-bit handled the same way)."""
    photo = read_photo(path)
    rgb = photo.rgb if photo.rgb.shape[2] == 3 else np.repeat(photo.rgb, 3, axis=2)
    return float_to_uint8(rgb)


def full_size_scores(methods: list[Method], photos: list[Path], out: Path, keep: int,
                     progress: bool = False
                     ) -> tuple[dict[str, float], dict[str, float | None], dict[str, float]]:
    """LOE and NIQE (means over the photos) and seconds per megapixel of each method on the
    full-size photos, which have no DSLR twin. One photo is in memory at a time. The first
    ``keep`` photos and each method's enhanced version of them are saved as PNG (lossless) under
    ``out/<method>/`` (the input under ``out/input/``) for the report.

    NIQE (gan.evaluation.niqe, lower is more natural) is computed for the input photo once,
    under ``"input"``, and for each method's output. Photos smaller than two 96x96 blocks are
    left out of its means; a mean over no photo, or over an undefined score (a flat output), is
    None. Returns (loe, niqe, seconds per megapixel)."""
    errors: dict[str, list[float]] = {m.name: [] for m in methods}
    naturalness: dict[str, list[float]] = {"input": [], **{m.name: [] for m in methods}}
    seconds = dict.fromkeys(errors, 0.0)
    megapixels = 0.0
    for k, path in enumerate(tqdm(photos, desc="full-size", unit="photo", disable=not progress)):
        image = read_rgb8(path)
        megapixels += image.shape[0] * image.shape[1] / 1e6
        if k < keep:
            _save_png(out / "input" / f"{path.stem}.png", image)
        if scorable(image.shape):
            naturalness["input"].append(niqe(image))
        for method in methods:
            began = time.perf_counter()
            enhanced = method.enhance_photo(image)
            seconds[method.name] += time.perf_counter() - began
            errors[method.name].append(lightness_order_error(image, enhanced))
            if scorable(enhanced.shape):
                naturalness[method.name].append(niqe(enhanced))
            if k < keep:
                _save_png(out / method.name / f"{path.stem}.png", enhanced)
    if not photos:
        return {}, {}, {}
    loe = {name: round(float(np.mean(values)), 1) for name, values in errors.items()}
    means = {name: float(np.mean(values)) if values else float("nan")
             for name, values in naturalness.items()}
    niqe_means = {name: round(mean, 2) if np.isfinite(mean) else None
                  for name, mean in means.items()}
    speed = {name: round(total / megapixels, 3) for name, total in seconds.items()}
    return loe, niqe_means, speed


def _save_png(path: Path, image: np.ndarray) -> None:
    with atomic_open(path) as handle:
        Image.fromarray(image).save(handle, format="PNG")
