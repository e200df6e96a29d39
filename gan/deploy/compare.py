"""A self-contained before/after page: one slider per photo, a method switch, 1:1 zoom.

    enhance holiday/ -o out/ --compare compare.html     # open compare.html in any browser

Every image is embedded as a data URI, so the page is one file that can be mailed or archived,
and nothing is fetched when it opens. Per photo the page shows the input ("before") under the
enhanced photo ("after"): left of the divider is the input, right of it the method's output.

- Drag on the photo or move the slider to move the divider.
- "1:1" shows the photo at one image pixel per screen pixel (``devicePixelRatio`` is taken into
  account), scrolled to where the divider is; the divider then follows the visible part.
  ``compare.html#1:1`` opens every photo that way.
- With several methods (the report's page), buttons switch the "after" image in place, so the
  same spot can be compared across methods at 1:1.

When the page has loaded, it checks every image decoded and writes the count to the ``<html>``
element (``data-images="loaded N of M"``, ``data-ready="yes"``); a photo that did not decode
says so in its caption. Tests read those attributes in headless Chromium (tests/test_compare.py).

Images are embedded as PNG (lossless; the report's evaluation photos) or as JPEG at quality 95
without chroma subsampling (``enhance --compare``: a 12 MP photo is about 5 MB instead of 25).
The page shows pixel values as stored: colour profiles are not embedded.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from gan.fsio import AtomicTarget, naming_write_errors

FORMATS = ("jpeg", "png")
JPEG_QUALITY = 95


def image_uri(rgb: np.ndarray, image_format: str = "jpeg") -> str:
    """(H, W, 3) uint8 -> a data URI of the encoded image."""
    if image_format not in FORMATS:
        raise ValueError(f"image_format must be one of {', '.join(FORMATS)}, got {image_format!r}")
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got {rgb.dtype} {rgb.shape}")
    buffer = io.BytesIO()
    image = Image.fromarray(rgb)
    if image_format == "png":
        image.save(buffer, "PNG", compress_level=1)  # fast; these pages are not archives
        mime = "image/png"
    else:
        image.save(buffer, "JPEG", quality=JPEG_QUALITY, subsampling=0)
        mime = "image/jpeg"
    return f"data:{mime};base64,{base64.b64encode(buffer.getvalue()).decode('ascii')}"


@dataclass(frozen=True)
class Comparison:
    """One photo: its input and each method's output, as data URIs of one size."""

    name: str
    size: tuple[int, int]  # (width, height) in pixels
    before: str
    afters: dict[str, str]  # method label -> data URI, in the order the buttons show them
    note: str = ""  # e.g. the seconds it took


def comparison(name: str, before: np.ndarray, afters: dict[str, np.ndarray],
               image_format: str = "jpeg", note: str = "") -> Comparison:
    """Encode one photo's input and outputs ((H, W, 3) uint8, all the same size)."""
    if not afters:
        raise ValueError(f"{name}: no enhanced image to compare with")
    for label, after in afters.items():
        if after.shape != before.shape:
            raise ValueError(f"{name}: {label} is {after.shape[1]}x{after.shape[0]}, the input "
                             f"{before.shape[1]}x{before.shape[0]}")
    return Comparison(name, (before.shape[1], before.shape[0]), image_uri(before, image_format),
                      {label: image_uri(a, image_format) for label, a in afters.items()}, note)


def figure_html(item: Comparison) -> str:
    """One photo's figure: caption, method buttons (if several), the stacked images, controls."""
    labels = list(item.afters)
    name = html.escape(item.name)
    buttons = "".join(
        f"<button type=button class=method data-index={i}{' aria-pressed=true' if i == 0 else ''}"
        f">{html.escape(label)}</button>" for i, label in enumerate(labels))
    afters = "".join(
        f"<img class=after data-index={i} alt='{name}: {html.escape(label)}' "
        f"src='{uri}'{'' if i == 0 else ' hidden'}>" for i, (label, uri) in enumerate(
            item.afters.items()))
    width, height = item.size
    note = f" <small>{html.escape(item.note)}</small>" if item.note else ""
    methods = f"<span class=methods>after: {buttons}</span>" if len(labels) > 1 else (
        f"<span class=methods>after: {html.escape(labels[0])}</span>")
    return f"""<figure class=compare data-width={width} data-height={height}>
<figcaption><b>{name}</b> <span class=size>{width}&times;{height}</span>{note}
<span class=status></span></figcaption>
<div class=controls>{methods}
<label>before | after <input type=range class=divider min=0 max=1000 value=500></label>
<button type=button class=zoom aria-pressed=false title="one image pixel per screen pixel"
>1:1</button></div>
<div class=view><div class=stage style="width: min(100%, calc(85vh * {width} / {height}))">{afters}
<img class=before alt='{name}: before' src='{item.before}'><div class=line></div></div></div>
</figure>
"""


STYLE = """
figure.compare { margin: 1.5em 0; }
figure.compare figcaption { margin-bottom: 0.3em; }
figure.compare .size, figure.compare small { color: #666; }
figure.compare .status { color: #b00; font-weight: bold; }
figure.compare .controls { display: flex; gap: 1em; align-items: center; flex-wrap: wrap;
  margin-bottom: 0.4em; font-size: 14px; }
figure.compare button[aria-pressed=true] { background: #333; color: #fff; }
figure.compare .view { position: relative; overflow: hidden; width: fit-content; max-width: 100%;
  touch-action: none; cursor: ew-resize; background: #222; }
figure.compare.zoomed .view { overflow: auto; max-height: 85vh; cursor: crosshair; }
figure.compare .stage { position: relative; line-height: 0; display: grid; }
figure.compare img { display: block; width: 100%; height: auto; max-width: none;
  image-rendering: auto; user-select: none; -webkit-user-drag: none; }
figure.compare img[hidden] { display: none; }  /* the author rule above would show it */
figure.compare.zoomed img { image-rendering: pixelated; }
/* Stacked in one grid cell rather than positioned: in-flow images are snapped to whole device
   pixels together, so "before" can never sit a fraction of a pixel off "after" (and blur). */
figure.compare img { grid-area: 1 / 1; }
figure.compare .line { position: absolute; top: 0; bottom: 0; width: 0;
  border-left: 1px solid rgba(255, 255, 255, 0.8); pointer-events: none; }
"""

# Plain JavaScript, no libraries: the page must open offline, years from now.
SCRIPT = """
(function () {
  function setUp(fig) {
    var view = fig.querySelector('.view'), stage = fig.querySelector('.stage');
    var before = fig.querySelector('img.before'), line = fig.querySelector('.line');
    var slider = fig.querySelector('input.divider'), zoom = fig.querySelector('button.zoom');
    var natural = +fig.dataset.width, fitted = stage.style.width;
    var position = 0.5;  // the divider, as a fraction of the visible width
    function draw() {
      var width = stage.getBoundingClientRect().width;
      var x = view.scrollLeft + position * Math.min(view.clientWidth, width);
      // Only the right edge clips: the others lie outside the image (a clip edge at a
      // fractional position would otherwise blend the outer row or column of "before").
      before.style.clipPath = 'inset(-2px ' + Math.max(0, width - x) + 'px -2px -2px)';
      line.style.left = x + 'px';
    }
    function setPosition(fraction) {
      position = Math.min(1, Math.max(0, fraction));
      slider.value = Math.round(position * 1000);
      draw();
    }
    function setZoom(on) {
      var width = stage.getBoundingClientRect().width;
      var at = (view.scrollLeft + position * Math.min(view.clientWidth, width)) / width;
      fig.classList.toggle('zoomed', on);
      zoom.setAttribute('aria-pressed', on ? 'true' : 'false');
      stage.style.width = on ? (natural / (window.devicePixelRatio || 1)) + 'px' : fitted;
      if (on) {  // keep the divider's spot of the photo in view
        var zoomed = stage.getBoundingClientRect().width;
        view.scrollLeft = at * zoomed - position * view.clientWidth;
        view.scrollTop = (stage.getBoundingClientRect().height - view.clientHeight) / 2;
      }
      draw();
    }
    slider.addEventListener('input', function () { setPosition(slider.value / 1000); });
    zoom.addEventListener('click', function () { setZoom(!fig.classList.contains('zoomed')); });
    view.addEventListener('scroll', draw);
    window.addEventListener('resize', draw);
    function follow(event) {
      var box = view.getBoundingClientRect();
      setPosition((event.clientX - box.left) / Math.min(view.clientWidth, box.width));
    }
    view.addEventListener('pointerdown', function (event) {
      if (event.offsetX > view.clientWidth || event.offsetY > view.clientHeight) return;
      view.setPointerCapture(event.pointerId); follow(event);
    });
    view.addEventListener('pointermove', function (event) {
      if (view.hasPointerCapture(event.pointerId)) follow(event);
    });
    fig.querySelectorAll('button.method').forEach(function (button) {
      button.addEventListener('click', function () {
        fig.querySelectorAll('img.after').forEach(function (img) {
          img.hidden = img.dataset.index !== button.dataset.index;
        });
        fig.querySelectorAll('button.method').forEach(function (other) {
          other.setAttribute('aria-pressed', other === button ? 'true' : 'false');
        });
        draw();
      });
    });
    return {draw: draw, setZoom: setZoom};
  }
  window.addEventListener('load', function () {
    var figures = Array.prototype.map.call(document.querySelectorAll('figure.compare'), setUp);
    var images = document.querySelectorAll('figure.compare img'), loaded = 0;
    images.forEach(function (img) {
      if (img.complete && img.naturalWidth > 0) { loaded += 1; return; }
      var status = img.closest('figure').querySelector('.status');
      status.textContent = ' (an image did not decode: ' + img.alt + ')';
    });
    var zoomed = location.hash === '#1:1' || location.hash === '#1%3A1';
    figures.forEach(function (f) { if (zoomed) f.setZoom(true); else f.draw(); });
    document.documentElement.dataset.images = 'loaded ' + loaded + ' of ' + images.length;
    document.documentElement.dataset.ready = 'yes';
  });
})();
"""


def page_head(title: str) -> str:
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1em auto; max-width: 1400px; padding: 0 1em;
  color: #222; }}
{STYLE}</style></head><body>
<h1>{html.escape(title)}</h1>
<p>Left of the divider: the photo as given; right: the enhanced photo. Drag on a photo or use the
slider; <b>1:1</b> shows real pixels (open the page as <code>compare.html#1:1</code> to start
there).</p>
"""


PAGE_TAIL = f"<script>{SCRIPT}</script>\n</body></html>\n"


class ComparePage:
    """The page written as photos come (a batch of 12 MP photos is not held in memory), to a
    temporary that becomes ``path`` on ``close()``; ``discard()`` leaves nothing behind. The
    temporary is only created with the first photo, so a page that never gets one leaves no
    trace, whatever happens before.

        with ComparePage(path, "enhance: before / after") as page:
            page.add(comparison(name, before, {"ours": after}))
    """

    def __init__(self, path: Path | str, title: str):
        self.path = Path(path)
        self.title = title
        self.count = 0
        self._target: AtomicTarget | None = None
        self._handle = None

    def _write(self, text: str) -> None:
        with naming_write_errors(self.path):
            if self._handle is None:
                self._target = AtomicTarget(self.path)
                self._handle = open(self._target.temporary, "w", encoding="utf-8")
                self._handle.write(page_head(self.title))
            self._handle.write(text)

    def add(self, item: Comparison) -> None:
        self._write(figure_html(item))
        self.count += 1

    def close(self) -> Path | None:
        """Finish the page and put it in place; with no photo added, write nothing (None)."""
        if self.count == 0:
            self.discard()
            return None
        try:
            self._write(PAGE_TAIL)
            with naming_write_errors(self.path):
                self._handle.close()
                self._target.commit()
        except BaseException:
            self.discard()
            raise
        return self.path

    def discard(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._target.discard()

    def __enter__(self) -> ComparePage:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None:
            self.close()
        else:
            self.discard()


def section_html(items: list[Comparison]) -> str:
    """The figures and their style and script, for a page of someone else's (the report)."""
    return (f"<style>{STYLE}</style>\n" + "".join(figure_html(i) for i in items)
            + f"<script>{SCRIPT}</script>\n")
