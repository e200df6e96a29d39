"""Streaming writer for .npy arrays whose length is known only at the end.

The extract stage writes N x 96 x 96 x 3 patch arrays with N up to 160k (4.4 GB per array).
Appending rows with plain file writes keeps the writer's memory flat (a memmap being filled
would count every touched page in the process's resident set); readers open the result with
``np.load(path, mmap_mode='r')``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from types import TracebackType

import numpy as np

from gan.fsio import AtomicTarget, naming_write_errors

_MAGIC = b"\x93NUMPY\x01\x00"  # format version 1.0
# Room reserved for the header so the final row count always fits without moving the data;
# a multiple of 64 keeps the data aligned, as numpy's own writer does.
_HEADER_BYTES = 128


def _header(dtype: np.dtype, shape: tuple[int, ...]) -> bytes:
    text = repr({"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                 "shape": shape})
    body_len = _HEADER_BYTES - len(_MAGIC) - 2
    if len(text) + 1 > body_len:
        raise ValueError(f"npy header for shape {shape} does not fit {_HEADER_BYTES} bytes")
    body = text.ljust(body_len - 1).encode("latin1") + b"\n"
    return _MAGIC + len(body).to_bytes(2, "little") + body


class NpyAppender:
    """Append rows of a fixed shape to ``path``, atomically (gan.fsio: a temporary beside it,
    renamed on close).

    Use as a context manager: on a clean exit the header gets the final row count, the file is
    flushed to disk and atomically renamed to ``path``; on an exception the temporary file is
    removed and ``path`` is left as it was.
    """

    def __init__(self, path: Path, row_shape: tuple[int, ...], dtype: np.dtype | type = np.uint8):
        self.path = Path(path)
        self._target = AtomicTarget(self.path)
        self.tmp = self._target.temporary
        self.row_shape = tuple(row_shape)
        self.dtype = np.dtype(dtype)
        self.rows = 0
        self._file = open(self.tmp, "wb")
        self._file.write(_header(self.dtype, (0, *self.row_shape)))

    def append(self, rows: np.ndarray) -> None:
        """rows: (k, *row_shape) of the writer's dtype."""
        if rows.shape[1:] != self.row_shape or rows.dtype != self.dtype:
            raise ValueError(f"{self.path.name}: expected rows {self.row_shape} {self.dtype}, "
                             f"got {rows.shape[1:]} {rows.dtype}")
        with naming_write_errors(self.path):
            self._file.write(np.ascontiguousarray(rows).tobytes())
        self.rows += rows.shape[0]

    def append_file(self, path: Path, rows: int) -> None:
        """Append ``rows`` rows stored raw (C order, the writer's dtype) in the file at ``path``.

        The copy happens inside the kernel (copy_file_range) where the platform allows.
        """
        size = rows * int(np.prod(self.row_shape)) * self.dtype.itemsize
        actual = os.path.getsize(path)
        if actual != size:
            raise ValueError(f"{path}: expected {size} bytes for {rows} rows, found {actual}")
        with naming_write_errors(self.path):
            self._copy_in(path, size)
        self.rows += rows

    def _copy_in(self, path: Path, size: int) -> None:
        self._file.flush()
        with open(path, "rb") as src:
            try:
                left = size
                while left:
                    copied = os.copy_file_range(src.fileno(), self._file.fileno(), left)
                    if copied == 0:
                        raise OSError(f"{path}: copy_file_range stopped with {left} bytes left")
                    left -= copied
            except (AttributeError, OSError):  # no copy_file_range here: copy through user space
                src.seek(size - left)
                self._file.seek(0, os.SEEK_END)
                shutil.copyfileobj(src, self._file, 1 << 20)
        self._file.seek(0, os.SEEK_END)

    def close(self) -> Path:
        try:
            with naming_write_errors(self.path):
                self._file.seek(0)
                self._file.write(_header(self.dtype, (self.rows, *self.row_shape)))
                self._file.close()
                return self._target.commit()
        except BaseException:  # a full disk at the last write: no temporary left behind
            self.abort()
            raise

    def abort(self) -> None:
        self._file.close()
        self._target.discard()

    def __enter__(self) -> "NpyAppender":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
