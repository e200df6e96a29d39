"""The project's two on-disk formats: the saved generator and a run's training state.

The generator (``models/generator.pt``), what evaluate, enhance and export load:

    {"format": "ppe-gan generator", "version": 1, "kind": "dense_unet", "config": {...},
     "state_dict": {...}, "provenance": {"params": {...}, "git_revision": ..., "data": ..., ...}}

The training state (``models/checkpoints/last.pt``, :class:`TrainingState`): everything a run
needs to continue exactly where it stopped (both networks, both optimisers, the step, the RNG
states, the log rows, the sessions). A run continues it only when it was made with the same
settings and data (the run's fingerprint); any other one is moved aside under a dated name,
never overwritten, with a message that says why.

Both hold only tensors, dicts, lists, strings and numbers: loading them never runs code, and a
pickle that tries to is refused by ``weights_only=True``. This module knows the files, not the
training: the trainer (gan.train) hands in its parts and takes them back, so the deploy wing
can read a generator without importing it.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gan.config import GENERATORS, shown
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
    other = _other_kind_of_file(path)
    if other:
        raise CheckpointError(f"{path}: cannot be loaded as a generator checkpoint: {other}")
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
    problem = _field_problem(payload)
    if problem:
        raise CheckpointError(f"{path}: cannot be loaded as a generator: {problem}")
    return payload


def _other_kind_of_file(path: Path) -> str | None:
    """What ``path`` is when it is plainly not a checkpoint (an ONNX export, a text file such as
    a model card), and what to pass instead; None otherwise. torch's own message for these is a
    page about its unpickler."""
    if path.suffix.lower() == ".onnx":
        return ("it is an exported ONNX model; run it with --engine auto or onnxruntime, or pass "
                "the .pt checkpoint it was exported from to the torch engine")
    with open(path, "rb") as handle:
        head = handle.read(4096)
    if head[:2] == b"PK" or head[:1] == b"\x80":  # zip (torch.save) or a legacy pickle
        return None
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if head and b"\x00" not in head:
        return ("it is a text file (a model card?); pass a .pt checkpoint, an exported .onnx "
                "file or a registered name (models/pretrained/registry.json)")
    return None


def _field_problem(payload: dict[str, Any]) -> str | None:
    """What is wrong with a model file's fields (a file of the right format may still have been
    written by something else, or edited), or None."""
    kind, config, state = payload["kind"], payload["config"], payload["state_dict"]
    if not isinstance(kind, str) or kind not in GENERATORS:
        return f"'kind' is {shown(kind)}, not one of {', '.join(GENERATORS)}"
    if not isinstance(config, dict) or not all(isinstance(k, str) for k in config):
        return f"'config' is {shown(config)}, not a mapping of the generator's settings"
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        return "'state_dict' is not a mapping of parameter names to tensors"
    broken = [name for name, tensor in state.items()
              if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())]
    if broken:
        more = f" (and {len(broken) - 1} more)" if len(broken) > 1 else ""
        return (f"its weights hold NaN or infinite values ({broken[0]}{more}): the run that "
                "saved it diverged")
    if not isinstance(payload.get("provenance", {}), dict):
        return f"'provenance' is {shown(payload['provenance'])}, not a mapping"
    return None


def load_generator(path: Path, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the generator a checkpoint describes, in eval mode on ``device``."""
    from gan.networks import build_generator

    payload = read_generator(path)
    try:
        generator = build_generator(payload["kind"], payload["config"])
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: cannot be loaded as a generator: its config does not "
                              f"describe a {payload['kind']} generator: {first_line(exc, 300)}"
                              ) from None
    try:
        generator.load_state_dict(payload["state_dict"])
    except (ValueError, RuntimeError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{path}: the weights do not fit a {payload['kind']} generator: "
                              f"{first_line(exc, 300)}") from None
    return generator.to(device).eval()


# -- the training state ---------------------------------------------------------------------

@dataclass
class TrainingState:
    """A run's training state, as its file holds it. The networks and optimisers are their
    ``state_dict()``s; ``numpy_rng`` holds each rank's bit generator state, in rank order."""

    step: int
    fingerprint: str  # RunSpec.fingerprint(): a run continues only a state of its own
    settings: dict[str, Any] | None  # RunSpec.settings(): names what differs when it does not
    generator: dict[str, Any]
    discriminator: dict[str, Any]
    opt_g: dict[str, Any]
    opt_d: dict[str, Any]
    numpy_rng: list[dict[str, Any]]
    torch_rng: torch.Tensor
    losses: list[dict[str, float]]
    val: list[dict[str, float]]
    train_seconds: float  # wall-clock seconds of training over every session so far
    sessions: list[dict[str, Any]]  # steps, seconds and machine of each session, in order
    ema_generator: dict[str, Any] | None = None  # the weight average, when train.ema > 0


class NotResumable(Exception):
    """A training state this run cannot continue. The message says why and follows the file's
    name: '<path> was made with other settings or data: ...'."""


def save_training_state(path: Path, state: TrainingState) -> None:
    """Write the training state atomically (one writer: rank 0 of a data-parallel run)."""
    payload = {
        "step": state.step,
        "fingerprint": state.fingerprint,
        "settings": state.settings,
        "generator": state.generator,
        "discriminator": state.discriminator,
        "opt_g": state.opt_g,
        "opt_d": state.opt_d,
        "numpy_rng": [json.dumps(s) for s in state.numpy_rng],
        "torch_rng": state.torch_rng,
        "losses": state.losses,
        "val": state.val,
        "train_seconds": state.train_seconds,
        "sessions": state.sessions,
    }
    if state.ema_generator is not None:
        payload["ema_generator"] = state.ema_generator
    atomic_torch_save(payload, Path(path))


def load_training_state(path: Path, fingerprint: str, settings: dict[str, Any],
                        steps: int) -> TrainingState:
    """The training state at ``path``, when the run with this ``fingerprint`` (``settings``:
    the same run, spelled out) and ``steps`` can continue it. Raises NotResumable saying why
    not: unreadable or foreign, another run's (naming each setting that differs), or past
    ``steps``."""
    path = Path(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(payload, dict) or "step" not in payload:
            raise ValueError("not a training checkpoint of this project")
    except Exception as exc:  # truncated, garbage, foreign: all mean "cannot continue it"
        raise NotResumable(f"cannot be read ({type(exc).__name__}: {first_line(exc)})") from None
    if payload.get("fingerprint") != fingerprint:
        raise NotResumable("was made with other settings or data"
                           + settings_differences(payload.get("settings"), settings))
    if payload["step"] > steps:
        raise NotResumable(f"is at step {payload['step']}, beyond train.steps {steps}; to "
                           f"continue it instead, set train.steps to {payload['step']} or more "
                           "and move it back")
    step = int(payload["step"])
    # A state written before the time was kept counts none; one written before the session
    # ledger records its steps as one session (of that total time, on an unknown machine).
    train_seconds = float(payload.get("train_seconds", 0.0))
    sessions = payload.get("sessions") or [
        {"steps": [0, step], "seconds": round(train_seconds, 1) or None, "hardware": None}]
    return TrainingState(
        step=step, fingerprint=payload["fingerprint"], settings=payload.get("settings"),
        generator=payload["generator"], discriminator=payload["discriminator"],
        opt_g=payload["opt_g"], opt_d=payload["opt_d"],
        numpy_rng=[json.loads(s) for s in payload["numpy_rng"]],
        torch_rng=payload["torch_rng"], losses=list(payload["losses"]),
        val=list(payload["val"]), train_seconds=train_seconds, sessions=list(sessions),
        ema_generator=payload.get("ema_generator"))


def saved_step(path: Path) -> int:
    """The step of the training state at ``path`` (for a message about the file)."""
    return torch.load(path, map_location="cpu", weights_only=True)["step"]


def set_aside(path: Path, why: str, move: bool = True) -> str:
    """Move the training state at ``path`` to a dated name beside it, so that the run starting
    over never overwrites it, and say so (``why``: a NotResumable's message). ``move=False``
    only words the message: the other ranks of a data-parallel run, while rank 0 moves it."""
    aside = dated_name(Path(path))
    if move:
        os.replace(path, aside)
    return f"{path} {why}. It was moved to {aside}, not overwritten; starting at step 0"


def settings_differences(saved: dict[str, Any] | None, now: dict[str, Any]) -> str:
    """': loss.msssim 1.0 there, 0.5 now; ...', or a note when the saved state lists nothing."""
    if not isinstance(saved, dict):
        return " (it predates the settings record, so what differs cannot be named)"
    changed = [f"{key} {saved.get(key, '(absent)')!r} there, {now.get(key, '(absent)')!r} now"
               for key in sorted(saved.keys() | now.keys()) if saved.get(key) != now.get(key)]
    return ": " + "; ".join(changed) if changed else ""


def dated_name(path: Path) -> Path:
    """``last.pt`` -> ``last.20261201-120000.pt`` beside it (a counter when that is taken)."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    candidate = path.with_name(f"{path.stem}.{stamp}{path.suffix}")
    count = 1
    while candidate.exists():
        count += 1
        candidate = path.with_name(f"{path.stem}.{stamp}-{count}{path.suffix}")
    return candidate
