"""Export to TorchScript and ONNX: parity with the PyTorch module, dynamic shapes, the CLI.

Tiny generators with every parameter perturbed (the Dense U-Net's output conv starts at zero,
which would make it the identity and parity trivial). The ONNX tests need the optional extra
and are skipped without it; the ONNX exports (the slow part, ~10 s each on 2 cores) run once
per module.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import torch
import typer
from typer.testing import CliRunner

from gan.checkpoint import save_generator
from gan.deploy import export as gan_export
from gan.deploy.export import (ExportError, ExportWrapper, check_parity, export_onnx,
                               export_torchscript, min_side, padding_multiple, read_metadata)
from gan.networks import build_generator
from stages.export import main

# torch.jit.load's deprecation notice, on every load below.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")

TINY_UNET = {"depth": 2, "base_width": 8, "growth_rate": 4, "layers_per_block": 2,
             "guided_radius": 2}  # the trainable output filter is exported too
TINY_RESNET = {"width": 8, "blocks": 1}
TOLERANCE = 1e-4
# A photo's size, odd sizes, and a multiple of 2**depth with another batch size.
SHAPES = [(1, 3, 480, 640), (1, 3, 333, 517), (2, 3, 64, 96)]
SMALL_SHAPES = [(1, 3, 61, 67), (2, 3, 40, 24)]  # for DPED's ResNet (no padding to test)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models gain nothing from a second thread, and on a busy 2-core machine the threads
    waiting on each other made this module 2x slower (57 s instead of 28 s)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def perturbed(kind: str, config: dict, seed: int = 0) -> torch.nn.Module:
    """A generator whose every parameter is moved off its initial value (fixed seed)."""
    with torch.random.fork_rng():  # the seed stays here: other tests' random draws are theirs
        torch.manual_seed(seed)
        generator = build_generator(kind, config).eval()
        with torch.no_grad():
            for param in generator.parameters():
                param.add_(0.05 * torch.randn_like(param))
    return generator


def sample(shape: tuple[int, ...], seed: int = 1) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def unet() -> torch.nn.Module:
    return perturbed("dense_unet", TINY_UNET)


@pytest.fixture(scope="module")
def resnet() -> torch.nn.Module:
    return perturbed("dped_resnet", TINY_RESNET, seed=1)


@pytest.fixture(scope="module")
def unet_ts(unet, tmp_path_factory) -> Path:
    return export_torchscript(unet, tmp_path_factory.mktemp("ts") / "generator.ts")


@pytest.fixture(scope="module")
def unet_onnx(unet, tmp_path_factory) -> Path:
    """The ONNX file written by the CLI, with its own parity check (which must pass)."""
    pytest.importorskip("onnxscript")
    pytest.importorskip("onnxruntime")
    folder = tmp_path_factory.mktemp("onnx")
    save_generator(folder / "generator.pt", unet, {"note": "test"})
    code, output = cli("--model", str(folder / "generator.pt"), "--format", "onnx")
    assert code == 0, output
    assert output.count("parity on ") == 2 and "1x3x257x383" in output, output
    return folder / "generator.onnx"


def cli(*args: str) -> tuple[int, str]:
    app = typer.Typer()
    app.command()(main)
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


# -- the wrapper ---------------------------------------------------------------------------


def test_wrapper_equals_generator_eagerly(unet, resnet):
    for generator in (unet, resnet):
        wrapper = ExportWrapper(generator, padding_multiple(generator))
        for shape in [(1, 3, 37, 53), (2, 3, 32, 48), (1, 3, 5, 6)]:
            x = sample(shape)
            with torch.no_grad():
                # Not bit-equal: vectorised kernels round the last bit by position in a row.
                difference = (wrapper(x) - generator(x)).abs().max()
                assert difference <= 1e-6, (generator.kind, shape, difference)


def test_test_generators_are_not_the_identity(unet, resnet):
    x = sample((1, 3, 64, 64))
    with torch.no_grad():
        assert (unet(x) - x).abs().mean() > 0.01
        assert (resnet(x) - x).abs().mean() > 0.01


def test_min_side_and_multiple(unet, resnet):
    default = build_generator("dense_unet")  # depth 3
    assert (padding_multiple(default), min_side(default)) == (8, 5)
    assert (padding_multiple(unet), min_side(unet)) == (4, 3)
    assert (padding_multiple(resnet), min_side(resnet)) == (1, 1)
    with pytest.raises(ExportError, match="cannot export a generator of kind"):
        padding_multiple(torch.nn.Conv2d(3, 3, 1))


# -- TorchScript -----------------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES + [(1, 3, 3, 4)])  # the smallest side it accepts: 3
def test_torchscript_parity(unet, unet_ts, shape):
    assert check_parity(unet, unet_ts, "torchscript", sample(shape)) <= TOLERANCE


def test_torchscript_is_dynamic_and_self_describing(unet, unet_ts):
    module = torch.jit.load(str(unet_ts))
    for shape in [(1, 3, 61, 67), (3, 3, 40, 24)]:  # neither is the traced example's shape
        assert tuple(module(sample(shape)).shape) == shape
    meta = read_metadata(unet_ts, "torchscript")
    assert meta["kind"] == "dense_unet" and '"depth": 2' in meta["config"]


def test_dped_resnet_torchscript(resnet, tmp_path):
    path = export_torchscript(resnet, tmp_path / "resnet.ts")
    for shape in SMALL_SHAPES:
        assert check_parity(resnet, path, "torchscript", sample(shape)) <= TOLERANCE


def test_export_leaves_the_callers_module_alone(tmp_path):
    generator = perturbed("dense_unet", TINY_UNET).train()
    before = {k: v.clone() for k, v in generator.state_dict().items()}
    export_torchscript(generator, tmp_path / "g.ts")
    assert generator.training
    assert all(torch.equal(before[k], v) for k, v in generator.state_dict().items())


def test_failed_export_leaves_no_file_and_keeps_the_old_one(unet, tmp_path, monkeypatch):
    target = tmp_path / "generator.ts"
    target.write_bytes(b"the previous export")

    def broken_save(module, destination, _extra_files=None):
        destination.write(b"half a file")  # torch.jit.save into the in-memory buffer
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch.jit, "save", broken_save)
    with pytest.raises(OSError, match="No space left"):
        export_torchscript(unet, target)
    assert target.read_bytes() == b"the previous export"
    assert [p.name for p in tmp_path.iterdir()] == ["generator.ts"]


# -- ONNX --------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("shape", SHAPES + [(1, 3, 3, 4)])
def test_onnx_parity(unet, unet_onnx, shape):
    assert check_parity(unet, unet_onnx, "onnx", sample(shape)) <= TOLERANCE


@pytest.mark.slow
def test_onnx_axes_are_named_and_dynamic(unet_onnx):
    import onnxruntime

    session = onnxruntime.InferenceSession(str(unet_onnx), providers=["CPUExecutionProvider"])
    (image,), (enhanced,) = session.get_inputs(), session.get_outputs()
    assert (image.name, image.shape) == ("image", ["batch", 3, "height", "width"])
    assert (enhanced.name, enhanced.shape) == ("enhanced", ["batch", 3, "height", "width"])
    for shape in [(1, 3, 61, 67), (3, 3, 40, 24)]:
        (out,) = session.run(None, {"image": sample(shape).numpy()})
        assert out.shape == shape
    meta = read_metadata(unet_onnx, "onnx")
    assert meta["kind"] == "dense_unet" and meta["min_side"] == "3"
    # One self-contained file (no external weights), no staging file left behind.
    assert sorted(p.name for p in unet_onnx.parent.iterdir()) == ["generator.onnx", "generator.pt"]


def test_dped_resnet_onnx(resnet, tmp_path):
    pytest.importorskip("onnxscript")
    pytest.importorskip("onnxruntime")
    path = export_onnx(resnet, tmp_path / "resnet.onnx")
    for shape in SMALL_SHAPES:
        assert check_parity(resnet, path, "onnx", sample(shape)) <= TOLERANCE


def without(monkeypatch, *names: str) -> None:
    """Make gan.deploy.export's import of the given packages fail, as when they are not installed."""
    real_import_module = importlib.import_module

    def import_module(name: str, package: str | None = None):
        if name.split(".")[0] in names:
            raise ModuleNotFoundError(f"No module named {name!r}")
        return real_import_module(name, package)

    monkeypatch.setattr(importlib, "import_module", import_module)


def test_missing_onnx_packages_are_named_with_the_install_line(unet, tmp_path, monkeypatch):
    without(monkeypatch, "onnxscript", "onnxruntime")
    # Exporting needs onnxscript (not onnxruntime); running the file needs onnxruntime.
    with pytest.raises(ExportError, match=r"^ONNX export needs the optional package\(s\) "
                                          r"(onnx, )?onnxscript, which .*: "
                                          r"pip install 'ppe-gan\[export\]'$"):
        export_onnx(unet, tmp_path / "g.onnx")
    assert not any(tmp_path.iterdir())
    with pytest.raises(ExportError, match=r"running an ONNX file needs .* onnxruntime, "):
        check_parity(unet, tmp_path / "g.onnx", "onnx", sample((1, 3, 8, 8)))


# -- the CLI -----------------------------------------------------------------------------------


@pytest.fixture
def checkpoint(unet, tmp_path) -> Path:
    path = tmp_path / "models" / "generator.pt"
    save_generator(path, unet, {"note": "test"})
    return path


def test_cli_writes_next_to_the_model_and_checks(checkpoint):
    code, output = cli("--model", str(checkpoint))
    assert code == 0, output
    out = checkpoint.with_suffix(".ts")
    assert out.is_file() and f"wrote {out}" in output
    assert "parity on 1x3x257x383" in output and "parity on 2x3x240x320" in output
    assert sorted(p.name for p in checkpoint.parent.iterdir()) == ["generator.pt", "generator.ts"]


def test_cli_refuses_to_overwrite_without_force(unet, checkpoint, tmp_path):
    out = tmp_path / "deploy" / "enhancer.ts"
    out.parent.mkdir()
    out.write_bytes(b"keep me")
    code, output = cli("--model", str(checkpoint), "--out", str(out), "--no-check")
    assert code == 1 and "already exists; pass --force" in output
    assert out.read_bytes() == b"keep me"
    code, output = cli("--model", str(checkpoint), "--out", str(out), "--no-check", "--force")
    assert code == 0, output
    assert "parity" not in output
    # the forced export replaced the file with this model
    assert check_parity(unet, out, "torchscript", sample((1, 3, 61, 67))) <= TOLERANCE


def test_cli_refuses_to_overwrite_the_model(checkpoint):
    code, output = cli("--model", str(checkpoint), "--out", str(checkpoint), "--force")
    assert code == 1 and "would overwrite the model checkpoint" in output


def test_cli_names_a_missing_model(tmp_path):
    missing = tmp_path / "nowhere.pt"
    code, output = cli("--model", str(missing))
    assert code == 1 and f"{missing}: no such model file" in output
    assert "Traceback" not in output


def test_cli_refuses_a_checkpoint_that_is_not_a_generator(tmp_path):
    path = tmp_path / "state.pt"
    torch.save({"step": 3, "weights": torch.zeros(2)}, path)
    code, output = cli("--model", str(path))
    assert code == 1 and "not a ppe-gan generator checkpoint" in output
    assert not path.with_suffix(".ts").exists()


def test_cli_fails_when_parity_fails_and_writes_nothing(checkpoint, monkeypatch):
    monkeypatch.setattr(gan_export, "check_parity", lambda *args: 0.5)
    code, output = cli("--model", str(checkpoint))
    assert code == 1 and "differs from the PyTorch model by 5.00e-01" in output
    assert "was not written" in output
    assert sorted(p.name for p in checkpoint.parent.iterdir()) == ["generator.pt"]
    # Nor does a file that fails the check replace a good one under --force.
    good = checkpoint.with_suffix(".ts")
    good.write_bytes(b"a good export")
    code, output = cli("--model", str(checkpoint), "--force")
    assert code == 1 and good.read_bytes() == b"a good export"
    assert sorted(p.name for p in checkpoint.parent.iterdir()) == ["generator.pt", "generator.ts"]


def test_cli_onnx_without_the_extra(checkpoint, monkeypatch):
    without(monkeypatch, "onnx", "onnxscript", "onnxruntime")
    code, output = cli("--model", str(checkpoint), "--format", "onnx")
    assert code == 1 and "onnx, onnxscript, onnxruntime" in output
    assert "pip install 'ppe-gan[export]'" in output and "Traceback" not in output
    code, output = cli("--model", str(checkpoint), "--format", "onnx", "--no-check")
    assert code == 1 and "package(s) onnx, onnxscript, which" in output


def test_cli_in_a_fresh_clone_exports_the_shipped_model_into_models(tmp_path, monkeypatch):
    # No models/generator.pt yet: the shipped model is exported, into models/, never the
    # working directory (it used to fail, and with --model NAME to write ./NAME.ts).
    from gan.deploy.pretrained import DEFAULT_MODEL
    monkeypatch.chdir(tmp_path)
    code, output = cli("--no-check")
    assert code == 0, output
    assert f"no trained models/generator.pt: exporting the shipped model {DEFAULT_MODEL}" in output
    assert (tmp_path / "models" / f"{DEFAULT_MODEL}.ts").is_file()
    code, output = cli("--model", DEFAULT_MODEL, "--no-check", "--force")
    assert code == 0, output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models"]
