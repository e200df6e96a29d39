"""Training data: the aligned patch arrays of the extract stage, read through memmaps.

The arrays are uint8 (N, 96, 96, 3) .npy files; a batch gathers its rows from the memmap, so the
whole array never has to fit in memory (DPED iPhone: 4.4 GB per side).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch


class PatchPairs:
    """Phone/DSLR patch pairs of one split (``train`` or ``test``) in ``folder``.

    ``shard`` = (rank, world): this process sees only the rows ``rank, rank + world, ...``, so data
    parallel processes draw from disjoint shards.
    """

    def __init__(self, folder: Path, split: str, shard: tuple[int, int] = (0, 1)):
        self.folder = Path(folder)
        paths = [self.folder / f"{split}_{side}.npy" for side in ("phone", "dslr")]
        for path in paths:
            if not path.exists():
                raise FileNotFoundError(f"{path}: patch array missing; run the extract stage first "
                                        "(dvc repro extract)")
        self.phone = np.load(paths[0], mmap_mode="r")
        self.dslr = np.load(paths[1], mmap_mode="r")
        if self.phone.shape != self.dslr.shape or self.phone.ndim != 4 or self.phone.shape[-1] != 3:
            raise ValueError(f"{self.folder}: {split} arrays disagree or are not (N, H, W, 3): "
                             f"{self.phone.shape} vs {self.dslr.shape}")
        rank, world = shard
        self.rows = np.arange(rank, len(self.phone), world)
        if len(self.rows) == 0:
            raise ValueError(f"{self.folder}: no {split} pairs for shard {rank} of {world}")

    def __len__(self) -> int:
        return len(self.rows)

    def gather(self, positions: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows at ``positions`` (into this shard) as two (B, 3, H, W) float tensors in [0, 1]."""
        rows = self.rows[positions]
        order = np.argsort(rows)  # reading a memmap in file order is kinder to the disk
        back = np.empty_like(order)
        back[order] = np.arange(len(order))
        phone = self.phone[rows[order]][back]
        dslr = self.dslr[rows[order]][back]
        return to_tensor(phone), to_tensor(dslr)

    def sample(self, rng: np.random.Generator, batch: int,
               augment: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """A random batch with random flips and 90-degree rotations (the same for both sides)."""
        phone, dslr = self.gather(rng.integers(0, len(self.rows), size=batch))
        if augment:
            turns = rng.integers(0, 4, size=batch)
            flips = rng.random(batch) < 0.5
            phone = _augment(phone, turns, flips)
            dslr = _augment(dslr, turns, flips)
        return phone, dslr


def _augment(images: torch.Tensor, turns: np.ndarray, flips: np.ndarray) -> torch.Tensor:
    out = []
    for image, k, flip in zip(images, turns, flips):
        if flip:
            image = image.flip(-1)
        out.append(torch.rot90(image, int(k), dims=(-2, -1)))
    return torch.stack(out)


def add_noise(phone: torch.Tensor, rng: np.random.Generator, max_std: float) -> torch.Tensor:
    """The phone patches with Gaussian noise, independent per pixel and channel, of a standard
    deviation drawn per patch uniformly from [0, max_std], clipped to [0, 1].

    Why: the generator, trained on a few hundred pairs, keeps the phone's noise in its output
    (edge-preserving denoising of its output gains MS-SSIM; bench/README.md, issue 10); noise on
    the input side only, with the clean DSLR patch as the target, teaches it to remove noise.
    Drawn from the trainer's generator, so a resumed run draws the same noise."""
    std = rng.uniform(0.0, max_std, size=(len(phone), 1, 1, 1)).astype(np.float32)
    noise = rng.standard_normal(size=tuple(phone.shape), dtype=np.float32) * std
    return (phone + torch.from_numpy(noise)).clamp_(0.0, 1.0)


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """(B, H, W, 3) uint8 -> (B, 3, H, W) float32 in [0, 1]."""
    # A read-only memmap is copied (uint8, cheap): torch refuses to wrap non-writable memory.
    rgb = np.require(rgb, requirements=("C_CONTIGUOUS", "WRITEABLE"))
    return torch.from_numpy(rgb).permute(0, 3, 1, 2).float().div_(255.0)


def data_fingerprint(folder: Path) -> str:
    """A short hash identifying the extracted patch set: pairs.csv (every pair's index, shift,
    score and row) and the arrays' sizes. Cheap at any data size, unlike hashing 9 GB of pixels."""
    digest = hashlib.sha256()
    folder = Path(folder)
    table = folder / "pairs.csv"
    if table.exists():
        digest.update(table.read_bytes())
    for name in ("train_phone.npy", "train_dslr.npy", "test_phone.npy", "test_dslr.npy"):
        path = folder / name
        digest.update(f"{name}:{path.stat().st_size if path.exists() else -1};".encode())
    return digest.hexdigest()[:16]
