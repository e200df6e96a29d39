import dataclasses
import hashlib
import io
import os
import platform
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from PIL import Image

from gan.data import sample
from gan.data.dped import DpedSource, find_layout
from tests.conftest import ROOT, temporaries


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




def test_a_margin_gives_the_middle_of_the_full_rendering(profile):
    region = np.random.default_rng(1).integers(0, 256, (60, 70, 3), dtype=np.uint8)
    shot = sample.Shot(exposure=1.2, iso=1.5, jpeg_quality=80)
    full = sample.simulate_phone(region, (30, 40), (300, 400), profile, shot,
                                 np.random.default_rng(2))
    for margin in (1, 4, 6):  # inside and beyond the blur's reach
        middle = sample.simulate_phone(region, (30, 40), (300, 400), profile, shot,
                                       np.random.default_rng(2), margin=margin)
        np.testing.assert_array_equal(middle, full[margin:-margin, margin:-margin])


def test_the_exactly_rounded_math_is_the_usual_math():
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(3)
    x = rng.random((40, 50, 3))
    for sigma in (0.6, 0.75, 0.9):
        np.testing.assert_allclose(sample.blur(x, sigma),
                                   gaussian_filter(x, sigma=(sigma, sigma, 0), mode="nearest"),
                                   rtol=0, atol=1e-12)
    t = np.concatenate([rng.random(10000), [0.0, 1.0, 2.0 ** -20]])
    for gamma in (1.15, 1.35):
        np.testing.assert_allclose(sample.tone_curve(t, gamma), t ** gamma, rtol=0, atol=5e-6)
    u = rng.uniform(-1, 1, 100)
    np.testing.assert_allclose([sample.exp2(v) for v in u], 2.0 ** u, rtol=1e-15)


# Same bytes on every CPU (issue 12). The sample is built in subprocesses, each emulating another
# CPU: numpy without its AVX512 (then also without its AVX2) kernels (NPY_DISABLE_CPU_FEATURES),
# OpenBLAS with other cores' kernels (OPENBLAS_CORETYPE), glibc's libm without its FMA/AVX2
# variants (GLIBC_TUNABLES) and libjpeg-turbo without SIMD (JSIMD_FORCENONE). Each reports which
# numpy features and OpenBLAS core it ran with, so an emulation that silently did nothing (a
# feature renamed by a numpy upgrade) fails instead of passing vacuously.
_BUILD = """
import hashlib, sys
from pathlib import Path

import numpy as np
import threadpoolctl

from gan.data import sample

try:
    from numpy._core import _multiarray_umath as umath
except ImportError:  # numpy 1.x
    from numpy.core import _multiarray_umath as umath

pixels = hashlib.sha256()  # every image before JPEG compression: a flipped pixel JPEG hides too
encode = sample.jpeg_bytes


def recording(rgb, quality):
    pixels.update(np.ascontiguousarray(rgb).tobytes())
    return encode(rgb, quality)


sample.jpeg_bytes = recording
dest = Path(sys.argv[1])
sample.write_sample_zip(dest, "iphone", int(sys.argv[2]), int(sys.argv[3]), seed=int(sys.argv[4]))
active = sorted(f for f in umath.__cpu_dispatch__ if umath.__cpu_features__.get(f))
cores = [i.get("architecture") for i in threadpoolctl.threadpool_info()
         if i.get("internal_api") == "openblas"]
print(hashlib.sha256(dest.read_bytes()).hexdigest(), pixels.hexdigest(), ",".join(active),
      cores[0] if cores else "-")
"""
_EMULATION_VARIABLES = ("NPY_DISABLE_CPU_FEATURES", "NPY_ENABLE_CPU_FEATURES",
                        "OPENBLAS_CORETYPE", "GLIBC_TUNABLES", "JSIMD_FORCENONE",
                        "JSIMD_FORCESSE2", "JSIMD_FORCEAVX2")


def _numpy_dispatch() -> tuple[list[str], dict[str, bool]]:
    try:
        from numpy._core import _multiarray_umath as umath
    except ImportError:  # numpy 1.x
        from numpy.core import _multiarray_umath as umath
    return list(umath.__cpu_dispatch__), dict(umath.__cpu_features__)


def _openblas_core() -> str | None:
    import threadpoolctl

    cores = [i.get("architecture") for i in threadpoolctl.threadpool_info()
             if i.get("internal_api") == "openblas"]
    return cores[0] if cores else None


def cpu_emulations() -> dict[str, dict[str, str]]:
    """Environments that make this machine compute like another CPU, those that change anything
    here: {name: variables}."""
    dispatch, features = _numpy_dispatch()
    have = [f for f in dispatch if features.get(f)]  # numpy's optional kernels this CPU runs
    emulations: dict[str, dict[str, str]] = {}
    # numpy 2.4 names AVX512 "X86_V4" (and AVX512_*), AVX2 "X86_V3"; older ones AVX512F, AVX2..
    avx512 = [f for f in have if f.startswith("AVX512") or f == "X86_V4"]
    if avx512:
        emulations["numpy without AVX512"] = {"NPY_DISABLE_CPU_FEATURES": " ".join(avx512)}
    if have and set(have) != set(avx512):
        emulations["numpy without AVX2 and AVX512 (baseline only)"] = {
            "NPY_DISABLE_CPU_FEATURES": " ".join(have)}
    if platform.machine().lower() in ("x86_64", "amd64"):
        native = _openblas_core()
        cores = ["Prescott", "Sandybridge"] + (["Haswell"] if features.get("AVX2") else [])
        for core in cores:
            if native and core.lower() != native.lower():
                emulations[f"OpenBLAS {core} kernels"] = {"OPENBLAS_CORETYPE": core}
        if sys.platform.startswith("linux"):
            emulations["libm without AVX512, AVX2, FMA"] = {
                "GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX512F,-AVX2,-FMA,-AVX"}
    emulations["libjpeg-turbo without SIMD"] = {"JSIMD_FORCENONE": "1"}
    return emulations


def _build_elsewhere(dest, variables: dict[str, str], counts=(48, 12),
                     seed=5) -> subprocess.Popen:
    """Start building a small sample in a subprocess with ``variables`` set (and any emulation
    variables of this environment removed). Seed 5 at this size: the sample of the code before
    issue 12 already had other zip bytes under each numpy and OpenBLAS emulation here."""
    env = {k: v for k, v in os.environ.items() if k not in _EMULATION_VARIABLES}
    env.update(variables)
    return subprocess.Popen([sys.executable, "-c", _BUILD, str(dest), *map(str, counts), str(seed)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


@pytest.mark.slow
def test_the_sample_has_the_same_bytes_on_every_cpu(tmp_path):
    runs = {"this CPU": {}, **cpu_emulations()}
    assert len(runs) >= 3, runs  # at least the libjpeg one and something of numpy or OpenBLAS
    results: dict[str, list[str]] = {}
    names = list(runs)
    for start in range(0, len(names), 2):  # two at a time: the machine has 2 cores
        batch = {n: _build_elsewhere(tmp_path / f"{start + i}.zip", runs[n])
                 for i, n in enumerate(names[start:start + 2])}
        for name, proc in batch.items():
            out, err = proc.communicate(timeout=300)
            assert proc.returncode == 0, f"{name}: {err[-2000:]}"
            results[name] = out.strip().splitlines()[-1].split()
    zip_sha, pixel_sha, _, core = results["this CPU"]
    differ = []
    for name, variables in runs.items():
        got = results[name]
        # The emulation took effect: fewer numpy kernels or another OpenBLAS core.
        if "NPY_DISABLE_CPU_FEATURES" in variables:
            assert set(variables["NPY_DISABLE_CPU_FEATURES"].split()).isdisjoint(
                got[2].split(",")), f"{name}: numpy still runs {got[2]}"
        if "OPENBLAS_CORETYPE" in variables:
            assert got[3] != core, f"{name}: OpenBLAS still runs {core} kernels"
        what = [w for w, same in (("zip", got[0] == zip_sha), ("pixels", got[1] == pixel_sha))
                if not same]
        if what:
            differ.append(f"{name} ({' '.join(f'{k}={v}' for k, v in variables.items())}): "
                          f"other {' and '.join(what)} (zip sha256 {got[0][:12]}.., "
                          f"this CPU's {zip_sha[:12]}..)")
    assert not differ, "the sample depends on the CPU:\n" + "\n".join(differ)
