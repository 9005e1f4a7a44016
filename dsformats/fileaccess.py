"""The one file-access layer that readers and writers go through.

Readers never call ``open()`` on paths built from dataset content: they use :func:`join_within` to turn a
name found in a dataset (a COCO ``file_name``, a VOC ``<filename>``, a zip member) into a path that cannot
leave the dataset root, :func:`walk_files` to list a tree without following symlinks out of it, and
:func:`open_binary` / :meth:`Media.from_file` to read. Keeping all of it here lets later work swap local paths for
archives or object storage in one place.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from dsformats.errors import DatasetError

__all__ = ["Joiner", "as_path", "is_local", "join_within", "open_binary", "safe_relative", "walk_files"]

_DRIVE = re.compile(r"^[A-Za-z]:")


def is_local(path: object) -> bool:
    """True for a local path (``Path``, ``str``, ``os.PathLike``); False for a UPath of an archive or a store."""
    return isinstance(path, (str, os.PathLike)) and not hasattr(path, "fs")


def as_path(path: str | os.PathLike[str] | Any) -> Path | Any:
    """``Path(path)`` for local paths; a UPath (inside an archive, on object storage) is returned unchanged.

    Readers call this on the ``path`` they are given instead of ``Path(path)``, which fails for UPaths.
    """
    return Path(path) if is_local(path) else path


def safe_relative(name: str, *, location: str | None = None) -> str:
    """Normalise a dataset-provided relative name to POSIX form; reject anything that escapes.

    Rejected: absolute paths, drive letters, backslash tricks and ``..`` components, with a
    :class:`DatasetError` naming ``location``.
    """
    if not name or "\x00" in name:
        raise DatasetError(f"invalid empty or NUL-containing path {name!r}", location)
    if "\\" in name:
        raise DatasetError(f"path {name!r} contains a backslash", location)
    if name.startswith("/") or _DRIVE.match(name):
        raise DatasetError(f"path {name!r} is absolute", location)
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts or not parts:
        raise DatasetError(f"path {name!r} escapes the dataset directory", location)
    return "/".join(parts)


def join_within(root: Path, name: str, *, location: str | None = None) -> Path:
    """``root / name`` after :func:`safe_relative`, also refusing symlinks that resolve outside ``root``."""
    target = root.joinpath(*safe_relative(name, location=location).split("/"))
    if not is_local(root):
        return target  # archives and object stores have no symlinks to follow
    if target.is_symlink() or any(p.is_symlink() for p in target.parents if p != root and root in p.parents):
        real_root = os.path.realpath(root)
        real = os.path.realpath(target)
        if not real.startswith(real_root.rstrip(os.sep) + os.sep):
            raise DatasetError(f"{name!r} is a symlink that points outside the dataset", location)
    return target


class Joiner:
    """:func:`join_within` for many names, with the symlink checks of each directory done once.

    For readers that resolve one file per item (images, XML files): ``join_within`` tests every parent of
    the target, which costs more than reading a small file. Any symlink found (file or directory) goes
    through ``join_within`` itself. ``boundary``, when given, is the input directory: a ``root`` folder that
    is a symlink leading out of it is refused.
    """

    def __init__(self, boundary: Path | None = None) -> None:
        self._linked: dict[tuple[Path, str], bool] = {}
        self._boundary = boundary
        self._real: dict[Path, str] = {}

    def _realpath(self, folder: Path) -> str:
        if folder not in self._real:
            self._real[folder] = os.path.realpath(folder)
        return self._real[folder]

    def __call__(self, root: Path, name: str, *, location: str | None = None) -> Path:
        if not is_local(root):  # archives and object stores: no symlinks
            return join_within(root, name, location=location)
        if self._boundary is not None:
            bound, real = self._realpath(self._boundary), self._realpath(root)
            if real != bound and not real.startswith(bound.rstrip(os.sep) + os.sep):
                raise DatasetError(f"the images folder {root} is a symlink that points outside the dataset", location)
        rel = safe_relative(name, location=location)
        target = root.joinpath(*rel.split("/"))
        folder = rel.rpartition("/")[0]
        if folder:
            linked = self._linked.get((root, folder))
            if linked is None:
                parts = folder.split("/")
                linked = any(os.path.islink(root.joinpath(*parts[: i + 1])) for i in range(len(parts)))
                self._linked[(root, folder)] = linked
            if linked:
                return join_within(root, name, location=location)
        if os.path.islink(target):
            return join_within(root, name, location=location)
        return target


def walk_files(root: Path, *, max_depth: int | None = None) -> Iterator[str]:
    """Relative POSIX paths of the files under ``root``, sorted per directory.

    Symlinked directories are not entered, and symlinked files are skipped when they resolve outside
    ``root``.
    """
    if not is_local(root):
        return _walk_remote(root, max_depth)
    real_root = os.path.realpath(root).rstrip(os.sep) + os.sep

    def visit(folder: Path, prefix: str, depth: int) -> Iterator[str]:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            raise DatasetError(f"cannot list directory: {exc.strerror}", str(folder)) from None
        for entry in entries:
            rel = prefix + entry.name
            if entry.is_dir(follow_symlinks=False):
                if max_depth is None or depth < max_depth:
                    yield from visit(Path(entry.path), rel + "/", depth + 1)
            elif entry.is_symlink():
                real = os.path.realpath(entry.path)
                if real.startswith(real_root) and os.path.isfile(real):
                    yield rel
            elif entry.is_file():
                yield rel

    return visit(root, "", 1)


def _walk_remote(root: Any, max_depth: int | None) -> Iterator[str]:
    """:func:`walk_files` for a UPath: one ``find`` call, names checked, sorted like the local walk."""
    fs = root.fs
    base = root.path.rstrip("/")
    try:
        found = fs.find(root.path, maxdepth=max_depth, detail=True)
    except FileNotFoundError:
        found = {}
    except OSError as exc:
        raise DatasetError(f"cannot list directory: {exc}", str(root)) from None
    names = []
    for full, info in found.items():
        if info.get("type") != "file":
            continue
        full = full.rstrip("/")
        rel = full[len(base) + 1 :] if base else full.lstrip("/")
        if not rel or (base and not full.startswith(base + "/")):
            continue
        try:
            rel = safe_relative(rel)
        except DatasetError:
            continue  # an object key such as ``a/../b`` cannot be a dataset file
        names.append(rel)
    return iter(sorted(set(names), key=lambda rel: rel.split("/")))


def open_binary(path: Path | Any) -> IO[bytes]:
    """Open a file for reading, with a :class:`DatasetError` naming it on failure."""
    try:
        if is_local(path):
            return open(path, "rb")
        return path.open("rb")
    except (OSError, ValueError) as exc:
        raise DatasetError(f"cannot open: {getattr(exc, 'strerror', None) or exc}", str(path)) from None
