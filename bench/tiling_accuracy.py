"""How far tiled inference is from whole-image inference, per overlap, for a trained generator.

    python bench/tiling_accuracy.py                       # models/generator.pt, 400x400, 192 px tiles
    python bench/tiling_accuracy.py --model other.pt --tile 256 --overlaps 32 64

A real photo (scikit-image's astronaut, resized) through the generator once whole and once per
overlap in tiles (gan/deploy/inference.py); prints the largest, 99.9th-percentile and mean absolute
difference in 8-bit grey levels. The figures behind gan/deploy/inference.py's DEFAULT_OVERLAP.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    import numpy as np
    from PIL import Image
    from skimage import data

    from gan.checkpoint import load_generator
    from gan.deploy.inference import enhance_array

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "generator.pt")
    parser.add_argument("--size", type=int, default=400, help="side of the square photo")
    parser.add_argument("--tile", type=int, default=192)
    parser.add_argument("--overlaps", type=int, nargs="+", default=[16, 32, 48, 64, 96])
    args = parser.parse_args()

    generator = load_generator(args.model)
    photo = Image.fromarray(data.astronaut()).resize((args.size, args.size), Image.BICUBIC)
    image = np.asarray(photo, dtype=np.float32) / 255.0
    whole = enhance_array(generator, image, tile=0)
    print(f"{args.model}: {args.size}x{args.size} photo, {args.tile} px tiles; "
          "|tiled - whole| in grey levels")
    print(f"{'overlap':>8} {'max':>8} {'p99.9':>8} {'mean':>8}")
    for overlap in args.overlaps:
        diff = np.abs(enhance_array(generator, image, tile=args.tile, overlap=overlap) - whole) * 255
        print(f"{overlap:8d} {diff.max():8.2f} {np.quantile(diff, 0.999):8.3f} {diff.mean():8.4f}")


if __name__ == "__main__":
    main()
