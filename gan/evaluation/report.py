"""report.html: one self-contained page (figures embedded) with the metrics table."""

from __future__ import annotations

import base64
import html
from typing import Any

from gan.evaluation.figures import label, method_order

GEOMETRY_TEXT = {
    "aligned": "aligned 96x96 test crops (extract stage)",
    "raw": "raw 100x100 test patches, as DPED and PIRM score them",
}


def metrics_table(report: dict[str, Any]) -> str:
    """One row per method: PSNR / SSIM / MS-SSIM per geometry, LOE and seconds per megapixel."""
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
        speed = report.get("seconds_per_mp", {}).get(m)
        rows.append(f"<tr><th>{html.escape(label(m))}</th>{''.join(cells)}"
                    f"<td>{'' if loe is None else f'{loe:.1f}'}</td>"
                    f"<td>{'' if speed is None else f'{speed:.3f}'}</td></tr>")
    return (f"<table><tr><th rowspan=2>method</th>{head}<th rowspan=2>LOE<br><small>full-size "
            f"photos, lower is better</small></th><th rowspan=2>s / MP</th></tr><tr>{sub}</tr>"
            + "".join(rows) + "</table>")


def render(report: dict[str, Any], figures: dict[str, tuple[str, bytes]], notes: str) -> str:
    """The page: title, the metrics table, then each figure (caption, PNG as a data URI)."""
    parts = []
    for caption, png in figures.values():
        data = base64.b64encode(png).decode()
        parts.append(f"<figure><img src='data:image/png;base64,{data}' alt='{html.escape(caption)}'>"
                     f"<figcaption>{html.escape(caption)}</figcaption></figure>")
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
</body></html>
"""
