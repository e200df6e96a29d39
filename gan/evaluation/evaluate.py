"""Scoring enhancement methods against the DSLR targets, the DPED way.

A *method* turns a batch of phone images, (N, H, W, 3) uint8, into enhanced images, (N, 3, H, W)
float in [0, 1]: the input itself (identity), the classical baselines CLHE and NPEA, and trained
generators. Every method is scored per patch with PSNR, SSIM and MS-SSIM (gan.metrics, the DPED
protocol) and timed, so methods can be compared per second of compute as well as per dB.
Each output and each DSLR target also gets its look statistics (gan.look: detail, contrast,
black level, saturation), which say whether the output looks like the DSLR photo, not only how
near it is. ``evaluate`` is the evaluate stage's whole run: every method on both test geometries
and on the full-size photos, as the summary, the per-patch table and the report's samples.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from PIL import Image
from tqdm import tqdm

from gan.checkpoint import load_generator
from gan.data.dped import DpedSource, decode_patch, find_layout
from gan.data.patches import PatchPairs, to_tensor
from gan.deploy.inference import DEFAULT_OVERLAP, DEFAULT_TILE, enhance_array
from gan.deploy.photo_io import read_photo
from gan.deploy.pretrained import resolve_model
from gan.evaluation.loe import lightness_order_error
from gan.evaluation.niqe import niqe, scorable
from gan.fsio import atomic_open, write_npy, write_text
from gan.look import LOOK_KEYS, look_stats, look_summary
from gan.metrics import mean_finite, ms_ssim, psnr, ssim
from gan.pixels import float_to_uint8
from gan.runtime import keep_freed_memory, resolve_device

Enhance = Callable[[np.ndarray], torch.Tensor]


@dataclass
class Method:
    name: str
    enhance: Enhance  # (N, H, W, 3) uint8 -> (N, 3, H, W) float in [0, 1]
    # One full-size photo, (H, W, 3) uint8 -> (H, W, 3) uint8, when it needs another path than
    # a batch of one (a generator: tiled, so memory does not grow with the photo).
    photo: Callable[[np.ndarray], np.ndarray] | None = None

    def enhance_photo(self, image: np.ndarray) -> np.ndarray:
        if self.photo is not None:
            return self.photo(image)
        return to_uint8(self.enhance(image[None]))[0]


def per_image(fn: Callable[[np.ndarray], np.ndarray]) -> Enhance:
    """Lift an (H, W, 3) uint8 -> (H, W, 3) uint8 function (the baselines) to a batch method."""
    def enhance(batch: np.ndarray) -> torch.Tensor:
        return to_tensor(np.stack([fn(image) for image in batch]))
    return enhance


def generator_method(generator: torch.nn.Module, device: torch.device,
                     batch_size: int = 32) -> Enhance:
    """A trained generator as a method; its float output is scored as it is (clipped by PSNR)."""
    @torch.no_grad()
    def enhance(batch: np.ndarray) -> torch.Tensor:
        outputs = []
        for start in range(0, len(batch), batch_size):
            x = to_tensor(batch[start:start + batch_size]).to(device)
            outputs.append(generator(x).float().clamp(0, 1).cpu())
        return torch.cat(outputs)
    return enhance


def generator_photo(generator: torch.nn.Module, device: torch.device,
                    tile: int = DEFAULT_TILE, overlap: int = DEFAULT_OVERLAP
                    ) -> Callable[[np.ndarray], np.ndarray]:
    """A generator on one full-size photo, tiled (gan.deploy.inference): uint8 in, uint8 out."""
    def enhance(image: np.ndarray) -> np.ndarray:
        out = enhance_array(generator, image.astype(np.float32) / 255.0, device, tile, overlap)
        return float_to_uint8(out)
    return enhance


def identity_method() -> Method:
    return Method("input", to_tensor)


def baseline_methods(white_balance: bool = False) -> list[Method]:
    from gan.evaluation.baselines.clhe import clhe
    from gan.evaluation.baselines.npea import npea

    return [Method("clhe", per_image(lambda im: clhe(im, white_balance=white_balance))),
            Method("npea", per_image(npea))]


@dataclass
class Scores:
    """Per-patch scores of one method on one geometry."""

    psnr: np.ndarray
    ssim: np.ndarray
    ms_ssim: np.ndarray
    seconds: float  # enhancing only, not scoring
    look: dict[str, np.ndarray]  # the output's gan.look statistics, per patch
    target_look: dict[str, np.ndarray]  # the DSLR targets' (the same for every method)

    def summary(self) -> dict[str, float | int]:
        mean, infinite = mean_finite(torch.from_numpy(self.psnr))
        # The protocol's MS-SSIM is undefined (NaN) for a patch whose contrast-structure term
        # at some scale is negative (raised to a fractional weight), as in the official script:
        # 1 CLHE output of DPED-sized test set's 4,353 (bench/README.md, "DPED at full scale").
        # The mean is over the defined ones, and how many were not is said beside it.
        ms, undefined = mean_finite(torch.from_numpy(self.ms_ssim))
        return {"psnr": round(mean, 3), "psnr_infinite": infinite,
                "ssim": round(float(self.ssim.mean()), 4),
                "ms_ssim": round(ms, 4), "ms_ssim_undefined": undefined,
                "patches": len(self.psnr), **look_summary(self.look, self.target_look)}


CHUNK = 256  # test pairs in memory at a time: the scoring's memory is flat in the number of pairs

Chunks = Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]  # (phone, dslr, DPED indices)


@dataclass
class GeometryScores:
    """Every method's scores on one geometry, and what the report keeps of it."""

    scores: dict[str, Scores]  # method name -> its per-patch scores
    first: dict[str, np.ndarray]  # method name -> its outputs of the first chunk, uint8
    first_dslr: np.ndarray  # the DSLR targets of the first chunk
    indices: np.ndarray  # the pairs' indices, in scoring order
    target_look: dict[str, np.ndarray]  # the DSLR targets' look, per patch


def score_methods(methods: list[Method], chunks: Chunks) -> GeometryScores:
    """Enhance and score one geometry's test pairs with every method, a chunk at a time.

    Each chunk of pairs is read once and gone before the next (DPED's 4,353 test pairs would
    otherwise be 0.5 GB of pixels per geometry, and the full release's more); per pair only the
    scores are kept. The DSLR targets' look is computed once per chunk for all methods.
    """
    names = [m.name for m in methods]
    columns: dict[str, dict[str, list[np.ndarray]]] = {
        name: {key: [] for key in ("psnr", "ssim", "ms_ssim", *LOOK_KEYS)} for name in names}
    seconds = dict.fromkeys(names, 0.0)
    target_look: dict[str, list[np.ndarray]] = {k: [] for k in LOOK_KEYS}
    first: dict[str, np.ndarray] = {}
    indices: list[np.ndarray] = []
    first_dslr = None
    for phone, dslr, index in chunks:
        indices.append(np.asarray(index))
        for key, values in look_stats(dslr).items():
            target_look[key].append(values)
        target = to_tensor(dslr)
        if first_dslr is None:
            first_dslr = np.array(dslr)
        for method in methods:
            began = time.perf_counter()
            out = method.enhance(phone)
            seconds[method.name] += time.perf_counter() - began
            column = columns[method.name]
            column["psnr"].append(psnr(out, target).numpy())
            column["ssim"].append(ssim(out, target).numpy())
            column["ms_ssim"].append(ms_ssim(out, target).numpy())
            for key, values in look_stats(out).items():
                column[key].append(values)
            if method.name not in first:
                first[method.name] = to_uint8(out)
    if first_dslr is None:
        raise ValueError("no test pairs to score")
    targets = {k: np.concatenate(v) for k, v in target_look.items()}
    scores = {name: Scores(*(np.concatenate(columns[name][k]) for k in ("psnr", "ssim", "ms_ssim")),
                           seconds[name], {k: np.concatenate(columns[name][k]) for k in LOOK_KEYS},
                           targets)
              for name in names}
    return GeometryScores(scores, first, first_dslr, np.concatenate(indices), targets)


def array_chunks(phone: np.ndarray, dslr: np.ndarray, chunk: int = CHUNK,
                 indices: np.ndarray | None = None) -> Chunks:
    """Pairs already in memory (or memmaps), as chunks."""
    indices = np.arange(len(phone)) if indices is None else indices
    for start in range(0, len(phone), chunk):
        stop = start + chunk
        yield phone[start:stop], dslr[start:stop], indices[start:stop]


def score_method(method: Method, phone: np.ndarray, dslr: np.ndarray, chunk: int = CHUNK,
                 target_look: dict[str, np.ndarray] | None = None) -> tuple[Scores, np.ndarray]:
    """One method on ``phone`` against ``dslr`` ((N, H, W, 3) uint8 each), chunk by chunk: its
    scores and its outputs of the first chunk (uint8). ``target_look``, when given, is what
    ``gan.look.look_stats(dslr)`` gives, and is used instead of computing it again."""
    done = score_methods([method], array_chunks(phone, dslr, chunk))
    scores = done.scores[method.name]
    if target_look is not None:
        scores.target_look = target_look
    return scores, done.first[method.name]


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) float in [0, 1] -> (N, H, W, 3) uint8, rounded."""
    return float_to_uint8(images.permute(0, 2, 3, 1).numpy())


# -- the test data ----------------------------------------------------------------------------

def aligned_test_chunks(patches: Path, chunk: int = CHUNK) -> Chunks:
    """The extract stage's aligned test crops, read a chunk at a time (rows as indices)."""
    test = PatchPairs(patches, "test")
    for start in range(0, len(test), chunk):
        rows = np.arange(start, min(start + chunk, len(test)))
        phone, dslr = test.gather_uint8(rows)
        yield phone, dslr, rows


def raw_test_chunks(raw: Path, phone_name: str, chunk: int = CHUNK) -> Chunks:
    """The raw test pairs of a DPED-layout archive that decode to two images of one size (the
    first such pair's), as DPED and PIRM scored them, decoded a chunk at a time: phone, DSLR
    ((n, H, W, 3) uint8) and the pairs' DPED indices. Raises ValueError naming the archive
    when no pair qualifies."""
    phones, dslrs, indices = [], [], []
    size = None
    with DpedSource(raw) as source:
        for pair in find_layout(source.names(), phone_name).pairs["test"]:
            if pair.phone is None or pair.dslr is None:
                continue
            try:
                phone = decode_patch(source.read(pair.phone))
                dslr = decode_patch(source.read(pair.dslr))
            except ValueError:
                continue
            if phone.shape != dslr.shape or (size is not None and phone.shape != size):
                continue
            size = phone.shape
            phones.append(phone)
            dslrs.append(dslr)
            indices.append(pair.index)
            if len(phones) == chunk:
                yield np.stack(phones), np.stack(dslrs), np.asarray(indices)
                phones, dslrs, indices = [], [], []
    if phones:
        yield np.stack(phones), np.stack(dslrs), np.asarray(indices)
    if size is None:
        raise ValueError(f"{raw}: no decodable test pairs of one size")


def raw_test_pairs(raw: Path, phone_name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All of ``raw_test_chunks`` at once (small archives, tests)."""
    chunks = list(raw_test_chunks(raw, phone_name))
    return tuple(np.concatenate([c[k] for c in chunks]) for k in range(3))  # type: ignore


# -- full-size photos -------------------------------------------------------------------------

def read_rgb8(path: Path) -> np.ndarray:
    """A photo as (H, W, 3) uint8, upright, through the decoder ``enhance`` ships
    (gan.deploy.photo_io: EXIF orientation, CMYK and 16-bit handled the same way)."""
    photo = read_photo(path)
    rgb = photo.rgb if photo.rgb.shape[2] == 3 else np.repeat(photo.rgb, 3, axis=2)
    return float_to_uint8(rgb)


def full_size_scores(methods: list[Method], photos: list[Path], out: Path, keep: int,
                     progress: bool = False
                     ) -> tuple[dict[str, float], dict[str, float | None], dict[str, float]]:
    """LOE and NIQE (means over the photos) and seconds per megapixel of each method on the
    full-size photos, which have no DSLR twin. One photo is in memory at a time. The first
    ``keep`` photos and each method's enhanced version of them are saved as PNG (lossless) under
    ``out/<method>/`` (the input under ``out/input/``) for the report.

    NIQE (gan.evaluation.niqe, lower is more natural) is computed for the input photo once,
    under ``"input"``, and for each method's output. Photos smaller than two 96x96 blocks are
    left out of its means; a mean over no photo, or over an undefined score (a flat output), is
    None. Returns (loe, niqe, seconds per megapixel)."""
    errors: dict[str, list[float]] = {m.name: [] for m in methods}
    naturalness: dict[str, list[float]] = {"input": [], **{m.name: [] for m in methods}}
    seconds = dict.fromkeys(errors, 0.0)
    megapixels = 0.0
    for k, path in enumerate(tqdm(photos, desc="full-size", unit="photo", disable=not progress)):
        image = read_rgb8(path)
        megapixels += image.shape[0] * image.shape[1] / 1e6
        if k < keep:
            _save_png(out / "input" / f"{path.stem}.png", image)
        if scorable(image.shape):
            naturalness["input"].append(niqe(image))
        for method in methods:
            began = time.perf_counter()
            enhanced = method.enhance_photo(image)
            seconds[method.name] += time.perf_counter() - began
            errors[method.name].append(lightness_order_error(image, enhanced))
            if scorable(enhanced.shape):
                naturalness[method.name].append(niqe(enhanced))
            if k < keep:
                _save_png(out / method.name / f"{path.stem}.png", enhanced)
    if not photos:
        return {}, {}, {}
    loe = {name: round(float(np.mean(values)), 1) for name, values in errors.items()}
    means = {name: float(np.mean(values)) if values else float("nan")
             for name, values in naturalness.items()}
    niqe_means = {name: round(mean, 2) if np.isfinite(mean) else None
                  for name, mean in means.items()}
    speed = {name: round(total / megapixels, 3) for name, total in seconds.items()}
    return loe, niqe_means, speed


def _save_png(path: Path, image: np.ndarray) -> None:
    with atomic_open(path) as handle:
        Image.fromarray(image).save(handle, format="PNG")


# -- the evaluate stage's run -----------------------------------------------------------------

BUILT_IN = ("input", "clhe", "npea")  # the methods that are not a generator checkpoint


def evaluation_methods(model: Path, extra_models: list | None, device: str, batch_size: int,
                       clhe_white_balance: bool) -> list[Method]:
    """The input as it is, CLHE, NPEA, the generator at ``model`` (``ours``) and each of
    ``extra_models`` (see model_paths), the generators loaded on ``device`` (a name, as
    gan.runtime.resolve_device reads it). A checkpoint that does not load fails here, before
    any scoring (CheckpointError)."""
    torch_device = resolve_device(device)
    keep_freed_memory()  # batches and tiles allocate the same large blocks again and again
    methods = [identity_method(), *baseline_methods(clhe_white_balance)]
    for name, path in model_paths(model, extra_models).items():
        generator = load_generator(path, torch_device)
        methods.append(Method(name, generator_method(generator, torch_device, batch_size),
                              photo=generator_photo(generator, torch_device)))
    return methods


def model_paths(model: Path, extras: list | None) -> dict[str, Path]:
    """``ours`` plus each extra checkpoint (a path, or a registered name such as the shipped
    iphone-dped-mini, sha256 checked) under its file name's stem (made unique)."""
    paths = {"ours": model}
    for extra in extras or []:
        path = resolve_model(str(extra))
        name = path.stem
        while name in paths or name in BUILT_IN:
            name += "_"
        paths[name] = path
    return paths


@dataclass
class Geometry:
    """One geometry's test pairs: how many (the progress bar's total) and a fresh reader."""

    pairs: int
    chunks: Callable[[], Chunks]


def scoring_geometries(patches: Path, raw: Path, phone_name: str) -> dict[str, Geometry]:
    """The aligned 96x96 test crops of the extract stage (``patches``, primary) and the raw
    100x100 test patches of the DPED-layout zip ``raw``, in scoring order. Both are read a chunk
    at a time while they are scored (memory flat in the number of pairs); what can be checked
    before that (the files exist, the zip has ``phone_name``'s layout) is checked here."""
    return {"aligned": Geometry(len(PatchPairs(patches, "test")),
                                lambda: aligned_test_chunks(patches)),
            "raw": Geometry(count_raw_pairs(raw, phone_name),
                            lambda: raw_test_chunks(raw, phone_name))}


def count_raw_pairs(raw: Path, phone_name: str) -> int:
    """The raw test pairs with both sides present (the progress bar's total; a pair that then
    does not decode is skipped by the scoring, not counted): checks the layout on the way."""
    with DpedSource(raw) as source:
        pairs = find_layout(source.names(), phone_name).pairs["test"]
    return sum(p.phone is not None and p.dslr is not None for p in pairs)


class ScoringError(ValueError):
    """A geometry could not be scored: no test pairs, or none that decode to one size."""


@dataclass
class Evaluation:
    """What an evaluation found."""

    report: dict[str, Any]  # per geometry, then the full-size scores: metrics/eval.json
    table: pd.DataFrame  # one row per method, geometry and patch: metrics/eval_per_patch.csv
    geometries: tuple[str, ...]  # the report's keys that hold a geometry's scores

    @property
    def summary(self) -> dict[str, dict[str, dict]]:
        """geometry -> method -> Scores.summary(): the report's part scored on test pairs."""
        return {geometry: self.report[geometry] for geometry in self.geometries}


def evaluate(methods: list[Method], geometries: dict[str, Geometry], full_size: Path, out: Path,
             saved_patches: int, saved_photos: int, progress: bool = False) -> Evaluation:
    """Every method on every geometry's test pairs, then on the full-size photos in the folder
    ``full_size`` (LOE, NIQE, speed; the first method, the input itself, is the reference
    there). The report's samples are written under ``out``: the first ``saved_patches`` raw
    patches of each method and the DSLR's (``out/patches``), and the first ``saved_photos``
    full-size photos (``out/full_size``). Raises ScoringError when a geometry has nothing to
    score."""
    summary: dict[str, dict[str, dict]] = {}
    tables = []
    with tqdm(total=sum(g.pairs for g in geometries.values()), desc="evaluate", unit="pair",
              disable=not progress) as bar:
        for geometry, test in geometries.items():
            bar.set_postfix_str(geometry)
            try:
                done = score_methods(methods, _counted(test.chunks(), bar))
            except ValueError as exc:  # e.g. the raw archive held no decodable pair of one size
                raise ScoringError(str(exc)) from exc
            summary[geometry] = {name: s.summary() for name, s in done.scores.items()}
            tables += per_patch_tables(geometry, done)
            if geometry == "raw":
                save_samples(done, out / "patches", saved_patches)

    photos = sorted(full_size.glob("*"))
    loe, niqe_means, speed = full_size_scores(methods[1:], photos, out / "full_size",
                                              saved_photos, progress)
    report = {**summary, "loe": loe, "niqe": niqe_means, "seconds_per_mp": speed,
              "methods": [m.name for m in methods], "full_size_photos": len(photos)}
    return Evaluation(report, pd.concat(tables, ignore_index=True), tuple(summary))


def _counted(chunks: Chunks, bar: tqdm) -> Chunks:
    """Pass the chunks through, advancing the progress bar by their pairs."""
    for chunk in chunks:
        yield chunk
        bar.update(len(chunk[0]))


def per_patch_tables(geometry: str, done: GeometryScores) -> list[pd.DataFrame]:
    """One table per method: its per-patch scores and look beside the DSLR target's look (the
    same in every method's rows, so that each row compares on its own)."""
    targets = {f"target_{k}": v for k, v in done.target_look.items()}
    return [pd.DataFrame({"method": name, "geometry": geometry, "index": done.indices,
                          "psnr": scores.psnr, "ssim": scores.ssim, "ms_ssim": scores.ms_ssim,
                          **scores.look, **targets})
            for name, scores in done.scores.items()]


def save_samples(done: GeometryScores, folder: Path, keep: int) -> None:
    """The first ``keep`` outputs of each method, the DSLR targets and the pairs' indices, for
    the report: ``<method>.npy``, ``dslr.npy`` and ``index.json`` in ``folder``."""
    for name, first in done.first.items():
        write_npy(folder / f"{name}.npy", first[:keep])
    write_npy(folder / "dslr.npy", done.first_dslr[:keep])
    write_text(folder / "index.json", json.dumps(done.indices[:keep].tolist()))
