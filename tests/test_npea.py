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
from gan.evaluation.baselines.npea import (bilog_transform, bright_pass, dark_factor,
                                           illumination, npea)
from gan.evaluation.loe import lightness_order_error

ROOT = Path(__file__).resolve().parents[1]
DPED_FULL_SIZE = (ROOT.parent / "shared" / "dped-mini" / "iphone" / "test_data"
                  / "full_size_test_images")


# The curve issue 14 measured on the authors' outputs of normally lit images: (L', T(L')).
MEASURED_CURVE = [(30, 130), (90, 145), (130, 168), (190, 213), (250, 253)]

# Mean output level of the previous NPEA (commit 018c895, step 6 a log-domain histogram
# specification), measured with `python bench/npea_levels.py --against 018c895`.
MEAN_BEFORE = {"astronaut": 119.9, "coffee": 100.3, "chelsea": 131.6,
               "dped/0.jpg": 103.8, "dped/1.jpg": 109.4}


def scaled_max(image: np.ndarray) -> np.ndarray:
    """round(max(R, G, B)) after step 1's scaling (image maximum -> 255), half up, float64."""
    peak = int(image.max())
    return np.floor(image.max(axis=2) * 255.0 / peak + 0.5) if peak else image.max(axis=2) * 1.0


def dped_photos() -> dict[str, np.ndarray]:
    """The DPED full-size test photos of ../shared/dped-mini, {} where absent."""
    if not DPED_FULL_SIZE.is_dir():
        return {}
    photos = {}
    for path in sorted(DPED_FULL_SIZE.glob("*.jpg"))[:2]:
        with Image.open(path) as im:
            photos[f"dped/{path.name}"] = np.asarray(im.convert("RGB"))
    return photos


def round_half_up(x: np.ndarray) -> np.ndarray:
    return np.floor(np.asarray(x, dtype=np.float64) + 0.5)


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


def brute_force_bright_pass(L: np.ndarray, sigma: float = 3.0, mode: str = "reflect"
                            ) -> np.ndarray:
    """The bright-pass filter written straight from its definition, pixel by pixel (slow).
    Borders mirrored without repeating the edge pixel ("reflect"), as the authors' outputs show
    (issue 14); ``mode="symmetric"`` is the border the previous version used."""
    height, width = L.shape
    extended = np.pad(L.astype(np.float64), 22, mode=mode)  # 15 + 7, mirrored
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


def brute_force_illumination(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Steps 1-4 from their description (issue 14's measurements), slowly: the scaled maximum
    rounded half up, the floor (10th-percentile level + 1, at least 10) from a sort, the
    bright-pass by definition. Returns (its output rounded half up, the unrounded output)."""
    L = scaled_max(image)
    ordered = np.sort(L.ravel())
    level = ordered[-(-L.size // 10) - 1]  # the smallest v with >= 10 % of pixels at or below v
    L = np.maximum(L, min(max(level + 1, 10.0), 255.0))
    return round_half_up(brute_force_bright_pass(L)), brute_force_bright_pass(L)


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


def test_bright_pass_border_reflects_without_repeating_the_edge():
    """Issue 14: the authors' bright-pass mirrors borders like numpy's "reflect" (row -k is
    row k), not "symmetric" (row -k is row k - 1, the edge repeated). One bright pixel on the
    top edge, L = 100 at (0, 20) in a 40x40 field of 10. With "reflect" its mirror image lies at
    column -20 (rows: only row 0), so the 15x15 maximum M = 100 on rows -7..7 and columns
    13..27 and -27..-13. For x = (0, 0), L(x) = 10, the window is rows and columns -15..15:
    M = 100 on columns 13..15 and -15..-13, 6 x 15 = 90 pixels (weight exp(-90/18)), and 10 on
    the other 871 (weight 1). With "symmetric" the mirror images lie at row -1 and column -21:
    M = 100 on rows -8..7 and columns -28..-14 too, 5 x 16 = 80 pixels in the window."""
    L = np.full((40, 40), 10.0)
    L[0, 20] = 100.0
    out = bright_pass(L)
    e5 = math.exp(-5)
    reflect = (871 * 10 + 90 * 100 * e5) / (871 + 90 * e5)
    symmetric = (881 * 10 + 80 * 100 * e5) / (881 + 80 * e5)
    assert out[0, 0] == pytest.approx(reflect, rel=1e-6)
    assert brute_force_bright_pass(L, mode="symmetric")[0, 0] == pytest.approx(symmetric)
    assert abs(reflect - symmetric) > 1e-3  # the two borders are told apart at this precision
    np.testing.assert_allclose(out, brute_force_bright_pass(L), rtol=2e-6, atol=1e-3)


def test_illumination_matches_its_description():
    """illumination() (steps 1-4: rounded lightness, floor, bright-pass, rounded output) equals
    the slow version written from the description, on images that need step 1's scaling."""
    rng = np.random.default_rng(6)
    for shape, top in (((13, 17), 200), ((9, 30), 90), ((24, 11), 255)):
        image = rng.integers(0, top + 1, (*shape, 3), dtype=np.uint8)
        L = illumination(image)
        rounded, exact = brute_force_illumination(image)
        assert np.all(L == np.round(L))  # integer levels
        # float32 against float64 may round the other way only at an exact half
        clear = np.abs(exact - np.floor(exact) - 0.5) > 1e-3
        assert clear.mean() > 0.9
        np.testing.assert_array_equal(L[clear], rounded[clear])


def test_lightness_is_rounded_half_up_and_floored_at_the_10th_percentile_level_plus_one():
    """10 x 10 pixels of max(R, G, B): 9 at 20, 1 at 40, the rest 100, one at 200 (the top, so
    step 1 scales by 255 / 200). Scaled and rounded half up: 20 -> 25.5 -> 26, 40 -> 51,
    100 -> 127.5 -> 128 (an exact half, up), 200 -> 255. The 10th-percentile level is the
    smallest level with at least 10 of the 100 pixels at or below it: 51, since only 9 are at
    or below 26; the floor is 51 + 1 = 52. numpy's default percentile would interpolate (48.5),
    and the previous version used that value unrounded as the floor."""
    peak = np.full((10, 10), 100, np.uint8)
    peak.flat[:9], peak.flat[9], peak.flat[-1] = 20, 40, 200
    image = np.stack([peak, peak // 2, peak // 3], axis=-1)
    L = npea_module._floored_lightness(image)
    assert L.dtype == np.float32
    assert set(np.unique(L)) == {52.0, 128.0, 255.0}
    assert np.all(L.flat[:10] == 52.0) and L.flat[10] == 128.0 and L.flat[-1] == 255.0
    # Nearly black: the 10th-percentile level is 0, the floor 1, raised to 10.
    dark = np.zeros((10, 10, 3), np.uint8)
    dark[0, 0] = 255
    assert npea_module._floored_lightness(dark).min() == 10.0


def test_illumination_never_below_lightness():
    """L' >= round(max(R, G, B)) after step 1's scaling, and >= 10, integer, on random and
    real images."""
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (64, 80, 3), dtype=np.uint8),
              rng.integers(0, 90, (33, 47, 3), dtype=np.uint8),  # step 1 scales this one up
              data.astronaut(), data.coffee()]
    for image in images:
        L = illumination(image)
        assert L.dtype == np.float32 and L.shape == image.shape[:2]
        assert np.all(np.isfinite(L)) and np.all(L == np.round(L))
        assert np.all(L >= scaled_max(image))
        assert np.all(L >= 10.0) and np.all(L <= 255.0)


# --- step 6: the bi-log transformation (measured from the authors' outputs, issue 14) ---------

def test_curve_passes_through_the_measured_points():
    """T(L') through the issue's points within half a grey level, with the measured slopes
    (about 0.25 below 90, about 0.72 above 120) and white kept white."""
    x, y = np.array(MEASURED_CURVE, dtype=np.float64).T
    np.testing.assert_allclose(bilog_transform(x), y, atol=0.5)
    T = bilog_transform(np.array([30.0, 90.0, 130.0, 250.0, 255.0]))
    assert (T[1] - T[0]) / 60 == pytest.approx(0.25, abs=0.03)
    assert (T[3] - T[2]) / 120 == pytest.approx(0.72, abs=0.05)
    assert T[4] == pytest.approx(255.0, abs=1e-4)
    # One curve, whatever else the image holds (the previous histogram specification mapped a
    # level according to the other levels present).
    mixed = np.concatenate([[30.0], np.random.default_rng(1).uniform(10, 60, 5000)])
    assert bilog_transform(mixed)[0] == bilog_transform(np.array([30.0]))[0]


@pytest.mark.parametrize("dark", [1.0, 1.2, 1.4, 1.99])
def test_curve_is_strictly_increasing_and_ends_at_255(dark):
    levels = np.linspace(0, 255, 25501)
    T = bilog_transform(levels, dark)
    assert T.dtype == np.float32 and np.all(np.isfinite(T))
    assert np.all(np.diff(T) > 0)
    assert T[-1] == pytest.approx(255.0, abs=1e-3) and T.max() <= 255.0 + 1e-3
    # At the integer levels npea uses, distinct levels stay distinct by a margin (for the
    # factors dark_factor gives; towards k = 2 the slope at 255 goes to 0).
    if dark <= npea_module.DARK_MAX_FACTOR:
        assert np.diff(bilog_transform(np.arange(10.0, 256.0), dark)).min() > 0.15
    # Values outside [0, 255] are clipped into it.
    assert bilog_transform(np.array([-5.0, 300.0]), dark).tolist() == \
        bilog_transform(np.array([0.0, 255.0]), dark).tolist()


def test_dark_images_get_a_factor_of_1_2_to_1_4_continuous_at_the_threshold():
    """The dark-image rule (a guess, documented in npea.py): 1 from a mean of 50 up, 1.4 from
    25 down, continuous and non-increasing in between."""
    assert dark_factor(50.0) == 1.0 and dark_factor(120.0) == 1.0 and dark_factor(255.0) == 1.0
    assert dark_factor(25.0) == pytest.approx(1.4) and dark_factor(0.0) == pytest.approx(1.4)
    assert 1.2 <= dark_factor(37.5) <= 1.4
    means = np.linspace(0, 255, 25501)
    factors = np.array([dark_factor(m) for m in means])
    assert np.all(np.diff(factors) <= 0)
    assert np.abs(np.diff(factors)).max() < 1e-3  # no jump anywhere, at 50 included
    for eps in (1e-3, 1e-6):  # the ramp's slope is 0.4 / 25 = 0.016 per level
        assert abs(dark_factor(50.0 - eps) - dark_factor(50.0 + eps)) <= 0.02 * eps
    # The curve is continuous in the factor too: a small step in k moves it a little.
    levels = np.arange(10.0, 256.0)
    step = np.abs(bilog_transform(levels, 1.0 + 1e-4) - bilog_transform(levels, 1.0)).max()
    assert 0 < step < 0.05
    # The factor brightens: 1.2-1.4 where dark images have most of their illumination.
    ratio = bilog_transform(np.array([30.0, 60.0]), 1.4) / bilog_transform(np.array([30.0, 60.0]))
    assert np.all((ratio > 1.2) & (ratio < 1.4))
    with pytest.raises(ValueError, match="mean level"):
        dark_factor(-1.0)
    with pytest.raises(ValueError, match="dark"):
        bilog_transform(levels, 2.5)


def test_npea_on_either_side_of_the_dark_threshold_differs_little():
    """Two versions of one photo with input means just below and just above 50 (the same top
    level, so step 1 scales both alike) come out nearly alike: the rule has no jump."""
    photo = data.astronaut().astype(np.float64)
    outs = []
    for mean in (49.9, 50.1):
        image = np.clip(np.round(photo * (mean / photo.mean())), 0, 255).astype(np.uint8)
        image[0, 0] = 255  # the same top level: step 1 leaves both as they are
        assert abs(image.mean() - mean) < 0.2
        outs.append(npea(image).astype(np.float64))
    assert abs(outs[0].mean() - outs[1].mean()) < 1.0


def test_npea_keeps_channel_ratios():
    """Issue 14: after the bright-pass everything is one gain per pixel, so each pixel's output
    channel ratios equal its input ratios within 0.5 %, where nothing is clipped. Rounding to
    8 bits moves a ratio of two outputs of at least 200 by under 0.5 %; so compare those."""
    for image in (data.astronaut(), data.coffee(), unevenly_lit(data.chelsea())):
        out = npea(image).astype(np.float64)
        src = image.astype(np.float64)
        ok = np.all((out >= 200) & (out <= 254) & (src > 0), axis=2)
        assert ok.sum() > 500
        gains = out[ok] / src[ok]  # (n, 3): one gain per pixel means equal columns
        spread = gains.max(axis=1) / gains.min(axis=1) - 1
        assert spread.max() < 0.005


def test_npea_is_brighter_than_the_histogram_specification_it_replaces():
    """Issue 14: the previous NPEA rendered the authors' images 15-25 grey levels darker than
    their outputs. On normally lit photos the mean output level rises against the previous
    version's (MEAN_BEFORE): by 15-25 levels on the DPED full-size photos (measured 16-19, when
    present), and on the smaller bundled photos by at least 5 (measured 7-11)."""
    photos = {name: getattr(data, name)() for name in ("astronaut", "coffee", "chelsea")}
    photos.update(dped_photos())
    for name, photo in photos.items():
        rise = npea(photo).mean() - MEAN_BEFORE[name]
        if name.startswith("dped"):
            assert 15 <= rise <= 25, f"{name}: mean level rose by {rise:.1f}"
        else:
            assert 5 <= rise <= 25, f"{name}: mean level rose by {rise:.1f}"


def test_npea_brightens_a_dark_photo():
    """A photo darkened to [0, 80]: the output is brighter on average, brighter than with the
    plain curve (the dark-image factor), and the unevenly lit version is brightened too."""
    for image in (data.astronaut(), data.coffee()):
        dark = darkened(image)
        assert dark.max() <= 80 and dark.mean() < 50
        out = npea(dark)
        assert out.mean() > dark.mean() + 20
        uneven = unevenly_lit(image)
        assert npea(uneven).mean() > uneven.mean() + 10


def test_dark_factor_brightens_a_dark_photo(monkeypatch):
    dark = darkened(data.coffee())
    with_factor = npea(dark).mean()
    monkeypatch.setattr(npea_module, "dark_factor", lambda mean_level: 1.0)
    assert with_factor > npea(dark).mean() + 3


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


# --- NPEA's lightness order, on photos ------------------------------------------------------------

def test_npea_keeps_lightness_order_better_than_histogram_equalisation():
    """LOE of NPEA < LOE of per-channel histogram equalisation on the bundled photos, as taken
    and unevenly lit (measured: NPEA 50-131, HE 122-515).

    Per-channel HE is the comparison: equalising V = max(R, G, B) alone is a global monotone
    map of the very lightness LOE measures, so its LOE is near 0 by construction (it only merges
    levels) and says nothing about naturalness. On the DPED full-size photos HE now does better
    (see the next test).
    """
    for name in ("astronaut", "coffee", "chelsea"):
        photo = getattr(data, name)()
        for label, image in ((name, photo), (f"{name}, unevenly lit", unevenly_lit(photo))):
            ours = lightness_order_error(image, npea(image))
            he = lightness_order_error(image, equalize_per_channel(image))
            assert ours < he, f"{label}: LOE NPEA {ours:.1f} vs HE {he:.1f}"


def test_npea_lightness_order_error_stays_low():
    """LOE under 5 % of the sampled pixels (fewer than 1 in 20 sampled pairs out of order) on
    the bundled photos (as taken, unevenly lit, darkened) and the DPED full-size photos when
    present.

    The measured curve costs lightness order: its gain T(L') / L' falls from 4.3 at L' = 30 to
    1 at 255, so where the bright-pass illumination L' of a pixel lies above its own lightness
    (next to something brighter) it gains less than a pixel of the same lightness in an even
    region, and the two can swap. The previous version's curve was much flatter: LOE 10-35 on
    these photos, now 50-173 (bench/README.md, "NPEA against its authors' outputs"); with the
    identity as step 6 this pipeline's LOE is 0. The bound is what "low" means here; the
    largest measured share is 4.5 % (chelsea darkened, with the dark-image factor).
    """
    photos = {}
    for name in ("astronaut", "coffee", "chelsea"):
        photo = getattr(data, name)()
        photos.update({name: photo, f"{name}, unevenly lit": unevenly_lit(photo),
                       f"{name}, darkened": darkened(photo)})
    photos.update(dped_photos())
    for label, image in photos.items():
        step = max(1, min(image.shape[:2]) // 50)
        samples = len(range(0, image.shape[0], step)) * len(range(0, image.shape[1], step))
        loe = lightness_order_error(image, npea(image))
        assert loe < 0.05 * samples, f"{label}: LOE {loe:.1f} of {samples} samples"


@pytest.mark.skipif(not DPED_FULL_SIZE.is_dir(), reason="../shared/dped-mini is absent")
def test_npea_lightness_order_error_on_dped_full_size_photos():
    """The DPED full-size phone photos (1280x720): LOE measured 131 and 103 (of 4,784 samples),
    per-channel HE 123 and 75. Held within 1.5x of HE, so that a change that makes the
    lightness order much worse than HE's fails."""
    for label, image in dped_photos().items():
        ours = lightness_order_error(image, npea(image))
        he = lightness_order_error(image, equalize_per_channel(image))
        assert ours < 1.5 * he, f"{label}: LOE NPEA {ours:.1f} vs HE {he:.1f}"
