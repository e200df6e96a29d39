"""A model file that is empty, truncated or garbage: every command that loads one names the file
and says what is wrong, in one line, exit code 1 (the error handler itself once crashed on an
empty file's message-less error)."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from gan.checkpoint import save_generator
from gan.networks import build_generator
from stages.app import app
from tests.test_evaluate_report import evaluate_args, workspace  # noqa: F401

TINY = {"depth": 1, "base_width": 8, "growth_rate": 4, "layers_per_block": 2}


# A model file of the right format whose fields were written by something else (the hostile
# probe's kind: ["dense_unet"] ended in "TypeError: unhashable type" in enhance and evaluate).
FIELDS = {
    "kind_list": {"kind": ["dense_unet"]},
    "kind_unknown": {"kind": "unet"},
    "config_list": {"config": [1, 2]},
    "config_value": {"config": {**TINY, "depth": "deep"}},
    "config_key": {"config": {**TINY, "width_x": 3}},
    "state_strings": {"state_dict": {"w": "not a tensor"}},
    "provenance_text": {"provenance": "made by hand"},
}


@pytest.fixture(params=["empty", "truncated", "garbage", "text", "nan_weights", *FIELDS])
def bad_model(request, tmp_path):
    path = tmp_path / f"{request.param}.pt"
    if request.param == "empty":
        path.write_bytes(b"")
    elif request.param == "garbage":
        path.write_bytes(b"\x00\x01 not a checkpoint " * 50)
    elif request.param == "text":  # e.g. the model card passed as --model
        path.write_text("# iphone-dped-mini\n\nA generator trained on ...\n")
    elif request.param == "nan_weights":  # a diverged run's generator: enhance wrote black
        generator = build_generator("dense_unet", TINY)
        with torch.no_grad():
            next(iter(generator.parameters())).fill_(float("nan"))
        save_generator(path, generator, {})
    elif request.param in FIELDS:
        save_generator(path, build_generator("dense_unet", TINY), {})
        payload = torch.load(path, weights_only=True)
        torch.save({**payload, **FIELDS[request.param]}, path)
    else:
        save_generator(path, build_generator("dense_unet", TINY), {})
        path.write_bytes(path.read_bytes()[:2000])
    return path


def one_line_naming(result, path) -> None:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and not isinstance(result.exception, IndexError)
    errors = [line for line in result.output.splitlines() if str(path) in line]
    assert errors and "cannot be loaded" in errors[0], result.output


def test_enhance_names_a_bad_model(bad_model, tmp_path):
    photo = tmp_path / "in.png"
    from PIL import Image
    Image.new("RGB", (32, 32), (90, 120, 30)).save(photo)
    result = CliRunner().invoke(app, ["enhance", str(photo), "-o", str(tmp_path / "out"),
                                      "--model", str(bad_model), "--no-progress"])
    one_line_naming(result, bad_model)


def test_export_names_a_bad_model(bad_model, tmp_path):
    result = CliRunner().invoke(app, ["export", "--model", str(bad_model), "--out",
                                      str(tmp_path / "g.ts")])
    one_line_naming(result, bad_model)
    assert not (tmp_path / "g.ts").exists()


def test_evaluate_names_a_bad_model(bad_model, workspace):  # noqa: F811
    args = evaluate_args(workspace)
    args[args.index("--model") + 1] = str(bad_model)
    one_line_naming(CliRunner().invoke(app, args), bad_model)
    assert torch.is_grad_enabled()


def test_a_text_file_or_an_onnx_export_given_to_torch_says_what_it_is(tmp_path):
    photo = tmp_path / "in.png"
    from PIL import Image
    Image.new("RGB", (32, 32), (90, 120, 30)).save(photo)
    card = tmp_path / "model-card.md"
    card.write_text("# A model card\n")
    onnx = tmp_path / "g.onnx"
    onnx.write_bytes(b"\x08\x07\x12\x07pytorch")
    for model, engine, says in ((card, "auto", "it is a text file (a model card?)"),
                                (onnx, "torch", "it is an exported ONNX model")):
        result = CliRunner().invoke(app, ["enhance", str(photo), "-o", str(tmp_path / "out"),
                                          "--model", str(model), "--engine", engine,
                                          "--no-progress"])
        assert result.exit_code == 1 and "Weights only load failed" not in result.output
        assert f"{model}: cannot be loaded as a generator checkpoint: {says}" in result.output
