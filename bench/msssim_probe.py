"""Where a generator loses MS-SSIM on dped-mini's 40 raw test pairs, and whether a fixed
post-process on its output would win it back.

    python bench/msssim_probe.py [--model models/pretrained/iphone-dped-mini.pt]

Prints, for the input, the generator's output and a few post-processed versions of it (unsharp
masking, a light blur, a global contrast stretch, reflect padding, the 8-fold flip/rotation
ensemble): PSNR, MS-SSIM and the five factors of MS-SSIM (contrast-structure of scales 1-4,
SSIM of scale 5). A post-process that won MS-SSIM here would point at what training misses.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from gan.checkpoint import load_generator  # noqa: E402
from gan.metrics import ms_ssim_terms  # noqa: E402
from small_data import enhance, prepare, raw_pairs, scores  # noqa: E402

# A 5x5 binomial low-pass (1 4 6 4 1)^2 / 256, per channel.
_BINOMIAL = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0])
_KERNEL = (_BINOMIAL[:, None] * _BINOMIAL[None]) / 256.0


def low_pass(x: torch.Tensor) -> torch.Tensor:
    kernel = _KERNEL.to(x.dtype).expand(x.shape[1], 1, 5, 5)
    return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), kernel, groups=x.shape[1])


@torch.no_grad()
def self_ensemble(generator: torch.nn.Module, phone: torch.Tensor) -> torch.Tensor:
    """The mean of the outputs for the 8 flips / 90-degree turns of the input, turned back."""
    total = torch.zeros_like(phone)
    for turns in range(4):
        for flip in (False, True):
            x = torch.rot90(phone, turns, (2, 3))
            x = x.flip(3) if flip else x
            y = enhance(generator, x)
            y = y.flip(3) if flip else y
            total += torch.rot90(y, -turns, (2, 3))
    return total / 8


@torch.no_grad()
def padded(generator: torch.nn.Module, phone: torch.Tensor, pad: int) -> torch.Tensor:
    return enhance(generator, F.pad(phone, (pad,) * 4, mode="reflect"))[..., pad:-pad, pad:-pad]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models/pretrained/iphone-dped-mini.pt")
    parser.add_argument("--work", type=Path, default=Path("/tmp/small_data"))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    prepare(args.work)  # dped-mini's raw pairs, extracted once (shared with small_data.py)
    phone, dslr = raw_pairs(args.work, holdout=False)
    generator = load_generator(args.model).eval()
    out = enhance(generator, phone)
    mean = out.mean(dim=(2, 3), keepdim=True)
    rows = {"input": phone, "generator": out}
    for amount in (0.25, 0.5, 1.0):
        rows[f"unsharp {amount}"] = (out + amount * (out - low_pass(out))).clamp(0, 1)
    for amount in (0.25, 0.5, 1.0):
        rows[f"blur {amount}"] = out + amount * (low_pass(out) - out)
    for gain in (1.05, 1.1):
        rows[f"contrast x{gain}"] = (mean + gain * (out - mean)).clamp(0, 1)
    rows["reflect pad 14"] = padded(generator, phone, 14)
    rows["8-fold ensemble"] = self_ensemble(generator, phone)
    print(f"{'':18s} {'PSNR':>7s} {'MS-SSIM':>8s}   cs1    cs2    cs3    cs4    ssim5")
    for name, images in rows.items():
        score = scores(images, dslr)
        terms = ms_ssim_terms(images, dslr).mean(dim=0).tolist()
        print(f"{name:18s} {score['psnr']:7.3f} {score['ms_ssim']:8.4f}  "
              + " ".join(f"{t:.4f}" for t in terms))


if __name__ == "__main__":
    main()
