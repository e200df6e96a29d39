"""DPED pairs from the PIRM 2018 challenge repository, normalised to the DPED release layout.

DPED's official host answers 403, but the PIRM 2018 challenge repository (github.com/aiff22/
ai-challenge) still serves 400 DPED iPhone/Canon validation pairs and 4 full-size phone photos::

    <root>dped/patches/iphone/N.jpg    <root>dped/patches/canon/N.jpg    (100x100, N = 0..399)
    <root>dped/HD_res/*.png                                               (full-size phone photos)

(JPEGs in HD_res/ are taken too: gan/data/dped.py reads both as full-size photos.)

``<root>`` is ``ai-challenge-master/`` in GitHub's archive zip and empty in a folder extracted
below it; it is found wherever it lies, and the rest of the repository (super-resolution data,
pretrained models) is ignored. ``normalise`` writes the pairs of a train/test split, chosen by
PIRM index, as one zip in the layout gan/data/dped.py reads (``dped/iphone/training_data/...``,
``dped/iphone/test_data/...``), so the later stages need no PIRM-specific code. Within a split
the pairs are renumbered K = 0..count-1 in increasing PIRM index order (DPED numbers from 0
without gaps); the member bytes are copied unchanged, never re-encoded.
"""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from tqdm import tqdm

from gan.config import (PIRM_PHONE, SHOWN_RANGES, SplitError, check_disjoint, count_indices,
                        format_indices)
from gan.data.archive import _new_zip, _write_entry
from gan.data.dped import DSLR, FULL_SIZE_FOLDER, SPLIT_FOLDERS, DpedSource, LayoutError, _natural_key
from gan.fsio import atomic_path

PHONE = PIRM_PHONE  # PIRM's DPED track has iPhone pairs only
ROOT = f"dped/{PHONE}/"  # where the normalised zip puts them, as the DPED release does
EXPECTED = ("<anything>/dped/patches/iphone/N.jpg beside <anything>/dped/patches/canon/N.jpg "
            "(and full-size photos in <anything>/dped/HD_res/*.png)")
_PATCH_RE = re.compile(r"^(?P<root>(?:.*/)?)dped/patches/(?P<side>iphone|canon)/(?P<index>\d+)\.jpe?g$",
                       re.IGNORECASE)
_FULL_RE = re.compile(r"^(?P<root>(?:.*/)?)dped/HD_res/[^/]+\.(?:png|jpe?g)$", re.IGNORECASE)
_INSIDE_DPED_RE = re.compile(r"^patches/(?:iphone|canon)/\d+\.jpe?g$", re.IGNORECASE)  # dped/ itself


@dataclass
class PirmLayout:
    root: str  # prefix of dped/ inside the source, e.g. 'ai-challenge-master/'
    pairs: dict[int, tuple[str, str]] = field(default_factory=dict)  # index -> (phone, dslr) names
    one_sided: dict[int, str] = field(default_factory=dict)  # index -> the side that exists
    full_size: list[str] = field(default_factory=list)  # names, in natural order


@dataclass
class Normalised:
    """What ``normalise`` wrote: the PIRM index of each pair, position K being its new number."""

    root: str
    train: list[int]
    test: list[int]
    full_size: list[str]  # base names, as in the source


def find_pirm(names: Sequence[str], where: object = "the source") -> PirmLayout:
    """Locate PIRM's dped/ folder among the file names of a source (``where`` names it in errors).

    Raises LayoutError when no patch is found (saying what was expected and what the source
    holds instead), when several folders hold PIRM patches (ambiguous), or when no index has
    both sides.
    """
    sides: dict[str, dict[str, dict[int, str]]] = {}
    full: dict[str, list[str]] = {}
    for name in names:
        if m := _PATCH_RE.match(name):
            sides.setdefault(m["root"], {}).setdefault(m["side"].lower(), {})[int(m["index"])] = name
        elif m := _FULL_RE.match(name):
            full.setdefault(m["root"], []).append(name)
    if not sides:
        raise LayoutError(f"{where}: no PIRM 2018 DPED patches; expected {EXPECTED}, as in the "
                          f"ai-challenge repository, but found {_summary(names)}")
    if len(sides) > 1:
        raise LayoutError(f"{where}: several PIRM DPED folders: "
                          f"{', '.join(r + 'dped/' for r in sorted(sides))}; keep one copy")
    root, found = next(iter(sides.items()))
    phone, dslr = found.get(PHONE, {}), found.get(DSLR, {})
    layout = PirmLayout(root=root)
    for index in sorted(phone.keys() | dslr.keys()):
        if index in phone and index in dslr:
            layout.pairs[index] = (phone[index], dslr[index])
        else:
            layout.one_sided[index] = PHONE if index in phone else DSLR
    if not layout.pairs:
        raise LayoutError(f"{where}: {root}dped/patches/ holds {len(phone)} {PHONE} and {len(dslr)} "
                          f"{DSLR} patches but no index on both sides; expected {EXPECTED}")
    layout.full_size = sorted(full.get(root, []), key=_natural_key)
    return layout


def _summary(names: Sequence[str]) -> str:
    """What a source holds instead of the PIRM layout, in a few words, with a hint if it is DPED."""
    if not names:
        return "no files at all"
    tops = sorted({n.split("/", 1)[0] + ("/" if "/" in n else "") for n in names})
    shown = ", ".join(tops[:6]) + (f" and {len(tops) - 6} more" if len(tops) > 6 else "")
    text = f"{len(names)} files under {shown}"
    if any("/training_data/" in "/" + n for n in names):
        text += ("; this looks like the DPED release layout (training_data/...), which "
                 "data.source: dped reads")
    elif any(_INSIDE_DPED_RE.match(n) for n in names):
        text += ("; this is the dped/ folder itself: point at the folder that holds dped/ "
                 "(the repository's top folder)")
    return text


def check_split(layout: PirmLayout, train: Sequence[int], test: Sequence[int], where: object,
                keys: tuple[str, str] = ("data.pirm_train", "data.pirm_test")) -> None:
    """Both splits non-empty and disjoint, and every index a pair of the source: the absent ones
    are named (abbreviated)."""
    check_disjoint(train, test, keys)
    have = format_indices(layout.pairs, SHOWN_RANGES)
    for key, indices in zip(keys, (train, test)):
        absent = [i for i in indices if i not in layout.pairs]
        if not absent:
            continue
        one_sided = [i for i in absent if i in layout.one_sided]
        detail = ""
        if one_sided:
            detail = (f"; of these, {format_indices(one_sided, SHOWN_RANGES)} "
                      f"{'has' if len(one_sided) == 1 else 'have'} one side only")
        raise SplitError(f"{key} names {count_indices(indices)}; {where} has no pair for "
                         f"{len(absent)} of them: {format_indices(absent, SHOWN_RANGES)}{detail}; "
                         f"the pairs it has are {have}")


def normalise(src: Path, dest: Path, train: Sequence[int], test: Sequence[int],
              progress: bool = False) -> Normalised:
    """Write the PIRM pairs of ``train`` and ``test`` (PIRM indices) from ``src`` (a zip or an
    extracted folder) as the DPED-layout zip ``dest``, atomically.

    Everything is checked before a byte is written (layout, split: ``check_split``); on any error
    ``dest`` is left as it was and no temporary file remains.
    """
    src, dest = Path(src), Path(dest)
    with DpedSource(src) as source:
        layout = find_pirm(source.names(), src)
        check_split(layout, train, test, src)
        splits = {"train": sorted(set(train)), "test": sorted(set(test))}
        total = sum(map(len, splits.values()))
        with atomic_path(dest) as tmp, _new_zip(tmp) as out, tqdm(
                total=total, unit="pair", desc="pirm", disable=not progress) as bar:
            for split, indices in splits.items():
                folder = ROOT + SPLIT_FOLDERS[split]
                for k, index in enumerate(indices):
                    for side, name in zip((PHONE, DSLR), layout.pairs[index]):
                        _copy(source, name, out, f"{folder}{side}/{k}.jpg")
                    bar.update()
            for name in layout.full_size:
                _copy(source, name, out, ROOT + FULL_SIZE_FOLDER + name.rsplit("/", 1)[-1])
    return Normalised(root=layout.root, train=splits["train"], test=splits["test"],
                      full_size=[n.rsplit("/", 1)[-1] for n in layout.full_size])


def _copy(source: DpedSource, name: str, out: zipfile.ZipFile, target: str) -> None:
    data = source.read(name)  # ValueError names the archive and member when it is damaged
    _write_entry(out, target, len(data), io.BytesIO(data))
