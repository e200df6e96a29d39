"""Exporting a trained generator for deployment: TorchScript (``.ts``) and ONNX (``.onnx``).

Both files take ``(N, 3, H, W)`` float32 RGB in ``[0, 1]`` and return the enhanced image, same
shape, with batch, height and width dynamic: one file serves every photo size.

Why a wrapper: the Dense U-Net pads its input to a multiple of ``2**depth`` behind a Python
``if``, and both exporters record Python control flow as it went for the example input (trace
bakes the branch in, torch.export turns it into a guard that refuses other sizes). So both
exports go through :class:`ExportWrapper`, which pads before the generator and crops after with
shape arithmetic only: ``pad = ceil(h / m) * m - h`` (ceil rather than ``-h % m``: the padded
side is then a plain multiple of m for the symbolic-shape solver), reflect padding, and the crop
as a negative pad (a slice would be a view whose contiguity torch.export guards on). The
generator's own padding then never fires, and the output equals the generator's on every size
it accepts.

Formats: TorchScript is ``torch.jit.trace`` of the wrapper (deprecated, but the one format
libtorch and Python load without the model's source; needs only torch). ONNX is the dynamo
exporter (torch's supported one), opset 18, weights inside the one file, axes named ``batch``,
``height``, ``width``; it needs the ``export`` extra (onnx, onnxscript; onnxruntime to check).
The example input is a batch of 2 (torch.export specialises a dimension of size 1) with
unequal sides that need padding, so the recorded run goes through every step of the wrapper.

Limits: a side shorter than ``2**depth // 2 + 1`` pixels cannot be reflect-padded; the files
refuse it. ``check_parity`` compares an exported file with the PyTorch module on a sample;
``check_parity_on_shapes`` does it on the shapes that prove the sizes dynamic.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import io
import json
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from gan.errors import first_line
from gan.fsio import atomic_path, write_bytes
from gan.networks import GENERATORS, size_multiple

FORMATS = ("torchscript", "onnx")
SUFFIXES = {"torchscript": ".ts", "onnx": ".onnx"}
OPSET = 18
INPUT_NAME = "image"
OUTPUT_NAME = "enhanced"
# The contract recorded in each exported file, next to the generator's kind and config.
EXPORT_FORMAT = "ppe-gan exported generator"
IO_CONTRACT = ("input 'image' (N, 3, H, W) float32 RGB in [0, 1] -> output 'enhanced' "
               "(N, 3, H, W) float32 in [0, 1]; N, H and W dynamic")
INSTALL_HINT = "pip install 'ppe-gan[export]'"
# The optional packages (the `export` extra): writing an ONNX file, and running one.
EXPORT_PACKAGES = ("onnx", "onnxscript")
RUNTIME_PACKAGES = ("onnxruntime",)


class ExportError(RuntimeError):
    """An export or a parity check could not be done; the message says why and what to do."""


# -----------------------------------------------------------------------------
# The export-friendly wrapper


def padding_multiple(generator: nn.Module) -> int:
    """The multiple the exported file pads the input sides to (gan.networks.size_multiple),
    for the project's generators only: another module's needs cannot be known."""
    kind = getattr(generator, "kind", None)
    if kind not in GENERATORS:
        raise ExportError(f"cannot export a generator of kind {kind!r}; expected "
                          f"{' or '.join(GENERATORS)} (a module from gan.networks.build_generator)")
    return size_multiple(generator)


def min_side(generator: nn.Module) -> int:
    """The shortest side the exported files accept: reflect padding needs pad < side."""
    multiple = padding_multiple(generator)
    return multiple // 2 + 1 if multiple > 1 else 1


class ExportWrapper(nn.Module):
    """The generator with its padding done by shape arithmetic, which the exporters record.

    (N, 3, H, W) float in [0, 1] -> (N, 3, H, W) float in [0, 1]: ``generator(image)``, to
    float rounding, for sides >= :func:`min_side` (see the module docstring for why).
    """

    def __init__(self, generator: nn.Module, multiple: int):
        super().__init__()
        self.generator = generator
        self.multiple = multiple

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if self.multiple == 1:
            return self.generator(image)
        m = self.multiple
        height, width = image.shape[-2], image.shape[-1]
        pad_h = (height + m - 1) // m * m - height
        pad_w = (width + m - 1) // m * m - width
        enhanced = self.generator(F.pad(image, (0, pad_w, 0, pad_h), mode="reflect"))
        # A negative pad crops into a new tensor; a slice would be a view (see module doc).
        return F.pad(enhanced, (0, -pad_w, 0, -pad_h))


def _cpu_copy(generator: nn.Module) -> nn.Module:
    """An eval-mode float32 CPU copy: exporting must not move or switch the caller's module."""
    return copy.deepcopy(generator).to("cpu", torch.float32).eval()


def _example_input(multiple: int) -> torch.Tensor:
    """(2, 3, 5m + 3, 7m + 5): batch 2, unequal sides that need padding (see the module doc)."""
    rng = torch.Generator().manual_seed(0)
    return torch.rand(2, 3, 5 * multiple + 3, 7 * multiple + 5, generator=rng)


def metadata(generator: nn.Module) -> dict[str, str]:
    """What an exported file says about itself: format, generator kind and config, contract."""
    return {
        "format": EXPORT_FORMAT,
        "kind": str(generator.kind),
        "config": json.dumps(generator.config_dict(), sort_keys=True),
        "io": IO_CONTRACT,
        "min_side": str(min_side(generator)),
    }


# -----------------------------------------------------------------------------
# Writing


def export_torchscript(generator: nn.Module, path: Path) -> Path:
    """Write ``generator`` as a traced TorchScript module (``torch.jit.load`` runs it)."""
    module = _cpu_copy(generator)
    wrapper = ExportWrapper(module, padding_multiple(module)).eval()
    example = _example_input(wrapper.multiple)
    with _quiet_jit(), warnings.catch_warnings():
        # Expected and harmless: TracerWarnings for the generator's input check and its
        # padding branch, which is constant for every padded input. check_parity on sizes
        # other than the example's is what proves the trace general.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        with torch.no_grad():
            traced = torch.jit.trace(wrapper, example, check_trace=False)
        extra = {"ppe-gan.json": json.dumps(metadata(module), indent=2)}
        buffer = io.BytesIO()  # in memory first: torch's file writer aborts on a full disk
        torch.jit.save(traced, buffer, _extra_files=extra)
        write_bytes(path, buffer.getbuffer())
    return Path(path)


@contextlib.contextmanager
def _quiet_jit() -> Iterator[None]:
    """Silence torch.jit's deprecation notices (FutureWarning on every trace, save and load):
    TorchScript is the format asked for here, and the notice would only alarm the user."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.", category=FutureWarning)
        yield


def export_onnx(generator: nn.Module, path: Path, opset: int = OPSET) -> Path:
    """Write ``generator`` as one self-contained ONNX file (dynamo-based exporter)."""
    require_onnx(*EXPORT_PACKAGES, task="ONNX export")
    module = _cpu_copy(generator)
    wrapper = ExportWrapper(module, padding_multiple(module)).eval()
    example = _example_input(wrapper.multiple)
    axes = {0: "batch", 2: "height", 3: "width"}
    try:
        with warnings.catch_warnings():
            # The exporter warns about its internals (deprecations, guards it added); the
            # verdict on the file is check_parity's, not theirs. verbose=False keeps it from
            # printing its progress to stdout.
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                wrapper, (example,), None, dynamo=True, opset_version=opset,
                input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                dynamic_shapes={INPUT_NAME: axes}, external_data=False, verbose=False)
    except Exception as exc:  # torch.export and the translation raise many types
        raise ExportError(f"ONNX export of the {module.kind} generator failed: "
                          f"{type(exc).__name__}: {first_line(exc, 300)}") from exc
    program.model.metadata_props.update(metadata(module))
    with atomic_path(path) as tmp:
        program.save(tmp, external_data=False)
    return Path(path)


def export(generator: nn.Module, path: Path, format: str, opset: int = OPSET) -> Path:
    """``export_torchscript`` or ``export_onnx`` by name (one of ``FORMATS``)."""
    if format == "torchscript":
        return export_torchscript(generator, path)
    if format == "onnx":
        return export_onnx(generator, path, opset)
    raise ExportError(f"unknown export format {format!r}; expected one of {', '.join(FORMATS)}")


# -----------------------------------------------------------------------------
# Checking


def check_parity(generator: nn.Module, path: Path, format: str, sample: torch.Tensor) -> float:
    """Max abs difference between the exported file and the module on ``sample``.

    sample: (N, 3, H, W) float in [0, 1], any sizes the export accepts. Both run on the CPU in
    float32. An output of the wrong shape raises ExportError (it is not a small difference).
    """
    sample = sample.detach().to("cpu", torch.float32).contiguous()
    with torch.no_grad():
        expected = _cpu_copy(generator)(sample)
    if format == "torchscript":
        actual = _run_torchscript(Path(path), sample)
    elif format == "onnx":
        actual = _run_onnx(Path(path), sample)
    else:
        raise ExportError(f"unknown export format {format!r}; expected one of {', '.join(FORMATS)}")
    if actual.shape != expected.shape:
        raise ExportError(f"{path}: returned shape {tuple(actual.shape)} for an input of shape "
                          f"{tuple(sample.shape)}; expected {tuple(expected.shape)}")
    return float((actual - expected).abs().max())


# An odd size (the padding path), then another batch size and a multiple of 8 (no padding):
# one file passing both has dynamic batch, height and width.
PARITY_SHAPES = ((1, 3, 257, 383), (2, 3, 240, 320))


class ParityError(ExportError):
    """The exported file computes something else than the PyTorch module: a file not to ship."""


def check_parity_on_shapes(generator: nn.Module, path: Path, format: str, tolerance: float,
                           shapes: tuple[tuple[int, int, int, int], ...] = PARITY_SHAPES,
                           on_result: Callable[[tuple[int, ...], float], None] | None = None
                           ) -> dict[tuple[int, ...], float]:
    """``check_parity`` on a seeded random input of each shape in turn, so that a file whose
    shapes were baked in at export fails; ``on_result(shape, difference)`` hears each result
    as it comes. Raises ParityError at the first difference above ``tolerance`` (or NaN)."""
    rng = torch.Generator().manual_seed(0)
    differences: dict[tuple[int, ...], float] = {}
    for shape in shapes:
        difference = check_parity(generator, path, format, torch.rand(*shape, generator=rng))
        differences[tuple(shape)] = difference
        if on_result is not None:
            on_result(tuple(shape), difference)
        if not difference <= tolerance:  # `not <=` also catches NaN
            raise ParityError(f"the exported file differs from the PyTorch model by "
                              f"{difference:.2e} on a {shape_text(shape)} input "
                              f"(limit {tolerance:g})")
    return differences


def shape_text(shape: tuple[int, ...]) -> str:
    """A tensor shape as people write it: 1x3x257x383."""
    return "x".join(map(str, shape))


def _run_torchscript(path: Path, sample: torch.Tensor) -> torch.Tensor:
    with _quiet_jit():
        module = torch.jit.load(str(path), map_location="cpu")
    with torch.no_grad():
        return module(sample)


def _run_onnx(path: Path, sample: torch.Tensor) -> torch.Tensor:
    return _run_session(_onnx_session(path), sample)


def _onnx_session(path: Path):
    """An ONNX Runtime session of the file, on the CPU."""
    require_onnx(*RUNTIME_PACKAGES, task="running an ONNX file")
    import onnxruntime

    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _run_session(session, sample: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) float32 in, the exported generator's output out, through ``session``."""
    (output,) = session.run([OUTPUT_NAME], {INPUT_NAME: sample.float().contiguous().cpu().numpy()})
    return torch.from_numpy(output)


class OnnxGenerator:
    """An exported .onnx generator run by ONNX Runtime on the CPU, in the shape
    gan.deploy.inference expects of a generator: ``kind`` and ``config`` (its tiles start on
    the same grid as the PyTorch module's) and a call on (N, 3, H, W) float32 tensors."""

    def __init__(self, path: Path | str):
        require_onnx("onnx", *RUNTIME_PACKAGES, task="--engine onnxruntime")
        path = Path(path)
        try:
            meta = read_metadata(path, "onnx")
            self.session = _onnx_session(path)
        except Exception as exc:  # onnx and onnxruntime raise their own types
            raise ExportError(f"{path}: cannot be loaded as an ONNX model: "
                              f"{type(exc).__name__}: {first_line(exc)}") from None
        if meta.get("format") != EXPORT_FORMAT:
            raise ExportError(f"{path}: not a generator exported by `ppe export` (no "
                              f"'{EXPORT_FORMAT}' metadata)")
        self.kind = meta["kind"]
        self.config = SimpleNamespace(**json.loads(meta["config"]))

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        return _run_session(self.session, image)

    def to(self, *args: Any, **kwargs: Any) -> OnnxGenerator:  # nn.Module's .to: nothing to move
        return self

    def eval(self) -> OnnxGenerator:
        return self


def read_metadata(path: Path, format: str) -> dict[str, Any]:
    """The metadata an exported file carries (see :func:`metadata`)."""
    if format == "torchscript":
        extra = {"ppe-gan.json": ""}
        with _quiet_jit():
            torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
        return json.loads(extra["ppe-gan.json"])
    require_onnx("onnx", task="reading an ONNX file")
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return {prop.key: prop.value for prop in model.metadata_props}


# -----------------------------------------------------------------------------
# Optional dependencies


def require_onnx(*packages: str, task: str) -> None:
    """Import the given optional packages, or raise ExportError naming those missing and the
    line that installs them. task: what needs them, for the message ("ONNX export")."""
    missing = []
    for name in packages:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise ExportError(f"{task} needs the optional package(s) {', '.join(missing)}, which "
                          f"are not installed; install them with: {INSTALL_HINT}")


