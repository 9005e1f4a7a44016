"""Helpers for ``dsformats_merge`` implementations: combine the partial outputs of a scale-out conversion.

Most formats write one or a few files per item (an image, an XML or label file, a mask) plus some files
that every item adds lines to (subset lists). :func:`merge_files` builds the tree one writer would have
written from such parts; the plugin then writes the few files that depend on every item itself.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Collection, Sequence
from pathlib import Path

from dsformats.errors import DatasetError

__all__ = ["merge_files"]


def _no_lists(rel: str) -> bool:
    return False


def merge_files(
    parts: Sequence[Path],
    path: Path,
    *,
    is_list: Callable[[str], bool] = _no_lists,
    exclude: Collection[str] = (),
) -> None:
    """Move every file of ``parts`` (in shard order) into ``path``; concatenate list files in shard order.

    Files are named by their POSIX path relative to their part (``Annotations/a/1.xml``). A file that
    ``is_list(rel)`` accepts becomes the concatenation of that file in every part that has it; any other file
    belongs to one item and is moved. Files named in ``exclude`` are left in the parts for the caller to
    merge. Directories are recreated, empty ones included. Two parts holding the same per-item file mean
    that an item id is repeated across shards: that raises :class:`~dsformats.DatasetError` naming the file.
    """
    lists: dict[str, list[Path]] = {}
    for index, part in enumerate(parts):
        for root, dirs, files in os.walk(part):  # top-down: a folder is created before its subfolders
            dirs.sort()  # a deterministic walk, so that an error names the same file on every file system
            folder = path / Path(root).relative_to(part)
            folder.mkdir(exist_ok=True)
            for file in sorted(files):
                source = Path(root, file)
                rel = source.relative_to(part).as_posix()
                if rel in exclude:
                    continue
                if is_list(rel):
                    lists.setdefault(rel, []).append(source)
                    continue
                target = folder / file
                if target.exists():
                    raise DatasetError(f"shard {index} and an earlier shard both wrote this file: an item id is "
                                       "repeated across shards", rel)
                shutil.move(source, target)
    for rel, sources in lists.items():
        with open(path / rel, "wb") as out:
            for source in sources:
                with open(source, "rb") as stream:
                    shutil.copyfileobj(stream, out)
