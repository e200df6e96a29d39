"""CLHE baseline (gan/evaluation/baselines/clhe.py): the JND model, the block brightness rule, the clipping
loop, robustness on edge-case images, the white-balance switch, its effect on a low-contrast
photo, and the vectorised colour-restricted mean against a slow per-pixel reference."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import skimage.data

from gan.evaluation.baselines import clhe as clhe_mod
from gan.evaluation.baselines.clhe import brightness_target, clhe, clip_histogram, jnd, similar_colour_mean


def _jnd_by_hand(b: float) -> float:
    return 17 * (1 - math.sqrt(b / 127)) + 3 if b <= 127 else 3 * (b - 127) / 128 + 3


def _luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def _exact_similar_mean(values: np.ndarray, guide: np.ndarray, radius: int = 30,
                        tol: int = 16) -> np.ndarray:
    """Slow reference of the authors' getspecialmean: per pixel, the mean of ``values`` over the
    (2 radius + 1)^2 window (mirrored borders, edge pixel not repeated) restricted to the pixels
    whose R, G and B each differ from the centre's by less than ``tol``."""
    height, width = values.shape
    vp = np.pad(values.astype(np.float64), radius, mode="reflect")
    gp = np.pad(guide.astype(np.int16), ((radius, radius), (radius, radius), (0, 0)),
                mode="reflect")
    out = np.empty((height, width))
    side = 2 * radius + 1
    for y in range(height):
        for x in range(width):
            window = gp[y:y + side, x:x + side]
            keep = (np.abs(window - guide[y, x].astype(np.int16)) < tol).all(axis=2)
            out[y, x] = vp[y:y + side, x:x + side][keep].mean()
    return out


def _ratio_field(rgb: np.ndarray) -> np.ndarray:
    """The saturation-ratio field CLHE smooths, for a realistic input to the smoothing tests."""
    start = ((rgb.astype(np.int32).sum(axis=2) + 1) // 3).astype(np.uint8)
    enhanced = np.clip(np.floor(clhe_mod._contrast(rgb) / 3 + 0.5), 0, 255).astype(np.uint8)
    return clhe_mod._saturation_ratio(start, enhanced)


# ------------------------------------------------------------------------------ JND, targets


def test_jnd_known_points_and_continuity():
    assert jnd(0) == pytest.approx(20.0)
    assert jnd(127) == pytest.approx(3.0)
    assert jnd(255) == pytest.approx(6.0)
    eps = 1e-9
    assert jnd(127 - eps) == pytest.approx(3.0, abs=1e-6)
    assert jnd(127 + eps) == pytest.approx(3.0, abs=1e-6)
    levels = np.arange(256)
    values = jnd(levels)
    assert values.shape == (256,) and values.dtype == np.float64
    np.testing.assert_allclose(values, [_jnd_by_hand(b) for b in levels], rtol=1e-12)
    assert np.all(np.diff(values[:128]) < 0) and np.all(np.diff(values[127:]) > 0)
    assert jnd(np.zeros((2, 3))).shape == (2, 3)


def test_brightness_target_known_points():
    m0 = 145.0
    # m(k) = m(k-1) + 0.51 * JND(round(m(k-1)) - 1) / JND(k); round(145) - 1 = 144
    m1 = m0 + 0.51 * _jnd_by_hand(144) / _jnd_by_hand(1)
    m2 = m1 + 0.51 * _jnd_by_hand(round(m1) - 1) / _jnd_by_hand(2)
    assert brightness_target(0) == pytest.approx(m0)
    assert brightness_target(1) == pytest.approx(m1, rel=1e-12)
    assert brightness_target(2) == pytest.approx(m2, rel=1e-12)
    assert m1 == pytest.approx(145.0937, abs=1e-4)

    table = brightness_target(np.arange(256))
    assert table.shape == (256,)
    assert np.all(np.diff(table) >= 0)
    assert np.all(np.diff(table[:251]) > 0)  # strictly increasing until the cap
    assert table.max() == 255.0 and table[255] == 255.0 and table[250] < 255.0
    # by hand up to the cap: the recurrence on exact values, stopped at the first value > 255
    m = [m0]
    for k in range(1, 256):
        if m[-1] > 255:
            break
        m.append(m[-1] + 0.51 * _jnd_by_hand(math.floor(m[-1] + 0.5) - 1) / _jnd_by_hand(k))
    capped = len(m) - 1  # index of the first value above 255
    np.testing.assert_allclose(table[:capped], m[:capped], rtol=1e-12)
    assert np.all(table[capped:] == 255.0)
    # vectorised over any shape
    assert brightness_target(np.array([[0, 255], [1, 2]])).shape == (2, 2)


# ------------------------------------------------------------------------------ clipping


def _violations(clipped: np.ndarray, total: np.ndarray, maxv, ratio) -> np.ndarray:
    """Per histogram: does any step floor(h_i / N * maxv) exceed ceil(JND(map_i)) * ratio?"""
    maxv = np.broadcast_to(np.asarray(maxv, float), total.shape)[:, None]
    ratio = np.broadcast_to(np.asarray(ratio, float), total.shape)[:, None]
    mapped = np.floor(np.cumsum(clipped, axis=1) / total[:, None] * maxv + 0.5)
    limit = np.ceil(jnd(mapped)) * ratio
    step = np.floor(clipped / total[:, None] * maxv)
    return (step > limit + 1e-9).any(axis=1)


def test_clip_histogram_invariant_on_peaky_histograms():
    rng = np.random.default_rng(0)
    hists = []
    peak = np.zeros(256, np.int64)  # a block of a nearly flat sky: one spike and a little else
    peak[200] = 2500
    peak[rng.integers(0, 256, 200)] += 1
    hists.append(peak)
    for _ in range(20):  # sparse, spiky distributions of a block's 2700 values
        hists.append(rng.multinomial(2700, rng.dirichlet(np.full(256, 0.05))))
    hists = np.array(hists)
    total = hists.sum(axis=1)
    for maxv, ratio in [(255.0, 2.0), (145.0, 1.3), (200.0, 1.0)]:
        assert _violations(hists, total, maxv, ratio).any()  # the test has something to clip
        out = clip_histogram(hists, maxv, ratio)
        assert out.shape == hists.shape and out.dtype == np.int64
        assert not _violations(out, total, maxv, ratio).any()
        # Counts are preserved exactly: the uniform share floor(excess / 256) leaves a remainder
        # that is handed out one count at a time, so no rounding is lost.
        np.testing.assert_array_equal(out.sum(axis=1), total)
        assert (out >= 0).all()
        assert out[0, 200] < hists[0, 200]  # the spike was clipped

    # per-row parameters, and rows equal to separate calls
    maxv = np.linspace(145, 255, len(hists))
    ratio = np.linspace(1.0, 2.0, len(hists))
    out = clip_histogram(hists, maxv, ratio)
    assert not _violations(out, total, maxv, ratio).any()
    np.testing.assert_array_equal(out[3], clip_histogram(hists[3], maxv[3], ratio[3]))
    # a histogram that already satisfies the rule is left alone
    flat = np.full(256, 10)
    np.testing.assert_array_equal(clip_histogram(flat, 255.0, 2.0), flat)


def test_clip_histogram_degenerate_inputs():
    empty = np.zeros(256, np.int64)
    np.testing.assert_array_equal(clip_histogram(empty, 255.0, 2.0), empty)
    tiny = np.zeros(256, np.int64)
    tiny[[10, 20, 30]] = 1  # 3 counts (a 1x1 image): nothing can satisfy the rule; unchanged
    np.testing.assert_array_equal(clip_histogram(tiny, 255.0, 2.0), tiny)
    with pytest.raises(ValueError):
        clip_histogram(np.zeros(255), 255.0, 2.0)


# ------------------------------------------------------------------------------ robustness


def _edge_images() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    ramp = np.linspace(0, 255, 64).astype(np.uint8)
    grey = np.repeat(np.tile(ramp, (48, 1))[:, :, None], 3, axis=2)
    return {
        "random": rng.integers(0, 256, (45, 70, 3), dtype=np.uint8),
        "grey": grey,
        "black": np.zeros((40, 33, 3), np.uint8),
        "white": np.full((31, 40, 3), 255, np.uint8),
        "flat colour": np.broadcast_to(np.array([200, 40, 90], np.uint8), (20, 20, 3)).copy(),
        "1x1": np.array([[[10, 200, 30]]], np.uint8),
        "1x7": rng.integers(0, 256, (1, 7, 3), dtype=np.uint8),
        "7x1": rng.integers(0, 256, (7, 1, 3), dtype=np.uint8),
        "31x29": rng.integers(0, 256, (31, 29, 3), dtype=np.uint8),
        "60x30 (divides by 30)": rng.integers(0, 256, (60, 30, 3), dtype=np.uint8),
    }


@pytest.mark.parametrize("white_balance", [False, True])
def test_output_dtype_shape_range_and_no_warnings(white_balance):
    for name, image in _edge_images().items():
        with warnings.catch_warnings(), np.errstate(divide="raise", invalid="raise",
                                                    over="raise"):
            warnings.simplefilter("error")
            out = clhe(image, white_balance=white_balance)
        assert out.dtype == np.uint8, name
        assert out.shape == image.shape, name
    # Pure black and pure white stay (nearly) where they are. Not exactly: the authors' CDF curve
    # starts at p(0) (see _cdf_maps), so a white block whose spike was clipped and spread over
    # all bins tops out a fraction of a level below its target (254.x -> 254), and black is
    # lifted to p(0) * 145 / 255 < 1 level, which rounds to 1.
    assert (clhe(np.zeros((40, 33, 3), np.uint8)) <= 1).all()
    assert (clhe(np.full((31, 40, 3), 255, np.uint8)) >= 254).all()


def test_rejects_bad_input():
    with pytest.raises(ValueError):
        clhe(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(ValueError):
        clhe(np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError):
        clhe(np.zeros((0, 10, 3), np.uint8))


# ------------------------------------------------------------------------------ behaviour


def test_white_balance_switch():
    image = skimage.data.astronaut()[::4, ::4]
    cast = image.astype(np.float64) * np.array([1.0, 0.85, 0.6])  # a warm colour cast
    cast = np.clip(cast, 0, 255).astype(np.uint8)
    default = clhe(cast)
    np.testing.assert_array_equal(default, clhe(cast, white_balance=False))
    np.testing.assert_array_equal(default, clhe(cast))  # deterministic
    balanced = clhe(cast, white_balance=True)
    assert np.abs(balanced.astype(int) - default).mean() > 1.0
    # the correction pulls the channel means together
    def spread(im: np.ndarray) -> float:
        return float(np.ptp(im.reshape(-1, 3).mean(axis=0)))

    assert spread(balanced) < spread(default)


def test_raises_contrast_of_a_low_contrast_photo():
    photo = skimage.data.astronaut()[::2, ::2]
    low = (80 + photo.astype(np.float64) * (90 / 255)).round().astype(np.uint8)  # in [80, 170]
    out = clhe(low)
    assert _luminance(out).std() > 1.2 * _luminance(low).std()


def test_grey_pixels_stay_grey():
    photo = skimage.color.rgb2gray(skimage.data.astronaut()[::2, ::2])
    grey = (80 + photo * 90).round().astype(np.uint8)
    grey[:10] = 0  # black pixels are grey too
    grey[-10:] = 255
    image = np.repeat(grey[:, :, None], 3, axis=2)
    out = clhe(image).astype(int)
    assert np.abs(out[..., 0] - out[..., 1]).max() <= 1
    assert np.abs(out[..., 0] - out[..., 2]).max() <= 1
    assert out.std() > 10  # still an image, not a flat grey


def test_threads_do_not_change_the_result(monkeypatch):
    image = skimage.data.coffee()[::4, ::4]
    single = clhe(image)
    monkeypatch.setattr(clhe_mod, "_THREAD_MIN_PIXELS", 0)
    monkeypatch.setattr(clhe_mod, "_THREADS", 3)
    np.testing.assert_array_equal(clhe(image), single)


# ------------------------------------------------------------------------------ smoothing


def test_similar_colour_mean_exact_cases():
    # Colours 40+ levels apart and mid-bin: no neighbour falls in a partial bin, so the colour
    # part of the approximation is exact, and a value that depends only on the colour comes out
    # exactly (whatever the spatial cells do), as does a constant.
    rng = np.random.default_rng(2)
    palette = np.array([[40, 40, 40], [40, 200, 120], [200, 90, 40]], np.uint8)
    labels = rng.integers(0, 3, (37, 53))
    guide = palette[labels]
    values = np.array([0.5, 1.5, 2.5], np.float32)[labels]
    np.testing.assert_allclose(similar_colour_mean(values, guide), values, rtol=1e-5)
    const = np.full((37, 53), 0.7, np.float32)
    np.testing.assert_allclose(similar_colour_mean(const, guide), const, rtol=1e-5)
    # and the slow reference agrees on what "exact" means here
    np.testing.assert_allclose(_exact_similar_mean(values, guide), values, rtol=1e-6)


@pytest.mark.parametrize("source", ["astronaut", "coffee"])
def test_similar_colour_mean_matches_slow_reference(source, monkeypatch):
    """The bilateral-grid mean against the per-pixel definition on a 40x40 photo crop.

    Where the error comes from: a neighbour in a partial colour bin (its channel one bin above or
    below the centre's) counts with the fraction of that bin that lies within 15 levels, instead
    of 0 or 1; and the window edges move by up to 3.5 pixels (8x8 cells). Both only matter when
    the ratio differs between the pixels concerned, so the bound is stated on the ratio field
    CLHE really smooths (spread 0.1-0.7 in std on such crops): a mean error within 0.03 and a
    99th percentile within 0.2 (measured on 24 crops of 4 photos: at most 0.027 and 0.18); and,
    what matters in the end, the enhanced image differs from the one made with the exact mean by
    at most one grey level on average.
    """
    image = getattr(skimage.data, source)()
    crop = np.ascontiguousarray(image[200:240, 230:270])
    ratio = _ratio_field(crop)
    exact = _exact_similar_mean(ratio, crop)
    approx = similar_colour_mean(ratio, crop)
    assert approx.dtype == np.float32 and approx.shape == ratio.shape
    err = np.abs(approx - exact)
    assert err.mean() <= 0.03
    assert np.percentile(err, 99) <= 0.2
    # the mean of the (positive) ratio stays within its range
    assert approx.min() >= ratio.min() - 1e-5 and approx.max() <= ratio.max() + 1e-5

    fast = clhe(crop).astype(int)
    monkeypatch.setattr(clhe_mod, "similar_colour_mean",
                        lambda v, g: _exact_similar_mean(v, g).astype(np.float32))
    slow = clhe(crop).astype(int)
    assert np.abs(fast - slow).mean() <= 1.0
