"""evaluate and report on fixture data, in-process (the whole DAG under the real dvc CLI is
tested in test_dvc_workflow.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image
from typer.testing import CliRunner

from gan.checkpoint import save_generator
from gan.data.dped import DpedSource, find_layout
from gan.data.extract import extract
from gan.data.sample import write_sample_zip
from gan.evaluation.report import metrics_table
from gan.networks import build_generator
from stages.app import app
from tests.browser import CHROMIUM, dump_dom
from tests.conftest import ROOT, extract_config

TINY = {"depth": 1, "base_width": 8, "growth_rate": 4, "layers_per_block": 2}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """data/raw, data/patches, two generator checkpoints and training curves, all tiny."""
    root = tmp_path_factory.mktemp("ws")
    raw = root / "data" / "raw" / "dped.zip"
    write_sample_zip(raw, "iphone", train_pairs=10, test_pairs=12, seed=2)
    with DpedSource(raw) as source:
        layout = find_layout(source.names(), "iphone")
    extract(raw, layout, root / "data" / "patches", extract_config(min_ncc=0.0), workers=1)
    for name in ("generator", "other"):
        save_generator(root / "models" / f"{name}.pt", build_generator("dense_unet", TINY),
                       {"note": "untrained: the identity"})
    curves = root / "metrics" / "train"
    curves.mkdir(parents=True)
    pd.DataFrame({"step": [1, 2], "total": [0.5, 0.4], "perceptual": [0.3, 0.2],
                  "d_real": [0.5, 0.6], "d_fake": [0.5, 0.4]}).to_csv(curves / "losses.csv",
                                                                       index=False)
    pd.DataFrame({"step": [2], "psnr": [18.0], "ms_ssim": [0.9]}).to_csv(
        curves / "validation.csv", index=False)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["evaluate"].update(extra_models=[str(root / "models" / "other.pt")], saved_patches=4,
                              saved_photos=1, device="cpu")
    params["report"].update(patches=3, crop=64)
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    return root


def evaluate_args(root: Path) -> list[str]:
    return ["evaluate", "--params", str(root / "params.yaml"), "--patches",
            str(root / "data" / "patches"), "--raw", str(root / "data" / "raw" / "dped.zip"),
            "--model", str(root / "models" / "generator.pt"), "--metrics",
            str(root / "metrics" / "eval.json"), "--per-patch",
            str(root / "metrics" / "eval_per_patch.csv"), "--out", str(root / "data" / "eval"),
            "--no-progress"]


def report_args(root: Path) -> list[str]:
    return ["report", "--params", str(root / "params.yaml"), "--eval-dir",
            str(root / "data" / "eval"), "--metrics", str(root / "metrics" / "eval.json"),
            "--per-patch", str(root / "metrics" / "eval_per_patch.csv"), "--curves",
            str(root / "metrics" / "train"), "--figures", str(root / "reports" / "figures"),
            "--html-out", str(root / "reports" / "report.html")]


def test_evaluate_scores_every_method_on_both_geometries(workspace):
    result = CliRunner().invoke(app, evaluate_args(workspace))
    assert result.exit_code == 0, result.output
    assert torch.is_grad_enabled()  # the stage runs in-process here: no global state may leak
    table = pd.read_csv(workspace / "metrics" / "eval_per_patch.csv")
    look = ["detail", "contrast", "black", "saturation"]
    assert list(table.columns) == ["method", "geometry", "index", "psnr", "ssim", "ms_ssim",
                                   *look, *(f"target_{k}" for k in look)]
    # The DSLR target's look is the same in every method's row of a patch.
    assert (table.groupby(["geometry", "index"])["target_detail"].nunique() == 1).all()
    methods = ["input", "clhe", "npea", "ours", "other"]
    assert sorted(table["method"].unique()) == sorted(methods)
    assert set(table["geometry"]) == {"aligned", "raw"}
    assert (table.groupby(["method", "geometry"]).size() == 12).all()
    report = json.loads((workspace / "metrics" / "eval.json").read_text())
    for geometry in ("aligned", "raw"):
        assert set(report[geometry]) == set(methods)
        for scores in report[geometry].values():
            assert {"psnr", "psnr_infinite", "ssim", "ms_ssim", "detail_ratio", "contrast_ratio",
                    "black_diff", "saturation_ratio"} <= set(scores)
        # an untrained generator is the identity: it scores what the input scores
        ours, phone = report[geometry]["ours"], report[geometry]["input"]
        assert ours["psnr"] == pytest.approx(phone["psnr"], abs=0.05)
        for key in ("detail_ratio", "contrast_ratio", "saturation_ratio"):
            assert ours[key] == pytest.approx(phone[key], abs=0.01)
        assert ours["black_diff"] == pytest.approx(phone["black_diff"], abs=0.5)
        # the summary is the per-patch table's ratio of means
        rows = table[(table["geometry"] == geometry) & (table["method"] == "clhe")]
        assert report[geometry]["clhe"]["detail_ratio"] == pytest.approx(
            rows["detail"].mean() / rows["target_detail"].mean(), abs=1e-3)
    assert set(report["loe"]) == set(report["seconds_per_mp"]) == set(methods[1:])
    # NIQE: the input's beside each method's (an untrained generator is the identity)
    assert set(report["niqe"]) == set(methods)
    assert all(isinstance(v, float) and v > 0 for v in report["niqe"].values())
    assert report["niqe"]["ours"] == pytest.approx(report["niqe"]["input"], abs=0.05)
    assert all(v > 0 for v in report["seconds_per_mp"].values())
    saved = workspace / "data" / "eval"
    assert np.load(saved / "patches" / "clhe.npy").shape == (4, 100, 100, 3)
    assert sorted(p.name for p in (saved / "full_size").iterdir()) == sorted(methods)


def test_report_writes_every_figure_and_a_page_that_embeds_them(workspace):
    if not (workspace / "metrics" / "eval.json").exists():
        CliRunner().invoke(app, evaluate_args(workspace))
    result = CliRunner().invoke(app, report_args(workspace))
    assert result.exit_code == 0, result.output
    figures = workspace / "reports" / "figures"
    for name in ("patches.png", "full_size.png", "scores.png", "training.png"):
        with Image.open(figures / name) as im:
            assert im.width > 300 and im.height > 200
    page = (workspace / "reports" / "report.html").read_text()
    photos = len(list((workspace / "data" / "eval" / "full_size" / "input").glob("*.png")))
    # The four figures, then per full-size photo a slider: the input and the four methods.
    assert photos >= 1 and page.count("<figure class=compare") == photos
    assert page.count("data:image/png;base64,") == 4 + photos * 5
    for text in ("ours (GAN)", "NPEA", "CLHE", "LOE", "MS-SSIM", "raw 100x100",
                 "Full-size test photos: before / after", "Look against the DSLR target"):
        assert text in page
    if CHROMIUM:  # the page in a real browser: every image decodes
        assert f'data-images="loaded {photos * 5} of {photos * 5}"' in dump_dom(
            workspace / "reports" / "report.html")


def test_report_names_a_missing_input(workspace, tmp_path):
    args = report_args(workspace)
    args[args.index("--metrics") + 1] = str(tmp_path / "absent.json")
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    assert "absent.json" in result.output


def test_metrics_table_shows_the_look_and_tolerates_an_eval_json_without_it():
    scores = {"psnr": 20.0, "psnr_infinite": 0, "ssim": 0.7, "ms_ssim": 0.9, "patches": 3}
    look = {"detail_ratio": 0.812, "contrast_ratio": 1.05, "black_diff": 4.5,
            "saturation_ratio": None}  # null: NaN in eval.json (a flat target)
    old = {g: {"input": scores, "ours": scores} for g in ("aligned", "raw")}
    assert "Look against" not in metrics_table(old) and "20.00" in metrics_table(old)
    new = {"aligned": {"input": scores | look, "ours": scores | look},
           "raw": {"input": scores | look, "ours": scores}}  # ours on raw: no look (any reason)
    page = metrics_table(new)
    assert "Look against the DSLR target" in page
    assert page.count("<td>0.812</td>") == 3 and page.count("<td>+4.50</td>") == 3
    assert page.count("<td>1.050</td>") == 3 and "None" not in page
    # NIQE: a column only when eval.json has it; null (undefined) is an empty cell
    assert "NIQE" not in metrics_table(old)
    page = metrics_table(old | {"loe": {"ours": 12.5}, "niqe": {"input": 4.321, "ours": None}})
    assert "NIQE" in page and "None" not in page
    # LOE, then NIQE: the input has no LOE, ours no NIQE
    assert "<td></td><td>4.32</td>" in page and "<td>12.5</td><td></td>" in page


def test_full_size_photos_turn_to_jpeg_when_lossless_would_make_the_page_too_big():
    from gan.evaluation.report import full_size_comparisons

    rng = np.random.default_rng(0)
    noisy = rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)  # noise: PNG cannot shrink it
    photos = {"a": {"input": noisy, "ours": noisy[::-1].copy(), "clhe": noisy // 2}}
    lossless = full_size_comparisons(photos)
    assert lossless[0].before.startswith("data:image/png") and lossless[0].note == ""
    assert len(lossless[0].afters) == 2  # each method against the input
    small = full_size_comparisons(photos, budget=10_000)
    assert all(uri.startswith("data:image/jpeg") for uri in (small[0].before,
                                                               *small[0].afters.values()))
    assert "lossless PNG would have made the page" in small[0].note
    page = sum(len(u) for u in (small[0].before, *small[0].afters.values()))
    assert page < sum(len(u) for u in (lossless[0].before, *lossless[0].afters.values()))


# The hostile probe's inputs whose errors named no file: each is one line naming the path now.
@pytest.mark.parametrize("stage, file, content", [
    ("report", ("metrics", "eval.json"), b'{"aligned": [1, 2'),
    ("report", ("metrics", "eval_per_patch.csv"), b'"unclosed\n1,2\n'),
    ("report", ("data", "eval", "patches", "dslr.npy"), b"\x93NUMPY\x09\x00garbage"),
    ("evaluate", ("data", "patches", "test_phone.npy"), b"\x93NUMPY\x09\x00garbage"),
    ("evaluate", ("data", "patches", "test_dslr.npy"), b""),
])
def test_a_garbage_input_file_is_one_line_naming_it(workspace, tmp_path, stage, file, content):
    root = tmp_path / "copy"
    shutil.copytree(workspace, root, symlinks=True)
    if stage == "report":  # report reads what evaluate wrote
        assert CliRunner().invoke(app, evaluate_args(root)).exit_code == 0
    broken = root.joinpath(*file)
    broken.unlink()  # (a hard link into the module's workspace otherwise)
    broken.write_bytes(content)
    args = evaluate_args(root) if stage == "evaluate" else report_args(root)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1 and "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(broken) in errors[0], result.output
