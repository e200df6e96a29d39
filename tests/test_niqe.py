"""NIQE (gan/evaluation/niqe.py): BasicSR's figures, the pristine model file, the input forms and
the edge cases."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter
from skimage import data

from gan.evaluation import niqe as niqe_module
from gan.evaluation.niqe import PRISTINE, luma, niqe, scorable


def blurred(image: np.ndarray) -> np.ndarray:
    """As bench/niqe_check.py blurs: Gaussian, sigma 2 pixels, per channel, rounded."""
    return np.round(gaussian_filter(image.astype(np.float64), sigma=(2, 2, 0))).astype(np.uint8)


# BasicSR 1.4.2's calculate_niqe (defaults; RGB given to it as BGR) on images the test rebuilds,
# measured by `python bench/niqe_check.py --torch <torch CPU wheel>` on 2026-12-04 (table in
# bench/README.md, "NIQE against BasicSR's implementation"): name -> (image, crop_border, NIQE).
REFERENCE = {
    "noise 192x288": (lambda: np.random.default_rng(0).integers(0, 256, (192, 288, 3),
                                                               dtype=np.uint8), 0, 32.2110),
    "astronaut": (data.astronaut, 0, 3.0649),
    "camera (grey)": (data.camera, 0, 3.0962),
    "astronaut blurred": (lambda: blurred(data.astronaut()), 0, 7.2686),
    "astronaut crop 8": (data.astronaut, 8, 2.9843),
}


@pytest.mark.parametrize("name", REFERENCE)
def test_niqe_matches_basicsr(name):
    make, crop, expected = REFERENCE[name]
    assert niqe(make(), crop) == pytest.approx(expected, abs=0.01)


def test_the_pristine_model_is_the_file_basicsr_ships():
    # NOTICE-niqe.md names this digest; the file ships as package data (pyproject.toml)
    assert PRISTINE.parent == Path(niqe_module.__file__).resolve().parent
    digest = hashlib.sha256(PRISTINE.read_bytes()).hexdigest()
    assert digest == "2a7c182a68c9e7f1b2e2e5ec723279d6f65d912b6fcaf37eb2bf03d7367c4296"
    with np.load(PRISTINE) as params:
        window = params["gaussian_window"]
    assert np.allclose(np.outer(niqe_module._window(), niqe_module._window()), window,
                       atol=1e-15)  # the window niqe.py builds is the release's


def test_greyscale_input_is_scored_as_the_luma_of_rgb():
    rgb = data.coffee()
    y = luma(rgb)
    assert y.dtype == np.uint8 and y.shape == rgb.shape[:2] and 16 <= y.min() <= y.max() <= 235
    assert niqe(rgb) == niqe(y)
    # grey RGB is not the same image as its grey level: Y maps 0..255 to 16..235
    grey = data.camera()
    assert luma(np.repeat(grey[..., None], 3, axis=2))[0, 0] != grey[0, 0]


def test_crop_border_drops_that_many_pixels_on_each_side():
    image = data.chelsea()
    assert niqe(image, crop_border=10) == niqe(image[10:-10, 10:-10])
    assert niqe(image, crop_border=10) != niqe(image)


@pytest.mark.parametrize("shape, crop", [((95, 500, 3), 0), ((96, 96, 3), 0), ((191, 150), 0),
                                         ((200, 300, 3), 60)])
def test_an_image_without_two_whole_blocks_is_refused_naming_its_size(shape, crop):
    image = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    height, width = shape[0] - 2 * crop, shape[1] - 2 * crop
    assert not scorable((height, width))
    with pytest.raises(ValueError, match=rf"two 96x96 blocks.* {height}x{width} after "
                                         rf"crop_border={crop}"):
        niqe(image, crop)


@pytest.mark.parametrize("image", [np.zeros((200, 300, 3), np.float32),
                                   np.zeros((200, 300, 4), np.uint8),
                                   np.zeros((200, 300, 3, 1), np.uint8)])
def test_other_than_uint8_rgb_or_grey_is_refused(image):
    with pytest.raises(ValueError, match=r"uint8 image, got shape"):
        niqe(image)
    with pytest.raises(ValueError, match="crop_border"):
        niqe(np.zeros((200, 300), np.uint8), crop_border=-1)


def test_strips_change_nothing(monkeypatch):
    """Memory is bounded by scoring a strip of blocks at a time; a strip of one block row (and
    of one half-size row) gives the whole image's figure."""
    image = data.astronaut()[:400, :500]  # also cut to whole blocks: 384 x 480
    whole = niqe(image)
    monkeypatch.setattr(niqe_module, "STRIP_PIXELS", 1)
    assert niqe(image) == pytest.approx(whole, abs=1e-9)


def test_a_flat_image_has_no_niqe_and_noise_is_far_from_natural():
    assert np.isnan(niqe(np.full((192, 288, 3), 128, np.uint8)))
    photo = data.astronaut()
    assert niqe(photo) < niqe(blurred(photo)) < niqe(REFERENCE["noise 192x288"][0]())
