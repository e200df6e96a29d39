"""gan/deploy/photo_io/: real photos in and out (formats, modes, 16 bits, EXIF, ICC, bad files, atomic).

Inputs are made here with Pillow (or tifffile / imagecodecs for 16-bit colour, which Pillow cannot
write) and outputs are checked with those independent readers where they can tell, so a bug in
photo_io's reader cannot hide one in its writer.
"""

from __future__ import annotations

import builtins
import io
import itertools
import re
import struct
import sys
import warnings
import zlib
from pathlib import Path

import imagecodecs
import numpy as np
import pytest
import tifffile
from PIL import Image, ImageCms, ImageOps

from gan.deploy import photo_io
from gan.deploy.photo_io import Photo, PhotoError, output_format, read_photo, write_photo
from gan.deploy.photo_io import formats, opening  # for the private helpers tested below

# photo_io's own warnings (alpha dropped, EXIF damaged...) fail a test that does not expect them
pytestmark = pytest.mark.filterwarnings("error::UserWarning")

H, W = 24, 32  # small, and multiples of 8 so JPEG blocks stay aligned when rotated


# ------------------------------------------------------------------------------------------
# helpers


def smooth_rgb(height: int = H, width: int = W) -> np.ndarray:
    """A smooth, asymmetric colour image (H, W, 3) uint8: lossy codecs keep it at high PSNR."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    rgb = np.stack([x / width, y / height, 0.5 + 0.4 * np.sin(x / 5 + y / 7)], axis=-1)
    return np.round(rgb * 220 + 20).astype(np.uint8)


def random_alpha(height: int = H, width: int = W, dtype=np.uint8, seed: int = 1) -> np.ndarray:
    info = np.iinfo(dtype)
    return np.random.default_rng(seed).integers(0, info.max, (height, width), dtype=dtype,
                                                endpoint=True)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def as8(rgb: np.ndarray) -> np.ndarray:
    return np.round(rgb * 255).astype(np.uint8)


def as16(rgb: np.ndarray) -> np.ndarray:
    return np.round(rgb * 65535).astype(np.uint16)


def pillow_array(path: Path) -> tuple[str, np.ndarray]:
    with Image.open(path) as im:
        return im.mode, np.asarray(im)


def srgb_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def is_srgb(icc: bytes | None) -> bool:
    """Pillow's built-in sRGB profile (compared by content: its header carries a timestamp)."""
    profile = ImageCms.ImageCmsProfile(io.BytesIO(icc)).profile
    return (profile.xcolor_space, profile.profile_description) == ("RGB ", "sRGB built-in")


def exif_with(orientation: int | None = None) -> Image.Exif:
    """Camera EXIF; pass .tobytes() to save(): Pillow's TIFF writer drops sub-IFDs of an Exif."""
    exif = Image.Exif()
    exif[271] = "Canon"
    exif[272] = "EOS 5D Mark IV"
    exif[306] = "2024:05:06 07:08:09"
    if orientation is not None:
        exif[274] = orientation
    exif.get_ifd(0x8769)[33434] = 0.008  # ExposureTime, in the Exif sub-IFD
    return exif


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG that claims a huge size but holds no pixels: cheap to make, fails to decode."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr)
                     + png_chunk(b"IDAT", zlib.compress(b"\x00" * 10)) + png_chunk(b"IEND", b""))
    return path


# ------------------------------------------------------------------------------------------
# suffixes


def test_output_format_follows_the_suffix_case_insensitively(tmp_path: Path) -> None:
    assert output_format(tmp_path / "a.JPG") == "JPEG"
    assert output_format(tmp_path / "a.jpeg") == "JPEG"
    assert output_format(tmp_path / "a.Tiff") == "TIFF"
    assert {output_format(Path("x" + s)) for s in photo_io.SUFFIXES} == {
        "JPEG", "PNG", "TIFF", "WEBP", "BMP", "HEIF", "AVIF"}
    assert output_format(tmp_path / "IMG_0001.HEIC") == "HEIF"
    assert output_format(tmp_path / "a.heif") == "HEIF"
    assert output_format(tmp_path / "a.avif") == "AVIF"
    for name in ("out.gif", "out"):
        with pytest.raises(PhotoError, match=name):
            output_format(tmp_path / name)


# ------------------------------------------------------------------------------------------
# every format x mode, in and out

SOURCE = smooth_rgb()
ALPHA = random_alpha()
GRAY = np.asarray(Image.fromarray(SOURCE).convert("L"))
GRAY16 = (GRAY.astype(np.uint16) * 257) ^ np.uint16(0x5A)  # the low byte differs from the high


def make_input(path: Path, mode: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Write a test image of ``mode`` to ``path`` with Pillow: (expected RGB uint, alpha)."""
    fmt = photo_io.SUFFIXES[path.suffix]
    options = {"quality": 100} if fmt in ("JPEG", "WEBP") else {}
    if fmt == "WEBP":
        options.update(lossless=True, exact=True)  # exact: keep colour under alpha 0
    if mode == "RGB":
        Image.fromarray(SOURCE).save(path, **options)
        return SOURCE, None
    if mode == "RGBA":
        Image.fromarray(np.dstack([SOURCE, ALPHA])).save(path, **options)
        return SOURCE, ALPHA
    if mode == "L":
        Image.fromarray(GRAY).save(path, **options)
        return np.dstack([GRAY] * 3), None
    if mode == "LA":
        Image.fromarray(np.dstack([GRAY, ALPHA])).save(path, **options)
        return np.dstack([GRAY] * 3), ALPHA
    if mode == "I;16":
        Image.fromarray(GRAY16).save(path, **options)
        return np.dstack([GRAY16] * 3), None
    if mode == "P":
        palettised = Image.fromarray(SOURCE).quantize(64)
        palettised.save(path, **options)
        return np.asarray(palettised.convert("RGB")), None
    raise AssertionError(mode)


INPUTS = [
    ("RGB", ".jpg"), ("RGB", ".png"), ("RGB", ".tif"), ("RGB", ".webp"), ("RGB", ".bmp"),
    ("L", ".jpg"), ("L", ".png"), ("L", ".tif"), ("L", ".bmp"),
    ("RGBA", ".png"), ("RGBA", ".tif"), ("RGBA", ".webp"),
    ("LA", ".png"), ("LA", ".tif"),
    ("I;16", ".png"), ("I;16", ".tif"),
    ("P", ".png"), ("P", ".bmp"), ("P", ".tif"),
]
OUTPUTS = [".png", ".tif", ".jpg", ".webp", ".bmp"]


@pytest.mark.parametrize(("mode", "suffix"), INPUTS, ids=[m + s for m, s in INPUTS])
def test_read_then_write_every_format(tmp_path: Path, mode: str, suffix: str) -> None:
    source = tmp_path / f"in{suffix}"
    expected, alpha = make_input(source, mode)
    photo = read_photo(source)

    bits = 16 if mode == "I;16" else 8
    assert (photo.format, photo.mode, photo.bits) == (photo_io.SUFFIXES[suffix], mode, bits)
    assert photo.grayscale == (mode in ("L", "LA", "I;16"))
    assert photo.rgb.shape == (H, W, 3) and photo.rgb.dtype == np.float32
    assert 0 <= photo.rgb.min() and photo.rgb.max() <= 1
    scale = 65535 if bits == 16 else 255
    if suffix == ".jpg":
        assert psnr(photo.rgb, expected / scale) > 40  # JPEG at quality 100
    else:
        assert np.array_equal(np.round(photo.rgb * scale), expected)
    if alpha is None:
        assert photo.alpha is None
    else:
        assert photo.alpha is not None and np.array_equal(photo.alpha, alpha)

    for out_suffix in OUTPUTS:
        out = tmp_path / f"out{out_suffix}"
        fmt = photo_io.SUFFIXES[out_suffix]
        drops_alpha = alpha is not None and fmt in ("JPEG", "BMP")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            write_photo(out, photo.rgb, like=photo, quality=95)
        assert [str(w.message) for w in caught if out.name in str(w.message)] == (
            [f"{out}: {fmt} cannot store transparency; the alpha channel is dropped"]
            if drops_alpha else [])
        check_output(out, photo, fmt)


def check_output(out: Path, photo: Photo, fmt: str) -> None:
    """The written file has the format and mode Pillow should see, and photo's pixels and alpha."""
    with Image.open(out) as im:
        assert im.format == fmt
        out_mode = im.mode
    sixteen = photo.bits == 16 and fmt in ("PNG", "TIFF")
    gray = photo.grayscale and fmt != "WEBP"
    keeps_alpha = photo.alpha is not None and fmt in ("PNG", "TIFF", "WEBP")
    expected_mode = ("I;16" if sixteen else "L") if gray else "RGB"
    if keeps_alpha:
        expected_mode = {"L": "LA", "RGB": "RGBA"}[expected_mode]
    assert out_mode == expected_mode

    back = read_photo(out)
    assert back.bits == (16 if sixteen else 8)
    assert back.grayscale == gray
    if fmt in ("JPEG", "WEBP"):
        assert psnr(back.rgb, photo.rgb) > 30
    else:  # lossless: the quantised values come back exactly
        scale = 65535 if sixteen else 255
        if photo.bits == 16 and not sixteen:
            assert np.abs(back.rgb - photo.rgb).max() <= 0.5 / 255 + 1e-6
        else:
            assert np.array_equal(np.round(back.rgb * scale), np.round(photo.rgb * scale))
    if keeps_alpha:
        assert back.alpha is not None and np.array_equal(back.alpha, photo.alpha)
    else:
        assert back.alpha is None


# ------------------------------------------------------------------------------------------
# 16 bits


def rgb16(channels: int = 3) -> np.ndarray:
    """(H, W, channels) uint16 whose low bytes carry information of their own."""
    rng = np.random.default_rng(7)
    high = np.repeat(smooth_rgb()[..., :1], channels, axis=2).astype(np.uint16) << 8
    return high | rng.integers(0, 256, (H, W, channels), dtype=np.uint16)


@pytest.mark.parametrize("channels", [3, 4])
@pytest.mark.parametrize("writer", ["png", "tiff-lzw", "tiff-deflate"])
def test_sixteen_bit_colour_keeps_sixteen_bits(tmp_path: Path, writer: str, channels: int) -> None:
    data = rgb16(channels)
    if writer == "png":
        source = tmp_path / "in.png"
        source.write_bytes(imagecodecs.png_encode(data))
    else:
        source = tmp_path / "in.tif"
        tifffile.imwrite(source, data, photometric="rgb", predictor=True,
                         compression="lzw" if writer == "tiff-lzw" else "zlib",
                         extrasamples=("unassalpha",) if channels == 4 else None)
    photo = read_photo(source)
    assert photo.bits == 16 and not photo.grayscale
    assert np.array_equal(as16(photo.rgb), data[..., :3])
    if channels == 4:
        assert photo.alpha is not None and photo.alpha.dtype == np.uint16
        assert np.array_equal(photo.alpha, data[..., 3])

    png, tif = tmp_path / "out.png", tmp_path / "out.tif"
    write_photo(png, photo.rgb, like=photo)
    write_photo(tif, photo.rgb, like=photo)
    assert np.array_equal(imagecodecs.png_decode(png.read_bytes()), data)
    assert np.array_equal(tifffile.imread(tif), data)

    jpg = tmp_path / "out.jpg"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # alpha dropped: tested elsewhere
        write_photo(jpg, photo.rgb, like=photo)
    mode, pixels = pillow_array(jpg)
    assert mode == "RGB" and psnr(pixels / 255, data[..., :3] / 65535) > 30


def test_thirty_two_bit_integer_gray_is_read_as_sixteen_bits(tmp_path: Path) -> None:
    source = tmp_path / "in.tif"
    Image.fromarray(GRAY16.astype(np.int32)).save(source)
    with Image.open(source) as im:
        assert im.mode == "I"
    photo = read_photo(source)
    assert photo.bits == 16 and photo.grayscale and photo.mode == "I"
    assert np.array_equal(as16(photo.rgb[..., 0]), GRAY16)


def test_sixteen_bit_gray_with_alpha_png(tmp_path: Path) -> None:
    data = rgb16(2)
    source = tmp_path / "in.png"
    source.write_bytes(imagecodecs.png_encode(data))
    photo = read_photo(source)
    assert photo.bits == 16 and photo.grayscale
    assert np.array_equal(as16(photo.rgb[..., 1]), data[..., 0])
    assert np.array_equal(photo.alpha, data[..., 1])
    out = tmp_path / "out.png"
    write_photo(out, photo.rgb, like=photo)
    assert np.array_equal(imagecodecs.png_decode(out.read_bytes()), data)


def test_sixteen_bit_associated_alpha_is_divided_out(tmp_path: Path) -> None:
    colour = np.full((H, W, 3), 40000, dtype=np.uint16)
    alpha = np.full((H, W), 32768, dtype=np.uint16)
    premultiplied = np.round(colour * (alpha[..., None] / 65535)).astype(np.uint16)
    source = tmp_path / "in.tif"
    tifffile.imwrite(source, np.dstack([premultiplied, alpha]), photometric="rgb",
                     extrasamples=("assocalpha",))
    photo = read_photo(source)
    assert np.allclose(photo.rgb, 40000 / 65535, atol=1e-4)
    assert np.array_equal(photo.alpha, alpha)


# ------------------------------------------------------------------------------------------
# grayscale output, clipping


def test_grayscale_input_is_written_as_the_luma_of_the_enhanced_rgb(tmp_path: Path) -> None:
    source = tmp_path / "in.png"
    Image.fromarray(GRAY).save(source)
    photo = read_photo(source)
    enhanced = SOURCE / 255.0  # the "model" added colour
    out = tmp_path / "out.png"
    write_photo(out, enhanced, like=photo)
    mode, pixels = pillow_array(out)
    expected = np.asarray(Image.fromarray(SOURCE).convert("L")).astype(int)
    assert mode == "L" and np.abs(pixels.astype(int) - expected).max() <= 1


def test_values_are_clipped_and_nan_becomes_zero(tmp_path: Path) -> None:
    source = tmp_path / "in.png"
    Image.fromarray(SOURCE).save(source)
    photo = read_photo(source)
    rgb = photo.rgb.astype(np.float64)
    rgb[0, 0] = [-0.5, 1.5, np.nan]
    rgb[0, 1] = [0.5, -np.inf, np.inf]
    out = tmp_path / "out.png"
    write_photo(out, rgb, like=photo)
    pixels = pillow_array(out)[1]
    assert pixels[0, 0].tolist() == [0, 255, 0]
    assert pixels[0, 1].tolist() == [128, 0, 255]


# ------------------------------------------------------------------------------------------
# EXIF orientation and carried metadata

# How to store an upright image so that orientation tag o turns it upright again.
STORE = {1: None, 2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
         4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
         6: Image.Transpose.ROTATE_90, 7: Image.Transpose.TRANSVERSE,
         8: Image.Transpose.ROTATE_270}


def blocky() -> np.ndarray:
    """(H, W, 3): 8x8 blocks of distinct colours, no symmetry; JPEG at q100 keeps it close."""
    rng = np.random.default_rng(3)
    colours = rng.integers(0, 256, (H // 8, W // 8, 3), dtype=np.uint8)
    return np.repeat(np.repeat(colours, 8, axis=0), 8, axis=1)


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("suffix", [".jpg", ".png", ".tif", ".webp"])
def test_orientation_is_applied_and_reset(tmp_path: Path, suffix: str, orientation: int) -> None:
    upright = Image.fromarray(blocky())
    stored = upright if STORE[orientation] is None else upright.transpose(STORE[orientation])
    source = tmp_path / f"in{suffix}"
    options = ({"quality": 100, "subsampling": 0} if suffix == ".jpg"
               else {"lossless": True} if suffix == ".webp" else {})
    stored.save(source, exif=exif_with(orientation).tobytes(), **options)
    tolerance = 12 if suffix == ".jpg" else 0  # JPEG at quality 100, 4:4:4
    with Image.open(source) as check:  # the test's own construction, checked by Pillow
        turned = np.asarray(ImageOps.exif_transpose(check)).astype(int)
    assert np.abs(turned - blocky()).max() <= tolerance

    photo = read_photo(source)
    assert photo.rgb.shape == (H, W, 3)
    assert np.abs(as8(photo.rgb).astype(int) - blocky()).max() <= tolerance

    out = tmp_path / "out.jpg"
    write_photo(out, photo.rgb, like=photo)
    with Image.open(out) as im:
        exif = im.getexif()
        assert exif.get(274) == 1
        assert (exif.get(271), exif.get(272)) == ("Canon", "EOS 5D Mark IV")
        assert im.size == (W, H)  # stored upright


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_orientation_of_sixteen_bit_files(tmp_path: Path, suffix: str, orientation: int) -> None:
    upright = rgb16(3)
    # stored as Pillow would turn it, one 16-bit channel at a time (Pillow has no 16-bit RGB)
    stored = np.dstack([
        np.asarray(Image.fromarray(np.ascontiguousarray(upright[..., c])).transpose(
            STORE[orientation]) if STORE[orientation] is not None else upright[..., c])
        for c in range(3)])
    source = tmp_path / f"in{suffix}"
    if suffix == ".png":  # imagecodecs writes no EXIF: put an eXIf chunk after IHDR
        encoded = imagecodecs.png_encode(stored)
        exif = exif_with(orientation).tobytes()[6:]
        source.write_bytes(encoded[:33] + png_chunk(b"eXIf", exif) + encoded[33:])
    else:
        tifffile.imwrite(source, stored, photometric="rgb",
                         extratags=[(274, "H", 1, orientation, True)])
    photo = read_photo(source)
    assert photo.bits == 16 and np.array_equal(as16(photo.rgb), upright)
    out = tmp_path / f"out{suffix}"
    write_photo(out, photo.rgb, like=photo)
    with Image.open(out) as im:
        assert im.getexif().get(274, 1) == 1
    assert np.array_equal(as16(read_photo(out).rgb), upright)


def test_tiff_exif_is_readable_by_tifffile_too(tmp_path: Path) -> None:
    source = tmp_path / "in.jpg"
    exif = exif_with(orientation=6)
    exif.get_ifd(0x8825)[2] = (52.0, 31.0, 0.0)  # GPSLatitude
    Image.fromarray(SOURCE).save(source, exif=exif.tobytes())
    photo = read_photo(source)
    out = tmp_path / "out.tif"
    write_photo(out, photo.rgb, like=photo)
    with tifffile.TiffFile(out) as tif:
        tags = tif.pages[0].tags
        assert tags["Make"].value == "Canon" and tags["Orientation"].value == 1
        exposure = tags["ExifTag"].value["ExposureTime"]  # a float or a (num, den) pair
        assert (exposure if isinstance(exposure, float) else exposure[0] / exposure[1]) == (
            pytest.approx(0.008))
        assert tags["GPSTag"].value["GPSLatitude"][:2] == (52, 1)
        assert np.array_equal(tif.asarray(), as8(photo.rgb))


@pytest.mark.parametrize("out_suffix", [".jpg", ".png", ".tif", ".webp"])
@pytest.mark.parametrize("in_suffix", [".jpg", ".tif"])
def test_exif_is_carried_to_every_format(tmp_path: Path, in_suffix: str, out_suffix: str) -> None:
    source = tmp_path / f"in{in_suffix}"
    Image.fromarray(SOURCE).save(source, exif=exif_with(orientation=1).tobytes())
    photo = read_photo(source)
    out = tmp_path / f"out{out_suffix}"
    write_photo(out, photo.rgb, like=photo)
    with Image.open(out) as im:
        exif = im.getexif()
        assert exif.get(271) == "Canon"
        assert exif.get(272) == "EOS 5D Mark IV"
        assert exif.get(306) == "2024:05:06 07:08:09"
        assert exif.get(274) == 1
        assert float(exif.get_ifd(0x8769)[33434]) == pytest.approx(0.008)


def test_jpeg_exif_is_carried_byte_for_byte_but_the_orientation(tmp_path: Path) -> None:
    source = tmp_path / "in.jpg"
    Image.fromarray(SOURCE).save(source, exif=exif_with(orientation=3).tobytes())
    with Image.open(source) as im:
        original = im.info["exif"]
    photo = read_photo(source)
    assert photo.exif is not None and len(photo.exif) == len(original)
    differing = [i for i, (a, b) in enumerate(zip(photo.exif, original)) if a != b]
    assert len(differing) == 1  # the low byte of Orientation: 3 -> 1


def test_exif_too_long_for_jpeg_is_dropped_with_a_warning(tmp_path: Path) -> None:
    source = tmp_path / "in.png"
    exif = exif_with(orientation=1)
    exif.get_ifd(0x8769)[0x9286] = b"ASCII\0\0\0" + b"x" * 70_000  # UserComment
    Image.fromarray(SOURCE).save(source, exif=exif.tobytes())
    photo = read_photo(source)
    assert photo.exif is not None and len(photo.exif) > 70_000
    out = tmp_path / "out.jpg"
    with pytest.warns(UserWarning, match="out.jpg.*EXIF.*does not fit"):
        write_photo(out, photo.rgb, like=photo)
    with Image.open(out) as im:
        assert "exif" not in im.info


def test_sixteen_bit_outputs_carry_icc_and_exif(tmp_path: Path) -> None:
    source = tmp_path / "in.png"
    source.write_bytes(imagecodecs.png_encode(rgb16(3)))
    photo = read_photo(source)
    photo.icc_profile = srgb_icc()
    photo.exif = exif_with(orientation=1).tobytes()
    for suffix in (".png", ".tif"):
        out = tmp_path / f"out{suffix}"
        write_photo(out, photo.rgb, like=photo)
        with Image.open(out) as im:
            assert im.info.get("icc_profile") == photo.icc_profile
            assert im.getexif().get(272) == "EOS 5D Mark IV"
        back = read_photo(out)
        assert back.bits == 16 and back.icc_profile == photo.icc_profile
        assert back.exif is not None and np.array_equal(as16(back.rgb), as16(photo.rgb))


@pytest.mark.parametrize("out_suffix", [".jpg", ".png", ".tif", ".webp", ".bmp"])
@pytest.mark.parametrize("in_suffix", [".jpg", ".png", ".tif", ".webp"])
def test_icc_profile_is_carried(tmp_path: Path, in_suffix: str, out_suffix: str) -> None:
    icc = srgb_icc()
    source = tmp_path / f"in{in_suffix}"
    Image.fromarray(SOURCE).save(source, icc_profile=icc)
    photo = read_photo(source)
    assert photo.icc_profile == icc
    out = tmp_path / f"out{out_suffix}"
    write_photo(out, photo.rgb, like=photo)
    with Image.open(out) as im:
        assert im.info.get("icc_profile") == (None if out_suffix == ".bmp" else icc)


def test_gray_profile_is_not_put_on_rgb_webp(tmp_path: Path) -> None:
    source = tmp_path / "in.png"
    Image.fromarray(GRAY).save(source)
    photo = read_photo(source)
    photo.icc_profile = b"\0" * 16 + b"GRAY" + b"\0" * 108  # only the colour space is looked at
    out = tmp_path / "out.webp"
    write_photo(out, photo.rgb, like=photo)
    with Image.open(out) as im:
        assert im.mode == "RGB" and "icc_profile" not in im.info


# ------------------------------------------------------------------------------------------
# CMYK


def s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def swapped_cmyk_profile() -> bytes:
    """A minimal ICC v2 CMYK printer profile whose cyan ink prints magenta and vice versa.

    One lut8 A2B0 tag (CMYK -> Lab, a 2-point grid) plus the required desc/wtpt/cprt tags.
    """
    from skimage.color import rgb2lab

    clut = b""
    for c, m, y, k in itertools.product((0, 1), repeat=4):  # first channel varies slowest
        rgb = np.array([(1 - m) * (1 - k), (1 - c) * (1 - k), (1 - y) * (1 - k)], dtype=float)
        lightness, a, b = rgb2lab(rgb[None, None])[0, 0]
        clut += bytes(int(np.clip(round(v), 0, 255)) for v in (lightness * 2.55, a + 128, b + 128))
    identity = bytes(range(256))
    a2b0 = (b"mft1" + bytes(4) + bytes([4, 3, 2, 0])
            + b"".join(s15(v) for v in (1, 0, 0, 0, 1, 0, 0, 0, 1))
            + identity * 4 + clut + identity * 3)
    text = b"swapped CMYK\0"
    desc = b"desc" + bytes(4) + struct.pack(">I", len(text)) + text + bytes(78)
    wtpt = b"XYZ " + bytes(4) + s15(0.9642) + s15(1.0) + s15(0.8249)
    tags = [(b"desc", desc), (b"wtpt", wtpt), (b"cprt", b"text" + bytes(4) + b"none\0"),
            (b"A2B0", a2b0)]
    offset = 128 + 4 + 12 * len(tags)
    table, data = b"", b""
    for signature, body in tags:
        body += bytes(-len(body) % 4)
        table += signature + struct.pack(">II", offset + len(data), len(body))
        data += body
    header = (struct.pack(">I", offset + len(data)) + bytes(4) + bytes([2, 0x10, 0, 0])
              + b"prtr" + b"CMYK" + b"Lab " + bytes(12) + b"acsp" + bytes(28)
              + s15(0.9642) + s15(1.0) + s15(0.8249))
    return header.ljust(128, b"\0") + struct.pack(">I", len(tags)) + table + data


def cyan_and_white() -> Image.Image:
    cmyk = np.zeros((H, W, 4), dtype=np.uint8)
    cmyk[:, : W // 2, 0] = 255  # left half: full cyan ink; right half: paper white
    return Image.frombytes("CMYK", (W, H), cmyk.tobytes())


@pytest.mark.parametrize("suffix", [".jpg", ".tif"])
def test_cmyk_with_a_profile_goes_through_it_to_srgb(tmp_path: Path, suffix: str) -> None:
    source = tmp_path / f"in{suffix}"
    cyan_and_white().save(source, icc_profile=swapped_cmyk_profile(),
                          **({"quality": 100} if suffix == ".jpg" else {}))
    photo = read_photo(source)
    assert photo.mode == "CMYK" and not photo.grayscale
    assert is_srgb(photo.icc_profile)
    left = photo.rgb[:, : W // 2 - 4].reshape(-1, 3).mean(axis=0)
    right = photo.rgb[:, W // 2 + 4 :].reshape(-1, 3).mean(axis=0)
    assert left[0] > 0.8 and left[1] < 0.3 and left[2] > 0.8  # magenta: the profile was used
    assert right.min() > 0.9
    out = tmp_path / "out.jpg"
    write_photo(out, photo.rgb, like=photo)
    with Image.open(out) as im:
        assert im.mode == "RGB" and im.info["icc_profile"] == photo.icc_profile


@pytest.mark.parametrize("suffix", [".jpg", ".tif"])
def test_cmyk_without_a_profile_uses_pillows_conversion(tmp_path: Path, suffix: str) -> None:
    source = tmp_path / f"in{suffix}"
    cyan_and_white().save(source)
    photo = read_photo(source)
    assert photo.mode == "CMYK" and photo.icc_profile is None
    with Image.open(source) as im:
        expected = np.asarray(im.convert("RGB"))
    assert np.array_equal(as8(photo.rgb), expected)
    assert expected[0, 0].tolist() == [0, 255, 255]  # cyan


# ------------------------------------------------------------------------------------------
# palette and alpha


@pytest.mark.parametrize("partial", [False, True])
def test_palette_with_transparency_becomes_alpha(tmp_path: Path, partial: bool) -> None:
    indices = (np.arange(H * W).reshape(H, W) % 4).astype(np.uint8)
    im = Image.frombytes("P", (W, H), indices.tobytes())
    im.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 9, 9])
    source = tmp_path / "in.png"
    im.save(source, transparency=bytes([255, 128, 0, 255]) if partial else 2)
    photo = read_photo(source)
    assert photo.mode == "P" and photo.alpha is not None
    table = [255, 128, 0, 255] if partial else [255, 255, 0, 255]
    assert np.array_equal(photo.alpha, np.array(table, dtype=np.uint8)[indices])
    assert (as8(photo.rgb[indices == 1]) == [0, 255, 0]).all()  # palette entry 1: green
    out = tmp_path / "out.png"
    write_photo(out, photo.rgb, like=photo)
    mode, pixels = pillow_array(out)
    assert mode == "RGBA" and np.array_equal(pixels[..., 3], photo.alpha)


@pytest.mark.parametrize("suffix", [".jpg", ".bmp"])
def test_alpha_dropped_with_a_warning_naming_the_file(tmp_path: Path, suffix: str) -> None:
    source = tmp_path / "in.png"
    Image.fromarray(np.dstack([SOURCE, ALPHA])).save(source)
    photo = read_photo(source)
    out = tmp_path / f"dropped{suffix}"
    with pytest.warns(UserWarning, match=f"dropped{suffix}.*alpha channel is dropped"):
        write_photo(out, photo.rgb, like=photo)
    assert pillow_array(out)[0] == "RGB"


def test_lossy_webp_keeps_alpha_exactly(tmp_path: Path) -> None:
    source = tmp_path / "in.png"
    Image.fromarray(np.dstack([SOURCE, ALPHA])).save(source)
    photo = read_photo(source)
    out = tmp_path / "out.webp"
    write_photo(out, photo.rgb, like=photo, quality=80)  # lossy colour
    mode, pixels = pillow_array(out)
    assert mode == "RGBA" and np.array_equal(pixels[..., 3], ALPHA)


@pytest.mark.parametrize("suffix, low", [(".jpg", 50), (".webp", 50), (".heic", 30), (".avif", 30)])
def test_quality_sets_the_compression(tmp_path: Path, suffix: str, low: int) -> None:
    source = tmp_path / "in.png"
    Image.fromarray(SOURCE).save(source)
    photo = read_photo(source)
    noisy = np.clip(photo.rgb + np.random.default_rng(0).normal(0, 0.05, photo.rgb.shape), 0, 1)
    sizes = {}
    for quality in (low, 95):
        out = tmp_path / f"q{quality}{suffix}"
        write_photo(out, noisy, like=photo, quality=quality)
        sizes[quality] = out.stat().st_size
    assert sizes[low] < sizes[95]
    with pytest.raises(ValueError, match="quality"):
        write_photo(tmp_path / f"q{suffix}", noisy, like=photo, quality=0)


# HEIC/HEIF (pillow-heif) and AVIF (Pillow's own)


def make_heif_or_avif(path: Path, rgb: np.ndarray = SOURCE, quality: int = 100) -> bytes:
    """An iPhone-like photo stored turned (EXIF orientation 6: turn it clockwise to view), with
    camera EXIF and an sRGB profile, written by pillow-heif (HEIC) or Pillow (AVIF). Returns the
    profile. Upright, it is ``rgb``."""
    import pillow_heif

    pillow_heif.register_heif_opener()
    icc = srgb_icc()
    stored = np.ascontiguousarray(np.rot90(rgb, 1))  # counter-clockwise: viewers turn it back
    Image.fromarray(stored).save(path, exif=exif_with(orientation=6).tobytes(), icc_profile=icc,
                                 quality=quality)
    return icc


def assert_camera_exif(exif: bytes | None) -> None:
    parsed = Image.Exif()
    parsed.load(exif)
    assert parsed.get(274, 1) == 1  # reset (Pillow's AVIF writer moves it out of the EXIF)
    assert (parsed.get(271), parsed.get(272), parsed.get(306)) == (
        "Canon", "EOS 5D Mark IV", "2024:05:06 07:08:09")
    assert float(parsed.get_ifd(0x8769)[33434]) == pytest.approx(0.008)


@pytest.mark.parametrize("out_suffix", [".heic", ".avif", ".jpg"])
@pytest.mark.parametrize("in_suffix", [".heic", ".avif"])
def test_heic_and_avif_round_trip(tmp_path: Path, in_suffix: str, out_suffix: str) -> None:
    source = tmp_path / f"IMG_0001{in_suffix}"
    icc = make_heif_or_avif(source)
    photo = read_photo(source)
    assert (photo.format, photo.bits, photo.grayscale) == (photo_io.SUFFIXES[in_suffix], 8, False)
    assert photo.rgb.shape == (H, W, 3) and photo.alpha is None  # upright
    assert psnr(photo.rgb, SOURCE / 255) > 30  # upright the right way round: turned, ~10 dB
    assert photo.icc_profile == icc
    assert_camera_exif(photo.exif)

    out = tmp_path / f"out{out_suffix}"
    write_photo(out, photo.rgb, like=photo, quality=95)
    with Image.open(out) as im:  # stored upright, nothing left for a viewer to turn
        assert im.format == photo_io.SUFFIXES[out_suffix]
        assert im.size == (W, H) and im.getexif().get(274, 1) == 1
        assert im.info.get("original_orientation") in (None, 1)  # pillow-heif's, before reset
    back = read_photo(out)
    assert back.rgb.shape == (H, W, 3)
    assert psnr(back.rgb, photo.rgb) > 30
    assert back.icc_profile == icc
    assert_camera_exif(back.exif)


def test_heic_and_avif_gray_and_alpha(tmp_path: Path) -> None:
    gray_in, alpha_in = tmp_path / "gray.png", tmp_path / "alpha.png"
    Image.fromarray(GRAY).save(gray_in)
    Image.fromarray(np.dstack([SOURCE, ALPHA])).save(alpha_in)
    gray, alpha = read_photo(gray_in), read_photo(alpha_in)
    for suffix, keeps_gray in ((".heic", False), (".avif", True)):  # HEIC: colour, for Apple
        out = tmp_path / f"gray{suffix}"
        write_photo(out, gray.rgb, like=gray, quality=100)
        back = read_photo(out)
        assert back.grayscale == keeps_gray and psnr(back.rgb, gray.rgb) > 30
        out = tmp_path / f"alpha{suffix}"
        write_photo(out, alpha.rgb, like=alpha, quality=100)
        back = read_photo(out)
        assert back.alpha is not None and psnr(back.alpha / 255, ALPHA / 255) > 25


@pytest.mark.parametrize("suffix", [".heic", ".avif"])
def test_damaged_heic_and_avif_are_refused(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"cut{suffix}"
    big = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    make_heif_or_avif(path, big)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert_photo_error(path, "truncated or damaged|cannot read the image header|not a JPEG")
    path.write_bytes(data[:24] + bytes(200))  # a HEIF/AVIF start, then nothing sensible
    assert_photo_error(path, "truncated or damaged|cannot read the image header|not a JPEG")


def test_heif_plugin_is_registered_lazily(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(formats, "_heif_state", None)
    jpeg = tmp_path / "in.jpg"
    Image.fromarray(SOURCE).save(jpeg)
    read_photo(jpeg)
    write_photo(tmp_path / "out.png", read_photo(jpeg).rgb, like=read_photo(jpeg))
    assert formats._heif_state is None  # a JPEG-only run never loads libheif
    heic = tmp_path / "in.heic"
    make_heif_or_avif(heic)
    read_photo(heic)
    assert formats._heif_state is True


def test_without_pillow_heif_heic_is_a_clear_error(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    heic, png = tmp_path / "IMG_0001.heic", tmp_path / "in.png"
    make_heif_or_avif(heic)
    Image.fromarray(SOURCE).save(png)
    monkeypatch.setitem(sys.modules, "pillow_heif", None)  # import pillow_heif: ImportError
    monkeypatch.setattr(formats, "_heif_state", None)
    assert_photo_error(heic, "pip install pillow-heif")
    photo = read_photo(png)  # everything else still works
    out = tmp_path / "out.heic"
    with pytest.raises(PhotoError, match=r"out\.heic.*pip install pillow-heif"):
        write_photo(out, photo.rgb, like=photo)
    assert not out.exists()
    assert formats._heif_state is False


# ------------------------------------------------------------------------------------------
# bad input


def assert_photo_error(path: Path, match: str, **kwargs) -> None:
    with pytest.raises(PhotoError) as info:
        read_photo(path, **kwargs)
    message = str(info.value)
    assert str(path) in message and re.search(match, message), message


def test_not_an_image(tmp_path: Path) -> None:
    path = tmp_path / "notes.jpg"
    path.write_text("these are my holiday notes, not a photo\n")
    assert_photo_error(path, "not a JPEG, PNG, TIFF, WebP, BMP, HEIC or AVIF image")


def test_unsupported_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "anim.gif"
    Image.fromarray(SOURCE).save(path)
    assert_photo_error(path, "not a JPEG, PNG, TIFF, WebP, BMP, HEIC or AVIF image")


@pytest.mark.parametrize("kind", ["jpg", "png", "png16", "tif16", "webp"])
def test_truncated_files_are_refused(tmp_path: Path, kind: str) -> None:
    big = np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    path = tmp_path / f"cut.{kind.rstrip('16')}"
    if kind == "png16":
        path.write_bytes(imagecodecs.png_encode(big.astype(np.uint16) * 257))
    elif kind == "tif16":
        tifffile.imwrite(path, big.astype(np.uint16) * 257, photometric="rgb")
    else:
        Image.fromarray(big).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert_photo_error(path, "truncated or damaged|cannot read the image header")


def test_empty_missing_folder(tmp_path: Path) -> None:
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    assert_photo_error(empty, "empty")
    assert_photo_error(tmp_path / "missing.jpg", "no such file")
    folder = tmp_path / "folder.jpg"
    folder.mkdir()
    assert_photo_error(folder, "folder")


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "secret.png"
    Image.fromarray(SOURCE).save(path)
    path.chmod(0)
    real_open = builtins.open

    def deny(file, *args, **kwargs):  # root ignores file modes: deny the way the OS would
        if Path(str(file)) == path:
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", deny)
    assert_photo_error(path, "permission denied")


def test_max_pixels_is_checked_before_decoding(tmp_path: Path) -> None:
    small = tmp_path / "small.png"
    Image.fromarray(SOURCE[:2, :2]).save(small)
    assert_photo_error(small, "over the limit", max_pixels=1)
    assert read_photo(small, max_pixels=4).rgb.shape == (2, 2, 3)
    assert read_photo(small, max_pixels=None).rgb.shape == (2, 2, 3)
    # a header that claims 400 MP with no pixel data behind it: refused by size, not by decoding
    huge = png_header_only(tmp_path / "huge.png", 20_000, 20_000)
    assert_photo_error(huge, "20000x20000.*over the limit")


def test_webp_size_is_checked_before_pillow_allocates_the_canvas(tmp_path: Path) -> None:
    # VP8X header claiming a 16000x16000 canvas
    vp8x = b"VP8X" + struct.pack("<I", 10) + bytes(4) + (15999).to_bytes(3, "little") * 2
    path = tmp_path / "huge.webp"
    path.write_bytes(b"RIFF" + struct.pack("<I", 4 + len(vp8x)) + b"WEBP" + vp8x)
    assert_photo_error(path, "16000x16000.*over the limit", max_pixels=10_000_000)
    for suffix, options in ((".webp", {"lossless": True}), (".webp", {"quality": 90})):
        real = tmp_path / f"real{suffix}"
        Image.fromarray(smooth_rgb(37, 53)).save(real, **options)
        assert opening._webp_size(real.read_bytes()[:32]) == (53, 37)
    extended = tmp_path / "extended.webp"
    Image.fromarray(np.dstack([smooth_rgb(37, 53), random_alpha(37, 53)])).save(
        extended, exif=exif_with(1).tobytes())
    assert opening._webp_size(extended.read_bytes()[:32]) == (53, 37)


def test_pillow_limit_neither_interferes_nor_changes(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # Pillow would raise DecompressionBombError on this 24x32 image (over 2 x 100 pixels) ...
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    path = tmp_path / "in.tif"
    Image.fromarray(SOURCE).save(path)
    with pytest.raises(Image.DecompressionBombError):
        Image.open(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # ... and no DecompressionBombWarning either
        assert read_photo(path, max_pixels=1000).rgb.shape == (H, W, 3)
    assert Image.MAX_IMAGE_PIXELS == 100  # restored


def test_limit_above_pillows_default(tmp_path: Path) -> None:
    # 225 MP: above Pillow's default error threshold (2 x 89.5 MP), below a 300 MP limit
    huge = png_header_only(tmp_path / "huge.png", 15_000, 15_000)
    assert_photo_error(huge, "truncated or damaged", max_pixels=300_000_000)  # got to decoding


# ------------------------------------------------------------------------------------------
# writing: errors and atomicity


@pytest.fixture
def photo(tmp_path: Path) -> Photo:
    source = tmp_path / "in.png"
    Image.fromarray(SOURCE).save(source)
    return read_photo(source)


def test_write_errors_name_the_file(tmp_path: Path, photo: Photo) -> None:
    with pytest.raises(PhotoError, match="out.gif"):
        write_photo(tmp_path / "out.gif", photo.rgb, like=photo)
    with pytest.raises(PhotoError, match=r"wrong.png.*is 16x24 but the photo.*32x24"):
        write_photo(tmp_path / "wrong.png", photo.rgb[:, :16], like=photo)
    with pytest.raises(PhotoError, match="ints.png.*float"):
        write_photo(tmp_path / "ints.png", as8(photo.rgb), like=photo)
    with pytest.raises(PhotoError, match="nowhere.*does not exist"):
        write_photo(tmp_path / "nowhere" / "out.png", photo.rgb, like=photo)
    with pytest.raises(PhotoError, match="huge.webp.*cannot encode"):
        wide = np.zeros((1, 17_000, 3), dtype=np.float32)  # WebP's limit is 16383
        write_photo(tmp_path / "huge.webp", wide, like=Photo(wide, None, 8, False, None, None,
                                                            "PNG", "RGB"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png"]


def test_write_replaces_an_existing_file(tmp_path: Path, photo: Photo) -> None:
    out = tmp_path / "out.jpg"
    out.write_bytes(b"old")
    write_photo(out, photo.rgb, like=photo)
    assert pillow_array(out)[0] == "RGB"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png", "out.jpg"]


@pytest.mark.parametrize("interruption", [KeyboardInterrupt, OSError])
@pytest.mark.parametrize("suffix", [".jpg", ".png", ".tif"])
def test_interrupted_write_leaves_nothing(tmp_path: Path, photo: Photo,
                                         monkeypatch: pytest.MonkeyPatch,
                                         suffix: str, interruption: type) -> None:
    def half_then_fail(*args, **kwargs):
        target = next(a for a in args if hasattr(a, "write"))
        target.write(b"\xff" * 1000)  # some bytes are out ...
        raise interruption("stopped")  # ... then the user presses Ctrl-C, or the disk fills

    monkeypatch.setattr(Image.Image, "save", lambda self, fp, **kw: half_then_fail(fp))
    monkeypatch.setattr(tifffile, "imwrite", half_then_fail)
    out = tmp_path / f"out{suffix}"
    expected = KeyboardInterrupt if interruption is KeyboardInterrupt else PhotoError
    with pytest.raises(expected):
        write_photo(out, photo.rgb, like=photo)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png"]

    out.write_bytes(b"the previous result")
    with pytest.raises(expected):
        write_photo(out, photo.rgb, like=photo)
    assert out.read_bytes() == b"the previous result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png", out.name]
