"""NPEA's output level and lightness order error (LOE) on photos; with ``--against REV``, the same
for the NPEA of a git revision, so a change to gan/evaluation/baselines/npea.py is compared with
what it replaced (issue 14: "NPEA is too dark"). Two more columns for scale: this tree with the
dark-image factor of step 6 switched off (k = 1), and per-channel histogram equalisation (the
comparison tests/test_npea.py uses).

    python bench/npea_levels.py [--against 018c895]

Photos: scikit-image's astronaut, coffee and chelsea as taken, unevenly lit (light falling off
from 100 % on the right to 15 % on the left) and darkened into [0, 80] (mean below 50, where the
dark-image rule of step 6 applies), plus the DPED full-size test photos of ../shared/dped-mini
when present. For each: the input's mean level, the output's mean level and the LOE
(gan/evaluation/loe.py, the BASELINES.md variant). No reference images are involved: the
authors' NPEA outputs could not be read here (see bench/README.md).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from revision import module_at  # noqa: E402 (bench/revision.py)
from gan.evaluation.baselines import npea as current  # noqa: E402
from gan.evaluation.loe import lightness_order_error  # noqa: E402
from tests.test_npea import equalize_per_channel  # noqa: E402

DPED_FULL_SIZE = (ROOT.parent / "shared" / "dped-mini" / "iphone" / "test_data"
                  / "full_size_test_images")


def photos() -> dict[str, np.ndarray]:
    """name -> (H, W, 3) uint8 photo."""
    out = {}
    for name in ("astronaut", "coffee", "chelsea"):
        image = getattr(data, name)()
        gain = np.linspace(0.15, 1.0, image.shape[1])[None, :, None]
        out[name] = image
        out[f"{name}, uneven"] = np.round(image * gain).astype(np.uint8)
        out[f"{name}, dark"] = np.round(image * (80.0 / 255.0)).astype(np.uint8)
    if DPED_FULL_SIZE.is_dir():
        for path in sorted(DPED_FULL_SIZE.glob("*.jpg")):
            with Image.open(path) as im:
                out[f"dped {path.name}"] = np.asarray(im.convert("RGB"))
    return out


def without_dark_factor(image: np.ndarray) -> np.ndarray:
    """This tree's NPEA with the dark-image factor fixed at 1 (the plain curve)."""
    kept = current.dark_factor
    current.dark_factor = lambda mean_level: 1.0
    try:
        return current.npea(image)
    finally:
        current.dark_factor = kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", default=None, help="a git revision to compare with")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        versions = {"this tree": current.npea}
        if args.against:
            old = module_at(args.against, ("gan/evaluation/baselines/npea.py",), Path(folder))
            versions[args.against] = old.npea
        versions["k = 1"] = without_dark_factor
        versions["HE"] = equalize_per_channel
        header = f"{'photo':22} {'input':>6}"
        for name in versions:
            header += f" | {name[:10]:>10} mean {'LOE':>6}"
        print(header)
        totals = {name: [] for name in versions}
        for label, image in photos().items():
            row = f"{label:22} {image.mean():6.1f}"
            for name, enhance in versions.items():
                out = enhance(image)
                loe = lightness_order_error(image, out)
                totals[name].append((out.mean(), loe))
                row += f" | {out.mean():15.1f} {loe:6.1f}"
            print(row)
        row = f"{'mean':22} {'':6}"
        for name in versions:
            level, loe = np.mean(totals[name], axis=0)
            row += f" | {level:15.1f} {loe:6.1f}"
        print(row)


if __name__ == "__main__":
    main()
