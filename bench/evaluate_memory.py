"""Where evaluate's memory goes: the peak resident memory of each part, one part at a time.

    python bench/evaluate_memory.py --patches data/patches --model models/generator.pt

On the extract stage's test pairs: each metric (PSNR, SSIM, MS-SSIM, the look) on one chunk of
evaluate's size, each method enhancing that chunk, and each method on the first full-size photo
(enhance, LOE, NIQE). Each line is the process's resident memory before the part, its peak
during it (VmHWM, reset before each part through /proc/self/clear_refs; Linux only) and after.
Run with ``--keep-freed`` to measure as the stage runs (gan.runtime.keep_freed_memory: freed
blocks stay in the heap, so "after" shows what the part left reserved).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from gan.checkpoint import load_generator  # noqa: E402
from gan.data.patches import to_tensor  # noqa: E402
from gan.evaluation.evaluate import (CHUNK, Method, aligned_test_chunks,  # noqa: E402
                                     baseline_methods, generator_method, generator_photo,
                                     read_rgb8)
from gan.evaluation.loe import lightness_order_error  # noqa: E402
from gan.evaluation.niqe import niqe  # noqa: E402
from gan.look import look_stats  # noqa: E402
from gan.metrics import ms_ssim, psnr, ssim  # noqa: E402
from gan.runtime import keep_freed_memory  # noqa: E402


def status_gb(field: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1e6
    raise RuntimeError(f"no {field} in /proc/self/status")


def part(name: str, work):
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # resets VmHWM to the current resident size
    before, began = status_gb("VmRSS"), time.perf_counter()
    result = work()
    print(f"{name:28} before {before:5.2f} GB  peak {status_gb('VmHWM'):5.2f} GB  "
          f"after {status_gb('VmRSS'):5.2f} GB  {time.perf_counter() - began:6.1f} s", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patches", type=Path, required=True, help="the extract stage's output")
    parser.add_argument("--model", type=Path, required=True, help="a generator checkpoint")
    parser.add_argument("--keep-freed", action="store_true", help="as the stage runs")
    args = parser.parse_args()
    if args.keep_freed:
        keep_freed_memory()
    device = torch.device("cpu")
    generator = load_generator(args.model, device)
    methods = [*baseline_methods(), Method("ours", generator_method(generator, device, 32),
                                           photo=generator_photo(generator, device))]
    phone, dslr, _ = next(aligned_test_chunks(args.patches, CHUNK))
    output, target = to_tensor(phone), to_tensor(dslr)
    print(f"{len(phone)} test pairs of {phone.shape[1]}x{phone.shape[2]} (one chunk)")
    for name, metric in (("psnr", psnr), ("ssim", ssim), ("ms_ssim", ms_ssim)):
        part(f"chunk: {name}", lambda: metric(output, target))
    part("chunk: look", lambda: look_stats(output))
    for method in methods:
        part(f"chunk: {method.name}", lambda: method.enhance(phone))
    photos = sorted((args.patches / "full_size").glob("*"))
    if not photos:
        return
    image = part(f"photo: read {photos[0].name}", lambda: read_rgb8(photos[0]))
    print(f"full-size photo {image.shape[1]}x{image.shape[0]}")
    part("photo: niqe of the input", lambda: niqe(image))
    for method in methods:
        enhanced = part(f"photo: {method.name}", lambda: method.enhance_photo(image))
        part(f"photo: {method.name} loe", lambda: lightness_order_error(image, enhanced))
        part(f"photo: {method.name} niqe", lambda: niqe(enhanced))
        del enhanced


if __name__ == "__main__":
    main()
