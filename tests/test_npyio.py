import numpy as np
import pytest

from gan.data.npyio import NpyAppender
from gan.fsio import WriteError
from tests.conftest import temporaries


def test_rows_appended_in_pieces_load_as_one_array(tmp_path):
    path = tmp_path / "a.npy"
    rng = np.random.default_rng(0)
    parts = [rng.integers(0, 255, (n, 4, 4, 3), dtype=np.uint8) for n in (3, 0, 5)]
    with NpyAppender(path, (4, 4, 3)) as writer:
        for part in parts:
            writer.append(part)
        assert not path.exists()  # only the temporary file exists until close
    loaded = np.load(path, mmap_mode="r")
    assert loaded.shape == (8, 4, 4, 3)
    np.testing.assert_array_equal(loaded, np.concatenate(parts))


def test_append_file_copies_raw_rows(tmp_path):
    path = tmp_path / "b.npy"
    rows = np.arange(2 * 2 * 3 * 3, dtype=np.uint8).reshape(3, 2, 2, 3)
    raw = tmp_path / "spill"
    raw.write_bytes(rows[1:].tobytes())
    with NpyAppender(path, (2, 2, 3)) as writer:
        writer.append(rows[:1])
        writer.append_file(raw, 2)
        with pytest.raises(ValueError, match="expected"):
            writer.append_file(raw, 3)  # wrong size: refused, nothing appended
    np.testing.assert_array_equal(np.load(path), rows)


def test_large_row_counts_fit_the_header(tmp_path):
    path = tmp_path / "c.npy"
    writer = NpyAppender(path, (96, 96, 3))
    writer.rows = 10**9  # the header must hold any realistic count without moving the data
    writer.close()
    with open(path, "rb") as f:
        assert np.lib.format.read_magic(f) == (1, 0)
        shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        assert f.tell() == 128  # the data starts where it did with 0 rows
    assert shape == (10**9, 96, 96, 3) and dtype == np.uint8


def test_an_error_leaves_no_file(tmp_path):
    path = tmp_path / "d.npy"
    with pytest.raises(RuntimeError):
        with NpyAppender(path, (2,)) as writer:
            writer.append(np.zeros((1, 2), np.uint8))
            raise RuntimeError("interrupted")
    assert not path.exists() and not temporaries(tmp_path)


def test_wrong_row_shape_is_refused(tmp_path):
    with NpyAppender(tmp_path / "e.npy", (2, 2)) as writer:
        with pytest.raises(ValueError, match="expected rows"):
            writer.append(np.zeros((1, 3, 3), np.uint8))


def test_a_failure_while_finishing_leaves_no_file(tmp_path, monkeypatch):
    path = tmp_path / "f.npy"
    path.write_bytes(b"the previous array")
    writer = NpyAppender(path, (2,))
    writer.append(np.zeros((3, 2), np.uint8))

    def full_disk(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(writer._target, "commit", full_disk)
    with pytest.raises(WriteError, match=r"f\.npy: cannot write: no space left on the device"):
        writer.close()
    assert path.read_bytes() == b"the previous array" and not temporaries(tmp_path)
