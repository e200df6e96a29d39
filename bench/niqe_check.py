"""Check gan/evaluation/niqe.py against BasicSR's own calculate_niqe, image by image.

    python bench/niqe_check.py                      # builds the reference venv under /tmp once
    python bench/niqe_check.py --reference-python /path/to/python --basicsr-src /path/to/basicsr-X

The reference is BasicSR's code as its source distribution on PyPI ships it: only
basicsr/metrics/niqe.py and the few modules it imports (metric_util, utils/color_util,
utils/matlab_functions, utils/registry) are loaded, by file path, so neither the rest of BasicSR
nor its build is needed. They need numpy, scipy, opencv-python-headless (niqe.py imports cv2)
and torch (matlab_functions' imresize is written in torch); this script installs them into a
throw-away venv (``--venv``) unless ``--reference-python`` names an interpreter that has them.
torch comes from ``--torch``: a requirement or a wheel file; pass a CPU wheel where PyPI's
default (a CUDA build, several GB) is unwanted.

Images: the two DPED full-size photos (dped-mini, when present), scikit-image's astronaut,
camera (greyscale), coffee and chelsea, and synthetic ones: uniform noise, a blurred photo, a
noisy photo; one with crop_border. Prints ours and BasicSR's NIQE per image, the difference and
the seconds each took, then two edge cases (not checked: flat content, where the statistics
degenerate), then times ours on a 3 MP and a 12 MP photo (best of 3; peak memory allocated, by
tracemalloc). Exits 1 if any image differs by more than ``--tolerance``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tarfile
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PHOTOS = ROOT.parent / "shared" / "dped-mini" / "iphone" / "test_data" / "full_size_test_images"

# Runs in the reference interpreter: BasicSR's modules by file path under stub packages (so the
# packages' __init__ files, which import all of BasicSR, are never run), then calculate_niqe on
# each image of the .npz (RGB flipped to BGR: BasicSR's HWC input is BGR, as cv2 reads it).
REFERENCE = r"""
import importlib.util, json, sys, time, types
from pathlib import Path
import numpy as np

src, images, crops = Path(sys.argv[1]) / "basicsr", sys.argv[2], json.loads(sys.argv[3])
for name in ("basicsr", "basicsr.utils", "basicsr.metrics"):
    package = types.ModuleType(name)
    package.__path__ = []
    sys.modules[name] = package

def load(name, relative):
    spec = importlib.util.spec_from_file_location(name, src / relative)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module

load("basicsr.utils.registry", "utils/registry.py")
sys.modules["basicsr.utils"].bgr2ycbcr = load("basicsr.utils.color_util",
                                              "utils/color_util.py").bgr2ycbcr
load("basicsr.utils.matlab_functions", "utils/matlab_functions.py")
load("basicsr.metrics.metric_util", "metrics/metric_util.py")
niqe = load("basicsr.metrics.niqe", "metrics/niqe.py")
results = {}
with np.load(images) as data:
    for name in data.files:
        image = data[name]
        began = time.perf_counter()
        try:
            if image.ndim == 2:
                value = niqe.calculate_niqe(image, crops.get(name, 0), input_order="HW")
            else:
                value = niqe.calculate_niqe(image[..., ::-1], crops.get(name, 0))
        except Exception as exc:  # the edge cases: say what BasicSR does with them
            value = type(exc).__name__
        results[name] = [value, time.perf_counter() - began]
print(json.dumps(results))
"""


# -- the images -------------------------------------------------------------------------------

def edge_cases() -> dict[str, np.ndarray]:
    """Images outside the tolerance, shown but not checked: a flat one (no texture anywhere)
    and one whose upper blocks are flat white but for the rim the noise below reaches."""
    noise = np.random.default_rng(0).integers(0, 256, (96, 288, 3), dtype=np.uint8)
    return {"flat grey 192x288": np.full((192, 288, 3), 128, np.uint8),
            "flat white over noise": np.concatenate([np.full_like(noise, 255), noise])}


def images(photos: Path) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Name -> (H, W, 3) or (H, W) uint8, and name -> crop_border for those scored cropped.
    The first five are rebuilt by tests/test_niqe.py (its expected values come from here)."""
    from PIL import Image
    from skimage import data

    rng = np.random.default_rng(0)
    astronaut = data.astronaut()
    out = {
        "noise 192x288": rng.integers(0, 256, (192, 288, 3), dtype=np.uint8),
        "astronaut": astronaut,
        "camera (grey)": data.camera(),
        "astronaut blurred": blurred(astronaut),
        "astronaut crop 8": astronaut,
        "coffee": data.coffee(),
        "chelsea": data.chelsea(),
        "astronaut noisy": noisy(astronaut, np.random.default_rng(1)),
    }
    for path in sorted(photos.glob("*.jpg")):
        photo = np.asarray(Image.open(path).convert("RGB"))
        out[f"dped {path.name}"] = photo
        out[f"dped {path.name} blurred"] = blurred(photo)
    return out, {"astronaut crop 8": 8}


def blurred(image: np.ndarray) -> np.ndarray:
    """Gaussian blur, sigma 2 pixels, per channel, rounded back to uint8."""
    from scipy.ndimage import gaussian_filter

    return np.round(gaussian_filter(image.astype(np.float64), sigma=(2, 2, 0))).astype(np.uint8)


def noisy(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise, sigma 20 grey levels, clipped and rounded."""
    return np.clip(np.round(image + rng.normal(0, 20, image.shape)), 0, 255).astype(np.uint8)


# -- the reference ----------------------------------------------------------------------------

def reference_python(args: argparse.Namespace) -> Path:
    """The interpreter that runs BasicSR's code: the one given, or a venv built once."""
    if args.reference_python:
        return Path(args.reference_python)
    python = args.venv / "bin" / "python"
    if not (args.venv / ".ready").exists():
        print(f"building the reference venv {args.venv} (numpy, scipy, opencv, torch)",
              file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(args.venv)], check=True)
        pip = [str(python), "-m", "pip", "install", "--quiet"]
        subprocess.run([*pip, "numpy", "scipy", "opencv-python-headless"], check=True)
        subprocess.run([*pip, args.torch], check=True)
        (args.venv / ".ready").touch()
    return python


def basicsr_source(args: argparse.Namespace, python: Path) -> Path:
    """The unpacked BasicSR source distribution: the one given, or fetched from PyPI once."""
    if args.basicsr_src:
        return Path(args.basicsr_src)
    folder = Path(tempfile.gettempdir()) / "basicsr_sdist"
    unpacked = folder / f"basicsr-{args.basicsr_version}"
    if not (unpacked / "basicsr" / "metrics" / "niqe.py").exists():
        # --no-build-isolation: pip prepares the sdist's metadata with the reference
        # interpreter's torch and setuptools instead of fetching a build environment
        subprocess.run([str(python), "-m", "pip", "download", "--quiet", "--no-deps",
                        "--no-build-isolation", "--no-binary", ":all:",
                        f"basicsr=={args.basicsr_version}", "-d", str(folder)], check=True)
        with tarfile.open(folder / f"basicsr-{args.basicsr_version}.tar.gz") as archive:
            archive.extractall(folder, filter="data")
    return unpacked


def run_reference(python: Path, source: Path, named: dict[str, np.ndarray],
                  crops: dict[str, int]) -> dict[str, list[float]]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "images.npz"
        np.savez(path, **named)
        result = subprocess.run([str(python), "-c", REFERENCE, str(source), str(path),
                                 json.dumps(crops)], check=True, capture_output=True, text=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


# -- ours -------------------------------------------------------------------------------------

def timed(image: np.ndarray, crop: int = 0) -> tuple[float, float, float]:
    """NIQE, seconds and the peak of memory allocated while computing it (MB, tracemalloc)."""
    from gan.evaluation.niqe import niqe

    tracemalloc.start()
    began = time.perf_counter()
    value = niqe(image, crop)
    seconds = time.perf_counter() - began
    peak = tracemalloc.get_traced_memory()[1] / 1e6
    tracemalloc.stop()
    return value, seconds, peak


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference-python", help="an interpreter with numpy, scipy, cv2, torch")
    parser.add_argument("--venv", type=Path, default=Path(tempfile.gettempdir()) / "niqe-reference",
                        help="where to build the reference venv when none is given")
    parser.add_argument("--torch", default="torch",
                        help="torch requirement or wheel for the reference venv (a CPU wheel "
                             "spares the CUDA build)")
    parser.add_argument("--basicsr-version", default="1.4.2")
    parser.add_argument("--basicsr-src", help="an unpacked BasicSR source tree instead of PyPI's")
    parser.add_argument("--photos", type=Path, default=PHOTOS, help="folder of .jpg photos")
    parser.add_argument("--tolerance", type=float, default=0.01)
    args = parser.parse_args()

    named, crops = images(args.photos)
    edges = edge_cases()
    python = reference_python(args)
    source = basicsr_source(args, python)
    reference = run_reference(python, source, {**named, **edges}, crops)

    print(f"BasicSR {source.name} at {source}, reference {python}")
    print("| image | size | ours | BasicSR | difference | ours (s) | BasicSR (s) |")
    print("|---|---|---|---|---|---|---|")
    worst = 0.0
    for name, image in named.items():
        ours, seconds, _ = timed(image, crops.get(name, 0))
        theirs, their_seconds = reference[name]
        worst = max(worst, abs(ours - theirs))
        size = "x".join(map(str, image.shape[1::-1]))
        print(f"| {name} | {size} | {ours:.4f} | {theirs:.4f} | {ours - theirs:+.5f} "
              f"| {seconds:.2f} | {their_seconds:.2f} |")
    print(f"max |difference|: {worst:.5f} (tolerance {args.tolerance})")
    for name, image in edges.items():  # degenerate statistics, not held to the tolerance
        ours = timed(image)[0]
        theirs = reference[name][0]
        theirs = f"{theirs:.4f}" if isinstance(theirs, float) else theirs
        print(f"edge case, not checked: {name}: ours {ours:.4f}, BasicSR {theirs}")

    from PIL import Image
    from skimage import data

    base = named.get("dped 0.jpg", data.astronaut())
    for width, height in ((2048, 1536), (4000, 3000)):
        photo = np.asarray(Image.fromarray(base).resize((width, height), Image.BICUBIC))
        runs = [timed(photo) for _ in range(3)]
        value, peak, seconds = runs[0][0], runs[0][2], min(run[1] for run in runs)
        print(f"ours on {width}x{height} ({width * height / 1e6:.1f} MP): NIQE {value:.3f}, "
              f"{seconds:.2f} s, peak allocated {peak:.0f} MB (the photo: "
              f"{photo.nbytes / 1e6:.0f} MB)")
    return 0 if worst <= args.tolerance else 1


if __name__ == "__main__":
    sys.exit(main())
