"""The embedded sample: a small DPED-layout dataset built offline from photos bundled with packages.

DPED itself cannot be downloaded at run time everywhere (its official host answers 403), so the
default pipeline runs on a stand-in made from real colour photos that ship inside scikit-image.
Each photo is the DSLR side; the phone side is the same scene through a simulated small-sensor
camera (tone compression and lower dynamic range, colour cast, desaturation, signal-dependent
noise, slight blur, vignetting, JPEG compression) with a random per-pair translation of up to
+-2 pixels, the residual misalignment DPED's pairs have too.

One ``PhoneProfile`` is drawn per dataset (a phone model has one image pipeline); exposure, noise
level (ISO) and JPEG quality vary per shot. Everything is drawn from ``numpy.random.Generator``
seeded by (seed, split, index), so the archive is identical byte for byte for the same seed.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

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
        return cls(exposure=float(2.0 ** rng.uniform(-0.35, 0.35)),
                   iso=float(2.0 ** rng.uniform(-1.0, 1.0)),
                   jpeg_quality=int(rng.integers(72, 91)))


def simulate_phone(region: np.ndarray, origin: tuple[int, int], frame: tuple[int, int],
                   profile: PhoneProfile, shot: Shot, rng: np.random.Generator) -> np.ndarray:
    """Render a region of a scene as the simulated phone would have recorded it.

    region: (h, w, 3) uint8, a window of a frame of size ``frame`` = (H, W) whose top-left corner
    sits at ``origin`` = (y, x); the position drives the vignetting. Returns (h, w, 3) uint8
    (before JPEG compression).
    """
    x = region.astype(np.float32) / 255.0
    x = gaussian_filter(x, sigma=(profile.blur_sigma, profile.blur_sigma, 0), mode="nearest")
    x = x * shot.exposure * np.asarray(profile.cast, dtype=np.float32)
    # Vignetting: brightness falls off with the squared distance from the frame centre.
    h, w = region.shape[:2]
    fh, fw = frame
    yy = (np.arange(h, dtype=np.float32) + origin[0] - (fh - 1) / 2) / (fh / 2)
    xx = (np.arange(w, dtype=np.float32) + origin[1] - (fw - 1) / 2) / (fw / 2)
    r2 = (yy[:, None] ** 2 + xx[None, :] ** 2) / 2.0
    x = x * (1.0 - profile.vignetting * r2)[..., None]
    luma = x @ LUMA_BT601
    x = luma[..., None] + (x - luma[..., None]) * (1.0 - profile.desaturation)
    # Sensor saturation (highlights clip), then a compressive tone curve into a narrower range.
    x = np.clip(x, 0.0, 1.0) ** profile.gamma
    x = profile.black + (profile.white - profile.black) * x
    variance = shot.iso * (profile.noise_gain * x + profile.noise_floor)
    x = x + rng.standard_normal(x.shape, dtype=np.float32) * np.sqrt(variance)
    return float_to_uint8(x)


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
    phone = simulate_phone(region, (y0, x0), (fh, fw), profile, shot, rng)
    phone = np.ascontiguousarray(phone[_PAD:_PAD + PATCH, _PAD:_PAD + PATCH])
    return SamplePair(index=index, phone_jpeg=jpeg_bytes(phone, shot.jpeg_quality),
                      dslr_jpeg=jpeg_bytes(dslr, DSLR_JPEG_QUALITY), dx=dx, dy=dy)


def sample_pairs(split: str, count: int, seed: int) -> Iterator[SamplePair]:
    """Yield ``count`` phone/DSLR pairs of 100x100 JPEG patches for split 'train' or 'test'."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    pyramid = _Pyramid(TRAIN_PHOTOS if split == "train" else TEST_PHOTOS)
    profile = phone_profile(seed)
    split_id = 0 if split == "train" else 1
    for index in range(count):
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
