"""report.html: one self-contained page (figures embedded) with the metrics table."""

from __future__ import annotations

import base64
import html
from typing import Any

import numpy as np

from gan.deploy.compare import Comparison, comparison, section_html
from gan.evaluation.figures import label, method_order

GEOMETRY_TEXT = {
    "aligned": "aligned 96x96 test crops (extract stage)",
    "raw": "raw 100x100 test patches, as DPED and PIRM score them",
}


# gan.look's summary keys, their headings and formats; ratios are 1.0 and black_diff 0 at the
# DSLR target's level.
LOOK_COLUMNS = (("detail_ratio", "detail", "{:.3f}"), ("contrast_ratio", "contrast", "{:.3f}"),
                ("black_diff", "black level", "{:+.2f}"),
                ("saturation_ratio", "saturation", "{:.3f}"))


def metrics_table(report: dict[str, Any]) -> str:
    """One row per method: PSNR / SSIM / MS-SSIM per geometry, LOE, NIQE (its column only when
    the eval.json has it: older ones do not) and seconds per megapixel; then the look table
    (``look_table``) when the report has the look figures."""
    geometries = [g for g in ("aligned", "raw") if g in report]
    methods = method_order(list(report[geometries[0]]))
    head = "".join(f"<th colspan=3>{html.escape(GEOMETRY_TEXT[g])}</th>" for g in geometries)
    sub = "".join("<th>PSNR (dB)</th><th>SSIM</th><th>MS-SSIM</th>" for _ in geometries)
    rows = []
    for m in methods:
        cells = []
        for g in geometries:
            s = report[g][m]
            inf = f" <small>({s['psnr_infinite']} identical)</small>" if s["psnr_infinite"] else ""
            cells.append(f"<td>{s['psnr']:.2f}{inf}</td><td>{s['ssim']:.4f}</td>"
                         f"<td>{s['ms_ssim']:.4f}</td>")
        loe = report.get("loe", {}).get(m)
        cells.append(f"<td>{'' if loe is None else f'{loe:.1f}'}</td>")
        if "niqe" in report:  # null where undefined (a flat output) or no photo was big enough
            niqe = report["niqe"].get(m)
            cells.append(f"<td>{'' if niqe is None else f'{niqe:.2f}'}</td>")
        speed = report.get("seconds_per_mp", {}).get(m)
        rows.append(f"<tr><th>{html.escape(label(m))}</th>{''.join(cells)}"
                    f"<td>{'' if speed is None else f'{speed:.3f}'}</td></tr>")
    niqe_head = ("<th rowspan=2>NIQE<br><small>full-size photos, lower is more natural</small>"
                 "</th>" if "niqe" in report else "")
    return (f"<table><tr><th rowspan=2>method</th>{head}<th rowspan=2>LOE<br><small>full-size "
            f"photos, lower is better</small></th>{niqe_head}<th rowspan=2>s / MP</th></tr>"
            f"<tr>{sub}</tr>" + "".join(rows) + "</table>" + look_table(report))


def look_table(report: dict[str, Any]) -> str:
    """One row per method: detail, contrast and saturation as ratios to the DSLR target's and
    the black level's difference from it (gan.look), per geometry. Empty for an eval.json
    written before the look figures existed; a figure it lacks (or null) is an empty cell."""
    geometries = [g for g in ("aligned", "raw") if g in report]
    methods = method_order(list(report[geometries[0]]))
    if not any(key in report[g][m] for g in geometries for m in methods
               for key, _, _ in LOOK_COLUMNS):
        return ""
    head = "".join(f"<th colspan={len(LOOK_COLUMNS)}>{html.escape(GEOMETRY_TEXT[g])}</th>"
                   for g in geometries)
    sub = "".join(f"<th>{name}</th>" for _ in geometries for _, name, _ in LOOK_COLUMNS)
    rows = []
    for m in methods:
        cells = []
        for g in geometries:
            for key, _, form in LOOK_COLUMNS:
                value = report[g][m].get(key)
                cells.append(f"<td>{'' if value is None else form.format(value)}</td>")
        rows.append(f"<tr><th>{html.escape(label(m))}</th>{''.join(cells)}</tr>")
    return ("<h3>Look against the DSLR target (1.0 / 0 = the target's)</h3>\n<p>Ratios of the "
            "mean detail (|Laplacian| of luma), contrast (standard deviation of luma) and "
            "saturation to the DSLR target's; the black level (1st percentile of luma) as a "
            "difference in grey levels. A soft, milky output has detail below 1 and a positive "
            "black level; read detail with MS-SSIM, since kept noise also counts as detail.</p>\n"
            f"<table><tr><th rowspan=2>method</th>{head}</tr><tr>{sub}</tr>"
            + "".join(rows) + "</table>")


# The full-size photos are embedded losslessly (PNG) while the page stays small; past this many
# bytes of embedded images they are JPEG at quality 95 without chroma subsampling instead (what
# enhance --compare embeds: no visible loss at 1:1, a fraction of the size). DPED's full-size
# iPhone photos are 2048x1536: two of them in four versions made a 65 MB page as PNG
# (bench/README.md, "DPED at full scale").
PAGE_IMAGE_BUDGET = 12 * 2**20


def full_size_comparisons(photos: dict[str, dict[str, np.ndarray]],
                          budget: int = PAGE_IMAGE_BUDGET) -> list[Comparison]:
    """photo name -> method -> (H, W, 3) uint8 (with "input"), as before/after sliders: the
    input against each method, switched in place. Lossless (PNG), as evaluate saved them, unless
    that would embed more than ``budget`` bytes: then JPEG (quality 95, 4:4:4), said under
    each photo."""
    def encoded(image_format: str, note: str = "") -> list[Comparison]:
        items = []
        for name, by_method in photos.items():
            methods = [m for m in method_order(list(by_method)) if m != "input"]
            if "input" in by_method and methods:
                items.append(comparison(name, by_method["input"],
                                        {label(m): by_method[m] for m in methods}, image_format,
                                        note))
        return items

    items = encoded("png")
    size = sum(len(uri) for item in items for uri in (item.before, *item.afters.values()))
    if size > budget:
        items = encoded("jpeg", f"JPEG, quality 95, no chroma subsampling (lossless PNG would "
                                f"have made the page {size / 2**20:.0f} MB)")
    return items


def render(report: dict[str, Any], figures: dict[str, tuple[str, bytes]], notes: str,
           full_size: list[Comparison] = ()) -> str:
    """The page: title, the metrics table, each figure (caption, PNG as a data URI), then the
    full-size photos as before/after sliders with 1:1 zoom (gan.deploy.compare)."""
    parts = []
    for caption, png in figures.values():
        data = base64.b64encode(png).decode()
        parts.append(f"<figure><img src='data:image/png;base64,{data}' alt='{html.escape(caption)}'>"
                     f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    sliders = ""
    if full_size:
        sliders = ("<h2>Full-size test photos: before / after</h2>\n<p>Left of the divider: the "
                   "phone photo; right: the method chosen above the photo. Drag on a photo or "
                   "use the slider; <b>1:1</b> shows real pixels (<code>report.html#1:1</code> "
                   "opens every photo that way).</p>\n" + section_html(list(full_size)))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Perceptual photo enhancement: report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1300px; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; font-size: 14px; }}
th, td {{ border: 1px solid #bbb; padding: 4px 10px; text-align: right; }}
th {{ background: #f2f2f2; }}
figure {{ margin: 2em 0; }} img {{ max-width: 100%; border: 1px solid #ddd; }}
figcaption {{ color: #555; font-size: 14px; margin-top: 0.4em; }}
</style></head><body>
<h1>Perceptual photo enhancement: phone to DSLR</h1>
<p>{notes}</p>
<h2>Scores against the DSLR targets (DPED protocol)</h2>
{metrics_table(report)}
<h2>Figures</h2>
{''.join(parts)}
{sliders}
</body></html>
"""
