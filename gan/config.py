"""params.yaml as typed configs: one frozen dataclass per section, each key declared once.

A key is a dataclass field whose metadata holds its spec (Int, Float, Choice, ...: the values
it takes, in words for the error message and as a check). ``__post_init__`` checks every field
against its spec and normalises it, then the limits between keys of the section; ``Params``
(the whole file) checks the limits between sections. ``Params.from_dict`` builds it from a
parsed params.yaml and refuses unknown sections and keys with the closest known name. Every
problem is a ConfigError whose message is one line naming ``section.key``, the value and what is
accepted; stages.params (the loader) prefixes the file's path.

Values are normalised as params.yaml's readers always had them: a number that PyYAML's YAML 1.1
resolver leaves as text (``lr_g: 1e-4`` is the string '1e-4' there: 1.1 floats need a dot)
becomes the number, and an integral float given to an integer key (``steps: 100.0``) the
integer. Everything else stays as written: a float key given an int stays an int, so the
fingerprint of a training run (gan.train.RunSpec) does not change under existing checkpoints.

This module imports only the standard library: the stages load params before anything heavy,
and the torch modules (gan.networks, gan.losses, gan.train, gan.runtime) and the data code take
their constants and configs from here, so each is stated once. It also holds the PIRM
index-range syntax (parse_indices, parse_split), which data.pirm_train/pirm_test are checked
with and gan.data.pirm reads them with.
"""

from __future__ import annotations

import difflib
import math
import re
import reprlib
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

__all__ = ["ConfigError", "DataConfig", "DenseUNetConfig", "DiscriminatorConfig",
           "DpedResNetConfig", "EvaluateConfig", "ExtractConfig", "LossConfig", "LossWeights",
           "ModelConfig", "Params", "ReportConfig", "SplitError", "TrainConfig",
           "format_indices", "parse_indices", "parse_split"]

# -- constants the torch modules and the data code import from here ---------------------------

SOURCES = ("sample", "dped", "pirm")  # data.source: stages.download's builders
PHONES = ("iphone", "blackberry", "sony")  # DPED's phones (gan.data.dped)
PIRM_PHONE = "iphone"  # PIRM's DPED track has iPhone pairs only (gan.data.pirm)
GENERATORS = ("dense_unet", "dped_resnet")  # gan.networks.build_generator's kinds
D_INPUTS = ("rgb", "grey", "highpass")  # what the discriminator judges (gan.networks)
DEVICES = ("auto", "cpu", "cuda")  # the devices params.yaml may name (gan.runtime)
PRECISIONS = ("auto", "fp32", "bf16")  # gan.runtime.resolve_precision
DISTANCES = ("l1", "mse")  # between VGG19 features (gan.losses.PerceptualLoss)
LOSS_TERMS = ("perceptual", "adversarial", "msssim", "pixel", "color", "tone", "texture")
# Scales of MS-SSIM (gan.metrics.MS_SSIM_WEIGHTS has one weight per scale, which stay there with
# the arithmetic): gan.losses.MSSSIMLoss needs images of at least (win - 1) * 2 ** (scales - 1)
# + 1 pixels, i.e. a 5x5 window at most for 96x96 crops.
MSSSIM_SCALES = 5

_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")  # YAML 1.2 decimal floats
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


class ConfigError(ValueError):
    """A value a config refuses: '{key} must be {accepts}, got {value}{detail}', or ``said``
    (a message that already names the key and the value). One line."""

    def __init__(self, key: str = "", accepts: str = "", value: Any = None, detail: str = "",
                 said: str = ""):
        self.key, self.accepts, self.value, self.detail = key, accepts, value, detail
        super().__init__(said or f"{key} must be {accepts}, got {shown(value)}{detail}")


_SHORT = reprlib.Repr()  # a repr that stops early: a huge or deeply shared value costs nothing
_SHORT.maxlevel, _SHORT.maxlist, _SHORT.maxdict = 3, 8, 8
_SHORT.maxstring = _SHORT.maxother = 78
MAX_VALUES = 10_000  # values a setting may hold (nested lists and mappings counted, aliases too)


def shown(value: Any) -> str:
    """A value as one short line: YAML's words for null and booleans, repr otherwise (at most
    80 characters: a pasted blob must not flood the message)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = repr(value) if isinstance(value, str) else " ".join(_SHORT.repr(value).split())
    return text if len(text) <= 80 else text[:77] + "..."


def too_large(value: Any, limit: int = MAX_VALUES) -> bool:
    """Whether ``value`` holds more than ``limit`` values once YAML's aliases are expanded (an
    alias bomb: a few lines that expand to billions). Stops counting at the limit."""
    pending, count = [value], 0
    while pending:
        item = pending.pop()
        count += 1
        if count > limit:
            return True
        if isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, (list, tuple)):
            pending.extend(item)
    return False


# -- what a key takes ------------------------------------------------------------------------

class _Bad(Exception):
    """Raised by a spec: ``detail`` is added to the usual message; ``said`` replaces it."""

    def __init__(self, detail: str = "", said: str = ""):
        super().__init__(said or detail)
        self.detail, self.said = detail, said


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
                raise _Bad(f" ({shown(url)} is not an http(s) URL)")
        return list(value)


class IndexRanges(Spec):
    """PIRM indices as gan.data.pirm reads them (one parser: parse_indices / parse_split)."""

    accepts = "inclusive PIRM index ranges such as '0-159' or '0-99,200-299'"

    def __init__(self, key: str):
        self.key = key

    def check(self, value: Any) -> Any:
        try:
            parse_indices(value, self.key)  # an empty split: parse_split, in DataConfig
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


def key(spec: Spec) -> Any:
    """A section field: ``spec`` says what the key takes (no default: params.yaml is the one
    source of the values)."""
    return field(metadata={"spec": spec})


def defaulted_key(spec: Spec, default: Any) -> Any:
    """A field of a library config (a network's, the loss weights): what it takes (``spec``,
    the same one params.yaml's key is checked with) and the default a checkpoint, or a caller,
    that does not give it gets."""
    return field(default=default, metadata={"spec": spec})


def spec_of(config: Any, name: str) -> Spec:
    """The spec of field ``name`` of a section (class or instance)."""
    return config.__dataclass_fields__[name].metadata["spec"]


def _check_fields(config: Any) -> None:
    """Every field of a section, or of a network's config, checked against its spec and
    replaced by its normalised value, in declaration order; ConfigError for the first refused
    one, naming it ``section.key`` (a network config's as ``Class.field``: those come from
    params.yaml and from model files)."""
    where = getattr(config, "SECTION", type(config).__name__)
    for f in fields(config):
        value = getattr(config, f.name)
        try:
            normalised = f.metadata["spec"].check(value)
        except _Bad as bad:
            if bad.said:
                raise ConfigError(said=bad.said) from None
            raise ConfigError(f"{where}.{f.name}", f.metadata["spec"].accepts, value,
                              bad.detail) from None
        object.__setattr__(config, f.name, normalised)  # a frozen section: set once, here


def _refuse(config: Any, name: str, accepts: str) -> ConfigError:
    return ConfigError(f"{config.SECTION}.{name}", accepts, getattr(config, name))


# -- the PIRM index-range syntax (data.pirm_train, data.pirm_test) ------------------------------

_RANGE_RE = re.compile(r"^(\d+)(?:\s*-\s*(\d+))?$")
SHOWN_RANGES = 8  # a message names at most this many ranges of indices


class SplitError(ValueError):
    """data.pirm_train / data.pirm_test is malformed, empty, overlapping or names absent pairs."""


def parse_indices(spec: object, key: str) -> list[int]:
    """'0-159' / '0-99,200-299' / 7 -> the sorted indices (inclusive ranges, duplicates merged);
    an empty string or null -> [].

    ``key`` names the param in errors. A bool is refused although YAML makes it an int, and so is
    anything that is not an int or a string: the split is a param people type, so a typo must
    not silently become another split.
    """
    if spec is None or (isinstance(spec, str) and not spec.strip()):
        return []  # parse_split says the split is empty, naming it
    if isinstance(spec, int) and not isinstance(spec, bool):
        spec = str(spec)
    if not isinstance(spec, str):
        raise SplitError(f"{key}: expected a string of inclusive index ranges such as '0-159' or "
                         f"'0-99,200-299' (or one integer), got {spec!r}")
    indices: set[int] = set()
    parts = [p.strip() for p in spec.split(",")]
    for part in parts:
        where = f"{part!r} in {spec!r}" if len(parts) > 1 else repr(part)
        m = _RANGE_RE.match(part)
        if not m:
            raise SplitError(f"{key}: {where} is not an index or a range 'A-B' of non-negative "
                             "integers (ranges are comma-separated, e.g. '0-99,200-299')")
        first, last = int(m[1]), int(m[2] if m[2] is not None else m[1])
        if last < first:
            raise SplitError(f"{key}: the range {where} runs backwards; write {last}-{first}")
        indices.update(range(first, last + 1))
    return sorted(indices)


def format_indices(indices: Sequence[int], limit: int | None = None) -> str:
    """[0, 1, 2, 5, 7, 8] -> '0-2,5,7-8', the form parse_indices reads. Beyond ``limit`` ranges,
    the first ``limit``, '...' and the last one (the caller says how many indices there are)."""
    ranges: list[str] = []
    values = sorted(set(indices))
    start = 0
    for k in range(1, len(values) + 1):
        if k == len(values) or values[k] != values[k - 1] + 1:
            first, last = values[start], values[k - 1]
            ranges.append(str(first) if first == last else f"{first}-{last}")
            start = k
    if limit is not None and len(ranges) > limit:
        return ",".join(ranges[:limit] + ["...", ranges[-1]])
    return ",".join(ranges)


def parse_split(train_spec: object, test_spec: object,
                keys: tuple[str, str] = ("data.pirm_train", "data.pirm_test")
                ) -> tuple[list[int], list[int]]:
    """Both splits, checked for what the params alone can tell: format, emptiness, overlap.

    Whether the source holds every index is gan.data.pirm.check_split's job, once the source is
    at hand; this runs first, so a typo fails before a download.
    """
    train, test = parse_indices(train_spec, keys[0]), parse_indices(test_spec, keys[1])
    check_disjoint(train, test, keys)
    return train, test


def check_disjoint(train: Sequence[int], test: Sequence[int], keys: tuple[str, str]) -> None:
    """Neither split empty, no pair in both."""
    for name, indices in zip(keys, (train, test)):
        if not indices:
            raise SplitError(f"{name}: the split is empty; give at least one PIRM index")
    shared = sorted(set(train) & set(test))
    if shared:
        raise SplitError(f"{keys[0]} ({format_indices(train, SHOWN_RANGES)}) and {keys[1]} "
                         f"({format_indices(test, SHOWN_RANGES)}) share {count_indices(shared)}: "
                         f"{format_indices(shared, SHOWN_RANGES)}; a pair must be in one split "
                         "only, or the test scores measure memory")


def count_indices(indices: Sequence[int]) -> str:
    return f"{len(indices)} {'index' if len(indices) == 1 else 'indices'}"


# -- the networks' configs (checkpoints store them as dicts: Cls(**d) rebuilds them) -----------

@dataclass
class DenseUNetConfig:
    """Dense U-Net generator (the paper's).

    depth: down-sampling steps; the network has ``depth + 1`` resolution levels and works on
        inputs padded to a multiple of ``2 ** depth``.
    base_width: channels at full resolution; doubles per level.
    growth_rate: channels each dense layer adds to its block's concatenation.
    layers_per_block: 3x3 conv layers per dense block.
    global_residual: predict a correction of the input (logit domain) instead of the image.
    guided_radius: radius of the trainable edge-preserving output filter (GuidedOutputFilter);
        0: none.
    guided_eps: the filter's initial eps (its strength; learnt from there).

    The defaults cost ~53K multiply-adds per pixel, 1/7.6 of DPED's ResNet. Depth 3 rather than
    2: the extra level works at 1/16 and 1/64 of the pixels, so it adds only ~9K MACs/pixel, yet
    it doubles the receptive field (83 -> 179 px, measured; more than a 96x96 training patch),
    which the global colour and tone corrections of phone -> DSLR need.
    """

    depth: int = defaulted_key(Int(0, 10), 3)
    base_width: int = defaulted_key(Int(1, 1024), 16)
    growth_rate: int = defaulted_key(Int(1, 1024), 12)
    layers_per_block: int = defaulted_key(Int(1, 64), 3)
    global_residual: bool = defaulted_key(Bool(), True)
    guided_radius: int = defaulted_key(Int(0, 64, note="0: none"), 0)
    guided_eps: float = defaulted_key(Float(0.0, low_open=True), 3e-4)

    def __post_init__(self) -> None:
        _check_fields(self)


@dataclass
class DpedResNetConfig:
    """DPED's generator (Ignatov et al., ICCV 2017): width channels, ``blocks`` residual blocks."""

    width: int = defaulted_key(Int(1, 1024), 64)
    blocks: int = defaulted_key(Int(0, 64), 4)

    def __post_init__(self) -> None:
        _check_fields(self)


@dataclass
class DiscriminatorConfig:
    """The paper's discriminator.

    width: channels of the first conv, doubling per stride-2 layer (capped at 8 x width).
    layers: conv (+ BN) + LeakyReLU layers, each halving the resolution.
    pool: spatial size the last conv's output is average-pooled to before flattening.
    input: what D judges. "rgb": the image. "grey": its luma, as DPED's texture discriminator
        (colour is left to the other terms, so D can only ask for the DSLR's texture).
        "highpass": the luma minus its 5x5 box mean: texture alone, without the brightness.
    """

    width: int = defaulted_key(Int(1, 1024), 32)
    layers: int = defaulted_key(Int(1, 12, note="each halves the image"), 4)
    pool: int = defaulted_key(Int(1, 64), 6)
    input: str = defaulted_key(Choice(*D_INPUTS), "rgb")

    INPUTS: ClassVar[tuple[str, ...]] = D_INPUTS

    def __post_init__(self) -> None:
        _check_fields(self)


# -- the sections of params.yaml, in its order ---------------------------------------------------

@dataclass(frozen=True)
class DataConfig:
    """``data``: where the pairs come from (stages.download)."""

    SECTION: ClassVar[str] = "data"

    source: str = key(Choice(*SOURCES))
    phone: str = key(Choice(*PHONES))
    urls: list[str] = key(Urls())  # mirrors of the DPED release, tried in order
    sha256: str | None = key(Sha256())  # normalised: stripped, lower case
    archive: str | None = key(LocalPath())
    retries: int = key(Int(0, 100))
    seed: int = key(Int(0))
    sample_train_pairs: int = key(Int(1, 1_000_000))
    sample_test_pairs: int = key(Int(1, 100_000))
    pirm_urls: list[str] = key(Urls())
    pirm_train: Any = key(IndexRanges("data.pirm_train"))  # as written; parse_split reads it
    pirm_test: Any = key(IndexRanges("data.pirm_test"))

    def __post_init__(self) -> None:
        _check_fields(self)
        if self.source == "pirm" and self.phone != PIRM_PHONE:
            raise ConfigError(said=f"data.phone is {self.phone!r}, but data.source: pirm has "
                                   f"{PIRM_PHONE} pairs only; set data.phone to {PIRM_PHONE}")
        mirrors = {"dped": "urls", "pirm": "pirm_urls"}.get(self.source)
        if mirrors and self.archive is None and not getattr(self, mirrors):
            raise _refuse(self, mirrors, "a non-empty list of http(s) URLs when data.source is "
                                         f"{self.source} and data.archive is null")
        try:
            parse_split(self.pirm_train, self.pirm_test)
        except SplitError as exc:
            raise ConfigError(said=str(exc)) from None


@dataclass(frozen=True)
class ExtractConfig:
    """``extract``: how the pairs are aligned and cut (gan.data.extract)."""

    SECTION: ClassVar[str] = "extract"

    patch: int = key(Int(1, 4096))  # side of DPED's patches; both sides of a pair must have it
    crop: int = key(Int(1, note="at most extract.patch"))  # side of the aligned patches
    max_shift: int = key(Int(0, note="at most (extract.patch - extract.crop) // 2"))
    min_ncc: float = key(Float(-1.0, 1.0))  # pairs whose aligned crops correlate less: dropped
    subpixel: bool = key(Bool())  # also record the sub-pixel shift (crops stay on the grid)
    workers: int = key(Int(0, 256, note="0: all cores"))  # how fast, not what comes out

    def __post_init__(self) -> None:
        _check_fields(self)
        if self.crop > self.patch:
            raise _refuse(self, "crop", f"an integer in 1..{self.patch} (at most extract.patch)")
        margin = (self.patch - self.crop) // 2
        if self.max_shift > margin:
            raise ConfigError(said=f"extract.max_shift {self.max_shift} must lie in 0..{margin}: "
                                   f"a {self.crop}px extract.crop of a {self.patch}px "
                                   f"extract.patch leaves a {margin}px margin to shift into")


@dataclass(frozen=True)
class ModelConfig:
    """``model``: the generator and the discriminator, as flat keys (the generator's own keys
    are used by its kind only)."""

    SECTION: ClassVar[str] = "model"

    # The generator's and the discriminator's keys take what their network configs take.
    generator: str = key(Choice(*GENERATORS))
    depth: int = key(spec_of(DenseUNetConfig, "depth"))
    base_width: int = key(spec_of(DenseUNetConfig, "base_width"))
    growth_rate: int = key(spec_of(DenseUNetConfig, "growth_rate"))
    layers_per_block: int = key(spec_of(DenseUNetConfig, "layers_per_block"))
    global_residual: bool = key(spec_of(DenseUNetConfig, "global_residual"))
    guided_radius: int = key(spec_of(DenseUNetConfig, "guided_radius"))
    guided_eps: float = key(spec_of(DenseUNetConfig, "guided_eps"))
    resnet_width: int = key(spec_of(DpedResNetConfig, "width"))
    resnet_blocks: int = key(spec_of(DpedResNetConfig, "blocks"))
    d_width: int = key(spec_of(DiscriminatorConfig, "width"))
    d_layers: int = key(spec_of(DiscriminatorConfig, "layers"))
    d_input: str = key(spec_of(DiscriminatorConfig, "input"))

    def __post_init__(self) -> None:
        _check_fields(self)

    def generator_args(self) -> dict[str, Any]:
        """The fields of the generator kind's config, as a checkpoint stores them."""
        if self.generator == "dense_unet":  # its keys are named as the config's fields
            return {f.name: getattr(self, f.name) for f in fields(DenseUNetConfig)}
        return {"width": self.resnet_width, "blocks": self.resnet_blocks}

    def generator_config(self) -> DenseUNetConfig | DpedResNetConfig:
        cls = DenseUNetConfig if self.generator == "dense_unet" else DpedResNetConfig
        return cls(**self.generator_args())

    def discriminator_args(self) -> dict[str, Any]:
        """The DiscriminatorConfig fields params.yaml sets (``pool`` keeps its default)."""
        return {"width": self.d_width, "layers": self.d_layers, "input": self.d_input}

    def discriminator_config(self) -> DiscriminatorConfig:
        return DiscriminatorConfig(**self.discriminator_args())


_WEIGHT = Float(0.0)  # every loss weight: a finite number >= 0


@dataclass
class LossWeights:
    """The loss terms' weights as gan.losses.GeneratorLoss holds them (mutable: a caller may
    switch a term off on a built loss), with the paper's defaults; ``LossConfig.weights()``
    gives the params.yaml ones."""

    SECTION: ClassVar[str] = "loss"  # its errors name the params.yaml keys

    perceptual: float = defaulted_key(_WEIGHT, 1.0)
    adversarial: float = defaulted_key(_WEIGHT, 1e-3)  # the paper's lambda
    msssim: float = defaulted_key(_WEIGHT, 1.0)  # the paper's eta
    pixel: float = defaulted_key(_WEIGHT, 0.0)  # optional L1 pixel term
    color: float = defaulted_key(_WEIGHT, 0.0)  # L1 between blurred images (DPED's colour loss)
    tone: float = defaulted_key(_WEIGHT, 0.0)  # per-image luma and chroma distributions
    texture: float = defaulted_key(_WEIGHT, 0.0)  # per-image fine luma detail's distribution

    def __post_init__(self) -> None:
        _check_fields(self)


@dataclass(frozen=True)
class LossConfig:
    """``loss``: the generator's loss (gan.losses.GeneratorLoss)."""

    SECTION: ClassVar[str] = "loss"

    perceptual: float = key(_WEIGHT)
    adversarial: float = key(_WEIGHT)
    msssim: float = key(_WEIGHT)
    pixel: float = key(_WEIGHT)
    color: float = key(_WEIGHT)
    tone: float = key(_WEIGHT)
    texture: float = key(_WEIGHT)
    vgg_weights: str = key(VggWeights())
    distance: str = key(Choice(*DISTANCES))
    msssim_win: int = key(Int(3, odd=True, note=f"{MSSSIM_SCALES} scales must fit extract.crop"))

    def __post_init__(self) -> None:
        _check_fields(self)
        if all(getattr(self, t) == 0 for t in LOSS_TERMS):
            raise ConfigError(said=f"loss.{', loss.'.join(LOSS_TERMS)} are all 0: at least one "
                                   "loss weight must be > 0")

    def weights(self) -> LossWeights:
        return LossWeights(**{t: getattr(self, t) for t in LOSS_TERMS})


@dataclass(frozen=True)
class TrainConfig:
    """``train``: the training run (gan.train.Trainer)."""

    SECTION: ClassVar[str] = "train"

    steps: int = key(Int(1, 100_000_000))
    batch_size: int = key(Int(1, 4096, note="per process"))
    lr_g: float = key(Float(0.0, low_open=True))
    lr_d: float = key(Float(0.0, low_open=True))
    beta1: float = key(Float(0.0, 1.0, high_open=True))
    beta2: float = key(Float(0.0, 1.0, high_open=True))
    seed: int = key(Int(0))
    device: str = key(Choice(*DEVICES))
    log_every: int = key(Int(1))
    val_every: int = key(Int(1))
    val_patches: int = key(Int(1, 100_000))
    checkpoint_every: int = key(Int(1))
    compile: bool = key(Bool())
    gpus: int = key(Int(1, 64))  # processes under torchrun (GPUs on CUDA; gloo ones on the CPU)
    precision: str = key(Choice(*PRECISIONS))  # autocast of G, D and VGG19 (gan.train.Trainer)
    ema: float = key(Float(0.0, 1.0, high_open=True, note="0: no average"))
    lr_cosine_steps: int = key(Int(0, note="0: constant lr"))  # N: a cosine to 0 over N steps
    input_noise: float = key(Float(0.0, note="0: none"))  # std uniform in [0, s] per patch

    def __post_init__(self) -> None:
        _check_fields(self)


@dataclass(frozen=True)
class EvaluateConfig:
    """``evaluate``: scoring the generator and the baselines (gan.evaluation)."""

    SECTION: ClassVar[str] = "evaluate"

    extra_models: list[str] = key(ModelList())
    device: str = key(Choice(*DEVICES))
    batch_size: int = key(Int(1, 4096))
    saved_patches: int = key(Int(1, 1000))
    saved_photos: int = key(Int(1, 100, note="the report shows at least one"))
    clhe_white_balance: bool = key(Bool())

    def __post_init__(self) -> None:
        _check_fields(self)


@dataclass(frozen=True)
class ReportConfig:
    """``report``: the HTML report's figures."""

    SECTION: ClassVar[str] = "report"

    patches: int = key(Int(1, note="at most evaluate.saved_patches"))
    crop: int = key(Int(1, 4096))
    dpi: int = key(Int(1, 1200))

    def __post_init__(self) -> None:
        _check_fields(self)


def discriminator_layers_for(crop: int) -> int:
    """The most stride-2 layers (3x3, padding 1: ceil(n / 2) each) a ``crop`` px patch feeds:
    after that many its maps are one pixel, and each further layer only stacks convolutions on
    a single pixel (60 of them sent the adversarial loss to NaN)."""
    layers, size = 0, crop
    while size >= 2:
        size = -(-size // 2)
        layers += 1
    return max(layers, 1)


@dataclass(frozen=True)
class Params:
    """The whole of params.yaml. A section a file lacks is None: the stages load files that hold
    just their own sections (tests, one-off runs); a stage that needs an absent one says so."""

    data: DataConfig | None = None
    extract: ExtractConfig | None = None
    model: ModelConfig | None = None
    loss: LossConfig | None = None
    train: TrainConfig | None = None
    evaluate: EvaluateConfig | None = None
    report: ReportConfig | None = None

    SECTIONS: ClassVar[dict[str, type]] = {
        "data": DataConfig, "extract": ExtractConfig, "model": ModelConfig, "loss": LossConfig,
        "train": TrainConfig, "evaluate": EvaluateConfig, "report": ReportConfig}

    def __post_init__(self) -> None:
        loss, extract = self.loss, self.extract
        if isinstance(loss, LossConfig) and isinstance(extract, ExtractConfig):
            span = 2 ** (MSSSIM_SCALES - 1)
            if (loss.msssim_win - 1) * span + 1 > extract.crop:
                largest = (extract.crop - 1) // span + 1
                largest -= 1 - largest % 2
                fits = (f"an odd integer in 3..{largest}" if largest >= 3
                        else "an odd integer >= 3")
                raise _refuse(loss, "msssim_win", f"{fits} ({MSSSIM_SCALES} MS-SSIM scales need "
                              f"(win - 1) * {span} + 1 <= the {extract.crop} px extract.crop)")
        model = self.model
        if isinstance(model, ModelConfig) and isinstance(extract, ExtractConfig):
            deepest = discriminator_layers_for(extract.crop)
            if model.d_layers > deepest:
                raise _refuse(model, "d_layers", f"an integer in 1..{deepest} (each layer halves "
                              f"the {extract.crop} px extract.crop; after {deepest} its maps "
                              "are one pixel)")
        evaluate, report = self.evaluate, self.report
        if isinstance(evaluate, EvaluateConfig) and isinstance(report, ReportConfig):
            if report.patches > evaluate.saved_patches:
                raise _refuse(report, "patches", f"an integer in 1..{evaluate.saved_patches} (at "
                              "most evaluate.saved_patches, the patches evaluate keeps)")

    @classmethod
    def from_dict(cls, params: Any) -> Params:
        """A parsed params.yaml (or a part of it: whole sections) as Params. ConfigError for an
        unknown section or key (naming the closest known one), a section that is not a mapping,
        a key missing from a present section, or a refused value; the first one in the
        file's order, then the limits between sections."""
        if not isinstance(params, dict):
            raise ConfigError(said=f"expected a mapping of sections, found "
                                   f"{type(params).__name__}")
        sections: dict[str, Any] = {}
        for name, values in params.items():
            if name not in cls.SECTIONS:
                raise _unknown(str(name), list(cls.SECTIONS), "a params.yaml section",
                               "the sections are")
            config = cls.SECTIONS[name]
            keys = [f.name for f in fields(config)]
            if not isinstance(values, dict):
                raise ConfigError(f"section {name}", f"a mapping of its keys ({', '.join(keys)})",
                                  values)
            for k in values:
                if k not in keys:
                    raise _unknown(str(k), keys, f"a key of the {name} section", "its keys are",
                                   prefix=f"{name}.")
                if too_large(values[k]):
                    raise ConfigError(said=f"{name}.{k} holds more than {MAX_VALUES:,} values: "
                                           "too large to be a setting")
            for k in keys:
                if k not in values:
                    raise ConfigError(said=f"{name}.{k} is missing "
                                           f"({spec_of(config, k).accepts})")
            sections[name] = config(**values)
        return cls(**sections)


def _unknown(name: str, known: list[str], what: str, listing: str,
             prefix: str = "") -> ConfigError:
    """'NAME is not WHAT; did you mean CLOSEST?' (difflib), else the names there are."""
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"did you mean {prefix}{close[0]}?" if close else f"{listing}: {', '.join(known)}"
    return ConfigError(said=f"{prefix}{name} is not {what}; {hint}")
