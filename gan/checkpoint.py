"""The saved generator: a plain dict that loads with ``torch.load(weights_only=True)``.

    {"format": "ppe-gan generator", "version": 1, "kind": "dense_unet", "config": {...},
     "state_dict": {...}, "provenance": {"params": {...}, "git_revision": ..., "data": ..., ...}}

Only tensors, dicts, lists, strings and numbers: loading it never runs code, and a pickle that
tries to is refused by ``weights_only=True``.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gan.errors import first_line
from gan.fsio import write_bytes

FORMAT = "ppe-gan generator"
VERSION = 1


class CheckpointError(ValueError):
    """The file is missing, unreadable, unsafe, or not a generator checkpoint of this project."""


def save_generator(path: Path, generator: nn.Module, provenance: dict[str, Any]) -> None:
    """Write the generator atomically."""
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "kind": generator.kind,
        "config": generator.config_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in generator.state_dict().items()},
        "provenance": provenance,
    }
    atomic_torch_save(payload, Path(path))


def atomic_torch_save(payload: Any, path: Path) -> None:
    """``torch.save``, atomically (gan.fsio): a crash never leaves half a checkpoint. The
    payload is serialised in memory first (a few MB): torch's own file writer turns a full disk
    into a C++ error that names no file; Python's write gives the plain OSError gan.fsio reports."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    write_bytes(path, buffer.getbuffer())


def read_generator(path: Path) -> dict[str, Any]:
    """The checkpoint dict, checked; CheckpointError says what is wrong with which file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such model file; train one with `dvc repro train` or "
                              "pass --model")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # the unpickler raises many types; all mean "not loadable safely"
        raise CheckpointError(f"{path}: cannot be loaded as a safe (weights-only) checkpoint: "
                              f"{type(exc).__name__}: {first_line(exc)}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a {FORMAT} checkpoint (no 'format': '{FORMAT}' entry)")
    missing = [k for k in ("kind", "config", "state_dict") if k not in payload]
    if missing:
        raise CheckpointError(f"{path}: generator checkpoint lacks {', '.join(missing)}")
    return payload


def load_generator(path: Path, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the generator a checkpoint describes, in eval mode on ``device``."""
    from gan.networks import build_generator

    payload = read_generator(path)
    try:
        generator = build_generator(payload["kind"], payload["config"])
        generator.load_state_dict(payload["state_dict"])
    except (ValueError, RuntimeError, KeyError) as exc:
        raise CheckpointError(f"{path}: the weights do not fit a {payload['kind']} generator: "
                              f"{first_line(exc, 300)}") from None
    return generator.to(device).eval()
