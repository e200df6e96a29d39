import numpy as np
import pytest

from gan.data.align import align_pairs, crop_aligned, estimate_shift, luminance, ncc
from tests.conftest import shifted_pair


def test_sign_convention_phone_right_and_below_gives_positive_shift():
    rng = np.random.default_rng(1)
    phone, dslr = shifted_pair(rng, dx=2, dy=1)
    # By construction the scene point at dslr[y, x] sits at phone[y + 1, x + 2].
    assert np.array_equal(phone[1:50, 2:50], dslr[0:49, 0:48])
    result = align_pairs(phone[None], dslr[None], max_shift=2, crop=96)
    assert (result.shift.dx[0], result.shift.dy[0]) == (2, 1)
    # The aligned crops show the same content: the phone crop starts at column 2 + dx.
    assert np.array_equal(result.phone[0], phone[3:99, 4:100])
    assert np.array_equal(result.phone[0], result.dslr[0])
    assert result.ncc[0] == pytest.approx(1.0)


def test_injected_shifts_are_recovered():
    rng = np.random.default_rng(2)
    shifts = [(dx, dy) for dx in range(-2, 3) for dy in range(-2, 3)] * 2
    pairs = [shifted_pair(rng, dx, dy) for dx, dy in shifts]
    phone = np.stack([p for p, _ in pairs])
    dslr = np.stack([d for _, d in pairs])
    result = align_pairs(phone, dslr, max_shift=2, crop=96)
    assert list(zip(result.shift.dx.tolist(), result.shift.dy.tolist())) == shifts


def test_subpixel_estimate_follows_a_fractional_shift():
    rng = np.random.default_rng(3)
    from tests.conftest import textured

    scene = luminance(textured(rng, 100))
    # Shift by (0.4, -0.3) pixels with the Fourier shift theorem.
    fy = np.fft.fftfreq(100)[:, None]
    fx = np.fft.fftfreq(100)[None, :]
    moved = np.fft.ifft2(np.fft.fft2(scene) * np.exp(-2j * np.pi * (fx * 0.4 + fy * -0.3))).real
    shift = estimate_shift(moved[None].astype(np.float32), scene[None], max_shift=2, subpixel=True)
    assert (shift.dx[0], shift.dy[0]) == (0, 0)
    assert shift.fx[0] == pytest.approx(0.4, abs=0.15)
    assert shift.fy[0] == pytest.approx(-0.3, abs=0.15)


def test_ncc_values():
    rng = np.random.default_rng(4)
    a = rng.random((1, 16, 16)).astype(np.float32) * 255
    assert ncc(a, a)[0] == pytest.approx(1.0)
    assert ncc(a, 255 - a)[0] == pytest.approx(-1.0)
    assert ncc(a, a * 0.5 + 10)[0] == pytest.approx(1.0)  # invariant to gain and offset
    flat = np.full((1, 16, 16), 200, np.float32)
    assert np.isnan(ncc(a, flat)[0])


def test_crop_refuses_shifts_beyond_the_margin():
    patches = np.zeros((1, 100, 100, 3), np.uint8)
    with pytest.raises(ValueError, match="margin"):
        crop_aligned(patches, patches, np.array([3]), np.array([0]), crop=96)


def test_estimate_shift_validates_shapes():
    with pytest.raises(ValueError, match="one shape"):
        estimate_shift(np.zeros((1, 10, 10)), np.zeros((1, 10, 12)), 2)
