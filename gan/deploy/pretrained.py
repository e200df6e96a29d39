"""Generators that ship with the project, by name: models/pretrained/registry.json.

    {"iphone-dped-mini": {"file": "iphone-dped-mini.pt", "sha256": "...",
                          "card": "iphone-dped-mini.md", "summary": "..."}}

``resolve_model("iphone-dped-mini")`` gives the file after checking its sha256, so a truncated
or edited file is refused by name instead of producing wrong photos; anything that is not a
registered name is taken as a path. ``publish`` is how a file gets in: a copy of a trained
generator, its model card, and the registry entry, each written atomically.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from gan.checkpoint import CheckpointError, read_generator
from gan.fsio import sha256_of, write_bytes

PRETRAINED_DIR = Path(__file__).resolve().parents[2] / "models" / "pretrained"
REGISTRY = "registry.json"
DEFAULT_MODEL = "iphone-dped-mini"  # what enhance / evaluate / export use without --model

DATA_TERMS = (
    "DPED (Ignatov et al., ICCV 2017) and the PIRM 2018 challenge data are released for "
    "research and non-commercial use only; a model trained on them inherits those terms.")


def registry(directory: Path = PRETRAINED_DIR) -> dict[str, dict[str, Any]]:
    """The registered names and their entries ({} when nothing is registered)."""
    path = Path(directory) / REGISTRY
    if not path.is_file():
        return {}
    try:
        entries = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: unreadable model registry: {exc}") from None
    if not isinstance(entries, dict):
        raise CheckpointError(f"{path}: the model registry must be a JSON object of names")
    return entries


def resolve_model(spec: str | Path, directory: Path = PRETRAINED_DIR) -> Path:
    """A registered name -> its file, sha256 checked; anything else -> that path.

    A path that does not exist is returned as is: loading it gives the precise error."""
    text = str(spec)
    entries = registry(directory)
    if text not in entries:
        if os.sep not in text and not Path(text).suffix and not Path(text).exists():
            known = ", ".join(sorted(entries)) or "none"
            raise CheckpointError(f"{text}: neither a model file nor a registered model name "
                                  f"(registered: {known})")
        return Path(text)
    entry = entries[text]
    path = Path(directory) / entry["file"]
    if not path.is_file():
        raise CheckpointError(f"{path}: the file of registered model {text!r} is missing; "
                              "restore it (git checkout) or regenerate it (make pretrained)")
    actual = sha256_of(path)
    if actual != entry["sha256"]:
        raise CheckpointError(
            f"{path}: sha256 {actual[:16]}... but registered model {text!r} has "
            f"{entry['sha256'][:16]}...: the file was changed or truncated; restore it "
            "(git checkout) or regenerate it (make pretrained)")
    return path


def publish(model: Path, name: str, card: str, summary: str,
            directory: Path = PRETRAINED_DIR) -> Path:
    """Copy a trained generator in as ``name``: the .pt file, its card (.md) and the registry
    entry. The generator must load (read_generator checks it) before anything is written."""
    if not name or any(c in name for c in "/\\ ") or name.startswith("."):
        raise ValueError(f"{name!r}: a model name is one word of letters, digits, '-', '_', '.'")
    read_generator(model)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{name}.pt"
    write_bytes(target, Path(model).read_bytes())  # about 1.5 MB
    write_bytes(directory / f"{name}.md", card.encode())
    entries = registry(directory)
    entries[name] = {"file": target.name, "sha256": sha256_of(target),
                     "card": f"{name}.md", "summary": summary}
    write_bytes(directory / REGISTRY,
                (json.dumps(entries, indent=2, sort_keys=True) + "\n").encode())
    return target


def model_card(name: str, checkpoint: dict[str, Any], train_metrics: dict[str, Any],
               scores: dict[str, Any], data: str, command: str) -> str:
    """The model card (Markdown) of a published generator: what it was trained on, how, for
    how long on what, and how it scores; every figure comes from the run's own files."""
    provenance = checkpoint.get("provenance", {})
    params = provenance.get("params", {})
    lines = [
        f"# {name}",
        "",
        f"A `{checkpoint['kind']}` generator ({_parameter_count(checkpoint):,} parameters) that "
        "turns iPhone 3GS photos into Canon 70D-like ones. Use it with "
        f"`enhance photo.jpg -o out/` (the default model) or `--model {name}`.",
        "",
        "## Data",
        "",
        data,
        "",
        "## Training",
        "",
        f"- steps: {provenance.get('steps')}, {train_metrics.get('seconds', 0) / 60:.1f} minutes "
        f"on {provenance.get('hardware', 'unrecorded hardware')} ({provenance.get('device')}, "
        f"{provenance.get('precision')})",
        f"- code: git {provenance.get('git_revision')}, torch {provenance.get('torch')}, "
        f"created {provenance.get('created')}",
        f"- regenerate: `{command}`",
        "",
        "Settings (params.yaml sections as trained):",
        "",
        "```yaml",
    ]
    for section in ("model", "loss", "train"):
        lines.append(f"{section}:")
        lines += [f"  {k}: {json.dumps(v)}" for k, v in params.get(section, {}).items()]
    lines += ["```", "", "## Scores", "",
              "DPED protocol: mean PSNR / MS-SSIM over the raw 100x100 test pairs.", "",
              "| method | PSNR (dB) | MS-SSIM |", "| --- | --- | --- |"]
    for method, row in scores.items():
        lines.append(f"| {method} | {row['psnr']:.2f} | {row['ms_ssim']:.4f} |")
    lines += ["", "## Terms", "", DATA_TERMS, ""]
    return "\n".join(lines)


def _parameter_count(checkpoint: dict[str, Any]) -> int:
    return sum(t.numel() for t in checkpoint["state_dict"].values() if t.is_floating_point())
