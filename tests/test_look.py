"""gan.look on hand-made images whose statistics can be worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import gan.look
from gan.look import LOOK_KEYS, look_stats, look_summary


def flat(rgb: tuple[float, float, float], size: int = 5) -> torch.Tensor:
    return torch.tensor(rgb).view(1, 3, 1, 1).expand(1, 3, size, size).clone()


def test_a_flat_image_has_no_detail_no_contrast_and_its_luma_as_black():
    stats = look_stats(flat((0.2, 0.4, 0.6)))
    assert set(stats) == set(LOOK_KEYS)
    assert all(v.dtype == np.float64 and v.shape == (1,) for v in stats.values())
    # luma = 255 (0.299 x 0.2 + 0.587 x 0.4 + 0.114 x 0.6) = 255 x 0.363
    assert stats["detail"][0] == pytest.approx(0, abs=1e-9)
    assert stats["contrast"][0] == pytest.approx(0, abs=1e-9)
    assert stats["black"][0] == pytest.approx(92.565, abs=1e-4)
    assert stats["saturation"][0] == pytest.approx((0.6 - 0.2) / 0.6)


def test_uint8_patches_are_read_as_their_levels():
    patch = np.broadcast_to(np.array([51, 102, 153], dtype=np.uint8), (2, 4, 6, 3))
    stats = look_stats(patch)
    assert stats["black"] == pytest.approx([92.565, 92.565], abs=1e-9)  # the same grey as above
    assert stats["saturation"] == pytest.approx([2 / 3, 2 / 3])
    rng = np.random.default_rng(0)
    noisy = rng.integers(0, 256, (3, 7, 9, 3), dtype=np.uint8)
    as_float = torch.from_numpy(noisy).permute(0, 3, 1, 2).double() / 255
    for key, values in look_stats(noisy).items():
        assert values == pytest.approx(look_stats(as_float)[key], rel=1e-9, abs=1e-9)


def test_a_checkerboard_has_the_largest_laplacian():
    board = torch.from_numpy(np.indices((6, 6)).sum(axis=0) % 2).float()  # 0 and 1 alternate
    stats = look_stats(board.expand(1, 3, 6, 6))
    # Each inner pixel v has four neighbours 1 - v: |4 (1 - v) - 4 v| = 4 levels of 255.
    assert stats["detail"][0] == pytest.approx(4 * 255)
    assert stats["contrast"][0] == pytest.approx(255 / 2)  # half 0, half 255
    assert stats["black"][0] == 0
    assert stats["saturation"][0] == 0  # grey, and black (max 0) counts as 0


def test_a_ramp_has_contrast_but_no_detail_and_black_is_interpolated():
    levels = np.arange(100, dtype=np.uint8).reshape(1, 10, 10, 1).repeat(3, axis=3)
    stats = look_stats(levels)
    assert stats["detail"][0] == pytest.approx(0, abs=1e-9)  # a plane: the Laplacian is 0
    assert stats["contrast"][0] == pytest.approx(math.sqrt((100 ** 2 - 1) / 12))
    assert stats["black"][0] == pytest.approx(0.99)  # between the 1st and 2nd of 100 levels


def test_pure_red_is_fully_saturated():
    stats = look_stats(flat((1.0, 0.0, 0.0)))
    assert stats["saturation"][0] == 1
    assert stats["black"][0] == pytest.approx(0.299 * 255)


def test_out_of_range_floats_are_clipped_first():
    wild = torch.tensor([-0.5, 1.5, 0.3]).view(1, 3, 1, 1).expand(1, 3, 4, 4)
    clipped = torch.tensor([0.0, 1.0, 0.3]).view(1, 3, 1, 1).expand(1, 3, 4, 4)
    wild_stats, clipped_stats = look_stats(wild), look_stats(clipped)
    for key in LOOK_KEYS:
        assert wild_stats[key] == pytest.approx(clipped_stats[key])
    assert wild_stats["saturation"][0] == 1


def test_images_are_scored_in_blocks_with_the_same_result(monkeypatch):
    images = torch.rand(7, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    whole = look_stats(images)
    monkeypatch.setattr(gan.look, "_BLOCK_PIXELS", 150)  # two images a block
    for key, values in look_stats(images).items():
        assert values.shape == (7,)
        assert values == pytest.approx(whole[key])


def test_bad_shapes_are_named():
    with pytest.raises(ValueError, match="2x5 pixels"):
        look_stats(torch.zeros(1, 3, 2, 5))
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\) uint8"):
        look_stats(np.zeros((1, 4, 4, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        look_stats(torch.zeros(1, 4, 4, 3))


def test_summary_is_ratios_of_means_and_a_black_difference():
    output = {"detail": np.array([1.0, 9.0]), "contrast": np.array([10.0, 30.0]),
              "black": np.array([5.0, 7.0]), "saturation": np.array([0.2, 0.4])}
    target = {"detail": np.array([1.0, 3.0]), "contrast": np.array([20.0, 20.0]),
              "black": np.array([2.0, 4.0]), "saturation": np.array([0.3, 0.3])}
    # detail: 10 / 4, a ratio of means (the mean of the ratios, 1 and 3, would be 2)
    assert look_summary(output, target) == {"detail_ratio": 2.5, "contrast_ratio": 1.0,
                                            "black_diff": 3.0, "saturation_ratio": 1.0}
    assert list(look_summary(output, target)) == ["detail_ratio", "contrast_ratio",
                                                  "black_diff", "saturation_ratio"]
    first = look_summary(output, target, keep=np.array([True, False]))
    assert first == {"detail_ratio": 1.0, "contrast_ratio": 0.5, "black_diff": 3.0,
                     "saturation_ratio": 0.667}


def test_an_image_against_itself_is_at_the_targets_level():
    images = torch.rand(4, 3, 9, 9, generator=torch.Generator().manual_seed(2))
    stats = look_stats(images)
    summary = look_summary(stats, stats)
    assert summary == {"detail_ratio": 1.0, "contrast_ratio": 1.0, "black_diff": 0.0,
                       "saturation_ratio": 1.0}
    assert math.copysign(1, summary["black_diff"]) == 1  # 0.0, never -0.0 in eval.json
    darker = look_summary(look_stats(images * 0.5), stats)
    assert darker["contrast_ratio"] == pytest.approx(0.5, abs=1e-3)
    assert darker["detail_ratio"] == pytest.approx(0.5, abs=1e-3)
    assert darker["saturation_ratio"] == 1.0  # scaling all channels keeps (max - min) / max


def test_summary_without_images_or_of_different_lengths():
    empty = {k: np.zeros(0) for k in LOOK_KEYS}
    assert all(math.isnan(v) for v in look_summary(empty, empty).values())
    one = {k: np.ones(1) for k in LOOK_KEYS}
    with pytest.raises(ValueError, match="differ in length"):
        look_summary(one, empty)
    flat_target = {**one, "detail": np.zeros(1)}  # a flat target: no detail to compare with
    assert math.isnan(look_summary(one, flat_target)["detail_ratio"])
