"""Helpers for ``dsformats_merge`` implementations: combine the partial outputs of a scale-out conversion.

Most formats write one or a few files per item (an image, an XML or label file, a mask) plus some files
that every item adds lines to (subset lists). :func:`merge_files` builds the tree one writer would have
written from such parts; the plugin then writes the few files that depend on every item itself.
"""

from __future__ import annotations

import errno
import os
import shutil
from array import array
from collections.abc import Callable, Collection, Iterable, Sequence
from pathlib import Path

from dsformats.errors import DatasetError
from dsformats.idset import repeated_values

__all__ = ["case_clashes", "merge_files"]


def _no_lists(rel: str) -> bool:
    return False


def merge_files(
    parts: Sequence[Path],
    path: Path,
    *,
    is_list: Callable[[str], bool] = _no_lists,
    exclude: Collection[str] = (),
    replace: Callable[[str, int], bool] | None = None,
) -> None:
    """Move every file of ``parts`` (in shard order) into ``path``; concatenate list files in shard order.

    Files are named by their POSIX path relative to their part (``Annotations/a/1.xml``). A file that
    ``is_list(rel)`` accepts becomes the concatenation of that file in every part that has it; any other file
    belongs to one item and is moved. Files named in ``exclude``, and folders named in it with everything
    under them, are left in the parts for the caller to merge. Directories are recreated, empty ones
    included; a folder that ``path`` does not have yet and that holds only per-item files is moved whole.
    Two parts holding the same per-item file mean that an item id is repeated across shards: that raises
    :class:`~dsformats.DatasetError` naming the file, unless ``replace(rel, shard)`` returns True (for a format
    whose writer writes such a file again for another item, the later item's file wins, as it does there).
    """
    lists: dict[str, list[str]] = {}

    def special(folder: str, rel: str) -> bool:
        """Whether the folder holds anything that is not a per-item file (lists, excluded files)."""
        for root, _dirs, files in os.walk(folder):
            inner = os.path.relpath(root, folder).replace(os.sep, "/")
            prefix = rel if inner == "." else f"{rel}/{inner}"
            if prefix in exclude or any(is_list(f"{prefix}/{f}") or f"{prefix}/{f}" in exclude for f in files):
                return True
        return False

    def merge(source: str, target: str, rel: str, index: int) -> None:
        if rel and not os.path.exists(target) and not special(source, rel):
            _move(source, target)
            return
        os.makedirs(target, exist_ok=True)
        with _Mover(source, target) as mover:
            for entry in sorted(os.scandir(source), key=lambda e: e.name):  # sorted: errors name the same file
                name = f"{rel}/{entry.name}" if rel else entry.name
                if name in exclude:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    merge(entry.path, os.path.join(target, entry.name), name, index)
                elif is_list(name):
                    lists.setdefault(name, []).append(entry.path)
                elif mover.exists(entry.name) and not (replace is not None and replace(name, index)):
                    raise DatasetError(f"shard {index} and an earlier shard both wrote this file: an item id is "
                                       "repeated across shards", name)
                else:
                    mover.move(entry.name)

    for index, part in enumerate(parts):
        merge(str(part), str(path), "", index)
    for rel, sources in lists.items():
        with open(path / rel, "wb") as out:
            for source in sources:
                with open(source, "rb") as stream:
                    shutil.copyfileobj(stream, out)


class _Mover:
    """Moves files by name from one folder into another, relative to the two folders' descriptors where the
    OS allows it (the kernel then looks up one name, not every folder of two long paths: 40% faster)."""

    _FDS = os.rename in os.supports_dir_fd and os.stat in os.supports_dir_fd and hasattr(os, "O_DIRECTORY")

    def __init__(self, source: str, target: str) -> None:
        self.source, self.target = source, target
        self.fds: list[int] = []

    def __enter__(self) -> _Mover:
        if self._FDS:
            try:
                for folder in (self.source, self.target):
                    self.fds.append(os.open(folder, os.O_RDONLY | os.O_DIRECTORY))
            except BaseException:
                self.__exit__()
                raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        while self.fds:
            os.close(self.fds.pop())

    def exists(self, name: str) -> bool:
        """Whether the target folder has an entry ``name`` (a dangling symlink too)."""
        if not self.fds:
            return os.path.lexists(os.path.join(self.target, name))
        try:
            os.stat(name, dir_fd=self.fds[1], follow_symlinks=False)
        except FileNotFoundError:
            return False
        return True

    def move(self, name: str) -> None:
        """Rename ``name`` into the target folder (copy and delete across file systems)."""
        if self.fds:
            try:
                os.rename(name, name, src_dir_fd=self.fds[0], dst_dir_fd=self.fds[1])
                return
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
        _move(os.path.join(self.source, name), os.path.join(self.target, name))


def _move(source: str, target: str) -> None:
    """Rename, or copy and delete across file systems."""
    try:
        os.rename(source, target)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        shutil.move(source, target)


def case_clashes(count: int, names: Callable[[int], Iterable[str]]) -> list[tuple[str, str]] | None:
    """The ``(first, later)`` names, differing only in case, that one writer meeting every shard's names in shard
    order warns about and the shards could not: ``later`` in a later shard than ``first`` (each shard warned about
    its own). ``names(shard)`` gives a shard's names (it is asked twice, the second time only when a case-folded
    name is in two shards). None when a shard holds two spellings of a name that another shard holds too: which
    one it met first is not known, so the merge should decline.

    Memory holds a hash a distinct name of each shard, and the names of the folded names in two shards.
    """
    hashes = array("q")
    for shard in range(count):
        hashes.extend({hash(name.casefold()) for name in names(shard)})
    shared = repeated_values(hashes)
    if not shared:
        return []
    first: dict[str, str | None] = {}  # folded name -> its first spelling (None: two in its first shard)
    clashes: list[tuple[str, str]] = []
    for shard in range(count):
        spellings: dict[str, list[str]] = {}
        for name in names(shard):
            folded = name.casefold()
            if hash(folded) in shared:
                found = spellings.setdefault(folded, [])
                if name not in found:
                    found.append(name)
        for folded, found in spellings.items():
            if folded not in first:
                first[folded] = found[0] if len(found) == 1 else None
                continue
            earlier = first[folded]
            if earlier is None or len(found) > 1:
                return None
            if found[0] != earlier:
                clashes.append((earlier, found[0]))
    return clashes
