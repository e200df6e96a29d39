"""The enhance command: batches of real photo files, every kind of bad input, atomic outputs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data
from typer.testing import CliRunner

import stages.enhance as enhance_stage
from gan.checkpoint import save_generator
from gan.networks import build_generator
from stages.app import app

TINY = {"depth": 2, "base_width": 8, "growth_rate": 4, "layers_per_block": 2}


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """A tiny generator that changes the photo (all weights perturbed), saved as a checkpoint."""
    torch.manual_seed(0)
    generator = build_generator("dense_unet", TINY)
    with torch.no_grad():
        for p in generator.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    path = tmp_path_factory.mktemp("model") / "generator.pt"
    save_generator(path, generator, {"note": "test"})
    return path


@pytest.fixture
def photos(tmp_path) -> Path:
    """A folder of real photos: two JPEGs, a PNG with alpha, and one in a sub-folder."""
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    Image.fromarray(data.astronaut()[:120, :160]).save(folder / "a.jpg", quality=95)
    Image.fromarray(data.coffee()[:100, :90]).save(folder / "sub" / "b.jpg", quality=95)
    rgba = np.dstack([data.chelsea()[:64, :80], np.linspace(0, 255, 64 * 80).reshape(64, 80)])
    Image.fromarray(rgba.astype(np.uint8), "RGBA").save(folder / "c.png")
    return folder


def enhance(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["enhance", *args, "--no-progress"])
    return result.exit_code, result.output


def leftovers(folder: Path) -> list[str]:
    """Temporary or partial files anywhere under ``folder``."""
    return [p.name for p in folder.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".")]


def test_a_folder_is_enhanced_with_names_and_subfolders_kept(model, photos, tmp_path):
    out = tmp_path / "out"
    code, output = enhance(str(photos), "-o", str(out), "--model", str(model), "--tile", "64",
                           "--overlap", "16")
    assert code == 0, output
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.*")) == ["a.jpg", "c.png",
                                                                         "sub/b.jpg"]
    with Image.open(photos / "a.jpg") as before, Image.open(out / "a.jpg") as after:
        assert after.size == before.size and after.format == "JPEG"
        assert np.abs(np.asarray(after, float) - np.asarray(before, float)).mean() > 2
    with Image.open(photos / "c.png") as before, Image.open(out / "c.png") as after:
        assert after.mode == "RGBA"
        np.testing.assert_array_equal(np.asarray(after)[..., 3], np.asarray(before)[..., 3])
    # the summary table: a header and one row per photo with its size and result
    assert "file" in output and "seconds" in output and "result" in output
    assert "160x120" in output and output.count(" ok") >= 3


def test_globs_files_and_a_changed_format(model, photos, tmp_path):
    out = tmp_path / "out"
    code, output = enhance(str(photos / "*.jpg"), str(photos / "c.png"), "-o", str(out),
                           "--model", str(model), "--ext", "webp")
    assert code == 0, output
    assert sorted(p.name for p in out.iterdir()) == ["a.webp", "c.webp"]
    with Image.open(out / "a.webp") as im:
        assert im.format == "WEBP"


@pytest.mark.parametrize("method", ["clhe", "npea"])
def test_the_baselines_need_no_model(photos, tmp_path, method):
    out = tmp_path / method
    code, output = enhance(str(photos / "a.jpg"), "-o", str(out), "--method", method,
                           "--model", str(tmp_path / "absent.pt"))
    assert code == 0, output
    assert (out / "a.jpg").is_file()


def test_one_bad_file_does_not_sink_the_batch(model, photos, tmp_path):
    (photos / "text.jpg").write_text("this is not a photo")
    (photos / "empty.png").write_bytes(b"")
    good = (photos / "a.jpg").read_bytes()
    (photos / "truncated.jpg").write_bytes(good[: len(good) // 2])
    out = tmp_path / "out"
    code, output = enhance(str(photos), str(tmp_path / "missing.jpg"), "-o", str(out),
                           "--model", str(model))
    assert code == 1
    for name in ("text.jpg", "empty.png", "truncated.jpg", "missing.jpg"):
        assert name in output
    assert "3 of 7 failed" not in output and "4 of 7 failed" in output
    assert sorted(p.name for p in out.rglob("*.*")) == ["a.jpg", "b.jpg", "c.png"]
    assert leftovers(out) == []


def test_the_pixel_limit_refuses_a_decompression_bomb(model, photos, tmp_path):
    code, output = enhance(str(photos / "a.jpg"), "-o", str(tmp_path / "out"), "--model",
                           str(model), "--max-pixels", "10000")
    assert code == 1
    assert "a.jpg" in output and not (tmp_path / "out" / "a.jpg").exists()


def test_an_existing_output_is_skipped_and_counted_and_force_redoes_it(model, photos,
                                                                        tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.jpg").write_bytes(b"keep me")
    code, output = enhance(str(photos / "a.jpg"), "-o", str(out), "--model", str(model))
    assert code == 0, output  # a rerun over a shoot is not a failure
    assert "1 skipped: already enhanced (--force redoes it): a.jpg" in output
    assert (out / "a.jpg").read_bytes() == b"keep me"
    code, output = enhance(str(photos / "a.jpg"), "-o", str(out), "--model", str(model),
                           "--force")
    assert code == 0, output
    with Image.open(out / "a.jpg") as im:
        assert im.size == (160, 120)


def test_a_folder_scan_says_what_it_skipped_and_why(model, tmp_path):
    shoot = tmp_path / "shoot"
    shoot.mkdir()
    Image.new("RGB", (40, 30), (90, 120, 30)).save(shoot / "photo.jpg")
    Image.new("P", (40, 30)).save(shoot / "palette.gif")
    frames = [Image.new("RGB", (40, 30), c) for c in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(shoot / "anim.gif", save_all=True, append_images=frames[1:])
    (shoot / ".DS_Store").write_bytes(b"finder")  # hidden files are not the user's photos
    code, output = enhance(str(shoot), "-o", str(tmp_path / "out"), "--model", str(model))
    assert code == 0, output
    assert "2 skipped: not a format enhance reads: anim.gif, palette.gif" in output
    assert ".DS_Store" not in output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["photo.jpg"]
    code, output = enhance(str(shoot), "-o", str(tmp_path / "out"), "--model", str(model))
    assert code == 0 and "1 skipped: already enhanced (--force redoes it): photo.jpg" in output


def test_the_input_is_never_overwritten(model, photos):
    before = (photos / "a.jpg").read_bytes()
    code, output = enhance(str(photos / "a.jpg"), "-o", str(photos), "--model", str(model),
                           "--force")
    assert code == 1 and "replace the input" in output
    assert (photos / "a.jpg").read_bytes() == before


def test_two_inputs_with_one_output_name_are_refused(model, photos, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "a.jpg").write_bytes((photos / "a.jpg").read_bytes())
    code, output = enhance(str(photos / "a.jpg"), str(other / "a.jpg"), "-o",
                           str(tmp_path / "out"), "--model", str(model))
    assert code == 1 and "same output file" in output


def test_a_missing_or_foreign_model_is_named(photos, tmp_path):
    code, output = enhance(str(photos), "-o", str(tmp_path / "out"), "--model",
                           str(tmp_path / "absent.pt"))
    assert code == 1 and "absent.pt" in output
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.pt")
    code, output = enhance(str(photos), "-o", str(tmp_path / "out"), "--model",
                           str(tmp_path / "foreign.pt"))
    assert code == 1 and "foreign.pt" in output and "not a" in output
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


class _Payload:
    """A pickle that runs code when loaded: it would create the marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def test_a_checkpoint_that_runs_code_is_refused(photos, tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"format": "ppe-gan generator", "payload": _Payload(marker)},
               tmp_path / "evil.pt")
    code, output = enhance(str(photos), "-o", str(tmp_path / "out"), "--model",
                           str(tmp_path / "evil.pt"))
    assert code == 1 and "evil.pt" in output
    assert not marker.exists()  # torch.load(weights_only=True) never ran the payload


def test_ctrl_c_leaves_complete_outputs_only(model, photos, tmp_path, monkeypatch):
    """Interrupted while enhancing the second photo: the first output is complete, nothing
    else exists, the summary is printed and the exit code is 130."""
    real = enhance_stage.make_enhancer
    calls = []

    def interrupting(*args):
        run = real(*args)

        def enhance_or_stop(rgb, on_tile=None):
            calls.append(rgb.shape)
            if len(calls) == 2:
                raise KeyboardInterrupt
            return run(rgb, on_tile)
        return enhance_or_stop

    monkeypatch.setattr(enhance_stage, "make_enhancer", interrupting)
    out = tmp_path / "out"
    code, output = enhance(str(photos), "-o", str(out), "--model", str(model))
    assert code == 130 and "interrupted" in output
    assert [p.name for p in out.rglob("*") if p.is_file()] == ["a.jpg"]
    with Image.open(out / "a.jpg") as im:
        im.load()  # complete: decodes to the end


def test_ctrl_c_while_writing_leaves_no_partial_file(model, photos, tmp_path, monkeypatch):
    real_save = Image.Image.save

    def save_half_then_stop(self, fp, *args, **kwargs):
        real_save(self, fp, *args, **kwargs)  # the bytes reach the temporary file...
        raise KeyboardInterrupt  # ...and the user presses Ctrl-C before the rename

    monkeypatch.setattr(Image.Image, "save", save_half_then_stop)
    out = tmp_path / "out"
    code, output = enhance(str(photos / "a.jpg"), "-o", str(out), "--model", str(model))
    assert code == 130
    assert not out.exists() or [p for p in out.rglob("*") if p.is_file()] == []


def test_the_console_command_is_installed():
    import shutil
    import subprocess
    import sys

    exe = Path(sys.executable).parent / "enhance"
    command = str(exe) if exe.exists() else shutil.which("enhance")
    assert command, "the `enhance` console command is not installed (pip install -e .)"
    done = subprocess.run([command, "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "--tile" in done.stdout and "--method" in done.stdout


def test_a_file_another_run_creates_meanwhile_is_not_overwritten(model, photos, tmp_path,
                                                                  monkeypatch):
    """Two runs into one folder: the check that the output does not exist comes before the
    enhancing; the other run's file appearing in between must still win (exclusive create)."""
    from gan.deploy.photo_io import write

    out = tmp_path / "out"
    real_encode = write._encode

    def encode_while_another_run_finishes(fh, *args):
        (out / "a.jpg").write_bytes(b"the other run's photo")
        return real_encode(fh, *args)

    monkeypatch.setattr(write, "_encode", encode_while_another_run_finishes)
    code, output = enhance(str(photos / "a.jpg"), "-o", str(out), "--model", str(model))
    assert code == 1 and "already exists" in output and "--force" in output
    assert (out / "a.jpg").read_bytes() == b"the other run's photo"
    assert leftovers(out) == []


def test_a_killed_runs_temporary_is_cleaned_and_a_live_ones_is_not(model, photos, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    killed = out / f".a.jpg.{int(dead.stdout)}-0123456789ab.tmp"
    killed.write_bytes(b"half a JPEG")
    live = out / f".b.jpg.{os.getppid()}-0123456789ab.tmp"  # a process that still runs
    live.write_bytes(b"another run's work in progress")
    code, output = enhance(str(photos / "a.jpg"), "-o", str(out), "--model", str(model))
    assert code == 0, output
    assert "removed 1 temporary file(s) that a killed run left behind" in output
    assert not killed.exists() and live.exists()
    # Without -o the outputs go beside the inputs: those folders are cleared too.
    shoot = tmp_path / "shoot"
    shutil.copytree(photos, shoot)
    beside = shoot / f".a_x.jpg.{int(dead.stdout)}-0123456789ab.tmp"
    beside.write_bytes(b"half a JPEG")
    code, output = enhance(str(shoot / "a.jpg"), "--suffix", "_x", "--model", str(model))
    assert code == 0, output
    assert f"{shoot}: removed 1 temporary file(s) that a killed run left behind" in output
    assert not beside.exists()


def test_suffix_names_the_outputs_and_without_o_writes_beside_the_inputs(model, photos, tmp_path):
    folder = tmp_path / "shoot"
    shutil.copytree(photos, folder)
    code, output = enhance(str(folder), "--suffix", "_enhanced", "--model", str(model))
    assert code == 0, output
    made = sorted(str(p.relative_to(folder)) for p in folder.rglob("*_enhanced.*"))
    assert made == ["a_enhanced.jpg", "c_enhanced.png", "sub/b_enhanced.jpg"]
    code, output = enhance(str(folder), "--suffix", "_enhanced", "--model", str(model),
                           "--force")  # a rerun does not enhance its own outputs again
    assert code == 0 and not list(folder.rglob("*_enhanced_enhanced.*"))
    out = tmp_path / "out"
    code, output = enhance(str(folder / "a.jpg"), "-o", str(out), "--suffix", "-v2", "--ext",
                           "png", "--model", str(model))
    assert code == 0 and (out / "a-v2.png").exists()


def test_without_o_or_suffix_the_destination_is_asked_for(model, photos):
    code, output = enhance(str(photos / "a.jpg"), "--model", str(model))
    assert code == 1 and "-o FOLDER, or --suffix" in output
    code, output = enhance(str(photos / "a.jpg"), "--suffix", "x/y", "--model", str(model))
    assert code == 1 and "without /" in output


def test_an_output_that_is_a_file_is_one_line_and_the_file_is_kept(model, photos, tmp_path):
    existing = tmp_path / "existing.txt"  # the hostile probe's 44-line NotADirectoryError
    existing.write_text("notes")
    code, output = enhance(str(photos / "a.jpg"), "-o", str(existing), "--model", str(model))
    assert code == 1 and "Traceback" not in output
    assert f"-o {existing}: exists and is not a folder" in output
    assert existing.read_text() == "notes"
    from gan.fsio import remove_stale_temporaries
    assert remove_stale_temporaries(existing) == []  # nothing to clean in a file


def test_a_non_finite_output_is_an_error_naming_the_model_and_nothing_is_written(
        model, photos, tmp_path, monkeypatch):
    # Finite weights can still overflow (fp16, a wild input): a NaN would be written as black.
    import gan.deploy.inference
    monkeypatch.setattr(gan.deploy.inference, "enhance_array",
                        lambda generator, rgb, *args, **kwargs: np.full(rgb.shape, np.nan,
                                                                        np.float32))
    code, output = enhance(str(photos / "a.jpg"), "-o", str(tmp_path / "out"), "--model",
                           str(model))
    assert code == 1 and "Traceback" not in output
    assert f"{model}: the generator's output is not finite" in output
    assert not (tmp_path / "out" / "a.jpg").exists()


def test_threads_option_and_a_bad_ppe_threads(model, photos, tmp_path, monkeypatch):
    before = torch.get_num_threads()
    code, output = enhance(str(photos / "a.jpg"), "-o", str(tmp_path / "one"), "--model",
                           str(model), "--threads", "1")
    assert code == 0, output
    assert torch.get_num_threads() == 1
    torch.set_num_threads(before)  # (the test process's own setting, restored)
    monkeypatch.setenv("PPE_THREADS", "0")
    code, output = enhance(str(photos / "a.jpg"), "-o", str(tmp_path / "two"), "--model",
                           str(model))
    assert code == 1 and "PPE_THREADS='0': must be a whole number of threads >= 1" in output


def test_a_device_that_is_not_there_is_one_line(model, photos, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    code, output = enhance(str(photos / "a.jpg"), "-o", str(tmp_path), "--model", str(model),
                           "--device", "cuda:1")
    assert code == 1 and "device cuda:1: no CUDA GPU is visible" in output
    code, output = enhance(str(photos / "a.jpg"), "-o", str(tmp_path), "--model", str(model),
                           "--device", "tpu")
    assert code == 1 and "device must be auto, cpu, cuda, cuda:N or mps" in output


def test_precision_bf16_runs_and_fp16_on_the_cpu_is_refused(model, photos, tmp_path):
    code, output = enhance(str(photos / "a.jpg"), "-o", str(tmp_path / "bf16"), "--model",
                           str(model), "--precision", "bf16", "--device", "cpu")
    assert code == 0, output
    with Image.open(tmp_path / "bf16" / "a.jpg") as im:
        assert im.size == (160, 120)
    code, output = enhance(str(photos / "a.jpg"), "-o", str(tmp_path / "fp16"), "--model",
                           str(model), "--precision", "fp16", "--device", "cpu")
    assert code == 1 and "precision fp16 needs a CUDA GPU" in output
    assert not (tmp_path / "fp16").exists()


@pytest.mark.slow
def test_the_onnxruntime_engine_runs_an_exported_file_like_torch(model, photos, tmp_path):
    onnx_file = tmp_path / "g.onnx"
    result = CliRunner().invoke(app, ["export", "--model", str(model), "--format", "onnx",
                                      "--out", str(onnx_file), "--no-check"])
    assert result.exit_code == 0, result.output
    for name, chosen in (("torch", str(model)), ("ort", str(onnx_file))):
        code, output = enhance(str(photos / "c.png"), "-o", str(tmp_path / name), "--model",
                               chosen, "--precision", "fp32" if name == "torch" else "auto",
                               "--tile", "48", "--overlap", "16")
        assert code == 0, output
    with Image.open(tmp_path / "torch" / "c.png") as a, Image.open(tmp_path / "ort" / "c.png") as b:
        assert np.abs(np.asarray(a, int) - np.asarray(b, int)).max() <= 1
    code, output = enhance(str(photos / "c.png"), "-o", str(tmp_path / "x"), "--model",
                           str(onnx_file), "--device", "cuda")
    assert code == 1 and "runs on the CPU here" in output


def test_the_onnxruntime_engine_needs_an_exported_file(model, photos, tmp_path):
    code, output = enhance(str(photos / "a.jpg"), "-o", str(tmp_path), "--model", str(model),
                           "--engine", "onnxruntime")
    assert code == 1 and "ppe export --format onnx" in output
    code, output = enhance(str(photos / "a.jpg"), "-o", str(tmp_path), "--model", str(model),
                           "--engine", "tvm")
    assert code == 1 and "--engine must be auto, torch, onnxruntime" in output


def test_quality_sets_the_encoder_s_quality_and_is_checked(model, photos, tmp_path):
    sizes = {}
    for quality in ("20", "95"):
        code, out = enhance(str(photos / "a.jpg"), "-o", str(tmp_path / quality), "--model",
                            str(model), "--quality", quality)
        assert code == 0, out
        sizes[quality] = (tmp_path / quality / "a.jpg").stat().st_size
    assert sizes["20"] < sizes["95"] / 2
    code, out = enhance(str(photos / "a.jpg"), "-o", str(tmp_path / "0"), "--model", str(model),
                        "--quality", "0")
    assert code == 2 and "--quality" in out and not (tmp_path / "0").exists()
