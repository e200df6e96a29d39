"""gan.evaluation.evaluate's data side: the raw test pairs, the full-size photos read through
enhance's decoder, and the full-size scores computed one photo at a time."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from gan.deploy.photo_io import read_photo
from gan.evaluation import evaluate as evaluation
from gan.data.patches import to_tensor
from gan.evaluation.evaluate import (Method, array_chunks, full_size_scores, identity_method,
                                     raw_test_chunks, raw_test_pairs, read_rgb8, score_method,
                                     score_methods)
from gan.evaluation.loe import lightness_order_error
from gan.evaluation.niqe import niqe
from gan.look import look_stats
from tests.conftest import jpeg, temporaries, write_dped_zip


def test_raw_test_pairs_skip_undecodable_and_odd_sized_pairs(tmp_path):
    rng = np.random.default_rng(0)
    patch = lambda size=100: jpeg(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))  # noqa: E731
    test = "test_data/patches/"
    archive = write_dped_zip(tmp_path / "dped.zip", {
        f"{test}iphone/0.jpg": patch(), f"{test}canon/0.jpg": patch(),
        f"{test}iphone/1.jpg": b"not a jpeg", f"{test}canon/1.jpg": patch(),
        f"{test}iphone/2.jpg": patch(90), f"{test}canon/2.jpg": patch(90),  # another size
        f"{test}iphone/3.jpg": patch(), f"{test}canon/3.jpg": patch(),
        "training_data/iphone/0.jpg": patch(), "training_data/canon/0.jpg": patch(),
    })
    phone, dslr, indices = raw_test_pairs(archive, "iphone")
    assert indices.tolist() == [0, 3]
    assert phone.shape == dslr.shape == (2, 100, 100, 3) and phone.dtype == np.uint8


def test_raw_test_pairs_without_a_usable_pair_name_the_archive(tmp_path):
    archive = write_dped_zip(tmp_path / "dped.zip", {
        "test_data/patches/iphone/0.jpg": b"x", "test_data/patches/canon/0.jpg": b"y",
        "training_data/iphone/0.jpg": b"x", "training_data/canon/0.jpg": b"y"})
    with pytest.raises(ValueError, match="dped.zip: no decodable test pairs"):
        raw_test_pairs(archive, "iphone")


def test_full_size_photos_are_read_upright_by_the_decoder_enhance_ships(tmp_path):
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 6  # orientation: the camera was turned; upright is 90 degrees clockwise
    path = tmp_path / "turned.png"
    image.save(path, exif=exif.tobytes())
    rgb = read_rgb8(path)
    assert rgb.shape == (60, 40, 3) and rgb.dtype == np.uint8
    assert np.array_equal(rgb, np.rint(read_photo(path).rgb * 255).astype(np.uint8))
    assert np.array_equal(rgb, np.rot90(pixels, -1))
    gray = tmp_path / "gray.png"
    Image.fromarray(pixels[..., 0]).save(gray)
    assert np.array_equal(read_rgb8(gray), np.repeat(pixels[..., :1], 3, axis=2))


def test_full_size_scores_stream_one_photo_at_a_time_and_save_the_first(tmp_path, monkeypatch):
    rng = np.random.default_rng(2)
    photos = []
    for k, size in enumerate([(30, 50), (44, 36), (20, 20)]):
        path = tmp_path / "photos" / f"{k}.png"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(path)
        photos.append(path)
    events = []
    real_read = evaluation.read_rgb8

    def logged_read(path):
        events.append(f"read {path.stem}")
        return real_read(path)

    def logged(name, fn):
        return lambda image: events.append(name) or fn(image)

    monkeypatch.setattr(evaluation, "read_rgb8", logged_read)
    same = Method("same", lambda batch: None, photo=logged("same", lambda image: image))
    darker = Method("darker", lambda batch: None, photo=logged("darker", lambda image: image // 2))
    out = tmp_path / "eval"
    loe, naturalness, speed = full_size_scores([same, darker], photos, out, keep=2)
    # One photo at a time: each is read, then enhanced by every method, before the next is read.
    assert events == [e for k in range(3) for e in (f"read {k}", "same", "darker")]
    assert loe["same"] == 0.0 and set(speed) == {"same", "darker"}
    # photos this small hold no two 96x96 blocks: no NIQE (test_full_size_niqe_* has them)
    assert naturalness == {"input": None, "same": None, "darker": None}
    expected = np.mean([lightness_order_error(real_read(p), real_read(p) // 2) for p in photos])
    assert loe["darker"] == round(float(expected), 1) > 0
    saved = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert saved == ["darker/0.png", "darker/1.png", "input/0.png", "input/1.png",
                     "same/0.png", "same/1.png"]
    assert np.array_equal(np.asarray(Image.open(out / "darker" / "1.png")),
                          real_read(photos[1]) // 2)
    assert not temporaries(out)


def test_full_size_scores_without_photos_are_empty(tmp_path):
    assert full_size_scores([identity_method()], [], tmp_path, keep=2) == ({}, {}, {})


def test_full_size_niqe_scores_the_input_once_and_each_output(tmp_path, monkeypatch):
    rng = np.random.default_rng(4)
    photos = []
    for k, size in enumerate([(192, 288), (20, 20), (150, 150)]):  # 2nd, 3rd: under 2 blocks
        path = tmp_path / "photos" / f"{k}.png"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(path)
        photos.append(path)
    scored = []
    monkeypatch.setattr(evaluation, "niqe", lambda image: scored.append(image.shape) or niqe(image))
    same = Method("same", lambda batch: None, photo=lambda image: image)
    darker = Method("darker", lambda batch: None, photo=lambda image: image // 2)
    flat = Method("flat", lambda batch: None, photo=lambda image: np.full_like(image, 128))
    _, naturalness, _ = full_size_scores([same, darker, flat], photos, tmp_path / "eval", keep=0)
    assert scored == [(192, 288, 3)] * 4  # the input once, then each output; small ones skipped
    photo = read_rgb8(photos[0])
    assert naturalness == {"input": round(niqe(photo), 2), "same": round(niqe(photo), 2),
                           "darker": round(niqe(photo // 2), 2),
                           "flat": None}  # NIQE is undefined on a flat image: null, not NaN


def test_score_method_adds_the_look_against_the_target_chunk_by_chunk():
    rng = np.random.default_rng(3)
    patches = rng.integers(0, 256, (7, 12, 12, 3), dtype=np.uint8)
    same, _ = score_method(identity_method(), patches, patches, chunk=3)
    look = {k: same.summary()[k] for k in ("detail_ratio", "contrast_ratio", "black_diff",
                                          "saturation_ratio")}
    assert look == {"detail_ratio": 1.0, "contrast_ratio": 1.0, "black_diff": 0.0,
                    "saturation_ratio": 1.0}
    assert all(v.shape == (7,) for v in (*same.look.values(), *same.target_look.values()))
    for key, values in look_stats(patches).items():
        assert same.look[key] == pytest.approx(values, abs=1e-4)  # float32 in [0, 1], not uint8
        assert np.array_equal(same.target_look[key], values)
    # A target look computed once by the caller gives the same scores as one computed inside.
    halved = Method("halved", lambda batch: to_tensor(batch) * 0.5)
    inside, _ = score_method(halved, patches, patches, chunk=3)
    given, _ = score_method(halved, patches, patches, chunk=3, target_look=look_stats(patches))
    assert inside.summary() == given.summary()
    assert inside.summary()["contrast_ratio"] == 0.5 and inside.summary()["black_diff"] < 0


def test_every_method_is_scored_chunk_by_chunk_as_it_would_be_on_all_pairs_at_once():
    """The evaluate stage streams the test pairs (a chunk in memory at a time) through every
    method at once: the per-patch scores, the look and the kept first outputs must be those of
    scoring each method alone on all the pairs."""
    rng = np.random.default_rng(8)
    phone = rng.integers(0, 256, (11, 16, 16, 3), dtype=np.uint8)
    dslr = rng.integers(0, 256, (11, 16, 16, 3), dtype=np.uint8)
    methods = [identity_method(), Method("halved", lambda batch: to_tensor(batch) * 0.5)]
    done = score_methods(methods, array_chunks(phone, dslr, chunk=4, indices=np.arange(11) + 100))
    assert done.indices.tolist() == list(range(100, 111))
    assert np.array_equal(done.first_dslr, dslr[:4])
    for method in methods:
        alone, first = score_method(method, phone, dslr, chunk=11)
        got = done.scores[method.name]
        for key in ("psnr", "ssim", "ms_ssim"):
            np.testing.assert_array_equal(getattr(got, key), getattr(alone, key), err_msg=key)
        for key in alone.look:
            assert np.array_equal(got.look[key], alone.look[key])
            assert np.array_equal(got.target_look[key], alone.target_look[key])
        assert np.array_equal(done.first[method.name], first[:4])
    with pytest.raises(ValueError, match="no test pairs"):
        score_methods(methods, iter(()))


def test_raw_test_pairs_come_in_chunks_of_one_size_in_index_order(tmp_path):
    rng = np.random.default_rng(2)
    patch = lambda size=100: jpeg(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))  # noqa: E731
    files = {"training_data/iphone/0.jpg": patch(), "training_data/canon/0.jpg": patch()}
    for k in range(7):
        size = 90 if k == 2 else 100  # pair 2 has another size: skipped
        files[f"test_data/patches/iphone/{k}.jpg"] = patch(size)
        files[f"test_data/patches/canon/{k}.jpg"] = patch(size)
    archive = write_dped_zip(tmp_path / "dped.zip", files)
    chunks = list(raw_test_chunks(archive, "iphone", chunk=4))
    assert [c[2].tolist() for c in chunks] == [[0, 1, 3, 4], [5, 6]]
    phone, dslr, indices = raw_test_pairs(archive, "iphone")
    assert np.array_equal(np.concatenate([c[0] for c in chunks]), phone)
    assert indices.tolist() == [0, 1, 3, 4, 5, 6]


def test_an_undefined_ms_ssim_is_counted_and_left_out_of_the_mean_and_the_bars_survive_null():
    from gan.evaluation.evaluate import Scores
    from gan.evaluation.figures import score_bars

    look = {k: np.ones(3) for k in look_stats(np.zeros((1, 4, 4, 3), np.uint8))}
    scores = Scores(np.array([20.0, 22.0, 24.0]), np.array([0.5, 0.6, 0.7]),
                    np.array([0.8, np.nan, 0.9]), 0.0, look, look)
    summary = scores.summary()
    assert summary["ms_ssim"] == 0.85 and summary["ms_ssim_undefined"] == 1
    bars = {"aligned": {"input": {"psnr": 17.0, "ms_ssim": 0.8}, "clhe": {"psnr": 18.0,
                                                                        "ms_ssim": None}}}
    score_bars(bars)  # a null mean (no defined patch) draws no bar, not a crash
