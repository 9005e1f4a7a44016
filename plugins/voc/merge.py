"""Merge the partial VOC trees of a scale-out conversion into the tree a single writer would write.

Per-item files (XML, images, masks) are moved; those of an id listed in two subsets, whose items fall in two
shards, are the later item's, as one writer writes them again; ``ImageSets`` list and flag files are concatenated
in shard order (:func:`dsformats.merging.merge_files`). The labels of every part must be the same and come from the
header alone (a label that one shard adds on the fly, "used but not declared", changes the mask palettes written
after it, as each shard records; a part without masks drops the added background label), and no item may be
repeated in one subset across shards: otherwise the merge declines (None) and the engine converts in a single
process instead. Label actions are merged as an ordered union. Class flags, which one writer writes for every
subset once any item has labels, are written by every shard that writes classification and dropped here when no
shard had labels.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from dsformats import Report
from dsformats.merging import case_clashes, merge_files

from .schema import (
    ACTION_SETS,
    FLAGS_STATE,
    LABEL_MAP_VOC,
    LABELMAP_FILE,
    LIST_SUFFIX,
    MAIN_SETS,
    SETS_DIR,
    SHARD_STATE,
    LabelSpec,
    case_clash,
    format_labelmap,
    parse_labelmap,
    voc_label_specs,
)


class _Repeated(Exception):
    """An item repeated in one subset across shards: one process raises (or skips it), so the merge declines."""


def merge(parts: Sequence[Path], path: Path, options: Mapping[str, Any], report: Report) -> bool | None:
    """Build the merged tree in ``path``; None when the parts cannot give the single-process bytes."""
    states = [_shard_state(part) for part in parts]
    if any(state.get("labels_added") for state in states):
        return None
    labelmap = _merged_labelmap(parts, options)
    if labelmap is False:
        return None
    for folder in (MAIN_SETS, ACTION_SETS):
        # A class flag file <label>_<subset>.txt (or action flag file <action>_<subset>.txt) missing from a
        # part that has items in <subset> would need "-1" rows for them: decline rather than guess.
        listed = [{p.name for p in (part / SETS_DIR / folder).glob("*" + LIST_SUFFIX)} for part in parts]
        every = set().union(*listed)
        for names in listed:
            for name in every - names:
                pieces = name[: -len(LIST_SUFFIX)].split("_")
                if any("_".join(pieces[i:]) + LIST_SUFFIX in names for i in range(1, len(pieces))):
                    return None
    _drop_unlabelled_flags(parts)
    try:
        merge_files(parts, path, is_list=lambda rel: rel.startswith(SETS_DIR + "/"),
                    exclude={LABELMAP_FILE, FLAGS_STATE, SHARD_STATE}, replace=_Repeats(parts, states))
    except _Repeated:
        return None
    # one writer warns about ids that differ only in case from any earlier one; each shard saw only its own
    clashes = case_clashes(len(parts), lambda index: (item_id for _, item_id in _listed(parts[index], states[index])))
    if clashes is None:
        return None
    for first, item_id in clashes:
        report.warn(case_clash(first, item_id))
    if isinstance(labelmap, str):
        (path / LABELMAP_FILE).write_text(labelmap, encoding="utf-8")
    return True


def _shard_state(part: Path) -> dict[str, Any]:
    """The part's :data:`SHARD_STATE` (empty for a tree written otherwise than as a shard)."""
    state = part / SHARD_STATE
    return json.loads(state.read_text(encoding="utf-8")) if state.is_file() else {}


def _listed(part: Path, state: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """``(subset, item id)`` of every item the part lists in ``ImageSets/Main`` (none without its state)."""
    for subset in state.get("subsets", ()):
        text = (part / SETS_DIR / MAIN_SETS / (subset + LIST_SUFFIX)).read_text("utf-8")
        for line in text.splitlines():
            yield subset, line[1:-1] if len(line) > 1 and line[0] == line[-1] == '"' else line


class _Repeats:
    """``replace`` for :func:`merge_files`: a per-item file (``<folder>/<id><suffix>``) that an earlier shard
    wrote too belongs to an id listed in other subsets there (one writer writes its files again: the later
    item's win, True), or to an item repeated in one subset (:class:`_Repeated`). The subset lists of the parts
    are read only when a file repeats; a part without its state gives False (the merge raises)."""

    def __init__(self, parts: Sequence[Path], states: Sequence[dict[str, Any]]) -> None:
        self.parts, self.states = parts, states
        self.listed: dict[int, dict[str, set[str]] | None] = {}

    def _subsets(self, index: int) -> dict[str, set[str]] | None:
        """Item id -> the subsets whose lists hold it, in part ``index``."""
        if index not in self.listed:
            found: dict[str, set[str]] | None = None
            if "subsets" in self.states[index]:
                found = {}
                for subset, item_id in _listed(self.parts[index], self.states[index]):
                    found.setdefault(item_id, set()).add(subset)
            self.listed[index] = found
        return self.listed[index]

    def __call__(self, rel: str, index: int) -> bool:
        item_id = posixpath.splitext(rel.partition("/")[2])[0]
        mine = self._subsets(index)
        if mine is None or item_id not in mine:
            return False
        for earlier in range(index):
            theirs = self._subsets(earlier)
            if theirs is None:
                return False
            if mine[item_id] & theirs.get(item_id, set()):
                raise _Repeated
        return True


def _drop_unlabelled_flags(parts: Sequence[Path]) -> None:
    """Remove the class flag files that the shards wrote (see :data:`FLAGS_STATE`) when no shard would have
    kept them on its own (no item had labels, and classification is not the only task): one writer would have
    written none."""
    states = [(part, (part / FLAGS_STATE).read_text(encoding="utf-8").splitlines())
              for part in parts if (part / FLAGS_STATE).is_file()]
    if any(lines[0] == "1" for _, lines in states):
        return
    for part, lines in states:
        for rel in lines[1:]:
            (part / rel).unlink()


def _merged_labelmap(parts: Sequence[Path], options: Mapping[str, Any]) -> str | None | bool:
    """The merged ``labelmap.txt`` (None: not written), or False when the parts' labels differ.

    Labels, colours and parts come from the header and must be equal in every part; the actions of a label
    are collected as items are written, so the merge is their union in shard order (first use first), as one
    writer would have collected them. A part without the file (``--label-map voc`` with only standard labels
    and actions) holds the standard VOC labels.
    """
    texts = [(part / LABELMAP_FILE).read_text(encoding="utf-8") if (part / LABELMAP_FILE).is_file() else None
             for part in parts]
    if all(text is None for text in texts):
        return None
    if any(text is None for text in texts) and options.get("label_map") != LABEL_MAP_VOC:
        return False
    merged: list[LabelSpec] | None = None
    for text in texts:
        specs = voc_label_specs() if text is None else parse_labelmap(text, LABELMAP_FILE)
        if merged is None:
            merged = specs
            continue
        if [(s.name, s.color, s.parts) for s in specs] != [(s.name, s.color, s.parts) for s in merged]:
            return False
        for into, spec in zip(merged, specs, strict=True):
            into.actions += tuple(a for a in spec.actions if a not in into.actions)
    assert merged is not None
    return format_labelmap(merged)
