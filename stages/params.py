"""params.yaml's schema: every section and key, its type and the values it takes.

``validate(params, path)`` runs when a stage loads the file (stages.common.load_params), before
any work: the whole file, not only the stage's own sections, so that a bad ``report.dpi``
stops the download stage instead of the report after hours of training. A problem is one line
naming the file, the ``section.key``, the value and what is accepted (ParamsError); the first
one found is reported, in the file's order, then the checks that relate two keys.

Values are normalised on the way: a number that PyYAML's YAML 1.1 resolver leaves as text
(``lr_g: 1e-4`` is the string '1e-4' there: 1.1 floats need a dot) becomes the number, and an
integral float given to an integer key (``steps: 100.0``) the integer. Everything else is
returned as written: a float key given an int stays an int, so the fingerprint of a training
run (gan.train.RunSpec) does not change under existing checkpoints.

The limits come from the code that uses each value; the constants that live in torch-importing
modules are restated here (the stages import this module before anything heavy), and
tests/test_params.py holds them equal to the code's.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from stages.common import ParamsError

__all__ = ["SCHEMA", "MSSSIM_SCALES", "validate"]

# gan.metrics.MS_SSIM_WEIGHTS has one weight per scale; gan.losses.MSSSIMLoss needs images of
# at least (win - 1) * 2 ** (scales - 1) + 1 pixels, i.e. 5x5 at most for 96x96 crops.
MSSSIM_SCALES = 5
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")  # YAML 1.2 decimal floats
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


class _Bad(Exception):
    """A value a spec refuses: ``detail`` is added to the usual 'KEY must be ..., got VALUE'
    message; ``said`` replaces it (a message that already names the key and the value)."""

    def __init__(self, detail: str = "", said: str = ""):
        super().__init__(said or detail)
        self.detail, self.said = detail, said


# -- what a key takes ------------------------------------------------------------------------

class Spec:
    """One key's accepted values: ``accepts`` says them in words (the message's 'must be ...');
    ``check`` returns the value normalised or raises _Bad."""

    accepts = ""

    def check(self, value: Any) -> Any:
        raise NotImplementedError


def _number(value: Any) -> int | float | None:
    """int, float or a decimal number as text; None for anything else (bools included)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        text = value.strip()
        return int(text) if text.lstrip("+-").isdigit() else float(text)
    return None


def _range_words(low: float | None, high: float | None, low_open: bool = False,
                 high_open: bool = False, integer: bool = False) -> str:
    if low is not None and high is not None:
        if integer:
            return f"in {low}..{high}"
        return f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {low:g}" if not integer else f">= {low}"
    if high is not None:
        return f"{'<' if high_open else '<='} {high:g}" if not integer else f"<= {high}"
    return ""


class Int(Spec):
    def __init__(self, low: int | None = None, high: int | None = None, odd: bool = False,
                 note: str = ""):
        self.low, self.high, self.odd = low, high, odd
        words = "an odd integer" if odd else "an integer"
        bounds = _range_words(low, high, integer=True)
        self.accepts = f"{words} {bounds}".strip() + (f" ({note})" if note else "")

    def check(self, value: Any) -> int:
        number = _number(value)
        if number is None or not math.isfinite(number) or number != int(number):
            raise _Bad()
        number = int(number)
        if ((self.low is not None and number < self.low)
                or (self.high is not None and number > self.high)
                or (self.odd and number % 2 == 0)):
            raise _Bad()
        return number


class Float(Spec):
    def __init__(self, low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_open: bool = False, note: str = ""):
        self.low, self.high, self.low_open, self.high_open = low, high, low_open, high_open
        bounds = _range_words(low, high, low_open, high_open)
        self.accepts = f"a number {bounds}".strip() + (f" ({note})" if note else "")

    def check(self, value: Any) -> int | float:
        number = _number(value)
        if number is None or not math.isfinite(number):
            raise _Bad()
        if isinstance(value, str):
            number = float(number)  # '1e-4' -> 0.0001; an int or float stays as written
        if self.low is not None and (number <= self.low if self.low_open else number < self.low):
            raise _Bad()
        if self.high is not None and (number >= self.high if self.high_open
                                      else number > self.high):
            raise _Bad()
        return number


class Bool(Spec):
    accepts = "true or false"

    def check(self, value: Any) -> bool:
        if not isinstance(value, bool):
            raise _Bad()
        return value


def _alternatives(words: list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


class Choice(Spec):
    def __init__(self, *options: str, note: str = ""):
        self.options = options
        self.accepts = _alternatives([repr(o) for o in options]) + (f" ({note})" if note else "")

    def check(self, value: Any) -> str:
        if not isinstance(value, str) or value not in self.options:
            raise _Bad()
        return value


class Sha256(Spec):
    accepts = "null or a SHA-256 hex digest (64 hex characters)"

    def check(self, value: Any) -> str | None:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        if not isinstance(value, str) or not _HEX64.fullmatch(value.strip()):
            raise _Bad()
        return value.strip().lower()


class LocalPath(Spec):
    """A path that is only used by one source, so not checked for existence here: after a
    ``dvc pull`` on another machine the later stages must run without it."""

    accepts = "null or the path of a local zip, tar or extracted folder"

    def check(self, value: Any) -> str | None:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        if not isinstance(value, str):
            raise _Bad(" (quote a path that YAML reads as a number)")
        return value


class Urls(Spec):
    accepts = "a list of http(s) URLs, one '- https://...' line each"

    def check(self, value: Any) -> list[str]:
        if isinstance(value, str):
            raise _Bad(" (a single string: put it on its own '- ' line under the key)")
        if not isinstance(value, list):
            raise _Bad()
        for url in value:
            try:
                parts = urlsplit(url) if isinstance(url, str) else None
            except ValueError:  # e.g. an unclosed '[' of an IPv6 host
                parts = None
            if parts is None or parts.scheme.lower() not in ("http", "https") or not parts.netloc:
                raise _Bad(f" ({_shown(url)} is not an http(s) URL)")
        return list(value)


class IndexRanges(Spec):
    """PIRM indices as gan.data.pirm reads them (one parser: parse_indices / parse_split)."""

    accepts = "inclusive PIRM index ranges such as '0-159' or '0-99,200-299'"

    def __init__(self, key: str):
        self.key = key

    def check(self, value: Any) -> Any:
        from gan.data.splits import SplitError, parse_indices

        try:
            parse_indices(value, self.key)  # an empty split: parse_split, in CROSS_CHECKS
        except SplitError as exc:
            raise _Bad(said=str(exc)) from None  # 'data.pirm_train: '0-x' is not an index ...'
        return value


class VggWeights(Spec):
    accepts = "'imagenet', 'random' or the path of a torchvision VGG19 state dict file"

    def check(self, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise _Bad()
        if value not in ("imagenet", "random") and not Path(value).is_file():
            raise _Bad(" (no such file)")
        return value


class ModelList(Spec):
    accepts = "a list of generator checkpoints (paths or registered model names)"

    def check(self, value: Any) -> list[str]:
        if value is None:
            return []
        if isinstance(value, str):
            raise _Bad(" (a single string: put it on its own '- ' line under the key)")
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip()
                                                  for v in value):
            raise _Bad()
        return list(value)


DEVICES = ("auto", "cpu", "cuda")  # gan.runtime.resolve_device

# Every key of params.yaml, in its order. Cross-key limits are in CROSS_CHECKS below.
SCHEMA: dict[str, dict[str, Spec]] = {
    "data": {
        "source": Choice("sample", "dped", "pirm"),
        "phone": Choice("iphone", "blackberry", "sony"),  # gan.data.dped.PHONES
        "urls": Urls(),
        "sha256": Sha256(),
        "archive": LocalPath(),
        "retries": Int(0),
        "seed": Int(0),
        "sample_train_pairs": Int(1),
        "sample_test_pairs": Int(1),
        "pirm_urls": Urls(),
        "pirm_train": IndexRanges("data.pirm_train"),
        "pirm_test": IndexRanges("data.pirm_test"),
    },
    "extract": {
        "patch": Int(1),
        "crop": Int(1, note="at most extract.patch"),
        "max_shift": Int(0, note="at most (extract.patch - extract.crop) // 2"),
        "min_ncc": Float(-1.0, 1.0),
        "subpixel": Bool(),
        "workers": Int(0, note="0: all cores"),
    },
    "model": {
        "generator": Choice("dense_unet", "dped_resnet"),  # gan.networks.GENERATORS
        "depth": Int(0),
        "base_width": Int(1),
        "growth_rate": Int(1),
        "layers_per_block": Int(1),
        "global_residual": Bool(),
        "guided_radius": Int(0, note="0: none"),
        "guided_eps": Float(0.0, low_open=True),
        "resnet_width": Int(1),
        "resnet_blocks": Int(0),
        "d_width": Int(1),
        "d_layers": Int(1),
        "d_input": Choice("rgb", "grey", "highpass"),  # gan.networks.DiscriminatorConfig.INPUTS
    },
    "loss": {
        "perceptual": Float(0.0),
        "adversarial": Float(0.0),
        "msssim": Float(0.0),
        "pixel": Float(0.0),
        "color": Float(0.0),
        "tone": Float(0.0),
        "texture": Float(0.0),
        "vgg_weights": VggWeights(),
        "distance": Choice("l1", "mse"),
        "msssim_win": Int(3, odd=True, note=f"{MSSSIM_SCALES} scales must fit extract.crop"),
    },
    "train": {
        "steps": Int(1),
        "batch_size": Int(1),
        "lr_g": Float(0.0, low_open=True),
        "lr_d": Float(0.0, low_open=True),
        "beta1": Float(0.0, 1.0, high_open=True),
        "beta2": Float(0.0, 1.0, high_open=True),
        "seed": Int(0),
        "device": Choice(*DEVICES),
        "log_every": Int(1),
        "val_every": Int(1),
        "val_patches": Int(1),
        "checkpoint_every": Int(1),
        "compile": Bool(),
        "gpus": Int(1),
        "precision": Choice("auto", "fp32", "bf16"),  # gan.runtime.PRECISIONS
        "ema": Float(0.0, 1.0, high_open=True, note="0: no average"),
        "lr_cosine_steps": Int(0, note="0: constant lr"),
        "input_noise": Float(0.0, note="0: none"),
    },
    "evaluate": {
        "extra_models": ModelList(),
        "device": Choice(*DEVICES),
        "batch_size": Int(1),
        "saved_patches": Int(1),
        "saved_photos": Int(1, note="the report shows at least one"),
        "clhe_white_balance": Bool(),
    },
    "report": {
        "patches": Int(1, note="at most evaluate.saved_patches"),
        "crop": Int(1),
        "dpi": Int(1),
    },
}


# -- messages --------------------------------------------------------------------------------

def _shown(value: Any) -> str:
    """A value as one short line: YAML's words for null and booleans, repr otherwise."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _must(path: Any, key: str, accepts: str, value: Any, detail: str = "") -> ParamsError:
    return ParamsError(f"{path}: {key} must be {accepts}, got {_shown(value)}{detail}")


def _unknown(path: Any, name: str, known: list[str], what: str, listing: str,
             prefix: str = "") -> ParamsError:
    """'NAME is not WHAT; did you mean CLOSEST?' (difflib), else the names there are."""
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"did you mean {prefix}{close[0]}?" if close else f"{listing}: {', '.join(known)}"
    return ParamsError(f"{path}: {prefix}{name} is not {what}; {hint}")


# -- checks that relate keys (each runs when all its keys are present) -----------------------

def _crop_fits_patch(p: dict, path: Any) -> None:
    e = p["extract"]
    if e["crop"] > e["patch"]:
        raise _must(path, "extract.crop", f"an integer in 1..{e['patch']} (at most "
                    "extract.patch)", e["crop"])


def _shift_fits_margin(p: dict, path: Any) -> None:
    e = p["extract"]
    margin = (e["patch"] - e["crop"]) // 2
    if e["max_shift"] > margin:
        # gan.data.extract.ExtractConfig's words
        raise ParamsError(f"{path}: extract.max_shift {e['max_shift']} must lie in 0..{margin}: "
                          f"a {e['crop']}px extract.crop of a {e['patch']}px extract.patch "
                          f"leaves a {margin}px margin to shift into")


def _msssim_window_fits_crop(p: dict, path: Any) -> None:
    win, crop = p["loss"]["msssim_win"], p["extract"]["crop"]
    span = 2 ** (MSSSIM_SCALES - 1)
    if (win - 1) * span + 1 > crop:
        largest = (crop - 1) // span + 1
        largest -= 1 - largest % 2
        fits = f"an odd integer in 3..{largest}" if largest >= 3 else "an odd integer >= 3"
        raise _must(path, "loss.msssim_win", f"{fits} ({MSSSIM_SCALES} MS-SSIM scales need "
                    f"(win - 1) * {span} + 1 <= the {crop} px extract.crop)", win)


def _some_loss_weight(p: dict, path: Any) -> None:
    terms = ("perceptual", "adversarial", "msssim", "pixel", "color", "tone", "texture")
    if all(p["loss"][t] == 0 for t in terms):
        raise ParamsError(f"{path}: loss.{', loss.'.join(terms)} are all 0: at least one loss "
                          "weight must be > 0")


def _report_patches_saved(p: dict, path: Any) -> None:
    saved, patches = p["evaluate"]["saved_patches"], p["report"]["patches"]
    if patches > saved:
        raise _must(path, "report.patches", f"an integer in 1..{saved} (at most "
                    "evaluate.saved_patches, the patches evaluate keeps)", patches)


def _pirm_is_iphone(p: dict, path: Any) -> None:
    d = p["data"]
    if d["source"] == "pirm" and d["phone"] != "iphone":  # gan.data.pirm.PHONE
        raise ParamsError(f"{path}: data.phone is {d['phone']!r}, but data.source: pirm has "
                          "iphone pairs only; set data.phone to iphone")


def _mirrors_when_downloading(p: dict, path: Any) -> None:
    d = p["data"]
    key = {"dped": "urls", "pirm": "pirm_urls"}.get(d["source"])
    if key and d["archive"] is None and not d[key]:
        raise _must(path, f"data.{key}", f"a non-empty list of http(s) URLs when data.source "
                    f"is {d['source']} and data.archive is null", d[key])


def _pirm_splits_disjoint(p: dict, path: Any) -> None:
    from gan.data.splits import SplitError, parse_split

    try:
        parse_split(p["data"]["pirm_train"], p["data"]["pirm_test"])
    except SplitError as exc:
        raise ParamsError(f"{path}: {exc}") from None


CROSS_CHECKS: tuple[tuple[tuple[str, ...], Callable[[dict, Any], None]], ...] = (
    (("extract.patch", "extract.crop"), _crop_fits_patch),
    (("extract.patch", "extract.crop", "extract.max_shift"), _shift_fits_margin),
    (("loss.msssim_win", "extract.crop"), _msssim_window_fits_crop),
    (tuple(f"loss.{t}" for t in ("perceptual", "adversarial", "msssim", "pixel", "color", "tone",
                                 "texture")), _some_loss_weight),
    (("evaluate.saved_patches", "report.patches"), _report_patches_saved),
    (("data.source", "data.phone"), _pirm_is_iphone),
    (("data.source", "data.archive", "data.urls", "data.pirm_urls"), _mirrors_when_downloading),
    (("data.pirm_train", "data.pirm_test"), _pirm_splits_disjoint),
)


# -- the entry point -------------------------------------------------------------------------

def validate(params: dict[str, Any], path: Path | str = "params.yaml", *,
             complete: bool = False) -> dict[str, Any]:
    """``params`` (a parsed params.yaml) checked against SCHEMA and the cross-key limits; a new
    dict with the values normalised. Raises ParamsError, one line, for the first problem.

    An unknown section or key is refused (with the closest known name). A missing section or
    key is refused only with ``complete``: the stages load files that hold just their own
    sections (tests, one-off runs), and a stage names a key it lacks itself (common.pick).
    """
    if not isinstance(params, dict):
        raise ParamsError(f"{path}: expected a mapping of sections, found {type(params).__name__}")
    checked: dict[str, dict[str, Any]] = {}
    for name, values in params.items():
        if name not in SCHEMA:
            raise _unknown(path, str(name), list(SCHEMA), "a params.yaml section",
                           "the sections are")
        specs = SCHEMA[name]
        if not isinstance(values, dict):
            raise _must(path, f"section {name}", f"a mapping of its keys ({', '.join(specs)})",
                        values)
        checked[name] = {}
        for key, value in values.items():
            if key not in specs:
                raise _unknown(path, str(key), list(specs), f"a key of the {name} section",
                               "its keys are", prefix=f"{name}.")
            try:
                checked[name][key] = specs[key].check(value)
            except _Bad as bad:
                if bad.said:
                    raise ParamsError(f"{path}: {bad.said}") from None
                raise _must(path, f"{name}.{key}", specs[key].accepts, value, bad.detail) from None
    if complete:
        for name, specs in SCHEMA.items():
            if name not in checked:
                raise ParamsError(f"{path}: section {name} is missing (keys: {', '.join(specs)})")
            for key, spec in specs.items():
                if key not in checked[name]:
                    raise ParamsError(f"{path}: {name}.{key} is missing ({spec.accepts})")
    for keys, check in CROSS_CHECKS:
        if all(k.split(".")[1] in checked.get(k.split(".")[0], {}) for k in keys):
            check(checked, path)
    return checked
