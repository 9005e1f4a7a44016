"""Merge the partial outputs of a scale-out conversion into the COCO tree a single writer would write.

A shard's writer keeps its spool and state (see :mod:`.writer`, :mod:`.spool`) instead of assembling task
files. The merge moves the per-item files (images, panoptic PNGs), then assembles every task file from the
shards' spools read in shard order, so ids are kept or assigned exactly as in one writer. It declines
(None) when a shard added categories that the header does not declare (their ids would depend on the
order in which shards met them) or when the shards' category catalogs differ.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from dsformats import DatasetError, Report
from dsformats.merging import case_clashes, merge_files

from .schema import ANNOTATIONS_DIR, IMAGES_DIR, file_case_clash
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
    # panoptic PNGs are always written; listed before they are moved
    png_clashes = case_clashes(len(parts), lambda index: _panoptic_paths(parts[index]))
    if png_clashes is None:
        return None
    merge_files(parts, path, exclude={SPOOL})
    for first, later in png_clashes:
        report.warn(file_case_clash(first, later))
    if options.get("save_images"):  # one writer warns about image files that differ only in case; a shard, its own
        clashes = case_clashes(len(parts), lambda index: _image_paths(parts[index], states[index]))
        if clashes is None:
            return None
        for first, later in clashes:
            # both saved (a record of an item without an image names no file)
            if (path / IMAGES_DIR / first).is_file() and (path / IMAGES_DIR / later).is_file():
                report.warn(file_case_clash(first, later))
    subsets: dict[str, list[tuple[Path, dict[str, Any]]]] = {}
    for part, state in zip(parts, states, strict=True):
        for name, subset in state["subsets"].items():
            subsets.setdefault(name, []).append((part, subset))
    (path / ANNOTATIONS_DIR).mkdir(exist_ok=True)  # empty in the parts, and lost when they lived on object storage
    scratch = path / SPOOL
    scratch.mkdir()
    try:
        for name, pieces in subsets.items():
            sources = [_source(part, subset) for part, subset in pieces]
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


def _source(part: Path, subset: dict[str, Any]) -> SpoolSource:
    """A shard's spool of one subset (``subset``: its entry in the shard's state)."""
    return SpoolSource(part / SPOOL, str(subset["index"]), subset["count"], kept_tasks=subset.get("kept"))


def _file_names(source: SpoolSource) -> Iterator[str]:
    """The ``file_name`` of every image record of a spool, in order."""
    with open(source.images, "rb") as lines:
        for line in lines:
            yield orjson.loads(line.split(b" ", 1)[1])["file_name"]


def _image_paths(part: Path, state: dict[str, Any]) -> Iterator[str]:
    """``<subset>/<file_name>`` of every image record of a shard (where a writer that saves images puts them)."""
    for name, subset in state["subsets"].items():
        yield from (f"{name}/{file_name}" for file_name in _file_names(_source(part, subset)))


def _panoptic_paths(part: Path) -> Iterator[str]:
    """``Annotations/<folder>/<name>`` of every panoptic PNG of a shard (the names its writer checks for case)."""
    folder = part / ANNOTATIONS_DIR
    for entry in sorted(folder.iterdir()) if folder.is_dir() else ():
        if entry.is_dir():  # panoptic_<subset>: the only folders a writer makes there
            for root, _dirs, files in os.walk(entry):
                inner = Path(root).relative_to(folder).as_posix()
                yield from (f"{ANNOTATIONS_DIR}/{inner}/{name}" for name in files)


def _check_unique(subset: str, sources: Sequence[SpoolSource]) -> None:
    """Refuse two images of ``subset`` with one file name (an item id that repeats across shards)."""
    if len(sources) < 2:
        return
    owners: dict[bytes, int] = {}
    for number, source in enumerate(sources):
        with open(source.images, "rb") as lines:
            while block := b"".join(lines.readlines(1 << 20)):
                # the file names as the writer's JSON strings (orjson's: equal names, equal bytes), found in C
                names = _FILE_NAME.findall(block)
                if len(names) != block.count(b"\n"):  # not one a line as the writer writes them: parse them
                    names = [orjson.dumps(orjson.loads(line.split(b" ", 1)[1])["file_name"])
                             for line in block.splitlines()]
                for name in names:
                    if owners.setdefault(name, number) != number:
                        raise DatasetError(f"image {subset}/{orjson.loads(name)} is written by two shards (an item "
                                           "id repeats across shards)")


#: The ``file_name`` of a spooled image record line, ``<explicit id> {"width":W,"height":H,"file_name":"..."``, as
#: the writer writes it: orjson puts no space outside strings (and escapes every quote inside one), so the space
#: and brace match only there, never an attribute's nested ``file_name`` later on the line.
_FILE_NAME = re.compile(rb' \{"width":-?\d+,"height":-?\d+,"file_name":("(?:[^"\\\n]|\\.)*")')
