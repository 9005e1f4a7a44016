"""Merge the partial YOLO trees of a scale-out conversion into the tree one YoloWriter would write.

Label and image files belong to one item each and are moved (``dsformats.merging.merge_files``, which
refuses an item id repeated across shards). ``data.yaml`` is rebuilt the way the writer builds it: the
union of the parts' splits, and the class names. A writer numbers the header's labels in order and appends
the labels it first meets in items; one writer given every item would append them in first-met order over
all shards. A part whose names are not a prefix of that order wrote other class indices in its label
lines, so the merge then declines (None) and the engine converts in a single process.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from dsformats.merging import merge_files

from .schema import DATA_YAML, RESERVED_KEYS, class_names, dump_yaml, parse_yaml


def _read_part(part: Path) -> tuple[dict[str, str], list[str]] | None:
    """A part's ``(splits, class names)``, or None if its data.yaml is not exactly what they dump to."""
    text = (part / DATA_YAML).read_text(encoding="utf-8")
    data = parse_yaml(text, str(part / DATA_YAML))
    names = list(class_names(data, str(part / DATA_YAML)).values())
    splits = {str(key): value for key, value in data.items() if key not in RESERVED_KEYS}
    if not all(isinstance(value, str) for value in splits.values()) or dump_yaml(splits, names) != text:
        return None  # a name or split that the YAML subset cannot round-trip: do not guess
    return splits, names


def merge(parts: Sequence[Path], path: Path) -> bool | None:
    """Build in ``path`` the tree one writer would write from ``parts`` (in shard order); None if impossible."""
    read = [_read_part(part) for part in parts]
    if any(entry is None for entry in read):
        return None
    tables = [entry for entry in read if entry is not None]
    names = list(dict.fromkeys(name for _splits, part_names in tables for name in part_names))
    splits: dict[str, str] = {}
    for part_splits, part_names in tables:
        if names[: len(part_names)] != part_names:
            return None
        for key, value in part_splits.items():
            if splits.setdefault(key, value) != value:
                return None
    merge_files(parts, path, exclude={DATA_YAML})
    (path / DATA_YAML).write_text(dump_yaml(splits, names), encoding="utf-8")
    return True
