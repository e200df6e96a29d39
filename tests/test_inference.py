"""Tiled inference (gan/deploy/inference.py): coverage, agreement with whole-image inference, seams."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import data

from gan.deploy.inference import enhance_array, plan_tiles
from gan.networks import build_generator, size_multiple

TINY = {"depth": 2, "base_width": 8, "growth_rate": 4, "layers_per_block": 2}


def trained_like(kind: str = "dense_unet", config: dict | None = None, seed: int = 0):
    """A small generator that is not the identity: every parameter perturbed (the Dense U-Net's
    output conv starts at zero), in eval mode."""
    torch.manual_seed(seed)
    generator = build_generator(kind, TINY if config is None else config)
    with torch.no_grad():
        for p in generator.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return generator.eval()


def photo(height: int, width: int) -> np.ndarray:
    """A real photo's content (scikit-image's astronaut), cropped, float32 in [0, 1]."""
    return (data.astronaut()[:height, :width].astype(np.float32) / 255.0).copy()


@pytest.mark.parametrize("height, width, tile, overlap, multiple", [
    (720, 1280, 512, 64, 8), (333, 517, 128, 32, 4), (100, 100, 512, 64, 8),
    (1000, 37, 96, 16, 8), (257, 1025, 256, 8, 16), (64, 64, 0, 0, 8), (90, 200, 40, 3, 1)])
def test_tiles_cover_the_image_on_the_grid(height, width, tile, overlap, multiple):
    tiles = plan_tiles(height, width, tile, overlap, multiple)
    covered = np.zeros((height, width), int)
    for t in tiles:
        covered[t.top:t.top + t.height, t.left:t.left + t.width] += 1
        assert t.top % multiple == 0 and t.left % multiple == 0
        if tile:
            assert t.height <= max(tile + multiple, 1) or t.height == height
            assert t.width <= max(tile + multiple, 1) or t.width == width
    assert covered.min() >= 1
    rows = sorted({(t.top, t.height) for t in tiles})
    for (top, h), (next_top, _) in zip(rows, rows[1:]):
        assert top + h - next_top >= overlap  # neighbours share at least ``overlap`` rows
    if not tile or (height <= tile and width <= tile):
        assert len(tiles) == 1


def test_bad_tiling_is_refused():
    with pytest.raises(ValueError, match="overlap"):
        plan_tiles(100, 100, 64, 64)
    with pytest.raises(ValueError, match="at least"):
        plan_tiles(100, 100, 8, 2, multiple=8)
    with pytest.raises(ValueError, match=">= 0"):
        plan_tiles(100, 100, -1, 0)


@pytest.mark.slow
def test_tiled_equals_whole_image_inference():
    generator = trained_like()
    image = photo(200, 300)
    whole = enhance_array(generator, image, tile=0)
    tiled = enhance_array(generator, image, tile=96, overlap=48)
    assert tiled.shape == image.shape and tiled.dtype == np.float32
    difference = np.abs(tiled - whole)
    assert difference.max() < 1 / 255 and difference.mean() < 0.05 / 255
    assert np.abs(whole - image).mean() > 10 / 255  # the generator really changes the photo


def test_memory_is_bounded_by_the_tile_not_the_photo():
    """The generator never sees more than one tile (plus grid alignment) at a time."""
    generator = trained_like()
    seen: list[tuple[int, ...]] = []
    generator.register_forward_pre_hook(lambda module, args: seen.append(tuple(args[0].shape)))
    calls = []
    enhance_array(generator, photo(300, 450), tile=128, overlap=16,
                  on_tile=lambda done, total: calls.append((done, total)))
    assert len(seen) == len(plan_tiles(300, 450, 128, 16, size_multiple(generator))) > 1
    assert max(h for _, _, h, _ in seen) <= 128 + 4 and max(w for *_, w in seen) <= 128 + 4
    assert calls == [(k, len(seen)) for k in range(1, len(seen) + 1)]


def seam_jump(output: np.ndarray, columns: list[int]) -> tuple[float, float]:
    """Mean |step| between neighbouring columns at ``columns`` and the largest such mean
    anywhere else: a visible seam is a column step larger than the image's own."""
    steps = np.abs(np.diff(output, axis=1)).mean(axis=(0, 2))  # steps[c] is between c and c + 1
    at = [steps[c - 1] for c in columns]
    elsewhere = np.delete(steps, [c - 1 for c in columns])
    return float(max(at)), float(elsewhere.max())


def seam_columns(tiles, width: int) -> list[int]:
    """Every column where a tile starts or ends inside the image."""
    edges = {t.left for t in tiles if t.left > 0} | {t.left + t.width for t in tiles
                                                     if t.left + t.width < width}
    return sorted(edges)


def test_no_seams_across_tile_borders():
    generator = trained_like()
    image = photo(160, 400)
    tiles = plan_tiles(160, 400, 96, 32, size_multiple(generator))
    at_seams, elsewhere = seam_jump(enhance_array(generator, image, tile=96, overlap=32),
                                    seam_columns(tiles, 400))
    assert at_seams <= elsewhere


def test_the_seam_check_sees_a_real_seam():
    """Without overlap, a generator with per-tile normalisation (DPED's ResNet, InstanceNorm)
    leaves visible seams, and the same check catches them."""
    generator = trained_like("dped_resnet", {"width": 8, "blocks": 1})
    image = photo(160, 400)
    image[:, 200:] = np.clip(image[:, 200:] * 0.3 + 0.6, 0, 1)  # a different tile content
    tiles = plan_tiles(160, 400, 100, 0, size_multiple(generator))
    at_seams, elsewhere = seam_jump(enhance_array(generator, image, tile=100, overlap=0),
                                    [c for c in seam_columns(tiles, 400) if c != 200])
    assert at_seams > elsewhere


def test_bf16_inference_stays_within_a_grey_level_of_fp32():
    """The shipped model on a real photo crop: bf16 autocast against fp32 (the figure in the
    README: max 0.71 levels on a 720p photo)."""
    from gan.checkpoint import load_generator
    from gan.deploy.pretrained import resolve_model

    generator = load_generator(resolve_model("iphone-dped-mini"))
    rgb = data.astronaut()[100:260, 150:330].astype(np.float32) / 255.0
    fp32 = enhance_array(generator, rgb, "cpu", tile=96, overlap=32)
    bf16 = enhance_array(generator, rgb, "cpu", tile=96, overlap=32, dtype=torch.bfloat16)
    difference = np.abs(fp32 - bf16) * 255
    assert 0 < difference.max() < 1.5 and difference.mean() < 0.2


def test_inference_precisions_follow_the_device():
    from gan.runtime import resolve_inference_precision

    cpu = torch.device("cpu")
    assert resolve_inference_precision("fp32", cpu) is None
    assert resolve_inference_precision("bf16", cpu) is torch.bfloat16
    assert resolve_inference_precision("auto", torch.device("mps")) is None
    with pytest.raises(ValueError, match="fp16 needs a CUDA GPU"):
        resolve_inference_precision("fp16", cpu)
    with pytest.raises(ValueError, match="precision must be one of auto, fp32, bf16, fp16"):
        resolve_inference_precision("int8", cpu)
