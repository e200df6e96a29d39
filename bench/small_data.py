"""Training on the 160 real DPED pairs of ../shared/dped-mini: the small-data recipe's test bench.

    python bench/small_data.py --holdout --steps 3000 --set train.lr_g=0.0005 --tag lr5e-4
    python bench/small_data.py --recipe recipes/small-data.yaml --seeds 0 1 2
    python bench/small_data.py --cv --recipe recipes/small-data.yaml --seeds 0 1 2 --jobs 2

Trains the settings of ``--params`` (default params.yaml) with ``--recipe``'s overlay
(``--set section.key=value`` changes one more) and scores the generator with the DPED protocol
on raw 100x100 pairs, every ``--eval-every`` steps and at the end:

- ``--holdout``: trained on dped-mini's training pairs 0-127, scored on pairs 128-159, which it
  never sees. Tuning happens here, so the 40 test pairs stay untouched by the choices.
- otherwise: trained on all 160 training pairs, scored on the 40 test pairs (the goal: DPED's
  released model, 21.50 dB / 0.9158 MS-SSIM on them).
- ``--cv``: 5-fold cross-validation over all 200 pairs (bench/cross_validation.py): every
  recipe choice is made on its out-of-fold figures, never on one fold.

Each evaluation prints one JSON line (also appended to ``--log``): seed, step, seconds of
training so far, PSNR / MS-SSIM on the raw pairs, and those of the input.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from gan.config import ExtractConfig, Params  # noqa: E402
from gan.data.dped import DpedSource, decode_patch, find_layout  # noqa: E402
from gan.data.extract import extract, rows_table  # noqa: E402
from gan.data.patches import data_fingerprint, to_tensor  # noqa: E402
from gan.look import look_stats, look_summary  # noqa: E402
from gan.metrics import mean_finite, ms_ssim, psnr  # noqa: E402
from stages.recipe import apply_recipe, check_overlay, load_recipe  # noqa: E402
from gan.runtime import keep_freed_memory  # noqa: E402
from gan.train import Dist, RunSpec, Trainer  # noqa: E402

DPED_MINI = Path(os.environ.get("DPED_MINI", ROOT.parent / "shared" / "dped-mini")) / "iphone"
HOLDOUT_FROM = 128  # training pairs with this index or above form the holdout


def extraction_key(extract_params: dict) -> str:
    """What the extracted patches depend on: the extract settings and the code that reads,
    aligns and crops the pairs. A cache made by other code or settings is rebuilt (a cache
    kept across an aligner change once fed old patches to a 3-seed run)."""
    import hashlib

    digest = hashlib.sha256(yaml.safe_dump(extract_params, sort_keys=True).encode())
    for module in ("dped", "align", "extract", "npyio"):
        digest.update((ROOT / "gan" / "data" / f"{module}.py").read_bytes())
    return digest.hexdigest()[:16]


def prepare(work: Path, extract_params: dict) -> None:
    """Extract dped-mini once into ``work`` with ``extract_params`` (params.yaml's extract
    section, with the recipe and --set applied): full/ (160 train, 40 test) and holdout/ (0-127
    train, 128-159 as its test split), plus the raw 100x100 pairs of both as .npy."""
    key = extraction_key(extract_params)
    done = work / "done"
    if done.exists() and done.read_text().strip() == key:
        return
    if done.exists():
        print(f"{work}: extracted by other code or settings; extracting again", flush=True)
        done.unlink()
    with DpedSource(DPED_MINI) as source:
        layout = find_layout(source.names(), "iphone")
        for split in ("train", "test"):
            pairs = layout.pairs[split]
            for side in ("phone", "dslr"):
                raw = np.stack([decode_patch(source.read(getattr(p, side))) for p in pairs])
                np.save(work / f"raw_{split}_{side}.npy", raw)
            np.save(work / f"raw_{split}_index.npy", np.array([p.index for p in pairs]))
    settings = ExtractConfig(**extract_params)
    summary = extract(DPED_MINI, layout, work / "full", settings, workers=2)
    table = pd.DataFrame(rows_table(summary.rows))
    (work / "full" / "pairs.csv").write_text(table.to_csv(index=False))
    holdout = work / "holdout"
    holdout.mkdir(exist_ok=True)
    kept = table[(table["split"] == "train") & (table["kept"])].sort_values("row")
    rows = kept["row"].to_numpy().astype(int)
    fit = rows[kept["index"].to_numpy() < HOLDOUT_FROM]
    held = rows[kept["index"].to_numpy() >= HOLDOUT_FROM]
    for side in ("phone", "dslr"):
        array = np.load(work / "full" / f"train_{side}.npy")
        np.save(holdout / f"train_{side}.npy", array[fit])
        np.save(holdout / f"test_{side}.npy", array[held])
    (holdout / "pairs.csv").write_text(f"holdout of {work / 'full'}: fit rows {fit.tolist()}, "
                                       f"held-out rows {held.tolist()}\n")
    done.write_text(key + "\n")


def raw_pairs(work: Path, holdout: bool) -> tuple[torch.Tensor, torch.Tensor]:
    split = "train" if holdout else "test"
    index = np.load(work / f"raw_{split}_index.npy")
    keep = index >= HOLDOUT_FROM if holdout else np.ones(len(index), bool)
    phone = np.load(work / f"raw_{split}_phone.npy")[keep]
    dslr = np.load(work / f"raw_{split}_dslr.npy")[keep]
    return to_tensor(phone), to_tensor(dslr)


def scores(images: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    value, infinite = mean_finite(psnr(images, target))
    return {"psnr": round(value, 3), "ms_ssim": round(ms_ssim(images, target).mean().item(), 4),
            "psnr_infinite": infinite}


@torch.no_grad()
def enhance(generator: torch.nn.Module, phone: torch.Tensor) -> torch.Tensor:
    generator.eval()
    out = torch.cat([generator(phone[i:i + 20]) for i in range(0, len(phone), 20)])
    generator.train()
    return out


def parse_value(text: str):
    return yaml.safe_load(text)


def main() -> None:
    keep_freed_memory()  # as the train stage does: the same allocations every step
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    parser.add_argument("--recipe", type=Path, default=None,
                        help="a params overlay, e.g. recipes/small-data.yaml")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    parser.add_argument("--steps", type=int, default=None, help="train.steps (default: params)")
    parser.add_argument("--minutes", type=float, default=None,
                        help="also stop after this many minutes of training (scoring excluded)")
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--holdout", action="store_true")
    parser.add_argument("--cv", action="store_true",
                        help="5-fold cross-validation over all 200 pairs (bench/cross_validation.py)")
    parser.add_argument("--cv-folds", type=int, nargs="+", default=[0, 1, 2, 3, 4],
                        help="--cv: the folds to train (the summary needs all five)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="--cv: training processes sharing the folds and seeds")
    parser.add_argument("--tasks", nargs="+", default=[], help=argparse.SUPPRESS)  # SEED:FOLD
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--work", type=Path, default=Path("/tmp/small_data"))
    parser.add_argument("--log", type=Path, default=None)
    parser.add_argument("--tag", default="")
    parser.add_argument("--save", type=Path, default=None, help="save the generator here")
    args = parser.parse_args()
    if not DPED_MINI.is_dir():
        raise SystemExit(f"{DPED_MINI} is not here: nothing to train on")
    if args.threads:
        torch.set_num_threads(args.threads)
    params = yaml.safe_load(args.params.read_text())
    if args.recipe:
        params = apply_recipe(params, load_recipe(args.recipe, params))
    overlay: dict[str, dict] = {}
    for item in args.set:  # checked like a recipe: a mistyped key must not train the defaults
        key, value = item.split("=", 1)
        section, name = key.split(".", 1)
        overlay.setdefault(section, {})[name] = parse_value(value)
    params = apply_recipe(params, check_overlay(overlay, params, "--set"))
    if args.steps:
        params["train"]["steps"] = args.steps
    steps = int(params["train"]["steps"])
    args.work.mkdir(parents=True, exist_ok=True)
    prepare(args.work, params["extract"])
    if args.cv:
        cross_validate(args, params, steps)
        return
    data = args.work / ("holdout" if args.holdout else "full")
    phone, dslr = raw_pairs(args.work, args.holdout)
    baseline = scores(phone, dslr)
    print(f"{args.tag}: {'holdout 128-159' if args.holdout else 'test 40'}, {len(phone)} raw "
          f"pairs, input {baseline}; {steps} steps; {torch.get_num_threads()} threads",
          flush=True)
    for seed in args.seeds:
        def on_eval(trainer: Trainer, seconds: float, seed: int = seed) -> None:
            row = {"tag": args.tag, "seed": seed, "step": trainer.step,
                   "seconds": round(seconds, 1), "precision": trainer.precision,
                   **scores(enhance(trainer.output_generator, phone), dslr)}
            if trainer.ema_generator is not None:
                last = scores(enhance(trainer.generator, phone), dslr)
                row.update(raw_psnr=last["psnr"], raw_ms_ssim=last["ms_ssim"])
            print(json.dumps(row), flush=True)
            if args.log:
                with args.log.open("a") as handle:
                    handle.write(json.dumps({**row, "set": args.set,
                                             "holdout": args.holdout}) + "\n")

        params["train"]["seed"] = seed  # what --save records
        trainer, _ = train(params, data, seed, steps, args.minutes, args.eval_every, on_eval)
        if args.save:
            from gan.checkpoint import save_generator

            save_generator(args.save, trainer.output_generator, {"params": params})


def train(params: dict, data: Path, seed: int, steps: int, minutes: float | None,
          eval_every: int, on_eval=None) -> tuple[Trainer, float]:
    """Train ``params`` with ``seed`` on the patches in ``data`` for ``steps`` steps (or
    ``minutes`` of training); ``on_eval(trainer, seconds)`` every ``eval_every`` steps and at
    the end, its time not counted as training. Returns the trainer and its seconds of training."""
    params = copy.deepcopy(params)
    params["train"]["seed"] = seed
    params["train"].update(val_every=10**9, log_every=10**9)
    spec = RunSpec.from_params(Params.from_dict(params), data_fingerprint(data))
    trainer = Trainer(spec, data, data / "unused.pt", Dist())
    started = time.perf_counter()
    while trainer.step < steps:
        trainer.optimize()
        trainer.step += 1
        seconds = time.perf_counter() - started
        out_of_time = minutes is not None and seconds >= 60 * minutes
        if on_eval and (trainer.step % eval_every == 0 or trainer.step == steps or out_of_time):
            on_eval(trainer, seconds)
            started += time.perf_counter() - started - seconds  # scoring is not training
        if out_of_time:
            break
    return trainer, time.perf_counter() - started


def cross_validate(args: argparse.Namespace, params: dict, steps: int) -> None:
    """``--cv``: one generator per fold and seed, trained on the other folds' aligned crops;
    its float predictions of the fold's raw pairs are saved under work/cv/<tag>/, so a stopped
    run resumes at the next fold and ``--jobs`` processes can share the folds. Then the
    summary of every prediction present (bench/cross_validation.py)."""
    import subprocess

    import cross_validation as cv

    phone, dslr, ids = cv.raw_pairs(args.work)
    fold = cv.fold_of(ids, len(ids))
    results = args.work / "cv" / (args.tag or "untagged")
    results.mkdir(parents=True, exist_ok=True)
    # A tag is one recipe: its folds and seeds are pooled, so other settings under the same
    # tag would mix two recipes into one figure.
    recorded = results / "params.yaml"
    if recorded.exists() and yaml.safe_load(recorded.read_text()) != params:  # 0 == 0.0 here
        raise SystemExit(f"{results}: made with other settings ({recorded}); use another --tag")
    recorded.write_text(yaml.safe_dump(params, sort_keys=False))
    todo = [(seed, k) for seed in args.seeds for k in args.cv_folds
            if not (results / f"seed{seed}_fold{k}.npz").exists()]
    for k in sorted({k for _, k in todo}):  # here, before any job starts: no two build one
        cv.build_fold(args.work, k)
    if args.jobs > 1 and len(todo) > 1:
        # Each job takes every jobs-th task, with cores / jobs threads: small batches keep two
        # one-thread processes busier than one two-thread process.
        threads = max(1, (os.cpu_count() or 2) // args.jobs)
        workers = []
        for j in range(args.jobs):
            mine = todo[j::args.jobs]
            if not mine:
                continue
            command = [sys.executable, __file__, *sys.argv[1:], "--jobs", "1",
                       "--threads", str(threads), "--tasks",
                       *[f"{seed}:{k}" for seed, k in mine]]
            workers.append(subprocess.Popen(command))
        if any(w.wait() for w in workers):
            raise SystemExit("a cross-validation job failed: see its output above")
    else:
        if args.tasks:
            todo = [tuple(map(int, t.split(":"))) for t in args.tasks]
        for seed, k in todo:
            data = cv.build_fold(args.work, k)
            trainer, seconds = train(params, data, seed, steps, args.minutes, 10**9)
            held = fold == k
            out = enhance(trainer.output_generator, to_tensor(phone[held])).float().clamp(0, 1)
            tmp = results / f".seed{seed}_fold{k}.npz"
            np.savez(tmp, ids=ids[held], output=out.numpy(), seconds=seconds)
            tmp.rename(results / f"seed{seed}_fold{k}.npz")  # atomic: a stopped run resumes
            part = {**scores(out, to_tensor(dslr[held])),
                    **look_summary(look_stats(out), look_stats(to_tensor(dslr[held])))}
            print(json.dumps({"tag": args.tag, "seed": seed, "fold": k, "steps": trainer.step,
                              "seconds": round(seconds, 1), **part}), flush=True)
        if args.tasks:
            return
    predictions, seconds = {}, []
    for seed in args.seeds:
        if all((results / f"seed{seed}_fold{k}.npz").exists() for k in range(cv.FOLDS)):
            predictions[seed], fold_seconds = cv.load_predictions(results, seed, ids,
                                                                  phone.shape[1:3])
            seconds += fold_seconds
    if not predictions:
        raise SystemExit(f"{results}: no seed has all {cv.FOLDS} folds yet")
    summary = cv.summarise(predictions, phone, dslr, ids)
    summary["ours"]["train_minutes_per_fold"] = [round(min(seconds) / 60, 1),
                                                 round(max(seconds) / 60, 1)]
    summary["recipe"] = {"recipe": str(args.recipe or ""), "set": args.set, "steps": steps}
    cv.save_summary(results / "summary.json", summary)
    cv.write_per_pair(results / "per_pair.csv", ids, predictions, dslr)
    print(cv.format_summary(args.tag, summary), flush=True)
    print(f"{results / 'summary.json'}, {results / 'per_pair.csv'}", flush=True)


if __name__ == "__main__":
    main()
