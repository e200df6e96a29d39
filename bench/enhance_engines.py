"""enhance's precisions and engines on one 720p photo: seconds, and how far each lands from fp32.

    python bench/enhance_engines.py [--model iphone-dped-mini] [--photo PATH] [--runs 2]

The shipped model (or --model) runs on the photo as `enhance` runs it (tiled, in-process, after
a warm-up): torch fp32, torch bf16 autocast (`--precision bf16`), and ONNX Runtime on the file
`ppe export --format onnx` writes (`--engine onnxruntime`, fp32). The photo defaults to
dped-mini's first full-size test photo (1280x720), else scikit-image's astronaut resized to it.
Prints the best time of ``--runs`` per variant and the largest and mean difference from torch
fp32 in 8-bit grey levels, plus the share of 8-bit values that change.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gan.checkpoint import load_generator  # noqa: E402
from gan.deploy.export import OnnxGenerator, export_onnx  # noqa: E402
from gan.deploy.inference import enhance_array  # noqa: E402
from gan.deploy.photo_io import read_photo  # noqa: E402
from gan.deploy.pretrained import resolve_model  # noqa: E402
from gan.runtime import describe_cpu, keep_freed_memory  # noqa: E402

PHOTO = ROOT.parent / "shared" / "dped-mini" / "iphone" / "test_data" / "full_size_test_images" / "0.jpg"


def photo(path: Path | None) -> np.ndarray:
    if path is not None or PHOTO.exists():
        return read_photo(path or PHOTO).rgb
    from PIL import Image
    from skimage import data

    return np.asarray(Image.fromarray(data.astronaut()).resize((1280, 720)), np.float32) / 255.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="iphone-dped-mini")
    parser.add_argument("--photo", type=Path, default=None)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    keep_freed_memory()  # as the enhance command does
    rgb = photo(args.photo)
    generator = load_generator(resolve_model(args.model)).eval()
    with tempfile.TemporaryDirectory() as folder:
        onnx_file = export_onnx(generator, Path(folder) / "g.onnx")
        variants = {
            "torch fp32": lambda image: enhance_array(generator, image, "cpu"),
            "torch bf16": lambda image: enhance_array(generator, image, "cpu",
                                                      dtype=torch.bfloat16),
            "onnxruntime fp32": lambda image, ort=OnnxGenerator(onnx_file):
                enhance_array(ort, image, "cpu"),
        }
        outputs, best = {}, {}
        for name, run in variants.items():
            run(rgb[:64, :64])  # warm-up: first-call allocations, kernel selection
            times = []
            for _ in range(args.runs):
                began = time.perf_counter()
                outputs[name] = run(rgb)
                times.append(time.perf_counter() - began)
            best[name] = min(times)
    print(f"{describe_cpu()}, torch {torch.__version__}; photo {rgb.shape[1]}x{rgb.shape[0]}, "
          f"model {args.model}, best of {args.runs}")
    reference = outputs["torch fp32"]
    print(f"{'variant':18s} {'seconds':>8s} {'max diff':>9s} {'mean diff':>10s} {'8-bit changed':>14s}")
    for name, out in outputs.items():
        difference = np.abs(out - reference) * 255
        changed = np.mean(np.rint(out * 255) != np.rint(reference * 255))
        print(f"{name:18s} {best[name]:8.2f} {difference.max():9.3g} {difference.mean():10.3g} "
              f"{changed:14.2%}")


if __name__ == "__main__":
    main()
