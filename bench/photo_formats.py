"""Each photo format enhance reads and writes, on a 12 MP photo: seconds, size, what is carried.

    python bench/photo_formats.py                 # 4032x3024, best of 2
    python bench/photo_formats.py --size 1280x720 --runs 3
    python bench/photo_formats.py --encoders      # HEIC presets and AVIF speeds on real photos

For each format: a real photo (scikit-image's astronaut, resized) saved with an EXIF block
(camera make, an Orientation of 6 = rotate 90 degrees, the pixels stored sideways) and an sRGB
ICC profile built by Pillow's ImageCms, then read back by
gan.deploy.photo_io.read_photo and written again by write_photo (quality 95), as `enhance`
does. It prints read and write seconds, the file size, and whether the written file still has
the EXIF make, the ICC profile and upright pixels (orientation applied once, reset to 1).

``--encoders`` compares the encoder settings photo_io chose for HEIC (x265 preset) and AVIF
(libavif speed) with the encoders' defaults, at quality 95, on real photos: dped-mini's
full-size phone photos (../shared/dped-mini) where present, else the resized astronaut.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FORMATS = ("jpg", "heic", "avif", "webp", "png", "tif")


def source_photo(width: int, height: int):
    import numpy as np
    from PIL import Image
    from skimage import data

    return np.asarray(Image.fromarray(data.astronaut()).resize((width, height), Image.BICUBIC))


def save_source(path: Path, rgb, suffix: str) -> bytes:
    """The photo stored sideways with Orientation 6, as a phone does, plus EXIF and ICC."""
    from PIL import Image, ImageCms

    stored = Image.fromarray(rgb).transpose(Image.Transpose.ROTATE_90)  # Orientation 6 undoes it
    exif = Image.Exif()
    exif[0x010F] = "BenchCam"  # Make
    exif[0x0112] = 6  # Orientation
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    options = {"exif": exif.tobytes(), "icc_profile": icc}
    if suffix in ("jpg", "heic", "avif", "webp"):
        options["quality"] = 95
    if suffix == "heic":
        from gan.deploy.photo_io.formats import _heif_ready
        _heif_ready()  # registers pillow-heif's writer, as enhance does on demand
    stored.save(path, **options)
    return icc


def carried(path: Path, icc: bytes, rgb) -> str:
    import numpy as np
    from PIL import Image

    from gan.deploy.photo_io.formats import _heif_ready

    _heif_ready()
    with Image.open(path) as im:
        exif = im.getexif()
        make = exif.get(0x010F) == "BenchCam"
        orientation = exif.get(0x0112, 1)
        same_icc = im.info.get("icc_profile") == icc
        upright = im.size == (rgb.shape[1], rgb.shape[0])
        pixels = np.asarray(im.convert("RGB"), dtype=np.float64)
    error = np.abs(pixels - rgb).mean()
    return (f"EXIF make {'kept' if make else 'LOST'}, orientation {orientation}, ICC "
            f"{'kept' if same_icc else 'LOST'}, {'upright' if upright else 'NOT upright'}, "
            f"mean |difference| {error:.2f} levels")


def real_photos():
    import numpy as np
    from PIL import Image

    folder = ROOT.parent / "shared" / "dped-mini" / "iphone" / "test_data" / "full_size_test_images"
    paths = sorted(folder.glob("*.jpg"))
    if not paths:
        return {"astronaut 1280x720": source_photo(1280, 720)}
    return {p.name: np.asarray(Image.open(p).convert("RGB")) for p in paths}


def compare_encoders(runs: int) -> None:
    import numpy as np
    from PIL import Image

    from gan.deploy.photo_io.formats import _heif_ready

    _heif_ready()
    settings = [("HEIF", "x265 default", {}), ("HEIF", "preset ultrafast (ours)",
                                                {"enc_params": {"preset": "ultrafast"}}),
                ("AVIF", "libavif default", {"subsampling": "4:4:4"}),
                ("AVIF", "speed 9 (ours)", {"subsampling": "4:4:4", "speed": 9})]
    print(f"{'photo':22} {'format':5} {'setting':24} {'encode s':>9} {'KB':>7} {'PSNR dB':>8}")
    for name, rgb in real_photos().items():
        for fmt, label, options in settings:
            times = []
            for _ in range(runs):
                buffer = io.BytesIO()
                began = time.perf_counter()
                Image.fromarray(rgb).save(buffer, fmt, quality=95, **options)
                times.append(time.perf_counter() - began)
            buffer.seek(0)
            back = np.asarray(Image.open(buffer).convert("RGB"), dtype=np.float64)
            mse = ((back - rgb) ** 2).mean()
            print(f"{name:22} {fmt:5} {label:24} {min(times):9.2f} "
                  f"{len(buffer.getvalue()) / 1e3:7.0f} {10 * np.log10(255**2 / mse):8.2f}",
                  flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="4032x3024")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--formats", nargs="+", default=list(FORMATS), choices=FORMATS)
    parser.add_argument("--encoders", action="store_true",
                        help="compare HEIC / AVIF encoder settings instead")
    args = parser.parse_args()
    if args.encoders:
        compare_encoders(args.runs)
        return
    width, height = (int(v) for v in args.size.split("x"))

    from gan.deploy.photo_io import read_photo, write_photo

    rgb = source_photo(width, height)
    print(f"{args.size}, best of {args.runs}")
    print(f"{'format':6} {'read s':>7} {'write s':>8} {'size MB':>8}  written file")
    with tempfile.TemporaryDirectory() as tmp:
        for suffix in args.formats:
            source = Path(tmp) / f"in.{suffix}"
            icc = save_source(source, rgb, suffix)
            reads, writes = [], []
            for run in range(args.runs):
                began = time.perf_counter()
                photo = read_photo(source)
                reads.append(time.perf_counter() - began)
                out = Path(tmp) / f"out{run}.{suffix}"
                began = time.perf_counter()
                write_photo(out, photo.rgb, like=photo, quality=95)
                writes.append(time.perf_counter() - began)
            print(f"{suffix:6} {min(reads):7.2f} {min(writes):8.2f} "
                  f"{out.stat().st_size / 1e6:8.2f}  {carried(out, icc, rgb)}", flush=True)


if __name__ == "__main__":
    main()
