"""NPEA (gan/evaluation/baselines/npea.py) and the lightness order error (gan/evaluation/loe.py)."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data, exposure

from gan.evaluation.baselines import npea as npea_module
from gan.evaluation.baselines.npea import bilog_transform, bright_pass, illumination, npea
from gan.evaluation.loe import lightness_order_error

ROOT = Path(__file__).resolve().parents[1]
DPED_FULL_SIZE = (ROOT.parent / "shared" / "dped-mini" / "iphone" / "test_data"
                  / "full_size_test_images")


def scaled_max(image: np.ndarray) -> np.ndarray:
    """max(R, G, B) after step 1's scaling (image maximum -> 255), float64."""
    peak = int(image.max())
    return image.max(axis=2) * (255.0 / peak if peak else 1.0)


def darkened(image: np.ndarray, top: float = 80.0) -> np.ndarray:
    """The photo scaled linearly into [0, top]."""
    return np.round(image.astype(np.float64) * (top / 255.0)).astype(np.uint8)


def unevenly_lit(image: np.ndarray) -> np.ndarray:
    """Non-uniform illumination: light falls off from 100 % on the right to 15 % on the left."""
    gain = np.linspace(0.15, 1.0, image.shape[1])[None, :, None]
    return np.round(image * gain).astype(np.uint8)


def equalize_per_channel(image: np.ndarray) -> np.ndarray:
    """Plain histogram equalisation of R, G and B separately (skimage), uint8."""
    channels = [exposure.equalize_hist(image[..., c], nbins=256) for c in range(3)]
    return np.round(np.stack(channels, axis=-1) * 255).astype(np.uint8)


def brute_force_bright_pass(L: np.ndarray, sigma: float = 3.0) -> np.ndarray:
    """The bright-pass filter written straight from its definition, pixel by pixel (slow)."""
    height, width = L.shape
    extended = np.pad(L.astype(np.float64), 22, mode="symmetric")  # 15 + 7, mirrored
    M = np.empty((height + 30, width + 30))
    for i in range(height + 30):
        for j in range(width + 30):
            M[i, j] = extended[i:i + 15, j:j + 15].max()
    out = np.empty((height, width))
    for i in range(height):
        for j in range(width):
            window = M[i:i + 31, j:j + 31]
            taking_part = window[window >= L[i, j]]
            w = np.exp((L[i, j] - taking_part) / (2 * sigma ** 2))
            out[i, j] = (w * taking_part).sum() / w.sum()
    return out


# --- step 4: the bright-pass filter -----------------------------------------------------------

def test_bright_pass_by_hand():
    """Two bright pixels on a flat background; values worked out from the definition.

    L = 10 everywhere except A = (30, 30) = 100 and B = (30, 45) = 50, so the 15x15 maximum M is
    100 on rows/columns 23..37, 50 on rows 23..37 x columns 38..52, and 10 elsewhere. The weight
    of a contributing y is exp((L(x) - M(y)) / (2 * 3^2)): linear in the difference.
    """
    L = np.full((61, 61), 10.0)
    L[30, 30], L[30, 45] = 100.0, 50.0
    out = bright_pass(L)
    e = math.exp
    # A itself: only M = 100 values reach L(A) = 100, so L' = 100 exactly.
    assert out[30, 30] == pytest.approx(100.0, abs=1e-4)
    # (30, 22): window columns 7..37 hold the whole 15x15 block of 100s (225 pixels, weight
    # exp(-90/18) = exp(-5)); the other 736 pixels have M = 10 = L(x), weight 1.
    expected = (736 * 10 + 225 * 100 * e(-5)) / (736 + 225 * e(-5))
    assert out[30, 22] == pytest.approx(expected, rel=1e-5)
    # (30, 10): columns -5..25 (mirrored past the border, still 10): 45 pixels of the block.
    expected = (916 * 10 + 45 * 100 * e(-5)) / (916 + 45 * e(-5))
    assert out[30, 10] == pytest.approx(expected, rel=1e-5)
    # B, L = 50: the 10s are excluded (M < L); 225 pixels of 50 (weight 1) and the 15 x 8 = 120
    # pixels of A's block in columns 30..37 (weight exp(-50/18)).
    expected = (225 * 50 + 120 * 100 * e(-50 / 18)) / (225 + 120 * e(-50 / 18))
    assert out[30, 45] == pytest.approx(expected, rel=1e-5)
    # A pixel far from both: everything in its window is 10.
    assert out[5, 5] == pytest.approx(10.0, abs=1e-4)
    assert np.all(out >= L)


@pytest.mark.parametrize("shape", [(1, 1), (2, 9), (13, 40), (37, 5)])
def test_bright_pass_matches_definition(shape, monkeypatch):
    """The vectorised filter equals the pixel-by-pixel definition, with many partial tiles."""
    monkeypatch.setattr(npea_module, "_TILE_PIXELS", 40)  # force tiling even on tiny arrays
    rng = np.random.default_rng(sum(shape))
    L = rng.uniform(10, 255, shape)
    out = bright_pass(L)
    assert out.dtype == np.float32 and out.shape == shape
    np.testing.assert_allclose(out, brute_force_bright_pass(L), rtol=2e-6, atol=1e-3)
    assert np.all(out >= L.astype(np.float32))


def test_bright_pass_wide_range_uses_float64():
    """A range too wide for float32 weights still gives the exact result."""
    L = np.random.default_rng(3).uniform(0, 5000, (12, 15))
    np.testing.assert_allclose(bright_pass(L), brute_force_bright_pass(L), rtol=1e-6)


def test_illumination_never_below_lightness():
    """L' >= max(R, G, B) after step 1's scaling, and >= 10, on random and real images."""
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (64, 80, 3), dtype=np.uint8),
              rng.integers(0, 90, (33, 47, 3), dtype=np.uint8),  # step 1 scales this one up
              data.astronaut(), data.coffee()]
    for image in images:
        L = illumination(image)
        assert L.dtype == np.float32 and L.shape == image.shape[:2]
        assert np.all(np.isfinite(L))
        assert np.all(L >= scaled_max(image) * (1 - 1e-6))
        assert np.all(L >= 10.0)


# --- step 6: the bi-log transformation -------------------------------------------------------

@pytest.mark.parametrize("kind", ["uniform", "dark", "bright", "two_levels", "peaked"])
def test_bilog_is_monotone(kind):
    rng = np.random.default_rng(1)
    illum = {
        "uniform": rng.uniform(10, 255, 20000),
        "dark": rng.uniform(10, 60, 20000),
        "bright": rng.uniform(200, 255, 20000),
        "two_levels": np.repeat([30.0, 200.0], 5000),
        "peaked": np.concatenate([np.full(15000, 120.0), rng.uniform(10, 255, 500)]),
    }[kind]
    mapped = bilog_transform(illum)
    assert mapped.dtype == np.float32 and np.all(np.isfinite(mapped))
    order = np.argsort(illum, kind="stable")
    assert np.all(np.diff(mapped[order].astype(np.float64)) >= 0)
    assert mapped.min() >= illum.min() - 1e-3  # the darkest illumination is never darkened
    assert mapped.max() <= 255.0 + 1e-3


def test_bilog_balance_zero_is_identity_and_flat_input_is_kept():
    illum = np.random.default_rng(2).uniform(10, 255, (20, 30)).astype(np.float32)
    np.testing.assert_allclose(bilog_transform(illum, balance=0.0), illum, rtol=1e-5)
    flat = np.full((4, 5), 77.0)
    np.testing.assert_array_equal(bilog_transform(flat), flat.astype(np.float32))


def test_npea_brightens_a_dark_photo():
    """A photo darkened to [0, 80]: the output is brighter on average, and so is the mapped
    illumination alone (step 6 brightens, beyond step 1's stretch)."""
    for image in (data.astronaut(), data.coffee()):
        dark = darkened(image)
        assert dark.max() <= 80
        out = npea(dark)
        assert out.mean() > dark.mean() + 20
        illum = illumination(dark)
        assert bilog_transform(illum).mean() > illum.mean()
        # Not only step 1: the unevenly lit version is brightened too.
        uneven = unevenly_lit(image)
        assert npea(uneven).mean() > uneven.mean()


# --- the whole method --------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["random", "grey", "black", "white", "1x1", "2x9", "9x2", "tiny",
                                  "one_colour"])
def test_npea_output_dtype_shape_range(name):
    rng = np.random.default_rng(4)
    image = {
        "random": rng.integers(0, 256, (57, 83, 3), dtype=np.uint8),
        "grey": np.full((40, 30, 3), 128, np.uint8),
        "black": np.zeros((20, 20, 3), np.uint8),
        "white": np.full((20, 20, 3), 255, np.uint8),
        "1x1": np.array([[[200, 10, 40]]], np.uint8),
        "2x9": rng.integers(0, 256, (2, 9, 3), dtype=np.uint8),
        "9x2": rng.integers(0, 256, (9, 2, 3), dtype=np.uint8),
        "tiny": rng.integers(0, 30, (3, 4, 3), dtype=np.uint8),
        "one_colour": np.tile(np.array([90, 40, 10], np.uint8), (16, 16, 1)),
    }[name]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning (0/0, overflow) may escape
        out = npea(image)
        illum = illumination(image)
    assert out.dtype == np.uint8 and out.shape == image.shape
    assert np.all(np.isfinite(illum))
    if name == "black":
        assert np.all(out == 0)
    if name in ("white", "grey"):  # step 1 stretches a flat grey to 255
        assert np.all(out == 255)


def test_npea_rejects_bad_input():
    with pytest.raises(ValueError, match="H, W, 3"):
        npea(np.zeros((10, 10), np.uint8))
    with pytest.raises(TypeError, match="uint8"):
        npea(np.zeros((10, 10, 3), np.float32))


@pytest.mark.parametrize("mode", ["inference_mode", "no_grad", "grad"])
def test_npea_works_under_any_autograd_mode(mode):
    """Callers may run inside torch.inference_mode() (an evaluation loop): same result."""
    import contextlib

    import torch

    image = data.astronaut()[:90, :120]
    context = {"inference_mode": torch.inference_mode(), "no_grad": torch.no_grad(),
               "grad": contextlib.nullcontext()}[mode]
    with context:
        out = npea(image)
    np.testing.assert_array_equal(out, npea(image))


def test_npea_keeps_the_default_torch_thread_count():
    import torch

    before = torch.get_num_threads()
    npea(data.astronaut()[:120, :150])
    assert torch.get_num_threads() == before


# --- LOE ----------------------------------------------------------------------------------------

def test_loe_zero_for_identical_images():
    image = data.astronaut()
    assert lightness_order_error(image, image) == 0.0
    assert lightness_order_error(image[:1, :1], image[:1, :1]) == 0.0


def test_loe_zero_for_a_monotone_brightness_change():
    """A strictly increasing tone curve (sqrt) keeps every lightness order."""
    dark = (data.astronaut().astype(np.int64) * 63 // 255).astype(np.uint8)  # levels 0..63
    curve = np.round(255 * np.sqrt(np.arange(256) / 255)).astype(np.uint8)
    assert np.all(np.diff(curve[:64].astype(int)) > 0)  # injective on the levels used
    assert lightness_order_error(dark, curve[dark]) == 0.0


def test_loe_positive_when_the_order_is_shuffled():
    image = data.astronaut()
    shuffled = image.copy()
    shuffled[:, :256] = 255 - shuffled[:, :256]  # invert the left half
    assert lightness_order_error(image, shuffled) > 100


def test_loe_by_hand():
    """50x50 (step 1, every pixel sampled). Original flat: every U(L(x), L(y)) = 1 (p >= q
    includes ties). Enhanced: columns 0..24 at 100, 25..49 at 200; after the 15x15 maximum the
    200s reach 7 columns further, so Le = 100 on columns 0..17 (900 pixels) and 200 on 18..49
    (1600 pixels). For x on the 100s, U(Le(x), Le(y)) = 0 for the 1600 y on the 200s, so
    RD(x) = 1600; for x on the 200s RD = 0. LOE = 900 * 1600 / 2500 = 576."""
    original = np.full((50, 50, 3), 77, np.uint8)
    enhanced = np.empty_like(original)
    enhanced[:, :25], enhanced[:, 25:] = 100, 200
    assert lightness_order_error(original, enhanced) == pytest.approx(576.0)
    # The other way round: the original is ordered, the enhanced flat. For x on the 200s,
    # U(L(x), L(y)) = 1 for all y, as for the flat image: RD = 0; for x on the 100s,
    # U(L(x), L(y)) = 0 for the 1600 y on the 200s while the flat image says 1: RD = 1600.
    assert lightness_order_error(enhanced, original) == pytest.approx(576.0)


def test_loe_uses_the_sampling_step():
    """step = floor(min(m, n) / 50): a 120x300 image is sampled every 2 pixels (60 x 150)."""
    rng = np.random.default_rng(5)
    a = rng.integers(0, 256, (120, 300, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (120, 300, 3), dtype=np.uint8)
    loe = lightness_order_error(a, b)
    assert 0 < loe < 60 * 150


def test_loe_rejects_mismatched_images():
    with pytest.raises(ValueError, match="size"):
        lightness_order_error(np.zeros((60, 60, 3), np.uint8), np.zeros((60, 61, 3), np.uint8))
    with pytest.raises(TypeError, match="uint8"):
        lightness_order_error(np.zeros((60, 60, 3)), np.zeros((60, 60, 3)))


# --- NPEA against histogram equalisation, on photos ---------------------------------------------

def test_npea_keeps_lightness_order_better_than_histogram_equalisation():
    """LOE of NPEA < LOE of per-channel histogram equalisation on the bundled photos, as taken
    and unevenly lit, and on the DPED full-size test photos when present.

    Per-channel HE is the comparison: equalising V = max(R, G, B) alone is a global monotone
    map of the very lightness LOE measures, so its LOE is near 0 by construction (it only merges
    levels) and says nothing about naturalness.
    """
    photos = {name: getattr(data, name)() for name in ("astronaut", "coffee", "chelsea")}
    if DPED_FULL_SIZE.is_dir():
        for path in sorted(DPED_FULL_SIZE.glob("*.jpg"))[:2]:
            photos[f"dped/{path.name}"] = np.asarray(Image.open(path).convert("RGB"))
    for name, photo in photos.items():
        versions = {name: photo}
        if not name.startswith("dped"):
            versions[f"{name}, unevenly lit"] = unevenly_lit(photo)
        for label, image in versions.items():
            ours = lightness_order_error(image, npea(image))
            he = lightness_order_error(image, equalize_per_channel(image))
            assert ours < he, f"{label}: LOE NPEA {ours:.1f} vs HE {he:.1f}"
