import dataclasses
import hashlib
import io
import zipfile

import numpy as np
import pytest
from PIL import Image

from gan.data import sample
from gan.data.dped import DpedSource, find_layout
from tests.conftest import temporaries


def _quiet(profile: sample.PhoneProfile, **changes) -> sample.PhoneProfile:
    """The profile with noise (and whatever else is given) switched off, to isolate one effect."""
    return dataclasses.replace(profile, noise_gain=0.0, noise_floor=0.0, **changes)


@pytest.fixture(scope="module")
def profile():
    return sample.phone_profile(seed=0)


SHOT = sample.Shot(exposure=1.0, iso=1.0, jpeg_quality=90)


def render(region, profile, frame=None, origin=(0, 0), seed=0):
    frame = frame or region.shape[:2]
    return sample.simulate_phone(region, origin, frame, profile, SHOT,
                                 np.random.default_rng(seed)).astype(np.float64)


def test_vignetting_darkens_the_corners(profile):
    grey = np.full((120, 160, 3), 150, np.uint8)
    out = render(grey, _quiet(profile))
    assert out[:10, :10].mean() < out[55:65, 75:85].mean() - 10


def test_dynamic_range_is_compressed(profile):
    ramp = np.repeat(np.linspace(0, 255, 256).astype(np.uint8)[None, :, None], 3, axis=2)
    ramp = np.repeat(ramp, 8, axis=0)
    out = render(ramp, _quiet(profile, vignetting=0.0, cast=(1.0, 1.0, 1.0)))
    assert out[:, 5:10].mean() >= profile.black * 255 - 1  # raised blacks
    assert out[:, -10:-5].mean() <= profile.white * 255 + 1  # lowered whites
    assert out.max() - out.min() < 0.95 * 255


def test_colours_are_desaturated(profile):
    red = np.zeros((40, 40, 3), np.uint8)
    red[..., 0] = 200
    red[..., 1] = 40
    out = render(red, _quiet(profile, vignetting=0.0, cast=(1.0, 1.0, 1.0)))
    dslr_spread = 200 - 40
    phone_spread = out[..., 0].mean() - out[..., 1].mean()
    assert phone_spread < dslr_spread * (1 - profile.desaturation) + 5


def test_grey_gets_the_colour_cast(profile):
    grey = np.full((40, 40, 3), 128, np.uint8)
    out = render(grey, _quiet(profile, vignetting=0.0, desaturation=0.0)).mean(axis=(0, 1))
    expected = np.asarray(profile.cast) / profile.cast[1]
    np.testing.assert_allclose(out / out[1], expected, atol=0.03)
    assert np.abs(expected - 1).max() > 0.02  # the drawn cast is visible at all


def test_noise_grows_with_the_signal(profile):
    flat = dict(vignetting=0.0, blur_sigma=0.01)
    dark = render(np.full((64, 64, 3), 40, np.uint8), dataclasses.replace(profile, **flat))
    bright = render(np.full((64, 64, 3), 220, np.uint8), dataclasses.replace(profile, **flat))
    assert dark.std() > 0.5  # there is noise at all
    assert bright.std() > 1.3 * dark.std()  # and it is signal-dependent (shot noise)


def test_blur_removes_fine_detail(profile):
    checker = (np.indices((64, 64)).sum(axis=0) % 2 * 255).astype(np.uint8)
    checker = np.repeat(checker[..., None], 3, axis=2)
    out = render(checker, _quiet(profile, vignetting=0.0))
    assert out[8:-8, 8:-8].std() < 0.5 * checker.std()


def test_pairs_are_deterministic_and_shifted_within_two_pixels():
    first = list(sample.sample_pairs("test", 30, seed=5))
    again = list(sample.sample_pairs("test", 30, seed=5))
    other = list(sample.sample_pairs("test", 30, seed=6))
    assert [p.phone_jpeg for p in first] == [p.phone_jpeg for p in again]
    assert [p.phone_jpeg for p in first] != [p.phone_jpeg for p in other]
    shifts = {(p.dx, p.dy) for p in first}
    assert all(-2 <= dx <= 2 and -2 <= dy <= 2 for dx, dy in shifts)
    assert len(shifts) > 5
    for pair in first[:3]:
        for data in (pair.phone_jpeg, pair.dslr_jpeg):
            assert Image.open(io.BytesIO(data)).size == (100, 100)


def test_test_scenes_are_not_training_scenes():
    assert not set(sample.TRAIN_PHOTOS) & set(sample.TEST_PHOTOS)
    assert len(sample.TEST_PHOTOS) >= 2


def test_sample_zip_has_the_dped_layout_and_the_same_bytes_for_the_same_seed(tmp_path):
    a = tmp_path / "a.zip"
    b = tmp_path / "b.zip"
    shifts = sample.write_sample_zip(a, "iphone", 40, 12, seed=3)
    sample.write_sample_zip(b, "iphone", 40, 12, seed=3)
    assert hashlib.sha256(a.read_bytes()).digest() == hashlib.sha256(b.read_bytes()).digest()
    assert len(shifts["train"]) == 40 and len(shifts["test"]) == 12
    with DpedSource(a) as source:
        layout = find_layout(source.names(), "iphone")
        assert layout.root == "dped/iphone/"
        assert [p.index for p in layout.pairs["train"]] == list(range(40))
        assert all(p.phone and p.dslr for p in layout.pairs["test"])
        assert len(layout.full_size) >= 2
        photo = Image.open(io.BytesIO(source.read(layout.full_size[0])))
        assert min(photo.size) >= 300
    assert not temporaries(tmp_path)
    with zipfile.ZipFile(a) as zf:
        assert all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist())

