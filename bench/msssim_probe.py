"""Where a generator loses MS-SSIM on dped-mini's 40 raw test pairs, and whether a fixed
post-process on its output would win it back.

    python bench/msssim_probe.py [--model models/pretrained/iphone-dped-mini.pt]

Prints, for the input, the generator's output and post-processed versions of it (edge-preserving
denoisers: the self-guided filter, total variation, non-local means; unsharp masking, a light
blur of RGB, luma or chroma, a global contrast stretch, per-image colour fits to the target as
oracles, reflect padding, the 8-fold flip/rotation ensemble): PSNR, MS-SSIM and the five factors
of MS-SSIM (contrast-structure of scales 1-4, SSIM of scale 5). A post-process that won MS-SSIM
here would point at what training misses. ``--pairs train`` / ``train-aligned`` asks the same of
the training pairs (does the model miss it where it was trained, too?).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from gan.checkpoint import load_generator  # noqa: E402
from gan.data.patches import to_tensor  # noqa: E402
from gan.metrics import ms_ssim_terms  # noqa: E402
from gan.networks import GuidedOutputFilter  # noqa: E402
from small_data import enhance, prepare, raw_pairs, scores  # noqa: E402

# A 5x5 binomial low-pass (1 4 6 4 1)^2 / 256, per channel.
_BINOMIAL = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0])
_KERNEL = (_BINOMIAL[:, None] * _BINOMIAL[None]) / 256.0


def low_pass(x: torch.Tensor) -> torch.Tensor:
    kernel = _KERNEL.to(x.dtype).expand(x.shape[1], 1, 5, 5)
    return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), kernel, groups=x.shape[1])


# BT.601 luma and the two colour differences: blurring one and not the other tells whether the
# fine scales lose MS-SSIM to luminance noise or to colour noise (the iPhone 3GS has a lot).
_TO_YCC = torch.tensor([[0.299, 0.587, 0.114],
                        [-0.168736, -0.331264, 0.5],
                        [0.5, -0.418688, -0.081312]])


def to_luma_chroma(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    ycc = torch.einsum("ij,njhw->nihw", _TO_YCC.to(x.dtype), x)
    return ycc[:, :1], ycc[:, 1:]


def from_luma_chroma(luma: torch.Tensor, chroma: torch.Tensor) -> torch.Tensor:
    inverse = torch.linalg.inv(_TO_YCC.double()).to(luma.dtype)
    return torch.einsum("ij,njhw->nihw", inverse, torch.cat([luma, chroma], dim=1))


def fitted_colour(out: torch.Tensor, target: torch.Tensor, matrix: bool) -> torch.Tensor:
    """Per image, the least-squares colour transform of ``out`` towards ``target``: a gain and
    an offset per channel, or a full 3x3 matrix and an offset."""
    fitted = torch.empty_like(out)
    for i in range(len(out)):
        x = out[i].flatten(1).double()  # (3, P)
        y = target[i].flatten(1).double()
        if matrix:
            design = torch.cat([x, torch.ones_like(x[:1])]).T  # (P, 4)
            coef = torch.linalg.lstsq(design, y.T).solution  # (4, 3)
            fitted[i] = (design @ coef).T.reshape(out[i].shape).to(out.dtype)
        else:
            for c in range(3):
                design = torch.stack([x[c], torch.ones_like(x[c])], dim=1)
                coef = torch.linalg.lstsq(design, y[c][:, None]).solution
                fitted[i, c] = (design @ coef)[:, 0].reshape(out.shape[-2:]).to(out.dtype)
    return fitted


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
    parser.add_argument("--pairs", choices=("test", "train", "train-aligned"), default="test",
                        help="the 40 raw test pairs; the 160 raw training pairs; or the aligned "
                             "96x96 training crops the generator was trained on")
    parser.add_argument("--short", action="store_true",
                        help="only the input, the generator and the edge-preserving filters")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    extract_params = yaml.safe_load((ROOT / "params.yaml").read_text())["extract"]
    prepare(args.work, extract_params)  # dped-mini's pairs, extracted once (as small_data.py does)
    if args.pairs == "test":
        phone, dslr = raw_pairs(args.work, holdout=False)
    else:
        prefix = "full/train_" if args.pairs == "train-aligned" else "raw_train_"
        phone, dslr = (to_tensor(np.load(args.work / f"{prefix}{side}.npy"))
                       for side in ("phone", "dslr"))
    generator = load_generator(args.model).eval()
    out = enhance(generator, phone)
    rows = {"input": phone, "generator": out}
    rows.update(edge_preserving(out))
    if not args.short:
        rows.update(fixed_filters(generator, phone, out, dslr))
    print(f"{'':22s} {'PSNR':>7s} {'MS-SSIM':>8s}   cs1    cs2    cs3    cs4    ssim5")
    for name, images in rows.items():
        score = scores(images, dslr)
        terms = ms_ssim_terms(images, dslr).mean(dim=0).tolist()
        print(f"{name:22s} {score['psnr']:7.3f} {score['ms_ssim']:8.4f}  "
              + " ".join(f"{t:.4f}" for t in terms))


@torch.no_grad()
def edge_preserving(out: torch.Tensor) -> dict[str, torch.Tensor]:
    """Edge-preserving denoisers on the output: the self-guided filter (the layer that
    model.guided_radius adds, with a fixed eps), total-variation and non-local means."""
    from skimage.restoration import denoise_nl_means, denoise_tv_chambolle

    def per_image(fn) -> torch.Tensor:
        arr = out.permute(0, 2, 3, 1).double().numpy()
        return torch.from_numpy(np.stack([fn(a) for a in arr])).permute(0, 3, 1, 2).float()

    rows = {}
    for radius in (2, 3):
        for eps in (3e-4, 1e-3):
            rows[f"guided r{radius} eps {eps:g}"] = GuidedOutputFilter(radius, eps)(out)
    rows["TV 0.01"] = per_image(lambda a: denoise_tv_chambolle(a, weight=0.01, channel_axis=-1))
    rows["NL-means h 0.015"] = per_image(lambda a: denoise_nl_means(
        a, h=0.015, patch_size=5, patch_distance=6, channel_axis=-1, fast_mode=True))
    return rows


def fixed_filters(generator: torch.nn.Module, phone: torch.Tensor, out: torch.Tensor,
                  dslr: torch.Tensor) -> dict[str, torch.Tensor]:
    """Linear filters, contrast changes, colour oracles, padding and the self-ensemble."""
    mean = out.mean(dim=(2, 3), keepdim=True)
    rows = {}
    for amount in (0.25, 0.5, 1.0):
        rows[f"unsharp {amount}"] = (out + amount * (out - low_pass(out))).clamp(0, 1)
    for amount in (0.25, 0.5, 1.0):
        rows[f"blur {amount}"] = out + amount * (low_pass(out) - out)
    for gain in (1.05, 1.1):
        rows[f"contrast x{gain}"] = (mean + gain * (out - mean)).clamp(0, 1)
    luma, chroma = to_luma_chroma(out)
    for amount in (0.5, 1.0):
        blurred_chroma = chroma + amount * (low_pass(chroma) - chroma)
        blurred_luma = luma + amount * (low_pass(luma) - luma)
        rows[f"chroma blur {amount}"] = from_luma_chroma(luma, blurred_chroma)
        rows[f"luma blur {amount}"] = from_luma_chroma(blurred_luma, chroma)
    # Oracles (they see the target, so no method can be them): how much of the gap one colour
    # transform per image, fitted to the Canon patch by least squares, would close.
    rows["oracle: gain+bias"] = fitted_colour(out, dslr, matrix=False)
    rows["oracle: 3x3+bias"] = fitted_colour(out, dslr, matrix=True)
    rows["reflect pad 14"] = padded(generator, phone, 14)
    rows["8-fold ensemble"] = self_ensemble(generator, phone)
    return rows


if __name__ == "__main__":
    main()
