import json

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from gan.data.dped import DpedSource, find_layout
from gan.data.extract import extract
from gan.data.sample import write_sample_zip
from stages.app import app
from stages.params import ParamsError, load_params, params_from_dict
from tests.conftest import (ROOT, extract_config, jpeg, shifted_pair, temporaries, textured,
                            write_dped_zip)


def run_extract(archive, out, workers=2, **cfg):
    with DpedSource(archive) as source:
        layout = find_layout(source.names(), "iphone")
    return extract(archive, layout, out, extract_config(**cfg), workers=workers)


@pytest.fixture(scope="module")
def sample_zip(tmp_path_factory):
    path = tmp_path_factory.mktemp("sample") / "dped.zip"
    shifts = write_sample_zip(path, "iphone", train_pairs=300, test_pairs=60, seed=11)
    return path, shifts


def test_injected_shifts_of_a_synthetic_archive_are_recovered(sample_zip, tmp_path):
    archive, truth = sample_zip
    summary = run_extract(archive, tmp_path / "out")
    for split in ("train", "test"):
        rows = [r for r in summary.rows if r.split == split]
        hits = [(r.dx, r.dy) == truth[split][r.index] for r in rows]
        assert np.mean(hits) >= 0.95, f"{split}: {np.mean(hits):.3f} of shifts recovered"
    phone = np.load(tmp_path / "out" / "train_phone.npy", mmap_mode="r")
    dslr = np.load(tmp_path / "out" / "train_dslr.npy", mmap_mode="r")
    assert phone.shape == dslr.shape == (summary.kept["train"], 96, 96, 3)
    assert phone.dtype == np.uint8
    assert summary.kept["train"] >= 0.95 * 300
    assert sorted(p.name for p in (tmp_path / "out" / "full_size").iterdir()) == ["0.jpg", "1.jpg"]


def test_output_does_not_depend_on_the_number_of_workers(sample_zip, tmp_path):
    archive, _ = sample_zip
    one = run_extract(archive, tmp_path / "one", workers=1)
    two = run_extract(archive, tmp_path / "two", workers=2)
    for name in ("train_phone.npy", "train_dslr.npy", "test_phone.npy", "test_dslr.npy"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    assert [r.reason for r in one.rows] == [r.reason for r in two.rows]
    assert not (tmp_path / "two" / ".spill").exists()


def test_a_full_disk_in_a_worker_names_the_file_it_could_not_write(sample_zip, tmp_path,
                                                                    monkeypatch):
    # A worker's failed write() carries no file name: the stage said "an output file".
    import errno

    import gan.data.extract
    from gan.fsio import as_write_error

    real_open = open

    class FullDisk:
        def __init__(self, file):
            self.file = file

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.file.close()

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

    def open_on_a_full_disk(path, mode="r", *args, **kwargs):
        opened = real_open(path, mode, *args, **kwargs)
        return FullDisk(opened) if ".spill" in str(path) and "w" in mode else opened

    monkeypatch.setattr(gan.data.extract, "open", open_on_a_full_disk, raising=False)
    with pytest.raises(OSError) as failed:  # the workers are forked: they see the patch
        run_extract(sample_zip[0], tmp_path / "out", workers=2)
    assert failed.value.errno == errno.ENOSPC and ".spill" in failed.value.filename
    message = str(as_write_error(failed.value.filename, failed.value))
    assert message.startswith(str(tmp_path / "out" / ".spill")) and "no space left" in message
    assert not (tmp_path / "out" / ".spill").exists()


def test_kept_rows_hold_the_aligned_crops(sample_zip, tmp_path):
    archive, _ = sample_zip
    summary = run_extract(archive, tmp_path / "out", workers=1)
    phone = np.load(tmp_path / "out" / "test_phone.npy")
    with DpedSource(archive) as source:
        from gan.data.dped import decode_patch

        row = next(r for r in summary.rows if r.split == "test" and r.kept and r.index == 7)
        raw = decode_patch(source.read(f"dped/iphone/test_data/patches/iphone/{row.index}.jpg"))
    np.testing.assert_array_equal(phone[row.row], raw[2 + row.dy:98 + row.dy, 2 + row.dx:98 + row.dx])


@pytest.fixture
def damaged_zip(tmp_path):
    rng = np.random.default_rng(5)
    files = {}
    for i in range(6):
        phone, dslr = shifted_pair(rng, dx=1, dy=-1)
        files[f"training_data/iphone/{i}.jpg"] = jpeg(phone)
        files[f"training_data/canon/{i}.jpg"] = jpeg(dslr)
    good = files["training_data/iphone/0.jpg"]
    files["training_data/iphone/6.jpg"] = good[: len(good) // 2]  # truncated phone JPEG
    files["training_data/canon/6.jpg"] = files["training_data/canon/0.jpg"]
    files["training_data/iphone/7.jpg"] = good
    files["training_data/canon/7.jpg"] = b"not a jpeg at all"  # garbage DSLR file
    files["training_data/iphone/8.jpg"] = good  # phone side only
    files["training_data/canon/9.jpg"] = good  # DSLR side only
    files["training_data/iphone/10.jpg"] = jpeg(textured(rng, 90))  # wrong size
    files["training_data/canon/10.jpg"] = jpeg(textured(rng, 90))
    flat = jpeg(np.full((100, 100, 3), 255, np.uint8))
    files["training_data/iphone/11.jpg"] = flat  # saturated white on both sides
    files["training_data/canon/11.jpg"] = flat
    files["training_data/iphone/12.jpg"] = jpeg(textured(rng, 100))  # unrelated scenes
    files["training_data/canon/12.jpg"] = jpeg(textured(rng, 100))
    phone, dslr = shifted_pair(rng, dx=0, dy=2)
    files["test_data/patches/iphone/0.jpg"] = jpeg(phone)
    files["test_data/patches/canon/0.jpg"] = jpeg(dslr)
    return write_dped_zip(tmp_path / "damaged.zip", files)


def test_bad_files_are_counted_and_named_not_fatal(damaged_zip, tmp_path):
    summary = run_extract(damaged_zip, tmp_path / "out")
    reasons = {r.index: r for r in summary.rows if r.split == "train"}
    assert [reasons[i].reason for i in range(6)] == ["ok"] * 6
    assert all((reasons[i].dx, reasons[i].dy) == (1, -1) for i in range(6))
    assert reasons[6].reason == "unreadable_phone" and "training_data/iphone/6.jpg" in reasons[6].detail
    assert reasons[7].reason == "unreadable_dslr" and "training_data/canon/7.jpg" in reasons[7].detail
    assert reasons[8].reason == "missing_dslr"
    assert reasons[9].reason == "missing_phone"
    assert reasons[10].reason == "wrong_size" and "90x90" in reasons[10].detail
    assert reasons[11].reason == "flat"
    assert reasons[12].reason == "low_ncc"
    metrics = summary.metrics()
    assert metrics["pairs_read"] == 14 and metrics["kept"] == 7
    assert metrics["dropped"] == {"missing_phone": 1, "missing_dslr": 1, "unreadable_phone": 1,
                                  "unreadable_dslr": 1, "wrong_size": 1, "flat": 1, "low_ncc": 1}
    assert metrics["shift_histogram"] == {"dx": {"0": 1, "1": 6}, "dy": {"-1": 6, "2": 1}}
    assert np.load(tmp_path / "out" / "train_phone.npy").shape == (6, 96, 96, 3)


def write_params(path, **extract_values):
    values = {"patch": 100, "crop": 96, "max_shift": 2, "min_ncc": 0.5, "subpixel": True,
              "workers": 1, **extract_values}
    data = yaml.safe_load((ROOT / "params.yaml").read_text())["data"]  # a section is whole
    path.write_text(yaml.safe_dump({"data": data, "extract": values}))
    return path


def test_stage_writes_pairs_csv_and_metrics(damaged_zip, tmp_path):
    params = write_params(tmp_path / "params.yaml")
    out, metrics = tmp_path / "patches", tmp_path / "metrics" / "extract.json"
    result = CliRunner().invoke(app, ["extract", "--params", str(params), "--raw", str(damaged_zip),
                                      "--out", str(out), "--metrics", str(metrics), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "kept 7 of 14 pairs" in result.output
    assert "unreadable_phone" in result.output  # bad files are named on the console too
    table = pd.read_csv(out / "pairs.csv")
    assert list(table.columns[:7]) == ["split", "index", "dx", "dy", "ncc", "kept", "reason"]
    assert table.set_index("index").loc[6, "reason"] == "unreadable_phone"
    assert table["fx"].notna().sum() == 9  # sub-pixel shifts recorded for the aligned pairs
    report = json.loads(metrics.read_text())
    assert report["kept"] == 7 and report["pairs_per_s"] > 0
    assert set(report) >= {"pairs_read", "dropped", "shift_histogram", "by_split"}


def test_stage_fails_when_nothing_usable_remains(tmp_path):
    flat = jpeg(np.full((100, 100, 3), 30, np.uint8))
    files = {"training_data/iphone/0.jpg": flat, "training_data/canon/0.jpg": flat,
             "test_data/patches/iphone/0.jpg": b"junk", "test_data/patches/canon/0.jpg": flat}
    archive = write_dped_zip(tmp_path / "bad.zip", files)
    params = write_params(tmp_path / "params.yaml")
    result = CliRunner().invoke(app, ["extract", "--params", str(params), "--raw", str(archive),
                                      "--out", str(tmp_path / "p"), "--metrics",
                                      str(tmp_path / "m.json"), "--no-progress"])
    assert result.exit_code == 1
    assert "no usable training pairs" in result.output


def test_a_failed_run_keeps_the_good_patches_and_metrics(damaged_zip, tmp_path):
    params = write_params(tmp_path / "params.yaml")
    out, metrics = tmp_path / "patches", tmp_path / "extract.json"
    args = ["extract", "--params", str(params), "--out", str(out), "--metrics", str(metrics),
            "--no-progress"]
    assert CliRunner().invoke(app, [*args, "--raw", str(damaged_zip)]).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    good_metrics = metrics.read_text()
    junk = write_dped_zip(tmp_path / "junk.zip", {  # a zip of non-JPEGs in the DPED layout
        f"{folder}/{side}/{k}.jpg": b"not a jpeg" for k in range(3) for side in ("iphone", "canon")
        for folder in ("training_data", "test_data/patches")})
    result = CliRunner().invoke(app, [*args, "--raw", str(junk)])
    assert result.exit_code == 1 and "was left as it was" in result.output
    assert {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert metrics.read_text() == good_metrics
    assert "unreadable_phone" in (tmp_path / "patches.rejected-pairs.csv").read_text()
    assert not temporaries(tmp_path) and not list(tmp_path.glob(".*"))


def test_stage_refuses_a_shift_the_margin_cannot_hold(damaged_zip, tmp_path):
    params = write_params(tmp_path / "params.yaml", max_shift=3)
    result = CliRunner().invoke(app, ["extract", "--params", str(params), "--raw", str(damaged_zip),
                                      "--out", str(tmp_path / "p"), "--metrics",
                                      str(tmp_path / "m.json")])
    assert result.exit_code == 1
    assert "extract.max_shift 3" in result.output


def test_extract_settings_come_from_params_and_a_missing_key_is_named():
    assert extract_config() == load_params(ROOT / "params.yaml").extract
    with pytest.raises(ParamsError, match=r"^x: extract.max_shift is missing \(an integer"):
        params_from_dict({"extract": {"crop": 96, "patch": 100, "subpixel": False,
                                      "workers": 2}}, "x")
