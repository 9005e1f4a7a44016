"""Merge the partial outputs of a scale-out conversion into the COCO tree a single writer would write.

A shard's writer keeps its spool and state (see :mod:`.writer`, :mod:`.spool`) instead of assembling task
files. The merge moves the per-item files (images, panoptic PNGs), then assembles every task file from the
shards' spools read in shard order, so ids are kept or assigned exactly as in one writer. It declines
(None) when a shard added categories that the header does not declare (their ids would depend on the
order in which shards met them) or when the shards' category catalogs differ.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from dsformats import DatasetError, Report
from dsformats.merging import merge_files

from .schema import ANNOTATIONS_DIR
from .spool import Catalog, SpoolSource, assemble
from .writer import SPOOL, STATE


def merge(parts: Sequence[Path], path: Path, options: Mapping[str, Any], report: Report) -> bool | None:
    """Build the merged tree in ``path``; None when the parts cannot give the single-process bytes."""
    states = []
    for part in parts:
        state = part / SPOOL / STATE
        if not state.is_file():
            return None
        states.append(orjson.loads(state.read_bytes()))
    catalog = _catalog([state["catalog"] for state in states])
    if catalog is None or any(state["added"] for state in states):
        return None
    merge_files(parts, path, exclude={SPOOL})
    subsets: dict[str, list[tuple[Path, dict[str, Any]]]] = {}
    for part, state in zip(parts, states, strict=True):
        for name, subset in state["subsets"].items():
            subsets.setdefault(name, []).append((part / SPOOL, subset))
    (path / ANNOTATIONS_DIR).mkdir(exist_ok=True)  # empty in the parts, and lost when they lived on object storage
    scratch = path / SPOOL
    scratch.mkdir()
    try:
        for name, pieces in subsets.items():
            sources = [SpoolSource(folder, str(s["index"]), s["count"], kept_tasks=s.get("kept"))
                       for folder, s in pieces]
            _check_unique(name, sources)
            labels: dict[str, dict[str, None]] = {}
            for _, subset in pieces:
                for task, names in subset["labels"].items():
                    labels.setdefault(task, {}).update(dict.fromkeys(names))
            explicit = {n for _, subset in pieces for n in subset["explicit"]}
            shared = sum(len(subset["explicit"]) for _, subset in pieces) != len(explicit)
            assemble(path, name, sources, explicit, labels, catalog, scratch, shared_explicit=shared)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return True


def _catalog(catalogs: list[dict[str, Any]]) -> Catalog | None:
    """The shards' common catalog, with panoptic ``isthing`` values merged first-seen-first; None if they differ."""
    isthing: dict[str, Any] = {}
    for catalog in catalogs:
        for label, value in catalog["isthing"].items():
            isthing.setdefault(label, value)
        if {**catalog, "isthing": None} != {**catalogs[0], "isthing": None}:
            return None
    return Catalog(**{**catalogs[0], "isthing": isthing})


def _check_unique(subset: str, sources: Sequence[SpoolSource]) -> None:
    """Refuse two images of ``subset`` with one file name (an item id that repeats across shards)."""
    if len(sources) < 2:
        return
    owners: dict[str, int] = {}
    for number, source in enumerate(sources):
        with open(source.images, "rb") as lines:
            for line in lines:
                name = orjson.loads(line.split(b" ", 1)[1])["file_name"]
                if owners.setdefault(name, number) != number:
                    raise DatasetError(f"image {subset}/{name} is written by two shards (an item id repeats across "
                                       "shards)")
