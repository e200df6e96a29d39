"""The before/after page (gan/deploy/compare.py, `enhance --compare`), read back by a parser
and, where Debian's Chromium is installed, opened in a real headless browser."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gan.deploy.compare import ComparePage, comparison, image_uri
from tests.browser import dump_dom, needs_chromium, screenshot
from tests.test_enhance import enhance, model, photos  # noqa: F401 (fixtures)

RED = (200, 30, 30)
BLUE = (30, 30, 200)


def solid(colour, height=300, width=400) -> np.ndarray:
    return np.broadcast_to(np.array(colour, np.uint8), (height, width, 3)).copy()


def checkerboard(height=900, width=1200) -> np.ndarray:
    """One-pixel black and white squares: any resampling turns them grey."""
    board = ((np.arange(height)[:, None] + np.arange(width)[None, :]) % 2 * 255).astype(np.uint8)
    return np.repeat(board[:, :, None], 3, axis=2)


def embedded_images(page: Path) -> list[np.ndarray]:
    """Every data-URI image of the page, decoded, in document order (per photo: each method's
    output, then the input, which lies on top)."""
    found = re.findall(r"src='data:image/(?:png|jpeg);base64,([A-Za-z0-9+/=]+)'", page.read_text())
    return [np.asarray(Image.open(io.BytesIO(base64.b64decode(b))).convert("RGB")) for b in found]


def near(pixels: np.ndarray, colour, tolerance: int = 6) -> np.ndarray:
    return (np.abs(pixels.astype(int) - np.array(colour)) <= tolerance).all(axis=-1)


def test_the_page_embeds_each_photo_losslessly_or_as_jpeg(tmp_path):
    photo = np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    with ComparePage(tmp_path / "page.html", "t") as page:
        page.add(comparison("a", photo, {"ours": photo[::-1].copy()}, "png"))
        page.add(comparison("b", photo, {"ours": photo}, "jpeg"))
    after, before, jpeg_after, jpeg_before = embedded_images(tmp_path / "page.html")
    np.testing.assert_array_equal(before, photo)
    np.testing.assert_array_equal(after, photo[::-1])
    assert jpeg_before.shape == photo.shape
    assert np.abs(jpeg_before.astype(int) - photo).mean() < 12  # noise is JPEG's worst case
    assert (tmp_path / "page.html").read_text().count("<figure class=compare") == 2


def test_bad_images_are_refused_with_the_photo_named():
    photo = solid(RED)
    with pytest.raises(ValueError, match="holiday: ours is 200x300, the input 400x300"):
        comparison("holiday", photo, {"ours": photo[:, :200]})
    with pytest.raises(ValueError, match="holiday: no enhanced image"):
        comparison("holiday", photo, {})
    with pytest.raises(ValueError, match="uint8"):
        image_uri(photo.astype(np.float32))
    with pytest.raises(ValueError, match="image_format"):
        image_uri(photo, "gif")


def test_a_page_without_photos_or_interrupted_leaves_nothing(tmp_path):
    page = ComparePage(tmp_path / "empty.html", "t")
    assert page.close() is None
    with pytest.raises(KeyboardInterrupt):
        with ComparePage(tmp_path / "stopped.html", "t") as stopped:
            stopped.add(comparison("a", solid(RED), {"ours": solid(BLUE)}))
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_names_are_escaped(tmp_path):
    with ComparePage(tmp_path / "page.html", "<t>") as page:
        page.add(comparison("<b>x's</b>.jpg", solid(RED), {"o'<i>": solid(BLUE)}))
    text = (tmp_path / "page.html").read_text()
    assert "<b>x's</b>" not in text and "&lt;b&gt;x&#x27;s&lt;/b&gt;.jpg" in text
    assert "o'<i>" not in text


@needs_chromium
def test_in_chromium_every_image_loads_and_a_broken_one_is_reported(tmp_path):
    with ComparePage(tmp_path / "page.html", "t") as page:
        page.add(comparison("red", solid(RED), {"ours": solid(BLUE), "npea": solid((9, 9, 9))}))
    dom = dump_dom(tmp_path / "page.html")
    assert 'data-images="loaded 3 of 3"' in dom and 'data-ready="yes"' in dom
    # The same check fails when an image does not decode (here: the "before" photo is not a
    # JPEG; a truncated one would still decode, its missing part grey).
    text = (tmp_path / "page.html").read_text()
    start = text.index("class=before")
    uri = re.search(r"src='(data:[^']+)'", text[start:]).group(1)
    (tmp_path / "broken.html").write_text(text.replace(uri, "data:image/jpeg;base64,AAAAAAAA"))
    dom = dump_dom(tmp_path / "broken.html")
    assert 'data-images="loaded 2 of 3"' in dom
    assert "an image did not decode: red: before" in dom


@needs_chromium
def test_in_chromium_the_divider_shows_before_left_and_after_right(tmp_path):
    with ComparePage(tmp_path / "page.html", "t") as page:
        page.add(comparison("photo", solid(RED, 300, 400), {"ours": solid(BLUE, 300, 400)}, "png"))
    shot = screenshot(tmp_path / "page.html", 900, 800, tmp_path / "shot.png")
    red, blue = near(shot, RED), near(shot, BLUE)
    rows, cols = np.nonzero(red | blue)
    top, bottom, left, right = rows.min(), rows.max(), cols.min(), cols.max()
    assert (right - left + 1, bottom - top + 1) == (400, 300)  # fits: shown at its own size
    middle = (left + right) // 2
    assert red[top:bottom + 1, left:middle - 2].all()  # before: left of the divider
    assert blue[top:bottom + 1, middle + 3:right + 1].all()  # after: right of it
    assert not blue[top:bottom + 1, left:middle - 2].any()


@needs_chromium
def test_in_chromium_one_to_one_shows_real_pixels(tmp_path):
    with ComparePage(tmp_path / "page.html", "t") as page:
        page.add(comparison("board", checkerboard(), {"ours": solid((128,) * 3, 900, 1200)},
                            "png"))

    def alternating(shot: np.ndarray) -> int:
        """Pixels whose right and lower neighbours are the opposite of black or white."""
        grey = shot[..., 0].astype(int)
        extreme = (grey < 10) | (grey > 245)
        flips = (np.abs(grey[:-1, :-1] - grey[:-1, 1:]) > 235) & (
            np.abs(grey[:-1, :-1] - grey[1:, :-1]) > 235)
        return int((flips & extreme[:-1, :-1]).sum())

    fitted = screenshot(tmp_path / "page.html", 800, 900, tmp_path / "fit.png")
    actual = screenshot(tmp_path / "page.html", 800, 900, tmp_path / "one.png", "#1:1")
    # Fitted into 800 px, the 1200 px board is resampled: no clean checkerboard is left.
    assert alternating(fitted) < 1000
    # At 1:1 the before half of the view (about 380 x 700 px) is the board, pixel for pixel.
    assert alternating(actual) > 200_000
    assert near(actual[400:600, 500:700], (128,) * 3, 0).all()  # after: right of the divider


def test_enhance_writes_the_page_of_the_photos_it_enhanced(model, photos, tmp_path):  # noqa: F811
    page = tmp_path / "compare.html"
    code, out = enhance(str(photos / "a.jpg"), str(photos / "missing.jpg"), "-o",
                        str(tmp_path / "out"), "--model", str(model), "--compare", str(page))
    assert code == 1 and "1 photo(s) before / after" in out  # the missing photo is not on it
    after, before = embedded_images(page)
    source = np.asarray(Image.open(photos / "a.jpg").convert("RGB")).astype(int)
    written = np.asarray(Image.open(tmp_path / "out" / "a.jpg").convert("RGB")).astype(int)
    assert np.abs(before - source).mean() < 2 and np.abs(after - written).mean() < 2
    assert np.abs(after - before).mean() > 5  # the model changed the photo
    assert f"ours ({model.name})" in page.read_text()


def test_the_page_captions_name_photos_relative_to_the_input(model, photos,  # noqa: F811
                                                               tmp_path):
    shoot = tmp_path / "shoot"
    (shoot / "day2").mkdir(parents=True)
    Image.open(photos / "a.jpg").save(shoot / "day2" / "b.jpg")
    page = tmp_path / "compare.html"
    code, out = enhance(str(shoot), str(photos / "a.jpg"), "-o", str(tmp_path / "out"),
                        "--model", str(model), "--compare", str(page))
    assert code == 0, out
    html = page.read_text()
    assert "day2/b.jpg" in html and ">a.jpg<" in html
    assert str(tmp_path) not in html and str(photos) not in html  # no absolute paths


def test_enhance_compare_refuses_a_non_html_name_and_an_existing_page(model, photos,  # noqa: F811
                                                                       tmp_path):
    code, out = enhance(str(photos / "a.jpg"), "-o", str(tmp_path), "--model", str(model),
                        "--compare", str(tmp_path / "compare.png"))
    assert code == 1 and "the page is HTML" in out
    (tmp_path / "compare.html").write_text("mine")
    code, out = enhance(str(photos / "a.jpg"), "-o", str(tmp_path / "out"), "--model",
                        str(model), "--compare", str(tmp_path / "compare.html"))
    assert code == 1 and "exists; pass --force" in out
    assert (tmp_path / "compare.html").read_text() == "mine"
    assert not (tmp_path / "out").exists()  # refused before any photo was touched


def test_when_no_photo_is_enhanced_no_page_is_written(model, photos, tmp_path):  # noqa: F811
    code, out = enhance(str(photos / "missing.jpg"), "-o", str(tmp_path / "out"), "--model",
                        str(model), "--compare", str(tmp_path / "compare.html"))
    assert code == 1 and "not written, no photo was enhanced" in out
    assert not (tmp_path / "compare.html").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@needs_chromium
def test_in_chromium_the_enhance_page_loads(model, photos, tmp_path):  # noqa: F811
    page = tmp_path / "compare.html"
    code, out = enhance(str(photos), "-o", str(tmp_path / "out"), "--model", str(model),
                        "--compare", str(page))
    assert code == 0, out
    assert 'data-images="loaded 6 of 6"' in dump_dom(page)  # 3 photos, before and after each


def test_a_page_that_cannot_be_finished_names_itself_and_leaves_nothing(tmp_path, monkeypatch):
    from gan.deploy import compare

    page = ComparePage(tmp_path / "page.html", "t")
    page.add(comparison("a", solid(RED), {"ours": solid(BLUE)}))
    monkeypatch.setattr(compare, "PAGE_TAIL", None)  # write(None): the last write fails
    with pytest.raises(TypeError):
        page.close()
    assert list(tmp_path.iterdir()) == []
    full = OSError(28, "No space left on device")

    def no_space(self, target):
        raise full
    monkeypatch.setattr(compare.AtomicTarget, "__init__", no_space)
    with pytest.raises(OSError, match=r"page\.html.*no space left"):
        ComparePage(tmp_path / "page.html", "t").add(comparison("a", solid(RED),
                                                                {"ours": solid(BLUE)}))
