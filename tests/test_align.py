import numpy as np
import pytest

from gan.data.align import (FLAT_STD, align_pairs, crop_aligned, luminance, ncc, ncc_surface)
from gan.data.dped import decode_patch
from tests.conftest import DPED_MINI, shifted_pair, textured


def reference_surface(phone_y: np.ndarray, dslr_y: np.ndarray, max_shift: int,
                      crop: int) -> np.ndarray:
    """The exhaustive search written plainly: each pair, each candidate shift, np.corrcoef in
    float64; NaN where a crop is flat. [pair, dy + max_shift, dx + max_shift]."""
    n, h, w = dslr_y.shape
    margin = (h - crop) // 2
    out = np.full((n, 2 * max_shift + 1, 2 * max_shift + 1), np.nan)
    for i in range(n):
        target = dslr_y[i, margin:margin + crop, margin:margin + crop].astype(np.float64)
        for dy in range(-max_shift, max_shift + 1):
            for dx in range(-max_shift, max_shift + 1):
                y0, x0 = margin + dy, margin + dx
                moved = phone_y[i, y0:y0 + crop, x0:x0 + crop].astype(np.float64)
                if moved.std() >= FLAT_STD and target.std() >= FLAT_STD:
                    out[i, dy + max_shift, dx + max_shift] = np.corrcoef(moved.ravel(),
                                                                         target.ravel())[0, 1]
    return out


def assert_matches_reference(phone: np.ndarray, dslr: np.ndarray, max_shift: int, crop: int):
    result = align_pairs(phone, dslr, max_shift=max_shift, crop=crop)
    ref = reference_surface(luminance(phone), luminance(dslr), max_shift, crop)
    np.testing.assert_allclose(result.shift.surface, ref, atol=2e-6)
    flat = ref.reshape(len(ref), -1)
    for i in range(len(ref)):
        chosen = ref[i, result.shift.dy[i] + max_shift, result.shift.dx[i] + max_shift]
        if np.isnan(flat[i]).all():
            assert (result.shift.dx[i], result.shift.dy[i]) == (0, 0)
            assert np.isnan(result.ncc[i])
            continue
        # The reference's best, up to float32 rounding (two candidates that close are a tie).
        assert chosen >= np.nanmax(flat[i]) - 2e-6, i
        assert result.ncc[i] == pytest.approx(chosen, abs=2e-6)
    return result


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


def test_agrees_with_a_plain_exhaustive_search_on_noisy_synthetic_pairs():
    rng = np.random.default_rng(5)
    pairs = [shifted_pair(rng, *rng.integers(-3, 4, size=2)) for _ in range(24)]
    phone = np.stack([p for p, _ in pairs]).astype(np.float64)
    # Another camera: other gain and offset, noise; some shifts beyond the window (+-3).
    phone = phone * rng.uniform(0.6, 1.2, (24, 1, 1, 1)) + rng.normal(0, 12, phone.shape) + 20
    phone = np.clip(phone, 0, 255).astype(np.uint8)
    dslr = np.stack([d for _, d in pairs])
    dslr[3] = 117  # a flat pair
    phone[5, :, 2:] = 200  # flat but for columns 0-1: only the candidates with dx < 0 see them
    result = assert_matches_reference(phone, dslr, max_shift=2, crop=96)
    assert np.isnan(result.shift.surface[5, :, 2:]).all() and result.shift.dx[5] < 0
    assert_matches_reference(phone[:, 2:-2, 3:-1], dslr[:, 2:-2, 3:-1], max_shift=1, crop=94)


def test_ties_go_to_the_smallest_shift():
    rng = np.random.default_rng(6)
    rows = textured(rng, 100)[:, :1]  # one column, repeated: every horizontal shift scores alike
    dslr = np.repeat(rows, 100, axis=1)
    phone = np.roll(dslr, 1, axis=0)  # content one row lower
    result = align_pairs(phone[None], dslr[None], max_shift=2, crop=96)
    assert (result.shift.dx[0], result.shift.dy[0]) == (0, 1)


def test_flat_pairs_get_no_shift_and_no_score():
    flat = np.full((1, 100, 100, 3), 90, np.uint8)
    textured_side = textured(np.random.default_rng(7), 100)[None]
    for phone, dslr in ((flat, textured_side), (textured_side, flat)):
        result = align_pairs(phone, dslr, max_shift=2, crop=96)
        assert (result.shift.dx[0], result.shift.dy[0]) == (0, 0)
        assert np.isnan(result.ncc[0])


def fourier_shift(rgb: np.ndarray, tx: float, ty: float) -> np.ndarray:
    """Content moved by (tx, ty) pixels (right, down) with the Fourier shift theorem, uint8."""
    fy = np.fft.fftfreq(rgb.shape[0])[:, None]
    fx = np.fft.fftfreq(rgb.shape[1])[None, :]
    phase = np.exp(-2j * np.pi * (fx * tx + fy * ty))
    moved = [np.fft.ifft2(np.fft.fft2(rgb[..., c]) * phase).real for c in range(3)]
    return np.clip(np.rint(np.stack(moved, axis=-1)), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("true", [(0.4, -0.3), (1.3, 0.2), (-1.7, -1.2)])
def test_subpixel_estimate_follows_a_fractional_shift(true):
    # (-1.7, -1.2): the integer peak (-2) is on the window's edge, refined one-sidedly.
    scene = textured(np.random.default_rng(3), 100)
    result = align_pairs(fourier_shift(scene, *true)[None], scene[None], max_shift=2, crop=96,
                         subpixel=True)
    assert (result.shift.dx[0], result.shift.dy[0]) == tuple(np.rint(true).astype(int))
    assert result.shift.fx[0] == pytest.approx(true[0], abs=0.1)
    assert result.shift.fy[0] == pytest.approx(true[1], abs=0.1)
    plain = align_pairs(fourier_shift(scene, *true)[None], scene[None], max_shift=2, crop=96)
    assert (plain.shift.fx[0], plain.shift.fy[0]) == (plain.shift.dx[0], plain.shift.dy[0])


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


def test_shapes_and_margin_are_checked():
    with pytest.raises(ValueError, match="one shape"):
        align_pairs(np.zeros((1, 10, 10, 3), np.uint8), np.zeros((1, 10, 12, 3), np.uint8), 1, 8)
    with pytest.raises(ValueError, match="one shape"):
        ncc_surface(np.zeros((1, 10, 10)), np.zeros((1, 10, 12)), 1, 8)
    with pytest.raises(ValueError, match="margin"):
        ncc_surface(np.zeros((1, 100, 100)), np.zeros((1, 100, 100)), 3, 96)


# -- real DPED pairs (../shared/dped-mini), skipped when absent ------------------------------


@pytest.fixture(scope="module")
def real_pairs() -> tuple[np.ndarray, np.ndarray]:
    """dped-mini's 200 real 100x100 pairs, training then test: two (200, 100, 100, 3) uint8."""
    root = DPED_MINI / "iphone"
    if not (root / "training_data").is_dir():
        pytest.skip("../shared/dped-mini is not present")
    phone, dslr = [], []
    for split in ("training_data", "test_data/patches"):
        for file in sorted((root / split / "iphone").glob("*.jpg"), key=lambda p: int(p.stem)):
            phone.append(decode_patch(file.read_bytes()))
            dslr.append(decode_patch((root / split / "canon" / file.name).read_bytes()))
    return np.stack(phone), np.stack(dslr)


def test_agrees_with_a_plain_exhaustive_search_on_real_pairs(real_pairs):
    assert_matches_reference(*real_pairs, max_shift=2, crop=96)


def test_injected_shifts_are_recovered_on_real_pairs(real_pairs):
    """bench/align_check.py's check: the phone content of each real pair moved by a known d
    (98x98 windows cut from the 100x100 patches: real pixels, no resampling or padding); the
    estimate must move by d."""
    phone, dslr = real_pairs

    def estimate(d):
        ph = np.ascontiguousarray(phone[:, 1 - d[1]:99 - d[1], 1 - d[0]:99 - d[0]])
        result = align_pairs(ph, np.ascontiguousarray(dslr[:, 1:99, 1:99]), max_shift=2, crop=94)
        return result.shift.dx, result.shift.dy, np.isnan(result.ncc)

    bx, by, flat = estimate((0, 0))
    assert flat.sum() <= 2  # dped-mini has two saturated pairs
    hits = cases = 0
    for d in [(dx, dy) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dx, dy) != (0, 0)]:
        x, y, _ = estimate(d)
        ok = (x - bx == d[0]) & (y - by == d[1])
        # An exhaustive search follows the content exactly, except where its best candidate is
        # on the window's edge (it leaves the window, or one from outside comes in).
        edge = (np.abs(bx) == 2) | (np.abs(by) == 2) | (np.abs(x) == 2) | (np.abs(y) == 2)
        assert not (~ok & ~edge & ~flat).any(), d
        hits += int((ok & ~flat).sum())
        cases += int((~flat).sum())
    # Just under what the exhaustive search recovers (92.1%) and above the phase correlation it
    # replaced (90.7%): bench/README.md, "Alignment: injected shifts on dped-mini".
    assert hits / cases >= 0.915, (hits, cases)
