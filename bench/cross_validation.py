"""5-fold cross-validation over dped-mini's 200 pairs: folds, out-of-fold scores, the summary.

bench/small_data.py ``--cv`` trains one generator per fold and seed and saves its out-of-fold
predictions; this module builds the folds' training data and turns the saved predictions into
the figures every recipe choice is made on.

Pairs are numbered as the PIRM 2018 challenge numbers them (dped-mini is PIRM's pairs 0-199):
DPED's training pairs 0-159 keep their index, its test pair j is 160 + j. The folds are fixed
blocks of consecutive pairs, fold k = pairs 40k .. 40k + 39 (fold 4 is dped-mini's test split).
Blocks rather than every fifth pair: consecutive DPED patches often come from one photo, and a
fold must not be scored on a scene whose neighbouring patches it trained on.

Scores follow the official protocol (../shared/reference/DPED.md): float outputs clipped to
[0, 1], PSNR and MS-SSIM per raw 100x100 pair, averaged over pairs. A pair whose DSLR side is
pure white (dped-mini has 2) scores ~60 dB for a float output and +inf for an exact one, and
moves a 40-pair mean by 1 dB: every mean is given with and without those pairs, for every
method alike.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import torch

from gan.data.patches import to_tensor
from gan.look import look_stats, look_summary
from gan.metrics import ms_ssim, psnr

FOLDS = 5
DPED_RELEASED = Path(__file__).resolve().parents[2] / "shared" / "reference" / \
    "dped-released-on-dped-mini.csv"


def pair_ids(train_index: np.ndarray, test_index: np.ndarray) -> np.ndarray:
    """PIRM numbers of the training pairs then the test pairs (test pair j is n_train + j)."""
    return np.concatenate([train_index, len(train_index) + test_index]).astype(int)


def fold_of(ids: np.ndarray, pairs: int, folds: int = FOLDS) -> np.ndarray:
    """Fold of each pair: consecutive blocks of pairs / folds (40 for 200 pairs)."""
    return (ids * folds) // pairs


def build_fold(work: Path, fold: int, folds: int = FOLDS) -> Path:
    """work/cv/fold<k>/: the aligned training crops of every pair outside the fold (train and
    test splits of work/full, kept pairs only) as the training set, and the fold's own aligned
    crops as the "test" arrays the Trainer wants for validation (never used to choose)."""
    out = work / "cv" / f"fold{fold}"
    done = out / "done"
    key = (work / "done").read_text()
    if done.exists() and done.read_text() == key:
        return out
    out.mkdir(parents=True, exist_ok=True)
    rows = _kept_rows(work)
    n = len(np.load(work / "raw_train_index.npy")) + len(np.load(work / "raw_test_index.npy"))
    held = fold_of(rows["id"], n, folds) == fold
    for side in ("phone", "dslr"):
        arrays = {split: np.load(work / "full" / f"{split}_{side}.npy", mmap_mode="r")
                  for split in ("train", "test")}
        crops = np.stack([arrays[s][r] for s, r in zip(rows["split"], rows["row"])])
        np.save(out / f"train_{side}.npy", crops[~held])
        np.save(out / f"test_{side}.npy", crops[held])
    (out / "pairs.csv").write_text(
        "id,held_out\n" + "".join(f"{i},{int(h)}\n" for i, h in zip(rows["id"], held)))
    done.write_text(key)
    return out


def _kept_rows(work: Path) -> dict[str, np.ndarray]:
    """Per kept pair of work/full/pairs.csv: its split, its row in that split's arrays, its id."""
    with (work / "full" / "pairs.csv").open() as handle:
        table = [r for r in csv.DictReader(handle) if r["kept"] == "True"]
    n_train = len(np.load(work / "raw_train_index.npy"))
    split = np.array([r["split"] for r in table])
    index = np.array([int(r["index"]) for r in table])
    return {"split": split, "row": np.array([int(r["row"]) for r in table]),
            "id": np.where(split == "train", index, n_train + index)}


def raw_pairs(work: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every raw 100x100 pair, phone and DSLR (N, H, W, 3) uint8, and their ids, by id."""
    ids = pair_ids(np.load(work / "raw_train_index.npy"), np.load(work / "raw_test_index.npy"))
    phone = np.concatenate([np.load(work / f"raw_{s}_phone.npy") for s in ("train", "test")])
    dslr = np.concatenate([np.load(work / f"raw_{s}_dslr.npy") for s in ("train", "test")])
    order = np.argsort(ids)
    return phone[order], dslr[order], ids[order]


def load_predictions(results: Path, seed: int, ids: np.ndarray, shape: tuple[int, ...]
                     ) -> tuple[np.ndarray, list[float]]:
    """Seed ``seed``'s out-of-fold predictions of every pair, (N, 3, H, W) float ordered like
    ``ids``, from results/seed<s>_fold<k>.npz (bench/small_data.py --cv), and each fold's
    seconds of training."""
    output = np.zeros((len(ids), 3, *shape), np.float32)
    seconds = []
    for k in range(FOLDS):
        saved = np.load(results / f"seed{seed}_fold{k}.npz")
        output[np.searchsorted(ids, saved["ids"])] = saved["output"]
        seconds.append(float(saved["seconds"]))
    return output, seconds


def score_pairs(output: torch.Tensor, dslr: np.ndarray) -> dict[str, np.ndarray]:
    """Per pair: PSNR and MS-SSIM (protocol), and the look statistics of the output."""
    target = to_tensor(dslr)
    return {"psnr": psnr(output, target).numpy(), "ms_ssim": ms_ssim(output, target).numpy(),
            **look_stats(output)}


def saturated(dslr: np.ndarray) -> np.ndarray:
    """Pairs whose DSLR side is pure white."""
    return (dslr.reshape(len(dslr), -1) == 255).all(axis=1)


def dped_released(ids: np.ndarray, path: Path = DPED_RELEASED) -> dict[str, np.ndarray] | None:
    """DPED's released model's per-pair PSNR / MS-SSIM on dped-mini, aligned to ``ids``
    (None where the reference file is not there)."""
    if not path.exists():
        return None
    with path.open() as handle:
        rows = {int(r["pirm_index"]): r for r in csv.DictReader(handle)}
    return {"psnr": np.array([float(rows[i]["dped_psnr"]) for i in ids]),
            "ms_ssim": np.array([float(rows[i]["dped_ms_ssim"]) for i in ids])}


def _means(values: dict[str, np.ndarray], keep: np.ndarray) -> dict[str, float]:
    return {"psnr": round(float(values["psnr"][keep].mean()), 3),
            "ms_ssim": round(float(values["ms_ssim"][keep].mean()), 4)}


def summarise(predictions: dict[int, np.ndarray], phone: np.ndarray, dslr: np.ndarray,
              ids: np.ndarray, folds: int = FOLDS, reference: Path = DPED_RELEASED) -> dict:
    """The cross-validated figures from seed -> out-of-fold predictions (N, 3, H, W) float,
    ordered like ``ids``: per seed and over seeds (per-pair means over the seeds), per-fold
    spread, the look figures, DPED's released model and the input on the same pairs, and how
    many pairs each of ours and DPED's wins."""
    white = saturated(dslr)
    everything, unsaturated = np.ones(len(ids), bool), ~white
    fold = fold_of(ids, len(ids), folds)
    target_look = look_stats(to_tensor(dslr))
    per_seed = {seed: score_pairs(torch.from_numpy(p).float(), dslr)
                for seed, p in sorted(predictions.items())}
    # Per pair, the mean over seeds: what "the recipe" scores on that pair.
    ours = {k: np.mean([s[k] for s in per_seed.values()], axis=0)
            for k in next(iter(per_seed.values()))}
    seed_means = {seed: _means(s, everything) for seed, s in per_seed.items()}
    fold_means = [_means(ours, fold == k) for k in range(folds)]
    summary = {
        "folds": folds, "pairs": len(ids), "saturated_pairs": ids[white].tolist(),
        "seeds": sorted(predictions),
        "protocol": "5-fold cross-validation over dped-mini's 200 pairs (fold k = PIRM pairs "
                    f"{len(ids) // folds}k..{len(ids) // folds}k+{len(ids) // folds - 1}), "
                    "out-of-fold raw 100x100 pairs, float outputs clipped, PSNR and MS-SSIM per "
                    "pair averaged; per pair the mean over the seeds",
        "ours": {
            **_means(ours, everything),
            **{f"{k}_without_saturated": v for k, v in _means(ours, unsaturated).items()},
            **look_summary(ours, target_look),  # per pair the seeds' mean, as the scores
            "psnr_fold_spread": [min(f["psnr"] for f in fold_means),
                                 max(f["psnr"] for f in fold_means)],
            "ms_ssim_fold_spread": [min(f["ms_ssim"] for f in fold_means),
                                    max(f["ms_ssim"] for f in fold_means)],
            "psnr_seed_spread": [min(m["psnr"] for m in seed_means.values()),
                                 max(m["psnr"] for m in seed_means.values())],
            "ms_ssim_seed_spread": [min(m["ms_ssim"] for m in seed_means.values()),
                                    max(m["ms_ssim"] for m in seed_means.values())],
            "per_seed": {str(k): v for k, v in seed_means.items()},
            "per_fold": fold_means,
        },
    }
    phone_scores = score_pairs(to_tensor(phone), dslr)
    summary["input"] = {**{f"{k}_without_saturated": v
                           for k, v in _means(phone_scores, unsaturated).items()},
                        **look_summary(phone_scores, target_look)}
    dped = dped_released(ids, reference)
    if dped is not None:
        summary["dped"] = {**_means(dped, everything),
                           **{f"{k}_without_saturated": v
                              for k, v in _means(dped, unsaturated).items()}}
        summary["wins"] = {k: [int((ours[k] > dped[k])[unsaturated].sum()),
                               int((ours[k] < dped[k])[unsaturated].sum())]
                           for k in ("psnr", "ms_ssim")}
        summary["wins_note"] = "[ours, DPED's] pairs won, saturated pairs left out"
    return summary


def write_per_pair(path: Path, ids: np.ndarray, predictions: dict[int, np.ndarray],
                   dslr: np.ndarray) -> None:
    """One row per pair and seed: id, fold, seed, PSNR, MS-SSIM and the look statistics."""
    fold = fold_of(ids, len(ids))
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        header = ["id", "fold", "seed", "psnr", "ms_ssim", "detail", "contrast", "black",
                  "saturation"]
        writer.writerow(header)
        for seed, p in sorted(predictions.items()):
            s = score_pairs(torch.from_numpy(p).float(), dslr)
            for i in range(len(ids)):
                writer.writerow([ids[i], fold[i], seed,
                                 *(f"{s[k][i]:.6g}" for k in header[3:])])


def format_summary(tag: str, summary: dict) -> str:
    """A few lines for the terminal and bench/README.md."""
    o, lines = summary["ours"], []
    lines.append(f"{tag}: {summary['pairs']} out-of-fold pairs, seeds {summary['seeds']}: "
                 f"{o['psnr']:.2f} dB / {o['ms_ssim']:.4f} (without the saturated pairs "
                 f"{o['psnr_without_saturated']:.2f} / {o['ms_ssim_without_saturated']:.4f}); "
                 f"folds {o['psnr_fold_spread'][0]:.2f}-{o['psnr_fold_spread'][1]:.2f} dB, "
                 f"seeds {o['psnr_seed_spread'][0]:.2f}-{o['psnr_seed_spread'][1]:.2f} dB / "
                 f"{o['ms_ssim_seed_spread'][0]:.4f}-{o['ms_ssim_seed_spread'][1]:.4f}")
    lines.append(f"  look: detail {o['detail_ratio']:.3f}, contrast {o['contrast_ratio']:.3f}, "
                 f"black {o['black_diff']:+.2f}, saturation {o['saturation_ratio']:.3f}")
    if "dped" in summary:
        d, w = summary["dped"], summary["wins"]
        lines.append(f"  DPED released: {d['psnr']:.2f} / {d['ms_ssim']:.4f} (without saturated "
                     f"{d['psnr_without_saturated']:.2f} / {d['ms_ssim_without_saturated']:.4f}); "
                     f"pairs won, ours-DPED: PSNR {w['psnr'][0]}-{w['psnr'][1]}, "
                     f"MS-SSIM {w['ms_ssim'][0]}-{w['ms_ssim'][1]}")
    return "\n".join(lines)


def save_summary(path: Path, summary: dict) -> None:
    path.write_text(json.dumps(summary, indent=2) + "\n")


def table_row(tag: str, summary: dict) -> str:
    """One markdown row of bench/README.md's cross-validation table."""
    o = summary["ours"]
    seeds = summary["seeds"]
    spread = (f" ({o['psnr_seed_spread'][0]:.2f}-{o['psnr_seed_spread'][1]:.2f} / "
              f"{o['ms_ssim_seed_spread'][0]:.4f}-{o['ms_ssim_seed_spread'][1]:.4f})"
              if len(seeds) > 1 else "")
    wins = summary.get("wins", {})
    won = (f"{wins['psnr'][0]} / {wins['ms_ssim'][0]}" if wins else "")
    return (f"| {tag} | {len(seeds)} | {o['psnr']:.2f} / {o['ms_ssim']:.4f}{spread} | "
            f"{o['psnr_without_saturated']:.2f} | "
            f"{o['psnr_fold_spread'][0]:.2f}-{o['psnr_fold_spread'][1]:.2f} | "
            f"{o['detail_ratio']:.3f} | {o['contrast_ratio']:.3f} | {o['black_diff']:+.2f} | "
            f"{o['saturation_ratio']:.3f} | {won} |")


def main() -> None:
    """``python bench/cross_validation.py SUMMARY.json...``: the table rows of these runs."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("summaries", type=Path, nargs="+",
                        help="work/cv/<tag>/summary.json files (bench/small_data.py --cv)")
    args = parser.parse_args()
    print("| run | seeds | PSNR / MS-SSIM (seed range) | PSNR without the 2 saturated pairs | "
          "PSNR per fold | detail | contrast | black | saturation | pairs won of 198 "
          "(PSNR / MS-SSIM) |\n|---|---|---|---|---|---|---|---|---|---|")
    for path in args.summaries:  # work/cv/<tag>/summary.json, or a copy named <tag>.json
        tag = path.parent.name if path.name == "summary.json" else path.stem
        print(table_row(tag, json.loads(path.read_text())))


if __name__ == "__main__":
    main()
