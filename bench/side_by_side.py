"""Side-by-side figures for bench/README.md: what the cross-validated recipe looks like.

    python bench/side_by_side.py --tag small-data --model models/pretrained/iphone-dped-mini.pt

1. ``bench/figures/cv_patches.png``: dped-mini pairs, one per fold and a few more, columns
   input | ours | DSLR target, each "ours" the out-of-fold prediction of seed 0 of the
   cross-validation run ``--tag`` (bench/small_data.py --cv: the generator never saw the pair),
   with PSNR under each patch and the pair's look figures against its target.
2. ``bench/figures/full_size.png``: dped-mini's full-size phone photos, input | ours (``--model``),
   the whole photo and a crop at 1:1 where the photo has the most detail. These photos have no
   DSLR twin, so beside the figure it prints, per method (input, ours, CLHE, NPEA), NIQE
   (gan.evaluation.niqe: lower is more natural) and the look statistics against the input
   (gan.look: detail, contrast, black level and saturation).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import cross_validation as cv  # noqa: E402

from gan.data.patches import to_tensor  # noqa: E402
from gan.evaluation.evaluate import generator_photo, read_rgb8  # noqa: E402
from gan.evaluation.figures import full_size_figure, patch_grid, png_bytes  # noqa: E402
from gan.fsio import write_bytes  # noqa: E402
from gan.metrics import psnr  # noqa: E402
from gan.pixels import float_to_uint8  # noqa: E402

DPED_MINI = Path(os.environ.get("DPED_MINI", ROOT.parent / "shared" / "dped-mini")) / "iphone"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tag", default="small-data", help="the --cv run's tag")
    parser.add_argument("--work", type=Path, default=Path("/tmp/small_data"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pairs", type=int, nargs="+", default=[12, 57, 95, 131, 170, 188],
                        help="PIRM indices of the pairs shown (default: spread over the folds)")
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "pretrained" /
                        "iphone-dped-mini.pt", help="the generator for the full-size photos")
    parser.add_argument("--crop", type=int, default=320, help="side of the 1:1 crop, pixels")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "figures")
    args = parser.parse_args()

    phone, dslr, ids = cv.raw_pairs(args.work)
    ours, _ = cv.load_predictions(args.work / "cv" / args.tag, args.seed, ids, phone.shape[1:3])
    rows = np.searchsorted(ids, args.pairs)
    images = {"input": phone[rows], "dslr": dslr[rows],
              "ours": float_to_uint8(ours[rows].transpose(0, 2, 3, 1))}
    target = to_tensor(dslr[rows])
    scores = {"input": psnr(to_tensor(phone[rows]), target).numpy(),
              "ours": psnr(torch.from_numpy(ours[rows]), target).numpy()}
    figure = patch_grid(images, scores, len(rows))
    write_bytes(args.out / "cv_patches.png", png_bytes(figure))
    print(f"{args.out / 'cv_patches.png'}: pairs {args.pairs}, out-of-fold, seed {args.seed}")

    from gan.checkpoint import load_generator

    generator = load_generator(args.model, torch.device("cpu"))
    enhance = generator_photo(generator, torch.device("cpu"))
    from gan.evaluation.baselines.clhe import clhe
    from gan.evaluation.baselines.npea import npea
    from gan.evaluation.niqe import niqe
    from gan.look import look_stats

    methods = {"ours": enhance, "clhe": clhe, "npea": npea}
    photos, rows = {}, []
    for path in sorted((DPED_MINI / "test_data" / "full_size_test_images").glob("*.jpg")):
        image = read_rgb8(path)
        outputs = {"input": image, **{name: fn(image) for name, fn in methods.items()}}
        photos[path.stem] = {m: outputs[m] for m in ("input", "ours")}
        for name, output in outputs.items():
            stats = look_stats(output[None])
            rows.append(f"| {path.name} {image.shape[1]}x{image.shape[0]} | {name} | "
                        f"{niqe(output):.2f} | {stats['detail'][0]:.2f} | "
                        f"{stats['contrast'][0]:.1f} | {stats['black'][0]:.1f} | "
                        f"{stats['saturation'][0]:.3f} |")
    figure = full_size_figure(photos, args.crop)
    write_bytes(args.out / "full_size.png", png_bytes(figure, dpi=100))
    print(f"{args.out / 'full_size.png'}: {', '.join(photos)} with {args.model.name}")
    print("| photo | method | NIQE (lower: more natural) | detail | contrast | black | "
          "saturation |\n|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
