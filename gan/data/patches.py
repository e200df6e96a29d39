"""Training data: the aligned patch arrays of the extract stage, read through memmaps.

The arrays are uint8 (N, 96, 96, 3) .npy files; a batch gathers its rows from the memmap, so the
whole array never has to fit in memory (DPED iPhone: 4.4 GB per side).
"""

from __future__ import annotations

import hashlib
import os
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch


def _open_array(path: Path) -> np.ndarray:
    """A patch array memory-mapped; a file that is not one is a ValueError naming it."""
    try:
        return np.load(path, mmap_mode="r")
    except (ValueError, OSError, EOFError) as exc:
        raise ValueError(f"{path}: not a readable .npy patch array "
                         f"({' '.join(str(exc).split())[:160]}); rerun the extract stage "
                         "(dvc repro extract)") from None


class PatchPairs:
    """Phone/DSLR patch pairs of one split (``train`` or ``test``) in ``folder``.

    ``shard`` = (rank, world): this process sees only the rows ``rank, rank + world, ...``, so data
    parallel processes draw from disjoint shards.

    Batches are read with one ``pread`` per row into a fresh buffer, not through the memmaps
    (``phone`` / ``dslr``, kept for readers of whole arrays): every page a memmap touches stays
    in the process's resident set, which grew to the arrays' 8.9 GB at DPED's full scale
    (bench/README.md, "DPED at full scale"), while pread leaves them to the page cache.
    """

    def __init__(self, folder: Path, split: str, shard: tuple[int, int] = (0, 1)):
        self.folder = Path(folder)
        paths = [self.folder / f"{split}_{side}.npy" for side in ("phone", "dslr")]
        for path in paths:
            if not path.exists():
                raise FileNotFoundError(f"{path}: patch array missing; run the extract stage first "
                                        "(dvc repro extract)")
        self.phone, self.dslr = (_open_array(path) for path in paths)
        if self.phone.shape != self.dslr.shape or self.phone.ndim != 4 or self.phone.shape[-1] != 3:
            raise ValueError(f"{self.folder}: {split} arrays disagree or are not (N, H, W, 3): "
                             f"{self.phone.shape} vs {self.dslr.shape}")
        if self.phone.dtype != np.uint8 or self.dslr.dtype != np.uint8:
            raise ValueError(f"{self.folder}: {split} arrays are {self.phone.dtype} and "
                             f"{self.dslr.dtype}, not uint8")
        rank, world = shard
        self.rows = np.arange(rank, len(self.phone), world)
        if len(self.rows) == 0:
            raise ValueError(f"{self.folder}: no {split} pairs for shard {rank} of {world}")
        self._readers = (_RowReader(paths[0], self.phone), _RowReader(paths[1], self.dslr))

    def __len__(self) -> int:
        return len(self.rows)

    def gather_uint8(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows at ``positions`` (into this shard) as two (B, H, W, 3) uint8 arrays."""
        rows = self.rows[positions]
        return self._readers[0].read(rows), self._readers[1].read(rows)

    def gather(self, positions: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows at ``positions`` (into this shard) as two (B, 3, H, W) float tensors in [0, 1]."""
        phone, dslr = self.gather_uint8(positions)
        return to_tensor(phone), to_tensor(dslr)

    def draw(self, rng: np.random.Generator, batch: int, augment: bool = True) -> BatchPlan:
        """What a random batch will be: rows, and the flips and 90-degree turns applied to both
        sides. Drawing is cheap and uses ``rng``; loading (``load``) is the slow part and uses
        no random numbers, so it can run ahead in another thread (gan.train)."""
        positions = rng.integers(0, len(self.rows), size=batch)
        if not augment:
            return BatchPlan(positions, None, None)
        return BatchPlan(positions, rng.integers(0, 4, size=batch), rng.random(batch) < 0.5)

    def load(self, plan: BatchPlan) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch ``plan`` describes, as two (B, 3, H, W) float tensors in [0, 1]."""
        phone, dslr = self.gather_uint8(plan.positions)
        if plan.turns is not None:
            phone = _augment(phone, plan.turns, plan.flips)
            dslr = _augment(dslr, plan.turns, plan.flips)
        return to_tensor(phone), to_tensor(dslr)

    def sample(self, rng: np.random.Generator, batch: int,
               augment: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """A random batch with random flips and 90-degree rotations (the same for both sides)."""
        return self.load(self.draw(rng, batch, augment))


@dataclass(frozen=True)
class BatchPlan:
    """A drawn batch: positions into the shard; per patch a number of 90-degree turns and
    whether it is mirrored first (None: no augmentation)."""

    positions: np.ndarray
    turns: np.ndarray | None
    flips: np.ndarray | None


class _RowReader:
    """Rows of one .npy array read with pread (see PatchPairs)."""

    def __init__(self, path: Path, array: np.memmap):
        self.path = path
        self.row_shape = array.shape[1:]
        self.row_bytes = int(np.prod(self.row_shape))
        self.offset = int(array.offset)
        self.fd = os.open(path, os.O_RDONLY)
        weakref.finalize(self, os.close, self.fd)

    def read(self, rows: np.ndarray) -> np.ndarray:
        out = np.empty((len(rows), *self.row_shape), np.uint8)
        flat = out.reshape(len(rows), self.row_bytes)
        for k in np.argsort(rows, kind="stable"):  # in file order: kinder to a disk
            where = self.offset + int(rows[k]) * self.row_bytes
            if os.preadv(self.fd, [flat[k]], where) != self.row_bytes:
                raise ValueError(f"{self.path}: row {int(rows[k])} lies past the end of the "
                                 "file (truncated? run the extract stage again)")
        return out


def _augment(images: np.ndarray, turns: np.ndarray, flips: np.ndarray) -> np.ndarray:
    """(B, H, W, 3) uint8, square patches: each mirrored left-right when ``flips``, then turned
    by ``turns`` quarter turns (np.rot90's sense), the patches of one (flip, turns) at a time."""
    # Moved as 3-byte pixels, not bytes: the strided copies move a third as many items (2.2x
    # faster than per-byte numpy, 2.5x faster than torch on (B, 3, H, W) floats).
    pixels = images.view(np.dtype((np.void, 3))).reshape(images.shape[:3])
    out = np.empty_like(pixels)
    for flip in (False, True):
        for k in range(4):
            chosen = np.flatnonzero((turns == k) & (flips == flip))
            if len(chosen):
                block = pixels[chosen]
                if flip:
                    block = block[:, :, ::-1]
                out[chosen] = np.rot90(block, k, axes=(1, 2))
    return out.view(np.uint8).reshape(images.shape)


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
