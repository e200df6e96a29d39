"""PIRM index splits as params.yaml states them ('0-159', '0-99,200-299'): parsing, checking,
printing. Plain string work with no dependencies, so params validation (stages/params.py) and the
PIRM source (gan.data.pirm) share one parser without the validation pulling in archive code."""

from __future__ import annotations

import re
from collections.abc import Sequence

_RANGE_RE = re.compile(r"^(\d+)(?:\s*-\s*(\d+))?$")
_SHOWN_RANGES = 8  # a message names at most this many ranges of indices


class SplitError(ValueError):
    """data.pirm_train / data.pirm_test is malformed, empty, overlapping or names absent pairs."""


def parse_indices(spec: object, key: str) -> list[int]:
    """'0-159' / '0-99,200-299' / 7 -> the sorted indices (inclusive ranges, duplicates merged);
    an empty string or null -> [].

    ``key`` names the param in errors. A bool is refused although YAML makes it an int, and so is
    anything that is not an int or a string: the split is a param people type, so a typo must
    not silently become another split.
    """
    if spec is None or (isinstance(spec, str) and not spec.strip()):
        return []  # parse_split says the split is empty, naming it
    if isinstance(spec, int) and not isinstance(spec, bool):
        spec = str(spec)
    if not isinstance(spec, str):
        raise SplitError(f"{key}: expected a string of inclusive index ranges such as '0-159' or "
                         f"'0-99,200-299' (or one integer), got {spec!r}")
    indices: set[int] = set()
    parts = [p.strip() for p in spec.split(",")]
    for part in parts:
        where = f"{part!r} in {spec!r}" if len(parts) > 1 else repr(part)
        m = _RANGE_RE.match(part)
        if not m:
            raise SplitError(f"{key}: {where} is not an index or a range 'A-B' of non-negative "
                             "integers (ranges are comma-separated, e.g. '0-99,200-299')")
        first, last = int(m[1]), int(m[2] if m[2] is not None else m[1])
        if last < first:
            raise SplitError(f"{key}: the range {where} runs backwards; write {last}-{first}")
        indices.update(range(first, last + 1))
    return sorted(indices)


def format_indices(indices: Sequence[int], limit: int | None = None) -> str:
    """[0, 1, 2, 5, 7, 8] -> '0-2,5,7-8', the form parse_indices reads. Beyond ``limit`` ranges,
    the first ``limit``, '...' and the last one (the caller says how many indices there are)."""
    ranges: list[str] = []
    values = sorted(set(indices))
    start = 0
    for k in range(1, len(values) + 1):
        if k == len(values) or values[k] != values[k - 1] + 1:
            first, last = values[start], values[k - 1]
            ranges.append(str(first) if first == last else f"{first}-{last}")
            start = k
    if limit is not None and len(ranges) > limit:
        return ",".join(ranges[:limit] + ["...", ranges[-1]])
    return ",".join(ranges)


def parse_split(train_spec: object, test_spec: object,
                keys: tuple[str, str] = ("data.pirm_train", "data.pirm_test")) -> tuple[list[int], list[int]]:
    """Both splits, checked for what the params alone can tell: format, emptiness, overlap.

    Whether the source holds every index is ``check_split``'s job, once the source is at hand;
    this runs first, so a typo fails before a download.
    """
    train, test = parse_indices(train_spec, keys[0]), parse_indices(test_spec, keys[1])
    _check_disjoint(train, test, keys)
    return train, test


def _check_disjoint(train: Sequence[int], test: Sequence[int], keys: tuple[str, str]) -> None:
    """Neither split empty, no pair in both."""
    for key, indices in zip(keys, (train, test)):
        if not indices:
            raise SplitError(f"{key}: the split is empty; give at least one PIRM index")
    shared = sorted(set(train) & set(test))
    if shared:
        raise SplitError(f"{keys[0]} ({format_indices(train, _SHOWN_RANGES)}) and {keys[1]} "
                         f"({format_indices(test, _SHOWN_RANGES)}) share {_count(shared)}: "
                         f"{format_indices(shared, _SHOWN_RANGES)}; a pair must be in one split "
                         "only, or the test scores measure memory")


def _count(indices: Sequence[int]) -> str:
    return f"{len(indices)} {'index' if len(indices) == 1 else 'indices'}"
