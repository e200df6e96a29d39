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
from gan.deploy.pretrained import (DATA_TERMS, DEFAULT_MODEL, PRETRAINED_DIR, model_card, publish,
                                   registry, resolve_model)
from gan.fsio import sha256_of
from gan.networks import build_generator
from stages.recipe import RecipeError, apply_recipe, load_recipe, set_params_args
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


def test_the_card_carries_the_full_size_photos_niqe_and_loe(trained, tmp_path):
    """The only figures on whole photos (no DSLR twin): eval.json's niqe and loe, per method;
    an undefined NIQE (null: a flat output) shows as n/a, and a run without them adds nothing."""
    scores = json.loads((trained.parent / "eval.json").read_text())
    scores.update(niqe={"input": 2.67, "ours": 3.34, "npea": None}, loe={"ours": 276.3})
    (trained.parent / "eval.json").write_text(json.dumps(scores))
    folder = tmp_path / "pretrained"
    result = CliRunner().invoke(app, [
        "publish", "--model", str(trained), "--name", "tiny",
        "--train-metrics", str(trained.parent / "train.json"),
        "--eval-metrics", str(trained.parent / "eval.json"), "--data", "d",
        "--directory", str(folder)])
    assert result.exit_code == 0, result.output
    card = (folder / "tiny.md").read_text()
    assert "## Full-size photos (no DSLR twin)" in card
    for row in ("| input | 2.67 | n/a |", "| ours | 3.34 | 276.30 |", "| npea | n/a | n/a |"):
        assert row in card
    assert "Full-size photos" not in model_card("tiny", read_generator(trained), {}, {}, "d", "c")


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
    with pytest.raises(RecipeError, match=re.escape(
            "bad.yaml: train.lr_gen is not a key of the train section; did you mean train.lr_g?")):
        load_recipe(bad, params)
    bad.write_text("optim:\n  lr: 0.1\n")
    with pytest.raises(RecipeError, match="optim is not a params.yaml section"):
        load_recipe(bad, params)
    bad.write_text("train:\n  ema: 1.5\n")  # a value params.yaml may not hold, as in params.yaml
    with pytest.raises(RecipeError, match=re.escape("train.ema must be a number in [0, 1)")):
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
    (tmp_path / "cv.json").write_text(json.dumps(CV))
    # As make pretrained runs it: on every pair, the card quoting a cross-validation.
    env = {**os.environ, "PYTHON": sys.executable, "RECIPE": str(recipe), "NAME": "tiny",
           "WORK": str(tmp_path / "work"), "PRETRAINED_DIR": str(folder), "ALL_PAIRS": "1",
           "CV_METRICS": str(tmp_path / "cv.json")}
    result = subprocess.run(["bash", str(ROOT / "tools" / "pretrained.sh"), str(dped_mini)],
                            env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    path = resolve_model("tiny", folder)
    assert read_generator(path)["provenance"]["steps"] == 3
    merged = json.loads((tmp_path / "work" / "patches" / "all_pairs.json").read_text())
    extracted = json.loads((tmp_path / "work" / "extract.json").read_text())["by_split"]
    assert merged["rows"] == extracted["train"]["kept"] + extracted["test"]["kept"]
    card = (folder / "tiny.md").read_text()
    assert "160 training pairs (its training_data/ folders) and 40 test pairs" in card
    assert "trained on all 200" in card and "## Quality: 5-fold" in card
    assert "## Scores on seen pairs (not a test)" in card
    scores = json.loads((tmp_path / "work" / "eval.json").read_text())["raw"]["ours"]
    assert f"| ours | {scores['psnr']:.2f} | {scores['ms_ssim']:.4f} |" in card
    assert "ALL_PAIRS=1 CV_METRICS=cv.json" in card
    assert registry(folder)["tiny"]["summary"].endswith("on all 200 pairs (160 training + 40 test)")


# -- training on every pair, and the card of such a model ----------------------------------------

@pytest.fixture
def extracted(tmp_path) -> Path:
    """The extract stage's arrays of a tiny simulated archive (12 training, 4 test pairs)."""
    from gan.data.dped import DpedSource, find_layout
    from gan.data.extract import extract
    from gan.data.sample import write_sample_zip
    from tests.conftest import extract_config

    archive = tmp_path / "dped.zip"
    write_sample_zip(archive, "iphone", train_pairs=12, test_pairs=4, seed=1)
    with DpedSource(archive) as source:
        layout = find_layout(source.names(), "iphone")
    extract(archive, layout, tmp_path / "patches", extract_config(min_ncc=-1.0), workers=1)
    return tmp_path / "patches"


def test_training_on_every_pair_appends_the_test_crops_once(extracted):
    from gan.data.all_pairs import RECORD, train_on_every_pair
    from gan.data.patches import PatchPairs, data_fingerprint

    before = {name: np.load(extracted / f"{name}.npy") for name in
              ("train_phone", "train_dslr", "test_phone", "test_dslr")}
    fingerprint = data_fingerprint(extracted)
    record = train_on_every_pair(extracted)
    n, m = len(before["train_phone"]), len(before["test_phone"])
    assert record["train_rows"] == n and record["test_rows"] == m and record["rows"] == n + m
    for side in ("phone", "dslr"):
        merged = np.load(extracted / f"train_{side}.npy")
        assert np.array_equal(merged, np.concatenate([before[f"train_{side}"],
                                                      before[f"test_{side}"]]))
        assert np.array_equal(np.load(extracted / f"test_{side}.npy"), before[f"test_{side}"])
    assert len(PatchPairs(extracted, "train")) == n + m
    # A held-out run's checkpoint is not resumed on these arrays: the fingerprint moved.
    assert data_fingerprint(extracted) != fingerprint
    assert json.loads((extracted / RECORD).read_text())["rows"] == n + m
    assert not temporaries(extracted)
    assert train_on_every_pair(extracted) == record  # a second call changes nothing
    assert len(np.load(extracted / "train_phone.npy", mmap_mode="r")) == n + m


def test_arrays_that_disagree_are_not_merged(extracted):
    from gan.data.all_pairs import train_on_every_pair
    from gan.fsio import write_npy

    phone = np.load(extracted / "train_phone.npy")
    write_npy(extracted / "train_phone.npy", phone[:-1])  # as a crash between renames leaves it
    with pytest.raises(ValueError, match="train_phone.npy has .* rows but train_dslr.npy"):
        train_on_every_pair(extracted)


PIRM_RECORD = {"source": "pirm", "origin": "/home/me/data/ai-challenge-master.zip",
               "phone": "iphone", "pairs": {"train": 160, "test": 240},
               "pirm_indices": {"train": "0-159", "test": "160-399"}}
DPED_RECORD = {"source": "dped", "origin": "/home/me/shared/dped-mini", "phone": "iphone",
               "pairs": {"train": 160, "test": 40}}


def test_the_data_text_states_the_split_its_counts_come_from():
    """make pretrained SOURCE=pirm said '240 test pairs' and 'testing on 160-199' at once."""
    from gan.deploy.pretrained import describe_data, pairs_phrase, trained_pairs

    text = describe_data(PIRM_RECORD)
    assert ("160 training pairs (PIRM indices 0-159) and 240 test pairs (PIRM indices 160-399)"
            in text)
    assert "160-199" not in text and "/home/me" not in text and "ai-challenge-master.zip" in text
    assert "held out" in text
    text = describe_data(DPED_RECORD)
    assert "160 training pairs (its training_data/ folders) and 40 test pairs" in text
    assert "dped-mini" in text and "PIRM indices" not in text
    sample = describe_data({"source": "sample", "origin": "photos through a simulated phone",
                            "phone": "iphone", "pairs": {"train": 2400, "test": 240}})
    assert sample.startswith("Simulated iPhone 3GS / DSLR pairs (sample source, photos through "
                             "a simulated phone): 2400 training pairs")
    every = describe_data(PIRM_RECORD, all_pairs=True)
    assert "trained on all 400" in every and "no pair here is held out" in every
    assert pairs_phrase(PIRM_RECORD) == "160 training and 240 test pairs"
    assert pairs_phrase(PIRM_RECORD, True) == "all 400 pairs (160 training + 240 test)"
    assert (trained_pairs(PIRM_RECORD), trained_pairs(PIRM_RECORD, True)) == (160, 400)


CV = {"folds": 5, "pairs": 200, "seeds": [0, 1, 2],
      "protocol": "5-fold cross-validation over dped-mini's 200 pairs, out-of-fold raw pairs",
      "ours": {"psnr": 22.214, "ms_ssim": 0.91502, "psnr_without_saturated": 21.93,
               "detail_ratio": 0.642, "contrast_ratio": 0.911, "black_diff": 7.96,
               "saturation_ratio": 0.978, "psnr_fold_spread": [21.61, 22.83],
               "ms_ssim_fold_spread": [0.9071, 0.9233], "psnr_seed_spread": [22.17, 22.25]},
      "dped": {"psnr": 21.66, "ms_ssim": 0.9158, "psnr_without_saturated": 21.40},
      "wins": {"psnr": [131, 67], "ms_ssim": [88, 110]},
      "input": {"psnr": 17.9, "ms_ssim": 0.861}}


def card_of(trained: Path, **options) -> str:
    eval_raw = json.loads((trained.parent / "eval.json").read_text())["raw"]
    return model_card("tiny", read_generator(trained), {"seconds": 120.0}, eval_raw,
                      "the data", "make pretrained DATA=x", **options)


def test_the_card_quotes_the_cross_validation_and_labels_seen_pairs(trained):
    card = card_of(trained, cv=CV, all_pairs=True, trained_pairs=200)
    quality = card.index("## Quality: 5-fold cross-validation over 200 pairs")
    assert quality < card.index("## Data") < card.index("## Scores on seen pairs (not a test)")
    assert "seeds 0, 1, 2" in card and "trained on all the pairs" in card
    assert "Protocol: 5-fold cross-validation over dped-mini's 200 pairs" in card
    assert "| ours (this recipe, out-of-fold) | 22.21 | 0.9150 | 21.93 |" in card
    assert "| DPED's released model | 21.66 | 0.9158 | 21.40 |" in card
    assert "| phone input | 17.90 | 0.8610 | n/a |" in card
    assert "PSNR 21.61-22.83 dB over folds, 22.17-22.25 dB over seeds" in card
    assert "MS-SSIM 0.9071-0.9233 over folds" in card
    assert "PSNR: ours 131, DPED's 67; MS-SSIM: ours 88, DPED's 110" in card
    assert ("detail ratio 0.642, contrast ratio 0.911, black-level difference +7.96, "
            "saturation ratio 0.978") in card
    # DPED's released model is still ahead on MS-SSIM, and wins more pairs on it; not on PSNR.
    ahead = next(line for line in card.splitlines() if "still ahead on" in line)
    assert "MS-SSIM (0.9158 against ours 0.9150)" in ahead
    assert "pairs won on MS-SSIM (110 against ours 88)" in ahead
    assert "PSNR (" not in ahead
    # The evaluate scores are there, labelled: seen pairs, never a test.
    assert "which this model was trained on" in card and "## Scores\n" not in card
    assert "| ours | 21.70 | 0.9200 |" in card  # the shipped model's own row, as before
    assert "test scores" not in card.lower()


def test_a_cv_summary_with_keys_missing_still_makes_a_card(trained):
    card = card_of(trained, cv={"ours": {"psnr": 22.0}}, all_pairs=True)
    assert "## Quality: k-fold cross-validation over all pairs" in card
    assert "| ours (this recipe, out-of-fold) | 22.00 |" in card
    assert "still ahead" not in card and "pairs won" not in card
    level = card_of(trained, cv={"ours": {"psnr": 22.0, "ms_ssim": 0.92},
                                 "dped": {"psnr": 21.0, "ms_ssim": 0.92}})
    assert "ahead on none of the figures both report (PSNR, MS-SSIM)" in level
    assert "## Scores\n" in level  # held out: the test-pair scores stay test scores
    other = card_of(trained, cv=CV, all_pairs=True, trained_pairs=400)
    assert "ran over 200 pairs and the shipped model trained on 400" in other


def test_without_cv_a_seen_pair_card_says_it_has_no_held_out_figure(trained):
    card = card_of(trained, all_pairs=True)
    assert "## Quality" not in card and "## Scores on seen pairs (not a test)" in card
    assert "No held-out figure was given" in card


def test_the_card_says_1_thread_and_the_sessions_of_a_resumed_run(trained):
    from gan.deploy.pretrained import model_card

    checkpoint = read_generator(trained)
    provenance = checkpoint["provenance"]
    provenance["hardware"] = "Test CPU, 1 threads, native bf16"  # as describe_cpu wrote it
    card = model_card("tiny", checkpoint, {"seconds": 180.0}, {}, "d", "c")
    assert "3.0 minutes on Test CPU, 1 thread, native bf16 (cpu, bf16)" in card
    provenance["sessions"] = [
        {"steps": [0, 4], "seconds": 120.0, "hardware": "Test CPU, 2 threads, native bf16"},
        {"steps": [4, 7], "seconds": 60.0, "hardware": "Test CPU, 1 threads, native bf16"}]
    card = model_card("tiny", checkpoint, {"seconds": 180.0}, {}, "d", "c")
    line = next(line for line in card.splitlines() if line.startswith("- steps: 7,"))
    assert "3.0 minutes of training over 2 sessions" in line
    assert "steps 0-4 in 2.0 minutes on Test CPU, 2 threads" in line
    assert "steps 4-7 in 1.0 minutes on Test CPU, 1 thread," in line
    assert "redone and are counted once" in line and "1 threads" not in card
    provenance["sessions"][0].update(seconds=None, hardware=None)  # an older checkpoint's
    card = model_card("tiny", checkpoint, {"seconds": 60.0}, {}, "d", "c")
    assert "at least 1.0 minutes" in card and "steps 0-4 in time not recorded" in card


def test_publish_with_source_all_pairs_cv_and_params(trained, tmp_path):
    folder = tmp_path / "pretrained"
    (tmp_path / "source.json").write_text(json.dumps(PIRM_RECORD))
    (tmp_path / "cv.json").write_text(json.dumps(CV))
    result = CliRunner().invoke(app, [
        "publish", "--model", str(trained), "--name", "tiny",
        "--train-metrics", str(trained.parent / "train.json"),
        "--eval-metrics", str(trained.parent / "eval.json"),
        "--source", str(tmp_path / "source.json"), "--all-pairs",
        "--cv-metrics", str(tmp_path / "cv.json"), "--params", str(ROOT / "params.yaml"),
        "--directory", str(folder)])
    assert result.exit_code == 0, result.output
    assert "21.70 dB / 0.9200 on 40 seen pairs, not a test" in result.output
    assert "cross-validated 22.21 dB / 0.9150 out-of-fold" in result.output
    card = (folder / "tiny.md").read_text()
    assert "240 test pairs (PIRM indices 160-399)" in card and "trained on all 400" in card
    assert "ran over 200 pairs and the shipped model trained on 400" in card
    extract = yaml.safe_load((ROOT / "params.yaml").read_text())["extract"]
    assert (f"extract:\n  patch: {extract['patch']}\n  crop: {extract['crop']}\n" in card
            and "workers" not in card)
    assert registry(folder)["tiny"]["summary"].startswith("The PIRM 2018 challenge's DPED")
    (tmp_path / "bad.json").write_text(json.dumps({"folds": 5}))
    bad = CliRunner().invoke(app, [
        "publish", "--model", str(trained), "--name", "tiny",
        "--train-metrics", str(trained.parent / "train.json"),
        "--eval-metrics", str(trained.parent / "eval.json"), "--data", "x",
        "--cv-metrics", str(tmp_path / "bad.json"), "--directory", str(folder)])
    assert bad.exit_code != 0 and "bad.json: no 'ours' figures" in bad.output
    nothing = CliRunner().invoke(app, [
        "publish", "--model", str(trained), "--name", "tiny",
        "--train-metrics", str(trained.parent / "train.json"),
        "--eval-metrics", str(trained.parent / "eval.json"), "--directory", str(folder)])
    assert nothing.exit_code != 0 and "--source (the run's source.json) or --data" in nothing.output


def test_the_card_reads_the_summary_the_cross_validation_writes(trained, tmp_path):
    """bench/cross_validation.py's own summary (NaN where a figure is undefined) through JSON."""
    import sys

    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import cross_validation as cv
    finally:
        sys.path.remove(str(ROOT / "bench"))
    from tests.test_cross_validation import fake_pairs

    phone, dslr, ids = fake_pairs()
    exact = dslr.transpose(0, 3, 1, 2).astype(np.float32) / 255
    noisy = np.clip(exact + 0.05 * np.random.default_rng(1).standard_normal(exact.shape),
                    0, 1).astype(np.float32)
    reference = tmp_path / "dped.csv"
    reference.write_text("pirm_index,dped_psnr,dped_ms_ssim\n" + "".join(
        f"{i},{30.0 if i % 2 == 0 else 10.0},0.999\n" for i in ids))
    summary = cv.summarise({0: noisy, 1: noisy}, phone, dslr, ids, folds=5, reference=reference)
    cv.save_summary(tmp_path / "cv.json", summary)
    card = card_of(trained, cv=json.loads((tmp_path / "cv.json").read_text()), all_pairs=True,
                   trained_pairs=10)
    ours = summary["ours"]
    assert "## Quality: 5-fold cross-validation over 10 pairs" in card
    assert f"| ours (this recipe, out-of-fold) | {ours['psnr']:.2f} | {ours['ms_ssim']:.4f} |" in card
    assert "| phone input | n/a | n/a |" in card  # the input's means are without saturated only
    assert "PSNR: ours 4, DPED's 5" in card and "saturated pairs left out" in card
    assert "MS-SSIM (0.9990 against ours" in card  # DPED's (made-up) MS-SSIM is ahead
    assert "look of ours against the DSLR target" in card and "nan" not in card.lower()
