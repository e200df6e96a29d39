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
import math
import os
import re
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


PHONE_NAMES = {"iphone": "iPhone 3GS", "blackberry": "BlackBerry Passport",
               "sony": "Sony Xperia Z"}


def pairs_phrase(record: dict[str, Any], all_pairs: bool = False) -> str:
    """'160 training and 40 test pairs', or 'all 200 pairs (160 training + 40 test)' for a model
    trained on every pair; from the download stage's record (source.json)."""
    pairs = record.get("pairs", {})
    train, test = pairs.get("train", 0), pairs.get("test", 0)
    if all_pairs:
        return f"all {train + test} pairs ({train} training + {test} test)"
    return f"{train} training and {test} test pairs"


def trained_pairs(record: dict[str, Any], all_pairs: bool = False) -> int | None:
    """How many pairs the model trained on, by the download stage's record."""
    pairs = record.get("pairs") or {}
    if "train" not in pairs:
        return None
    return pairs["train"] + pairs.get("test", 0) if all_pairs else pairs["train"]


def describe_data(record: dict[str, Any], all_pairs: bool = False) -> str:
    """The model card's data paragraph, from the download stage's record (source.json) alone,
    so the split it names and the counts it gives cannot disagree: PIRM indices for the pirm
    source, DPED's own training_data/ and test_data/ folders for a DPED-layout source."""
    source = record.get("source", "?")
    origin = str(record.get("origin", ""))
    if origin.startswith("/"):
        origin = Path(origin).name  # a local copy: its name, not this machine's folders
    phone = PHONE_NAMES.get(record.get("phone", ""), str(record.get("phone", "phone")))
    pairs = record.get("pairs", {})
    train, test = pairs.get("train", 0), pairs.get("test", 0)
    where = f"{source} source" + (f", {origin}" if origin else "")
    if source == "pirm" and "pirm_indices" in record:
        indices = record["pirm_indices"]
        split = (f"{train} training pairs (PIRM indices {indices.get('train')}) and {test} test "
                 f"pairs (PIRM indices {indices.get('test')}), split by data.pirm_train / "
                 "data.pirm_test")
        what = f"The PIRM 2018 challenge's DPED {phone} / Canon 70D pairs ({where})"
    else:
        split = (f"{train} training pairs (its training_data/ folders) and {test} test pairs "
                 "(its test_data/ folders)")
        what = (f"Simulated {phone} / DSLR pairs ({where})" if source == "sample"
                else f"DPED {phone} / Canon 70D pairs ({where})")
    text = f"{what}: {split}."
    if all_pairs:
        text += (f" The model was trained on all {train + test} (those the extract stage "
                 "kept): the test pairs' aligned crops were added to the training set "
                 "(tools/pretrained.sh with ALL_PAIRS=1), so no pair here is held out from it.")
    else:
        text += " The test pairs are held out: the model never trained on them."
    return text


def model_card(name: str, checkpoint: dict[str, Any], train_metrics: dict[str, Any],
               scores: dict[str, Any], data: str, command: str, *,
               cv: dict[str, Any] | None = None, all_pairs: bool = False,
               trained_pairs: int | None = None,
               run_params: dict[str, Any] | None = None,
               full_size: dict[str, dict[str, Any]] | None = None) -> str:
    """The model card (Markdown) of a published generator: what it was trained on, how, for
    how long on what, and how it scores; every figure comes from the run's own files.

    scores: eval.json's ``raw`` section (method -> psnr, ms_ssim, patches). ``all_pairs``: the
    model was trained on the test pairs too, so those scores are shown as seen-pair scores, never
    as a test. ``cv``: a cross-validation summary (bench/small_data.py --cv; keys in
    ``cv_section``), quoted as the card's headline quality figures. ``trained_pairs``: how many
    pairs the model trained on, to say when the cross-validation ran on another number.
    ``run_params``: the run's params file, whose ``extract`` section joins the settings.
    ``full_size``: eval.json's ``niqe`` and ``loe`` (method -> mean over the full-size photos),
    the only figures on whole photos, which have no DSLR twin."""
    provenance = checkpoint.get("provenance", {})
    params = provenance.get("params", {})
    lines = [
        f"# {name}",
        "",
        f"A `{checkpoint['kind']}` generator ({_parameter_count(checkpoint):,} parameters) that "
        "turns iPhone 3GS photos into Canon 70D-like ones. Use it with "
        f"`enhance photo.jpg -o out/` (the default model) or `--model {name}`.",
        "",
    ]
    if cv is not None:
        lines += cv_section(cv, all_pairs, trained_pairs)
    lines += [
        "## Data",
        "",
        data,
        "",
        "## Training",
        "",
        training_line(provenance, train_metrics),
        f"- code: git {provenance.get('git_revision')}, torch {provenance.get('torch')}, "
        f"created {provenance.get('created')}",
        f"- regenerate: `{command}`",
        "",
        "Settings (params.yaml sections as trained):",
        "",
        "```yaml",
    ]
    sections = {section: params.get(section, {}) for section in ("model", "loss", "train")}
    if run_params and isinstance(run_params.get("extract"), dict):
        # workers: how fast, not what comes out
        sections["extract"] = {k: v for k, v in run_params["extract"].items() if k != "workers"}
    for section, values in sections.items():
        lines.append(f"{section}:")
        lines += [f"  {k}: {json.dumps(v)}" for k, v in values.items()]
    lines += ["```", ""]
    if all_pairs:
        count = scores.get("ours", {}).get("patches", "the")
        lines += ["## Scores on seen pairs (not a test)", "",
                  f"The evaluate stage's mean PSNR / MS-SSIM over {count} raw 100x100 test pairs "
                  "(DPED protocol), which this model was trained on: they say how well it fits "
                  "pairs it has seen, not how it does on new photos."
                  + (" The figures to quote are the cross-validation's, above." if cv is not None
                     else " No held-out figure was given (publish --cv-metrics): this card has "
                          "no measure of its quality on unseen pairs."),
                  "", "| method | PSNR (dB), seen pairs | MS-SSIM, seen pairs |",
                  "| --- | --- | --- |"]
    else:
        lines += ["## Scores", "",
                  "DPED protocol: mean PSNR / MS-SSIM over the raw 100x100 test pairs.", "",
                  "| method | PSNR (dB) | MS-SSIM |", "| --- | --- | --- |"]
    for method, row in scores.items():
        lines.append(f"| {method} | {row['psnr']:.2f} | {row['ms_ssim']:.4f} |")
    lines += full_size_section(full_size or {})
    lines += ["", "## Terms", "", DATA_TERMS, ""]
    return "\n".join(lines)


def full_size_section(full_size: dict[str, dict[str, Any]]) -> list[str]:
    """The evaluate stage's no-reference figures on the source's full-size photos: NIQE (lower
    is more natural) and LOE (lower keeps the light order), one row per method."""
    niqe, loe = full_size.get("niqe") or {}, full_size.get("loe") or {}
    methods = list(dict.fromkeys([*niqe, *loe]))
    if not methods:
        return []

    def cell(table: dict[str, Any], method: str) -> str:
        value = table.get(method)
        return "n/a" if not isinstance(value, (int, float)) or value != value else f"{value:.2f}"

    lines = ["", "## Full-size photos (no DSLR twin)", "",
             "The evaluate stage's means over the source's full-size phone photos: NIQE "
             "(gan/evaluation/niqe.py; lower is more natural) and the lightness order error "
             "(lower keeps the scene's order of light).", "",
             "| method | NIQE | LOE |", "| --- | --- | --- |"]
    lines += [f"| {m} | {cell(niqe, m)} | {cell(loe, m)} |" for m in methods]
    return lines


def training_line(provenance: dict[str, Any], train_metrics: dict[str, Any]) -> str:
    """'- steps: 600, 3.1 minutes on <machine> (cpu, bf16)'; for a run that was stopped and
    resumed, the minutes of each session that made its steps (a session's work after its last
    checkpoint was redone by the next and counts once)."""
    minutes = train_metrics.get("seconds", 0) / 60
    how = f"({provenance.get('device')}, {provenance.get('precision')})"
    machine = _threads(provenance.get("hardware") or "unrecorded hardware")
    sessions = provenance.get("sessions") or []
    if len(sessions) <= 1:
        return f"- steps: {provenance.get('steps')}, {minutes:.1f} minutes on {machine} {how}"
    parts = []
    for session in sessions:
        first, last = session.get("steps", ["?", "?"])
        seconds, hardware = session.get("seconds"), session.get("hardware")
        parts.append(f"steps {first}-{last} "
                     + (f"in {seconds / 60:.1f} minutes" if seconds is not None
                        else "in time not recorded (a checkpoint from before the session record)")
                     + (f" on {_threads(hardware)}" if hardware else ""))
    unknown = any(s.get("seconds") is None for s in sessions)
    return (f"- steps: {provenance.get('steps')}, {'at least ' if unknown else ''}"
            f"{minutes:.1f} minutes of training over {len(sessions)} sessions (stopped and "
            f"resumed from a checkpoint; steps done after the last checkpoint of a stopped "
            f"session were redone and are counted once): {'; '.join(parts)} {how}")


def _threads(hardware: str) -> str:
    """'..., 1 threads, ...' as recorded by older code -> '1 thread'."""
    return re.sub(r"\b1 threads\b", "1 thread", hardware)


# How a cross-validated figure compares: higher is better, nearer 1 (a ratio to the DSLR target's)
# or nearer 0 (a difference from it). Keys not listed are shown, never compared.
_HIGHER = ("psnr", "ms_ssim", "psnr_without_saturated", "ms_ssim_without_saturated")
_NEAR_ONE = ("detail_ratio", "contrast_ratio", "saturation_ratio")
_NEAR_ZERO = ("black_diff",)
_LOOK = ("detail_ratio", "contrast_ratio", "black_diff", "saturation_ratio")
_LABELS = {"psnr": "PSNR", "ms_ssim": "MS-SSIM",
           "psnr_without_saturated": "PSNR without saturated pairs",
           "ms_ssim_without_saturated": "MS-SSIM without saturated pairs",
           "detail_ratio": "detail ratio", "contrast_ratio": "contrast ratio",
           "saturation_ratio": "saturation ratio", "black_diff": "black-level difference"}
_FORMATS = {"psnr": "{:.2f}", "psnr_without_saturated": "{:.2f}", "ms_ssim": "{:.4f}",
            "ms_ssim_without_saturated": "{:.4f}", "black_diff": "{:+.2f}"}


def _number(value: Any) -> bool:
    """A finite figure (a summary writes NaN or null where a figure is undefined)."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def _shown(key: str, value: Any) -> str:
    return _FORMATS.get(key, "{:.3f}").format(value) if _number(value) else "n/a"


def _spread(values: Any, key: str) -> str | None:
    if (isinstance(values, (list, tuple)) and len(values) == 2
            and all(_number(v) for v in values)):
        return f"{_shown(key, values[0])}-{_shown(key, values[1])}"
    return None


def cv_section(cv: dict[str, Any], all_pairs: bool, trained_pairs: int | None = None) -> list[str]:
    """The card's headline quality section from a cross-validation summary. Every key is
    optional; those read:

    folds, pairs, seeds, protocol, wins_note;
    ours: psnr, ms_ssim, psnr_without_saturated, ms_ssim_without_saturated, detail_ratio,
          contrast_ratio, black_diff, saturation_ratio, psnr_fold_spread, ms_ssim_fold_spread,
          psnr_seed_spread, ms_ssim_seed_spread ([min, max] each);
    dped (DPED's released model) and input (the phone photo): the same figures;
    wins: {"psnr": [ours, DPED's], "ms_ssim": [ours, DPED's]} pairs won.

    Where DPED's released model is ahead on a figure both report (at the precision shown), or
    wins more pairs, the section says so."""
    ours = cv.get("ours") or {}
    dped, phone = cv.get("dped") or {}, cv.get("input") or {}
    folds, pairs = cv.get("folds", "k"), cv.get("pairs", "all")
    seeds = cv.get("seeds")
    lines = [f"## Quality: {folds}-fold cross-validation over {pairs} pairs", ""]
    intro = ("Every figure here is out-of-fold: each pair is scored by a model of this recipe "
             "trained on the other folds, never on that pair")
    if seeds:
        intro += f" (seeds {', '.join(str(s) for s in seeds)}, per pair the mean over them)"
    intro += "."
    if all_pairs:
        intro += (" The shipped model itself was trained on all the pairs, so these are its "
                  "figures to expect on photos it has not seen; its own scores below are on "
                  "seen pairs and are not a test.")
    else:
        intro += (" The shipped model was trained on the training pairs only; its scores on the "
                  "held-out test pairs are below.")
    if isinstance(pairs, int) and trained_pairs is not None and trained_pairs != pairs:
        intro += (f" The cross-validation ran over {pairs} pairs and the shipped model trained "
                  f"on {trained_pairs}: these figures are the recipe's on that data.")
    lines += [intro, ""]
    if cv.get("protocol"):
        lines += [f"Protocol: {str(cv['protocol']).rstrip('.')}.", ""]
    rows = [("ours (this recipe, out-of-fold)", ours), ("DPED's released model", dped),
            ("phone input", phone)]
    columns = [k for k in _HIGHER if any(k in row for _, row in rows)]
    if columns:
        lines += ["| method | " + " | ".join(_LABELS[k] + (" (dB)" if k.startswith("psnr")
                                                           else "") for k in columns) + " |",
                  "| --- |" + " --- |" * len(columns)]
        lines += [f"| {label} | " + " | ".join(_shown(k, row.get(k)) for k in columns) + " |"
                  for label, row in rows if row]
        lines.append("")
    spreads = []
    for key, unit in (("psnr", " dB"), ("ms_ssim", "")):
        found = [f"{text}{unit} over {what}" for what, text in
                 (("folds", _spread(ours.get(f"{key}_fold_spread"), key)),
                  ("seeds", _spread(ours.get(f"{key}_seed_spread"), key))) if text]
        if found:
            spreads.append(f"{_LABELS[key]} {', '.join(found)}")
    if spreads:
        lines.append(f"- spread of ours (fold means, seed means): {'; '.join(spreads)}")
    wins = cv.get("wins") or {}
    won = [f"{_LABELS.get(k, k)}: ours {w[0]}, DPED's {w[1]}" for k, w in wins.items()
           if isinstance(w, (list, tuple)) and len(w) == 2]
    if won:
        note = f" ({cv['wins_note']})" if cv.get("wins_note") else ""
        lines.append(f"- pairs won against DPED's released model{note}: {'; '.join(won)}")
    explained = False
    for label, row in (("ours", ours), ("DPED's released model", dped), ("phone input", phone)):
        look = [f"{_LABELS[k]} {_shown(k, row[k])}" for k in _LOOK if k in row]
        if look:
            why = ("" if explained else " (a ratio of 1.000 and a difference of 0 grey levels "
                                        "are the target's)")
            lines.append(f"- look of {label} against the DSLR target{why}: {', '.join(look)}")
            explained = True
    lines += [f"- {line}" for line in _dped_comparison(ours, dped, wins)]
    lines.append("")
    return lines


def _dped_comparison(ours: dict[str, Any], dped: dict[str, Any],
                     wins: dict[str, Any]) -> list[str]:
    """Where DPED's released model is still ahead (or ours is on everything compared)."""
    if not dped:
        return []
    ahead, compared = [], []
    for key in (*_HIGHER, *_NEAR_ONE, *_NEAR_ZERO):
        a, b = ours.get(key), dped.get(key)
        if not (_number(a) and _number(b)):
            continue
        compared.append(_LABELS[key])
        mine, theirs = float(_shown(key, a)), float(_shown(key, b))  # at the precision shown
        if key in _NEAR_ONE:
            mine, theirs = -abs(mine - 1), -abs(theirs - 1)
        elif key in _NEAR_ZERO:
            mine, theirs = -abs(mine), -abs(theirs)
        if theirs > mine:
            ahead.append(f"{_LABELS[key]} ({_shown(key, b)} against ours {_shown(key, a)})")
    for key, w in wins.items():
        if isinstance(w, (list, tuple)) and len(w) == 2:
            compared.append(f"pairs won on {_LABELS.get(key, key)}")
            if w[1] > w[0]:
                ahead.append(f"pairs won on {_LABELS.get(key, key)} ({w[1]} against ours {w[0]})")
    if ahead:
        return [f"DPED's released model is still ahead on: {'; '.join(ahead)}."]
    if compared:
        return [f"DPED's released model is ahead on none of the figures both report "
                f"({', '.join(compared)}): ours is ahead or level on each."]
    return []


def _parameter_count(checkpoint: dict[str, Any]) -> int:
    return sum(t.numel() for t in checkpoint["state_dict"].values() if t.is_floating_point())
