"""The report's figures (matplotlib, Agg): the paper's Figures 1 and 3, scores, training curves.

Column order and colours are fixed here so every figure tells the same story: the input first,
then ours, then the classical baselines (NPEA, CLHE, as in the paper's Figure 3), the DSLR last.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # files only: no display here or in CI

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

LABELS = {"input": "input (phone)", "ours": "ours (GAN)", "npea": "NPEA", "clhe": "CLHE",
          "dslr": "DSLR (target)"}
COLOURS = {"input": "#7f7f7f", "ours": "#d62728", "npea": "#1f77b4", "clhe": "#2ca02c"}
FALLBACK_COLOURS = ("#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf")


def method_order(methods: Sequence[str]) -> list[str]:
    """input, ours, other generators, NPEA, CLHE: the paper's order, extras after ours."""
    first = [m for m in ("input", "ours") if m in methods]
    last = [m for m in ("npea", "clhe") if m in methods]
    return first + [m for m in methods if m not in first + last] + last


def colour(method: str, methods: Sequence[str]) -> str:
    if method in COLOURS:
        return COLOURS[method]
    extras = [m for m in methods if m not in COLOURS]
    return FALLBACK_COLOURS[extras.index(method) % len(FALLBACK_COLOURS)]


def label(method: str) -> str:
    return LABELS.get(method, method)


def patch_grid(images: dict[str, np.ndarray], psnr: dict[str, np.ndarray],
               rows: int) -> Figure:
    """Figure 3: test patches, one row each, columns input | ours | ... | NPEA | CLHE | DSLR.

    images: method -> (N, H, W, 3) uint8 (and 'dslr'); psnr: method -> (N,) dB under each patch.
    """
    columns = method_order([m for m in images if m != "dslr"]) + ["dslr"]
    rows = min(rows, len(images["dslr"]))
    fig, axes = plt.subplots(rows, len(columns), figsize=(1.9 * len(columns), 2.05 * rows),
                             squeeze=False)
    for c, method in enumerate(columns):
        axes[0, c].set_title(label(method), fontsize=11)
        for r in range(rows):
            ax = axes[r, c]
            ax.imshow(images[method][r], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if method in psnr:
                value = psnr[method][r]
                text = "identical" if not np.isfinite(value) else f"{value:.1f} dB"
                ax.set_xlabel(text, fontsize=9)
    fig.tight_layout()
    return fig


def full_size_figure(photos: dict[str, dict[str, np.ndarray]], crop: int) -> Figure:
    """Figure 1: per photo, the whole image downscaled (top) and a 1:1 crop (bottom), for the
    input, ours, NPEA and CLHE side by side. photos: name -> method -> (H, W, 3) uint8."""
    names = list(photos)
    methods = method_order(list(photos[names[0]]))
    fig, axes = plt.subplots(2 * len(names), len(methods),
                             figsize=(3.4 * len(methods), 5.2 * len(names)), squeeze=False)
    for p, name in enumerate(names):
        reference = photos[name]["input"]
        y, x = detail_window(reference, crop)
        for c, method in enumerate(methods):
            image = photos[name][method]
            whole, zoom = axes[2 * p, c], axes[2 * p + 1, c]
            whole.imshow(image)
            whole.add_patch(Rectangle((x, y), crop, crop, fill=False, edgecolor="yellow",
                                      linewidth=1.5))
            zoom.imshow(image[y:y + crop, x:x + crop], interpolation="nearest")
            whole.set_title(f"{label(method)}" if p == 0 else "", fontsize=12)
            zoom.set_xlabel(f"photo {name}: {crop} x {crop} px at 1:1" if c == 0 else "",
                            fontsize=9)
            for ax in (whole, zoom):
                ax.set_xticks([])
                ax.set_yticks([])
    fig.tight_layout()
    return fig


def detail_window(image: np.ndarray, size: int) -> tuple[int, int]:
    """Top-left corner of the size x size window with the most fine detail (gradient energy),
    so the 1:1 crop shows texture rather than sky."""
    grey = image.astype(np.float32).mean(axis=2)
    energy = np.abs(np.diff(grey, axis=0))[:, :-1] + np.abs(np.diff(grey, axis=1))[:-1, :]
    h, w = energy.shape
    size = min(size, h, w)
    integral = np.pad(energy.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    sums = (integral[size:, size:] - integral[:-size, size:] - integral[size:, :-size]
            + integral[:-size, :-size])
    y, x = np.unravel_index(np.argmax(sums), sums.shape)
    return int(y), int(x)


def score_bars(summary: dict[str, dict[str, dict[str, float]]]) -> Figure:
    """PSNR and MS-SSIM per method and geometry, the input's level marked as a dashed line."""
    geometries = [g for g in ("aligned", "raw") if g in summary]
    methods = method_order(list(summary[geometries[0]]))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    width = 0.8 / len(geometries)
    for ax, metric, unit in ((axes[0], "psnr", "PSNR (dB)"), (axes[1], "ms_ssim", "MS-SSIM")):
        for g, geometry in enumerate(geometries):
            values = [_number(summary[geometry][m][metric]) for m in methods]
            xs = np.arange(len(methods)) + (g - (len(geometries) - 1) / 2) * width
            bars = ax.bar(xs, values, width * 0.95,
                          color=[colour(m, methods) for m in methods],
                          alpha=1.0 if g == 0 else 0.55, label=f"{geometry} test patches")
            ax.bar_label(bars, fmt="%.2f" if metric == "psnr" else "%.3f", fontsize=8)
            ax.axhline(_number(summary[geometry]["input"][metric]), color="black", linestyle="--",
                       linewidth=1, alpha=1.0 if g == 0 else 0.5)
        ax.set_xticks(np.arange(len(methods)), [label(m) for m in methods], fontsize=10)
        ax.set_ylabel(unit)
        known = [_number(summary[g][m][metric]) for g in geometries for m in methods]
        low, high = float(np.nanmin(known)), float(np.nanmax(known))
        ax.set_ylim(low - 0.15 * (high - low) - 1e-3, high + 0.12 * (high - low) + 1e-3)
        ax.set_title(f"{unit} against the DSLR (dashed: the input)")
    # Below the axes, not inside: inside, it covers whichever bars happen to be short.
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=len(names), fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig


def _number(value: float | None) -> float:
    """A summary value as a float; null in eval.json (a mean over no defined patch) is NaN,
    which draws no bar instead of stopping the report."""
    return float("nan") if value is None else float(value)


def training_curves(losses: dict[str, np.ndarray], validation: dict[str, np.ndarray]) -> Figure:
    """Each generator loss term, D(real) / D(fake), validation PSNR and MS-SSIM, against step."""
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    step = losses["step"]
    for term in ("total", "perceptual", "adversarial", "msssim", "pixel"):
        if term in losses and np.any(losses[term] != 0):
            axes[0].plot(step, losses[term], label=term)
    axes[0].set_yscale("log")
    axes[0].set_title("generator loss: total and unweighted terms")
    for key, name in (("d_real", "D(real)"), ("d_fake", "D(fake)")):
        if key in losses:
            axes[1].plot(step, losses[key], label=name)
    axes[1].set_ylim(0, 1)
    axes[1].set_title("discriminator: P(DSLR)")
    for ax, key, title in ((axes[2], "psnr", "validation PSNR (dB)"),
                           (axes[3], "ms_ssim", "validation MS-SSIM")):
        if key in validation:
            ax.plot(validation["step"], validation[key], marker="o", color=COLOURS["ours"])
        ax.set_title(title)
    for ax in axes:
        ax.set_xlabel("step")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def png_bytes(fig: Figure, dpi: int = 100) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return buf.getvalue()
