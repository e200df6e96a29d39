"""The shipped model: names resolved with a sha256 check, publish, recipes, enhance's default."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from skimage import data
from typer.testing import CliRunner

from gan.checkpoint import CheckpointError, load_generator, read_generator, save_generator
from gan.deploy.pretrained import (DATA_TERMS, DEFAULT_MODEL, PRETRAINED_DIR, publish, registry,
                                   resolve_model)
from gan.fsio import sha256_of
from gan.networks import build_generator
from gan.recipe import RecipeError, apply_recipe, load_recipe, set_params_args
from stages.app import app
from tests.conftest import temporaries

ROOT = Path(__file__).resolve().parents[1]
TINY = {"depth": 2, "base_width": 8, "growth_rate": 4, "layers_per_block": 2}


@pytest.fixture
def trained(tmp_path) -> Path:
    torch.manual_seed(0)
    path = tmp_path / "run" / "generator.pt"
    save_generator(path, build_generator("dense_unet", TINY), {
        "params": {"model": {"depth": 2}, "train": {"steps": 7}}, "steps": 7,
        "device": "cpu", "hardware": "Test CPU, 2 threads, native bf16", "precision": "bf16",
        "git_revision": "abc", "torch": "2", "created": "x"})
    (path.parent / "train.json").write_text(json.dumps({"seconds": 120.0, "device": "cpu"}))
    (path.parent / "eval.json").write_text(json.dumps({"raw": {
        "input": {"psnr": 18.5, "ms_ssim": 0.85, "patches": 40},
        "ours": {"psnr": 21.7, "ms_ssim": 0.92, "patches": 40}}}))
    return path


def test_publish_registers_a_checked_copy_with_its_card(trained, tmp_path):
    folder = tmp_path / "pretrained"
    target = publish(trained, "tiny", "# card\n", "a tiny one", folder)
    entry = registry(folder)["tiny"]
    assert entry == {"file": "tiny.pt", "sha256": sha256_of(target), "card": "tiny.md",
                     "summary": "a tiny one"}
    assert resolve_model("tiny", folder) == target
    assert load_generator(resolve_model("tiny", folder)).kind == "dense_unet"
    assert not temporaries(folder)


def test_a_changed_or_missing_registered_file_is_refused_by_name(trained, tmp_path):
    folder = tmp_path / "pretrained"
    target = publish(trained, "tiny", "# card\n", "", folder)
    target.write_bytes(target.read_bytes()[:-10])  # truncated
    with pytest.raises(CheckpointError, match=r"tiny\.pt: sha256 .* registered model 'tiny'"):
        resolve_model("tiny", folder)
    target.unlink()
    with pytest.raises(CheckpointError, match="file of registered model 'tiny' is missing"):
        resolve_model("tiny", folder)


def test_names_and_paths(trained, tmp_path):
    folder = tmp_path / "pretrained"
    publish(trained, "tiny", "# card\n", "", folder)
    assert resolve_model(str(trained), folder) == trained  # a path stays a path
    assert resolve_model("absent.pt", folder) == Path("absent.pt")  # loading names the problem
    with pytest.raises(CheckpointError, match=r"tinny: neither a model file nor a registered "
                                              r"model name \(registered: tiny\)"):
        resolve_model("tinny", folder)


def test_publish_refuses_what_is_not_a_generator_and_writes_nothing(tmp_path):
    bogus = tmp_path / "bogus.pt"
    torch.save({"weights": torch.zeros(2)}, bogus)
    folder = tmp_path / "pretrained"
    with pytest.raises(CheckpointError, match="not a ppe-gan generator"):
        publish(bogus, "bogus", "# card\n", "", folder)
    assert not folder.exists()
    with pytest.raises(ValueError, match="one word"):
        publish(bogus, "../escape", "# card\n", "", folder)


def test_the_publish_command_writes_a_card_from_the_runs_own_files(trained, tmp_path):
    folder = tmp_path / "pretrained"
    result = CliRunner().invoke(app, [
        "publish", "--model", str(trained), "--name", "tiny",
        "--train-metrics", str(trained.parent / "train.json"),
        "--eval-metrics", str(trained.parent / "eval.json"),
        "--data", "DPED iPhone pairs 0-159", "--command", "make pretrained DATA=x",
        "--directory", str(folder)])
    assert result.exit_code == 0, result.output
    assert "21.70 dB / 0.9200 on 40 raw test pairs" in result.output
    card = (folder / "tiny.md").read_text()
    for expected in ("DPED iPhone pairs 0-159", "steps: 7, 2.0 minutes on Test CPU, 2 threads, native bf16 (cpu, bf16)", "| ours | 21.70 | 0.9200 |",
                     "| input | 18.50 | 0.8500 |", "make pretrained DATA=x", DATA_TERMS):
        assert expected in card
    missing = CliRunner().invoke(app, [
        "publish", "--model", str(trained), "--name", "tiny", "--train-metrics",
        str(tmp_path / "none.json"), "--eval-metrics", str(trained.parent / "eval.json"),
        "--data", "x", "--directory", str(folder)])
    assert missing.exit_code != 0 and "none.json: no such file" in missing.output


# The committed model: these fail when the shipped file or its registry entry is broken.
def test_the_shipped_model_matches_its_registry_and_card():
    path = resolve_model(DEFAULT_MODEL)
    assert path.parent == PRETRAINED_DIR
    payload = read_generator(path)
    card = (PRETRAINED_DIR / registry()[DEFAULT_MODEL]["card"]).read_text()
    assert DATA_TERMS in card
    assert f"steps: {payload['provenance']['steps']}," in card


def test_enhance_without_a_model_uses_the_shipped_one(tmp_path):
    photo = tmp_path / "photo.jpg"
    Image.fromarray(data.astronaut()[:96, :128]).save(photo, quality=95)
    result = CliRunner().invoke(app, ["enhance", str(photo), "-o", str(tmp_path / "out"),
                                      "--no-progress"])
    assert result.exit_code == 0, result.output
    enhanced = np.asarray(Image.open(tmp_path / "out" / "photo.jpg"))
    assert enhanced.shape == (96, 128, 3)
    assert np.abs(enhanced.astype(int) - np.asarray(Image.open(photo)).astype(int)).mean() > 1


def test_the_shipped_models_card_states_its_real_scores(dped_mini):
    """The card's score on dped-mini's 40 raw test pairs is what the committed file gives."""
    from gan.data.dped import DpedSource, decode_patch, find_layout
    from gan.data.patches import to_tensor
    from gan.metrics import mean_finite, ms_ssim, psnr

    with DpedSource(dped_mini / "iphone") as source:
        pairs = find_layout(source.names(), "iphone").pairs["test"]
        phone, dslr = (to_tensor(np.stack([decode_patch(source.read(getattr(p, side)))
                                           for p in pairs])) for side in ("phone", "dslr"))
    generator = load_generator(resolve_model(DEFAULT_MODEL))
    with torch.no_grad():
        enhanced = generator(phone)
    card = (PRETRAINED_DIR / registry()[DEFAULT_MODEL]["card"]).read_text()
    stated = re.search(r"\| ours \| ([0-9.]+) \| ([0-9.]+) \|", card)
    assert stated, "the card has no score row for the model"
    assert len(pairs) == 40
    assert mean_finite(psnr(enhanced, dslr))[0] == pytest.approx(float(stated[1]), abs=0.01)
    assert ms_ssim(enhanced, dslr).mean().item() == pytest.approx(float(stated[2]), abs=1e-4)


def test_recipes_are_checked_against_params(tmp_path):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for path in sorted((ROOT / "recipes").glob("*.yaml")):
        recipe = load_recipe(path, params)
        merged = apply_recipe(params, recipe)
        for section, values in recipe.items():
            assert {k: merged[section][k] for k in values} == values
    recipe = {"train": {"lr_g": 0.0005, "precision": "bf16"}}
    assert set_params_args(recipe) == ["-S", "train.lr_g=0.0005", "-S", 'train.precision="bf16"']
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  lr_gen: 0.1\n")
    with pytest.raises(RecipeError, match=re.escape("train.lr_gen is not a params.yaml key")):
        load_recipe(bad, params)
    bad.write_text("optim:\n  lr: 0.1\n")
    with pytest.raises(RecipeError, match="'optim' is not a params.yaml section"):
        load_recipe(bad, params)


@pytest.mark.slow
def test_the_regeneration_script_runs_the_pipeline_and_publishes(dped_mini, tmp_path):
    """tools/pretrained.sh end to end on the real pairs, with a tiny recipe (3 steps)."""
    import os
    import subprocess
    import sys

    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump({
        "model": {"depth": 2, "base_width": 8, "growth_rate": 4, "layers_per_block": 2,
                  "d_width": 8, "d_layers": 2},
        "train": {"steps": 3, "batch_size": 2, "val_every": 3, "val_patches": 4,
                  "checkpoint_every": 3, "device": "cpu"},
        "evaluate": {"device": "cpu", "saved_photos": 1}}))
    folder = tmp_path / "pretrained"
    env = {**os.environ, "PYTHON": sys.executable, "RECIPE": str(recipe), "NAME": "tiny",
           "WORK": str(tmp_path / "work"), "PRETRAINED_DIR": str(folder)}
    result = subprocess.run(["bash", str(ROOT / "tools" / "pretrained.sh"), str(dped_mini)],
                            env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    path = resolve_model("tiny", folder)
    assert read_generator(path)["provenance"]["steps"] == 3
    card = (folder / "tiny.md").read_text()
    assert "160 training and 40 test pairs" in card
    scores = json.loads((tmp_path / "work" / "eval.json").read_text())["raw"]["ours"]
    assert f"| ours | {scores['psnr']:.2f} | {scores['ms_ssim']:.4f} |" in card
