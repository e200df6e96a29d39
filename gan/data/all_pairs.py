"""Training on every pair: the test split's aligned crops appended to the training arrays.

The shipped model (tools/pretrained.sh with ALL_PAIRS=1) learns from all the pairs there are,
because its quality is measured elsewhere: by a cross-validation whose every figure is
out-of-fold (bench/small_data.py --cv). After ``train_on_every_pair(folder)``::

    train_{phone,dslr}.npy   rows 0..n-1: the training pairs, as the extract stage wrote them
                             rows n..n+m-1: the test split's rows 0..m-1 (pairs.csv says which)
    test_{phone,dslr}.npy    unchanged: the evaluate stage still scores them, now as seen pairs
    all_pairs.json           {"train_rows": n, "test_rows": m, "rows": n + m, ...}

Why a step after extract rather than a params key read by the extract stage: inside the DVC
pipeline the test split is held out by construction, and eval.json's "test" scores (which
``dvc metrics diff`` compares across experiments) stay test scores; no setting of an experiment
can silently turn them into scores on seen pairs. Training on the test pairs is a decision of
the publishing script alone, which tells the model card (publish --all-pairs).

The pair set's fingerprint (gan.data.patches.data_fingerprint) covers the arrays' sizes, so a
checkpoint of a held-out run is never resumed on the merged arrays, nor the other way round.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from gan.data.npyio import NpyAppender
from gan.fsio import write_bytes

RECORD = "all_pairs.json"
SIDES = ("phone", "dslr")
_ROWS_AT_ONCE = 4096  # 110 MB of 96x96 crops: memory stays flat at any data size


def train_on_every_pair(folder: Path) -> dict[str, int]:
    """Append the test split's crops to the training arrays of the extract stage's ``folder``;
    returns (and records in ``folder/all_pairs.json``) the row counts.

    Each merged array is written to a temporary beside it and renamed over the old one
    (gan.data.npyio), both only once both are complete, and the record comes last. A folder already
    merged (its record present, the sizes as recorded) is returned as it is; arrays that
    disagree (a crash between the two renames) are refused: extract again."""
    folder = Path(folder)
    arrays = {(split, side): np.load(folder / f"{split}_{side}.npy", mmap_mode="r")
              for split in ("train", "test") for side in SIDES}
    record_path = folder / RECORD
    if record_path.exists():
        record = json.loads(record_path.read_text())
        if all(len(arrays[("train", side)]) == record["rows"] for side in SIDES):
            return record
        raise ValueError(f"{folder}: {RECORD} records {record['rows']} training rows, but the "
                         "arrays hold other counts; run the extract stage again")
    train, test = (len(arrays[(split, "phone")]) for split in ("train", "test"))
    for split, rows in (("train", train), ("test", test)):
        if len(arrays[(split, "dslr")]) != rows:
            raise ValueError(f"{folder}: {split}_phone.npy has {rows} rows but {split}_dslr.npy "
                             f"{len(arrays[(split, 'dslr')])}; run the extract stage again")
    shape = arrays[("train", "phone")].shape[1:]
    if any(a.shape[1:] != shape or a.dtype != np.uint8 for a in arrays.values()):
        raise ValueError(f"{folder}: the patch arrays differ in crop size or type; run the "
                         "extract stage again")
    writers = {side: NpyAppender(folder / f"train_{side}.npy", shape) for side in SIDES}
    try:
        for side, writer in writers.items():
            for split in ("train", "test"):
                source = arrays[(split, side)]
                for start in range(0, len(source), _ROWS_AT_ONCE):
                    writer.append(np.asarray(source[start:start + _ROWS_AT_ONCE]))
    except BaseException:
        for writer in writers.values():
            writer.abort()
        raise
    for writer in writers.values():
        writer.close()
    record = {"train_rows": train, "test_rows": test, "rows": train + test,
              "note": f"training rows {train}..{train + test - 1} are the test split's rows "
                      f"0..{test - 1} (pairs.csv): the model trains on every pair"}
    write_bytes(record_path, (json.dumps(record, indent=2) + "\n").encode())
    return record
