"""bench/cross_validation.py: the folds of the 5-fold cross-validation and its summary."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import cross_validation as cv  # noqa: E402


def test_pair_ids_and_folds_are_blocks_of_pirm_indices():
    ids = cv.pair_ids(np.arange(160), np.arange(40))
    assert ids.tolist() == list(range(200))  # DPED test pair j is PIRM pair 160 + j
    fold = cv.fold_of(ids, 200)
    for k in range(5):
        assert np.flatnonzero(fold == k).tolist() == list(range(40 * k, 40 * k + 40))
    # dped-mini's 40 test pairs are exactly fold 4
    assert set(cv.fold_of(cv.pair_ids(np.arange(160), np.arange(40))[160:], 200)) == {4}


def test_saturated_pairs_are_the_pure_white_targets():
    dslr = np.full((3, 4, 4, 3), 255, np.uint8)
    dslr[1, 0, 0, 0] = 254
    assert cv.saturated(dslr).tolist() == [True, False, True]


def fake_pairs(n: int = 10, seed: int = 0):
    rng = np.random.default_rng(seed)
    dslr = rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8)
    dslr[3] = 255  # a saturated pair
    phone = np.clip(dslr.astype(int) + rng.integers(-40, 40, dslr.shape), 0, 255).astype(np.uint8)
    return phone, dslr, np.arange(n)


def test_summary_of_perfect_and_imperfect_predictions(tmp_path: Path):
    phone, dslr, ids = fake_pairs()
    exact = dslr.transpose(0, 3, 1, 2).astype(np.float32) / 255
    noisy = np.clip(exact + 0.05 * np.random.default_rng(1).standard_normal(exact.shape),
                    0, 1).astype(np.float32)
    reference = tmp_path / "dped.csv"
    # DPED's model: 30 dB on even pairs, 10 dB on odd ones; the saturated pair 60 dB
    rows = ["pirm_index,dped_psnr,dped_ms_ssim"] + [
        f"{i},{60.0 if i == 3 else (30.0 if i % 2 == 0 else 10.0)},0.9" for i in ids]
    reference.write_text("\n".join(rows) + "\n")

    summary = cv.summarise({0: noisy, 1: noisy}, phone, dslr, ids, folds=5, reference=reference)
    ours = summary["ours"]
    assert summary["saturated_pairs"] == [3]
    assert summary["seeds"] == [0, 1] and summary["pairs"] == 10
    assert ours["psnr_seed_spread"][0] == ours["psnr_seed_spread"][1]  # two identical seeds
    assert ours["psnr_fold_spread"][0] <= ours["psnr"] <= ours["psnr_fold_spread"][1]
    assert 20 < ours["psnr_without_saturated"] < 30  # noise of std 0.05: about 26 dB
    # per-pair wins against the reference, saturated pair 3 left out: 5 even pairs at 30 dB
    # (DPED wins), 4 odd pairs at 10 dB (ours wins)
    assert summary["wins"]["psnr"] == [4, 5]
    assert summary["dped"]["psnr_without_saturated"] == pytest.approx((5 * 30 + 4 * 10) / 9,
                                                                       abs=1e-3)
    assert summary["dped"]["psnr"] == pytest.approx((5 * 30 + 4 * 10 + 60) / 10, abs=1e-3)
    assert ours["black_diff"] == pytest.approx(0, abs=5)

    perfect = cv.summarise({0: exact}, phone, dslr, ids, folds=5, reference=reference)["ours"]
    assert perfect["ms_ssim"] == pytest.approx(1.0)
    assert perfect["detail_ratio"] == perfect["contrast_ratio"] == 1.0
    assert perfect["black_diff"] == 0.0 and perfect["saturation_ratio"] == 1.0
    text = cv.format_summary("t", summary)
    assert "DPED released" in text and "pairs won" in text


def test_summary_without_the_reference_file(tmp_path: Path):
    phone, dslr, ids = fake_pairs()
    exact = dslr.transpose(0, 3, 1, 2).astype(np.float32) / 255
    summary = cv.summarise({0: exact}, phone, dslr, ids, folds=5, reference=tmp_path / "none")
    assert "dped" not in summary and "wins" not in summary
    assert "DPED" not in cv.format_summary("t", summary)
