"""Short CPU training runs on the real DPED pairs of ../shared/dped-mini, both generators.

    python bench/dped_mini_train.py --steps 200

Extracts and aligns dped-mini's 160 training and 40 test pairs, trains the Dense U-Net and the
DPED ResNet with the committed params (model, loss, train sections; only the step count and the
validation cadence changed) on the same data with the same budget, and scores both, and the
input itself, on the 40 test pairs with the DPED protocol (gan.metrics):

- raw: the 100x100 test patches as DPED and PIRM score them (compare with DPED.md's identity
  numbers, 17.33 dB / 0.8619);
- aligned: the 96x96 aligned test crops of the extract stage.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gan.config import ExtractConfig, Params  # noqa: E402
from gan.data.dped import DpedSource, decode_patch, find_layout  # noqa: E402
from gan.data.extract import extract  # noqa: E402
from gan.data.patches import PatchPairs, data_fingerprint, to_tensor  # noqa: E402
from gan.metrics import mean_finite, ms_ssim, psnr  # noqa: E402
from gan.networks import macs_per_pixel  # noqa: E402
from gan.runtime import keep_freed_memory  # noqa: E402
from gan.train import Dist, Trainer  # noqa: E402
from gan.train import RunSpec  # noqa: E402

DPED_MINI = ROOT.parent / "shared" / "dped-mini" / "iphone"


def score(output: torch.Tensor, target: torch.Tensor) -> str:
    value, infinite = mean_finite(psnr(output, target))
    return f"{value:6.2f} dB ({infinite} inf)  MS-SSIM {ms_ssim(output, target).mean().item():.4f}"


@torch.no_grad()
def enhance(generator: torch.nn.Module, phone: torch.Tensor) -> torch.Tensor:
    generator.eval()
    return torch.cat([generator(phone[i:i + 20]) for i in range(0, len(phone), 20)])


def main() -> None:
    keep_freed_memory()  # as the train stage does: the same allocations every step
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    if not DPED_MINI.is_dir():
        raise SystemExit(f"{DPED_MINI} is not here: nothing to train on")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    print(f"machine: {torch.get_num_threads()} threads, torch {torch.__version__}; "
          f"{args.steps} steps each, batch {params['train']['batch_size']}")

    with tempfile.TemporaryDirectory() as tmp, DpedSource(DPED_MINI) as source:
        work = Path(tmp)
        layout = find_layout(source.names(), "iphone")
        settings = ExtractConfig(**yaml.safe_load((ROOT / "params.yaml").read_text())["extract"])
        summary = extract(DPED_MINI, layout, work / "patches", settings, workers=2)
        print(f"extract: kept {summary.kept}")
        raw_phone = to_tensor(np.stack([decode_patch(source.read(p.phone))
                                        for p in layout.pairs["test"]]))
        raw_dslr = to_tensor(np.stack([decode_patch(source.read(p.dslr))
                                       for p in layout.pairs["test"]]))
        test = PatchPairs(work / "patches", "test")
        aligned_phone, aligned_dslr = test.gather(np.arange(len(test)))

        rows = [("input (identity)", score(raw_phone, raw_dslr),
                 score(aligned_phone, aligned_dslr), "", "")]
        for kind in ("dense_unet", "dped_resnet"):
            values = {name: dict(params[name]) for name in ("model", "loss", "train")}
            values["model"]["generator"] = kind
            values["train"].update(steps=args.steps, val_every=args.steps,
                                   checkpoint_every=args.steps, val_patches=len(test))
            spec = RunSpec.from_params(Params.from_dict(values), data_fingerprint(work / "patches"))
            trainer = Trainer(spec, work / "patches", work / f"{kind}.pt", Dist())
            started = time.perf_counter()
            trainer.fit()
            seconds = time.perf_counter() - started
            generator = trainer.generator
            rows.append((kind, score(enhance(generator, raw_phone), raw_dslr),
                         score(enhance(generator, aligned_phone), aligned_dslr),
                         f"{macs_per_pixel(generator) / 1e3:.0f}K", f"{seconds:.0f} s"))
            print(f"{kind}: trained in {seconds:.0f} s")

    print(f"\n{'':18} {'raw 100x100 test pairs (DPED protocol)':42} "
          f"{'aligned 96x96 test crops':42} {'MACs/px':>8} {'train':>7}")
    for name, raw, aligned, macs, seconds in rows:
        print(f"{name:18} {raw:42} {aligned:42} {macs:>8} {seconds:>7}")


if __name__ == "__main__":
    main()
