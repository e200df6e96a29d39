"""The embedded sample: a small DPED-layout dataset built offline from photos bundled with packages.

DPED itself cannot be downloaded at run time everywhere (its official host answers 403), so the
default pipeline runs on a stand-in made from real colour photos that ship inside scikit-image.
Each photo is the DSLR side; the phone side is the same scene through a simulated small-sensor
camera (tone compression and lower dynamic range, colour cast, desaturation, signal-dependent
noise, slight blur, vignetting, JPEG compression) with a random per-pair translation of up to
+-2 pixels, the residual misalignment DPED's pairs have too.

One ``PhoneProfile`` is drawn per dataset (a phone model has one image pipeline); exposure, noise
level (ISO) and JPEG quality vary per shot. Everything is drawn from ``numpy.random.Generator``
seeded by (seed, split, index), so the archive is identical byte for byte for the same seed, and
on every machine (with the locked packages, requirements.lock): see "Same bytes on every CPU" below.
"""

from __future__ import annotations

import functools
import io
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Context, Decimal
from pathlib import Path

import numpy as np
from PIL import Image

from gan.fsio import atomic_path
from gan.pixels import LUMA_BT601, float_to_uint8

PATCH = 100  # DPED's patch side
MAX_SHIFT = 2  # residual misalignment injected per pair, in pixels
DSLR_JPEG_QUALITY = 95  # DPED's Canon patches are JPEGs too, at high quality
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed member timestamps: the same seed gives the same bytes
# Context around the patch the phone simulation sees (the blur's reach), so the blur near the
# patch edge uses real neighbouring pixels; patch positions keep room for it plus the shift.
_PAD = 4
_MARGIN = _PAD + MAX_SHIFT

# Photos bundled with scikit-image (nothing is downloaded). Train and test come from different
# scenes, so the test patches measure generalisation, not memory. The motorcycle stereo pair is
# one scene and stays on the training side.
TRAIN_PHOTOS = ("astronaut", "rocket", "motorcycle_left", "motorcycle_right")
TEST_PHOTOS = ("coffee", "chelsea")
# Downscale factors at which patches are cut: 100 px then covers more or less of the scene,
# as DPED's patches cover differing amounts of differently framed photos.
SCALES = (1.0, 0.8, 0.64, 0.5)

# Same bytes on every CPU: one ulp of difference before the rounding to uint8 flips a pixel
# whenever x * 255 sits at a half, and numpy's SIMD kernels (exp, log, power), OpenBLAS and
# glibc's libm pick CPU-dependent variants. So the pixel math uses only operations that IEEE 754
# rounds exactly (one numpy ufunc at a time: +, -, *, /, sqrt, floor, clip, rint; no BLAS, no
# reductions, no fused multiply-adds), and the few transcendental values (the tone curve, the
# blur kernel, the exposure and ISO factors) come from the decimal module, whose arithmetic runs
# on integers. Exactness, not precision, is what makes the bytes the same, so the pixels stay
# float32. tests/test_sample.py emulates other CPUs in subprocesses to check it (bench/README.md,
# "Figures that used to sit in code comments", has what went wrong before).
_FLOAT = np.float32  # the pixels' float type in simulate_phone
_DECIMAL = Context(prec=30)
_LN2 = _DECIMAL.ln(2)
_TONE_STEPS = 4096  # intervals of the tone-curve table: a power of 2, so x * _TONE_STEPS is exact
_BLUR_TRUNCATE = 4.0  # the blur reaches int(4 sigma + 0.5) pixels, as scipy's gaussian_filter


def exp2(u: float) -> float:
    """2 ** u, the same float on every machine (decimal arithmetic instead of the libm's pow)."""
    return float(_DECIMAL.exp(_DECIMAL.multiply(Decimal(u), _LN2)))


@functools.lru_cache(maxsize=16)
def _tone_table(gamma: float) -> tuple[np.ndarray, np.ndarray]:
    """(i / _TONE_STEPS) ** gamma for i = 0.._TONE_STEPS, and the differences to the next
    (0 after the last, so that x = 1 needs no special case)."""
    g, steps = Decimal(gamma), Decimal(_TONE_STEPS)
    ln = [_DECIMAL.ln(_DECIMAL.divide(i, steps)) for i in range(1, _TONE_STEPS + 1)]
    table = np.array([0.0] + [float(_DECIMAL.exp(_DECIMAL.multiply(g, v))) for v in ln],
                     dtype=_FLOAT)
    return table, np.append(np.subtract(table[1:], table[:-1]), _FLOAT(0))


def tone_curve(x: np.ndarray, gamma: float, out: np.ndarray | None = None) -> np.ndarray:
    """x ** gamma for x in [0, 1], interpolated linearly in a table of its values at multiples of
    1/4096 (decimal, rounded to float32): at most 4e-6 off, a thousandth of an 8-bit level.
    ``out=x`` overwrites x."""
    table, step = _tone_table(float(gamma))
    t = np.multiply(x, _TONE_STEPS, out=out)  # exact: a power of 2
    whole = np.floor(t)
    i = whole.astype(np.int32)
    frac = np.subtract(t, whole, out=t)  # exact (Sterbenz), in [0, 1)
    slope = np.take(step, i)
    np.multiply(slope, frac, out=slope)
    return np.add(np.take(table, i), slope, out=t)


@functools.lru_cache(maxsize=16)
def _gaussian_weights(sigma: float) -> tuple[float, ...]:
    """The normalised Gaussian kernel's weights at 0, 1, .., radius pixels from its centre."""
    radius = int(_BLUR_TRUNCATE * sigma + 0.5)
    two_s2 = _DECIMAL.multiply(2, _DECIMAL.multiply(Decimal(sigma), Decimal(sigma)))
    phi = [_DECIMAL.exp(_DECIMAL.divide(-k * k, two_s2)) for k in range(radius + 1)]
    total = phi[0]
    for p in phi[1:]:
        total = _DECIMAL.add(total, _DECIMAL.multiply(2, p))
    return tuple(float(_DECIMAL.divide(p, total)) for p in phi)


def blur(x: np.ndarray, sigma: float, margin: int = 0,
         axes: tuple[int, int] = (0, 1)) -> np.ndarray:
    """Gaussian blur of a float image over its two ``axes`` (height, width), edges extended
    (scipy's mode 'nearest'), rounded the same on every machine: one ufunc at a time, in a fixed
    order, in x's float type.

    The outer ``margin`` pixels of each side are context only: the result, ``margin`` pixels
    smaller at each side, is the middle of the blurred image, the same values to the bit.
    """
    weights = [x.dtype.type(v) for v in _gaussian_weights(float(sigma))]
    r = len(weights) - 1
    for axis in axes:
        size = x.shape[axis]
        n = size - 2 * margin  # outputs along this axis
        if n < 1:
            raise ValueError(f"margin {margin} leaves nothing of an image {x.shape}")
        extra = max(r - margin, 0)  # the edge pixel repeated beyond each side
        if extra:
            x = np.take(x, np.clip(np.arange(-extra, size + extra), 0, size - 1), axis=axis)
        centre = margin + extra  # where the first output's window is centred in x
        cut = [slice(None)] * x.ndim

        def window(offset: int) -> np.ndarray:
            cut[axis] = slice(centre + offset, centre + offset + n)
            return x[tuple(cut)]

        out = np.multiply(window(0), weights[0])
        pair = np.empty_like(out)
        for k in range(1, r + 1):
            np.add(window(-k), window(k), out=pair)
            np.multiply(pair, weights[k], out=pair)
            np.add(out, pair, out=out)
        x = out
    return x


def bundled_photo(name: str) -> np.ndarray:
    """A bundled scikit-image photo as (H, W, 3) uint8."""
    from skimage import data

    if name in ("motorcycle_left", "motorcycle_right"):
        left, right, _ = data.stereo_motorcycle()
        photo = left if name == "motorcycle_left" else right
    else:
        try:
            photo = getattr(data, name)()
        except AttributeError:
            raise ValueError(f"scikit-image bundles no photo named {name!r}") from None
    photo = np.asarray(photo)
    if photo.ndim != 3 or photo.shape[2] < 3:
        raise ValueError(f"bundled photo {name!r} is not a colour photo: shape {photo.shape}")
    return np.ascontiguousarray(photo[..., :3]).astype(np.uint8)


@dataclass(frozen=True)
class PhoneProfile:
    """The fixed image pipeline of one simulated phone camera (drawn once per dataset)."""

    gamma: float  # > 1 darkens mid-tones: the flat, dull rendering of small sensors
    black: float  # raised black level (0..1): lower dynamic range
    white: float  # lowered white level (0..1)
    cast: tuple[float, float, float]  # per-channel gains: colour cast of a poor white balance
    desaturation: float  # 0 keeps colours, 1 makes grey
    blur_sigma: float  # Gaussian blur of a small lens, in pixels
    vignetting: float  # fractional fall-off of brightness at the frame corners
    noise_gain: float  # signal-dependent (shot) noise variance per unit of signal
    noise_floor: float  # signal-independent (read) noise variance

    @classmethod
    def draw(cls, rng: np.random.Generator) -> "PhoneProfile":
        cast = 1.0 + rng.uniform(-0.10, 0.10, size=3)
        cast = cast / cast[1]  # keep green as the reference channel
        return cls(
            gamma=float(rng.uniform(1.15, 1.35)),
            black=float(rng.uniform(0.03, 0.07)),
            white=float(rng.uniform(0.86, 0.93)),
            cast=(float(cast[0]), float(cast[1]), float(cast[2])),
            desaturation=float(rng.uniform(0.2, 0.35)),
            blur_sigma=float(rng.uniform(0.6, 0.9)),
            vignetting=float(rng.uniform(0.25, 0.4)),
            noise_gain=float(rng.uniform(1.5e-3, 3e-3)),
            noise_floor=float(rng.uniform(2e-5, 6e-5)),
        )


@dataclass(frozen=True)
class Shot:
    """Per-shot variation of the phone pipeline."""

    exposure: float  # multiplies the scene before clipping: over-exposure clips highlights
    iso: float  # scales both noise variances
    jpeg_quality: int

    @classmethod
    def draw(cls, rng: np.random.Generator) -> "Shot":
        return cls(exposure=exp2(float(rng.uniform(-0.35, 0.35))),
                   iso=exp2(float(rng.uniform(-1.0, 1.0))),
                   jpeg_quality=int(rng.integers(72, 91)))


def simulate_phone(region: np.ndarray, origin: tuple[int, int], frame: tuple[int, int],
                   profile: PhoneProfile, shot: Shot, rng: np.random.Generator,
                   margin: int = 0) -> np.ndarray:
    """Render a region of a scene as the simulated phone would have recorded it.

    region: (h, w, 3) uint8, a window of a frame of size ``frame`` = (H, W) whose top-left corner
    sits at ``origin`` = (y, x); the position drives the vignetting. Returns (h, w, 3) uint8
    (before JPEG compression). With ``margin`` > 0 the outer ``margin`` pixels of each side are
    context for the blur only, and the result is the middle (h - 2 margin, w - 2 margin, 3): the
    same pixels as the middle of the full result, computed faster.
    """
    h, w = region.shape[:2]
    m = margin
    # Only exactly rounded operations, in float32 (see "Same bytes on every CPU"), on colour planes
    # (3, h, w) so that each step runs over contiguous memory, mostly in place.
    x = np.divide(np.ascontiguousarray(region.transpose(2, 0, 1)), 255.0, dtype=_FLOAT)
    x = blur(x, profile.blur_sigma, m, axes=(1, 2))
    x *= np.multiply(shot.exposure, profile.cast).astype(_FLOAT)[:, None, None]
    # Vignetting: brightness falls off with the squared distance from the frame centre.
    fh, fw = frame
    yy = (np.arange(m, h - m, dtype=_FLOAT) + _FLOAT(origin[0] - (fh - 1) / 2)) / _FLOAT(fh / 2)
    xx = (np.arange(m, w - m, dtype=_FLOAT) + _FLOAT(origin[1] - (fw - 1) / 2)) / _FLOAT(fw / 2)
    r2 = (yy[:, None] * yy[:, None] + xx[None, :] * xx[None, :]) / _FLOAT(2)
    x *= _FLOAT(1) - _FLOAT(profile.vignetting) * r2
    # Luma as three products and two sums in a fixed order (a BLAS dot product's order and fused
    # multiply-adds depend on the CPU), then desaturation: luma + (x - luma) * (1 - d).
    wr, wg, wb = LUMA_BT601.astype(_FLOAT)
    luma = x[0] * wr
    luma += x[1] * wg
    luma += x[2] * wb
    x -= luma
    x *= _FLOAT(1.0 - profile.desaturation)
    x += luma
    # Sensor saturation (highlights clip), then a compressive tone curve into a narrower range.
    x = tone_curve(np.clip(x, 0.0, 1.0, out=x), profile.gamma, out=x)
    x *= _FLOAT(profile.white - profile.black)
    x += _FLOAT(profile.black)
    # Signal-dependent noise, variance iso * (gain * x + floor); drawn for the whole region in
    # (h, w, 3) order, so the margin changes no draw.
    sd = np.multiply(x, _FLOAT(profile.noise_gain))
    sd += _FLOAT(profile.noise_floor)
    sd *= _FLOAT(shot.iso)
    np.sqrt(sd, out=sd)
    sd *= rng.standard_normal(region.shape, dtype=_FLOAT)[m:h - m, m:w - m].transpose(2, 0, 1)
    x += sd
    return np.ascontiguousarray(float_to_uint8(x).transpose(1, 2, 0))


def jpeg_bytes(rgb: np.ndarray, quality: int) -> bytes:
    """(H, W, 3) uint8 -> JPEG bytes (4:2:0 chroma subsampling, as phone cameras store)."""
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality, subsampling=2)
    return buf.getvalue()


@dataclass(frozen=True)
class SamplePair:
    index: int
    phone_jpeg: bytes
    dslr_jpeg: bytes
    dx: int  # injected shift, module gan.data.align's convention: phone content dx right of DSLR
    dy: int


class _Pyramid:
    """The photos of one split at each scale in SCALES, computed once."""

    def __init__(self, names: tuple[str, ...]):
        self.levels: list[np.ndarray] = []
        for name in names:
            photo = Image.fromarray(bundled_photo(name))
            for scale in SCALES:
                size = (round(photo.width * scale), round(photo.height * scale))
                self.levels.append(np.asarray(photo.resize(size, Image.Resampling.LANCZOS)))
        # Each level is drawn in proportion to its number of patch positions, so a large photo
        # contributes more patches than a small one, as in DPED.
        room = np.array([(lv.shape[0] - PATCH - 2 * _MARGIN) * (lv.shape[1] - PATCH - 2 * _MARGIN)
                         for lv in self.levels], dtype=np.float64)
        if (room <= 0).any():
            raise ValueError("a bundled photo is too small for the sample's patch size")
        self.weights = room / room.sum()


def _pair(pyramid: _Pyramid, profile: PhoneProfile, rng: np.random.Generator,
          index: int) -> SamplePair:
    level = pyramid.levels[rng.choice(len(pyramid.levels), p=pyramid.weights)]
    if rng.random() < 0.5:
        level = level[:, ::-1]
    fh, fw = level.shape[:2]
    y = int(rng.integers(_MARGIN, fh - PATCH - _MARGIN + 1))
    x = int(rng.integers(_MARGIN, fw - PATCH - _MARGIN + 1))
    dx, dy = (int(v) for v in rng.integers(-MAX_SHIFT, MAX_SHIFT + 1, size=2))
    dslr = np.ascontiguousarray(level[y:y + PATCH, x:x + PATCH])
    # phone[j, i] = scene[y + j - dy, x + i - dx]: the phone content sits (dx, dy) from the DSLR's.
    y0, x0 = y - dy - _PAD, x - dx - _PAD
    region = level[y0:y0 + PATCH + 2 * _PAD, x0:x0 + PATCH + 2 * _PAD]
    shot = Shot.draw(rng)
    phone = simulate_phone(region, (y0, x0), (fh, fw), profile, shot, rng, margin=_PAD)
    return SamplePair(index=index, phone_jpeg=jpeg_bytes(phone, shot.jpeg_quality),
                      dslr_jpeg=jpeg_bytes(dslr, DSLR_JPEG_QUALITY), dx=dx, dy=dy)


def sample_pairs(split: str, count: int, seed: int, start: int = 0) -> Iterator[SamplePair]:
    """Yield ``count`` phone/DSLR pairs of 100x100 JPEG patches for split 'train' or 'test',
    indices ``start`` to ``start + count - 1``. Each pair depends on (seed, split, index) only, so
    a range is the same pairs as the same indices of a longer run (workers build ranges)."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    pyramid = _Pyramid(TRAIN_PHOTOS if split == "train" else TEST_PHOTOS)
    profile = phone_profile(seed)
    split_id = 0 if split == "train" else 1
    for index in range(start, start + count):
        rng = np.random.default_rng([seed, split_id, index])
        yield _pair(pyramid, profile, rng, index)


def phone_profile(seed: int) -> PhoneProfile:
    """The dataset's phone camera, the same for both splits and the full-size photos."""
    return PhoneProfile.draw(np.random.default_rng([seed, 7]))


def full_size_photos(seed: int) -> Iterator[tuple[str, bytes]]:
    """The test scenes at full size through the phone camera: (file name, JPEG bytes)."""
    profile = phone_profile(seed)
    for i, name in enumerate(TEST_PHOTOS):
        rng = np.random.default_rng([seed, 2, i])
        photo = bundled_photo(name)
        shot = Shot.draw(rng)
        phone = simulate_phone(photo, (0, 0), photo.shape[:2], profile, shot, rng)
        yield f"{i}.jpg", jpeg_bytes(phone, shot.jpeg_quality)


def _write(zf: zipfile.ZipFile, name: str, payload: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
    info.compress_type = zipfile.ZIP_STORED  # JPEGs do not compress further
    info.external_attr = 0o644 << 16
    zf.writestr(info, payload)


def write_sample_zip(dest: Path, phone: str, train_pairs: int, test_pairs: int, seed: int,
                     on_pair: Callable[[], None] | None = None) -> dict[str, list[tuple[int, int]]]:
    """Write the sample as a DPED-layout zip (``dped/<phone>/...``), atomically.

    Returns the injected shifts per split, ``{'train': [(dx, dy), ...], 'test': [...]}``, which
    are the ground truth the alignment should recover. ``on_pair`` is called after each pair
    (progress reporting).
    """
    root = f"dped/{phone}"
    layout = {"train": f"{root}/training_data", "test": f"{root}/test_data/patches"}
    counts = {"train": train_pairs, "test": test_pairs}
    shifts: dict[str, list[tuple[int, int]]] = {"train": [], "test": []}
    with atomic_path(dest) as tmp, zipfile.ZipFile(tmp, "w") as zf:
        for split, folder in layout.items():
            for pair in sample_pairs(split, counts[split], seed):
                _write(zf, f"{folder}/{phone}/{pair.index}.jpg", pair.phone_jpeg)
                _write(zf, f"{folder}/canon/{pair.index}.jpg", pair.dslr_jpeg)
                shifts[split].append((pair.dx, pair.dy))
                if on_pair is not None:
                    on_pair()
        for name, payload in full_size_photos(seed):
            _write(zf, f"{root}/test_data/full_size_test_images/{name}", payload)
    return shifts
