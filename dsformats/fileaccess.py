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
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import IO, Any

from dsformats.errors import DatasetError

__all__ = [
    "Joiner", "as_path", "holds_no_symlink", "is_local", "join_within", "open_binary", "read_file", "safe_relative",
    "walk_files",
    "worth_reading_ahead",
]

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
    if (name and name[0] not in "/." and name[-1] != "/" and name[1:2] != ":" and "//" not in name
            and "/." not in name and "\\" not in name and "\x00" not in name):
        return name  # already normal and safe (the usual case): what the checks below would return
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


def holds_no_symlink(folder: Path) -> bool:
    """Whether the local ``folder`` lists no symlink among its entries (one listing: most file systems give
    the entries' types with it). For a :class:`Joiner` whose names are mostly directly inside ``folder``: it
    then skips a test per name. A symlink made afterwards is not seen, as one made between a test and an open."""
    try:
        with os.scandir(folder) as listing:
            return not any(entry.is_symlink() for entry in listing)
    except OSError:
        return False


class Joiner:
    """:func:`join_within` for many names, with the symlink checks of each directory done once.

    For readers that resolve one file per item (images, XML files): ``join_within`` tests every parent of
    the target, which costs more than reading a small file. Any symlink found (file or directory) goes
    through ``join_within`` itself. ``boundary``, when given, is the input directory: a ``root`` folder that
    is a symlink leading out of it is refused.
    """

    def __init__(self, boundary: Path | None = None, *, unlinked: Collection[Path] = ()) -> None:
        self._linked: dict[tuple[Path, str], bool] = {}
        self._boundary = boundary
        #: Roots listed beforehand without a symlink among their entries (:func:`holds_no_symlink`): a name
        #: directly inside one is not tested itself.
        self._unlinked = frozenset(unlinked)
        self._inside: set[Path] = set()  # roots found inside the boundary
        self._prefix: dict[Path, str] = {}  # str(root) + "/" of each local root (text)
        self._remote: dict[tuple[int, str], tuple[Any, Any, str, str, str] | None] = {}

    def _remote_join(self, root: Any, name: str, location: str | None) -> Any:
        """A :class:`_Member` for ``root / name`` on a UPath root, without building a UPath per name.

        The URL form (``str()``) of members under ``root`` is learnt from one real ``joinpath`` and reused;
        when it cannot be (an unusual UPath class), every name goes through ``join_within``.
        """
        rel = safe_relative(name, location=location)
        fs = root.fs
        key = (id(fs), root.path)  # one entry per folder (the template keeps ``fs`` alive, so ids stay unique)
        spec = self._remote.get(key, ...)
        if spec is ...:
            spec = _member_template(root, rel)
            self._remote[key] = spec
        if spec is None:
            return root.joinpath(*rel.split("/"))
        _, fs, base, prefix, suffix = spec
        full = base + rel
        return _Member(fs, full, prefix + full + suffix, root, rel)

    def __call__(self, root: Path, name: str, *, location: str | None = None) -> Path:
        joined = self.text(root, name, location=location)
        return Path(joined) if isinstance(joined, str) else joined

    def text(self, root: Path, name: str, *, location: str | None = None) -> str | Any:
        """What calling the joiner gives, as a path string under a local root (``str()`` of that path, with
        no ``Path`` built: for names that are only opened, such as images); under a UPath root, the same."""
        if not is_local(root):  # archives and object stores: no symlinks
            return self._remote_join(root, name, location)
        rel = self._plain(root, name, location)
        if rel is not None:
            prefix = self._prefix.get(root)
            if prefix is None:
                prefix = self._prefix[root] = "" if str(root) == "." else str(root).rstrip("/") + "/"
            target = prefix + rel
            if ("/" not in rel and root in self._unlinked) or not os.path.islink(target):
                return target
        return str(join_within(root, name, location=location))

    def _plain(self, root: Path, name: str, location: str | None) -> str | None:
        """``name`` made safe (:func:`safe_relative`) when no folder on its way below ``root`` is a symlink;
        None when one is (then :func:`join_within` decides). Refuses a ``root`` outside the boundary."""
        if self._boundary is not None and root not in self._inside:
            bound, real = os.path.realpath(self._boundary), os.path.realpath(root)
            if real != bound and not real.startswith(bound.rstrip(os.sep) + os.sep):
                raise DatasetError(f"the images folder {root} is a symlink that points outside the dataset", location)
            self._inside.add(root)
        rel = safe_relative(name, location=location)
        folder = rel.rpartition("/")[0]
        if folder:
            linked = self._linked.get((root, folder))
            if linked is None:
                parts = folder.split("/")
                linked = any(os.path.islink(root.joinpath(*parts[: i + 1])) for i in range(len(parts)))
                self._linked[(root, folder)] = linked
            if linked:
                return None
        return rel


def _member_template(root: Any, rel: str) -> tuple[Any, Any, str, str, str] | None:
    """``(root, fs, base, prefix, suffix)`` such that ``str(root / x) == prefix + base + x + suffix``, or None."""
    try:
        sample = root.joinpath(*rel.split("/"))
        base = root.path.rstrip("/")
        base = base + "/" if base else ""
        full, text = sample.path, str(sample)
    except Exception:  # noqa: BLE001 - any surprise: use plain UPaths
        return None
    at = text.rfind(full)
    if full != base + rel or at < 0:
        return None
    return root, root.fs, base, text[:at], text[at + len(full) :]


class _Member:
    """A file inside an archive or object store, named by its filesystem and full path.

    What :class:`Joiner` returns under a UPath root: :meth:`Media.from_file`, :func:`open_binary` and
    ``is_file`` use the filesystem directly; anything else is forwarded to a real UPath, built on first use.
    """

    __slots__ = ("_upath", "fs", "name", "path", "_rel", "_root", "_text")

    def __init__(self, fs: Any, path: str, text: str, root: Any, rel: str) -> None:
        self.fs = fs
        self.path = path
        self.name = rel.rpartition("/")[2]
        self._text = text
        self._root = root
        self._rel = rel
        self._upath: Any = None

    def __str__(self) -> str:
        return self._text

    def __repr__(self) -> str:
        return f"<member {self._text}>"

    def upath(self) -> Any:
        """The equivalent UPath."""
        if self._upath is None:
            self._upath = self._root.joinpath(*self._rel.split("/"))
        return self._upath

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.upath(), attr)

    def __truediv__(self, other: Any) -> Any:
        return self.upath() / other

    def __eq__(self, other: object) -> bool:
        return self.upath() == (other.upath() if isinstance(other, _Member) else other)

    def __hash__(self) -> int:
        return hash(self.upath())

    def open(self, mode: str = "rb", **kwargs: Any) -> Any:
        """Open for reading straight through the filesystem (binary only)."""
        if mode != "rb" or kwargs:
            return self.upath().open(mode, **kwargs)
        opener = getattr(self.fs, "open_member", None)
        return opener(self.path) if opener is not None else self.fs.open(self.path, "rb")

    def is_file(self) -> bool:
        """True when the member exists and is a file."""
        try:
            return bool(self.fs.isfile(self.path))
        except (OSError, ValueError):
            return False


def walk_files(root: Path, *, max_depth: int | None = None, ordered: bool = True) -> Iterator[str]:
    """Relative POSIX paths of the files under ``root``, sorted per directory.

    Symlinked directories are not entered, and symlinked files are skipped when they resolve outside
    ``root``. ``ordered=False`` gives a local folder's files in directory order instead, holding no listing
    in memory (for scans that need no order; other roots are always sorted).
    """
    if not is_local(root):
        return _walk_remote(root, max_depth)
    real_root = os.path.realpath(root).rstrip(os.sep) + os.sep

    def entries_of(folder: str) -> Iterator[os.DirEntry[str]]:
        try:
            with os.scandir(folder) as listing:
                yield from sorted(listing, key=lambda e: e.name) if ordered else listing
        except OSError as exc:
            raise DatasetError(f"cannot list directory: {exc.strerror}", str(folder)) from None

    def visit(folder: str, prefix: str, depth: int) -> Iterator[str]:
        for entry in entries_of(folder):
            rel = prefix + entry.name
            if entry.is_dir(follow_symlinks=False):
                if max_depth is None or depth < max_depth:
                    yield from visit(entry.path, rel + "/", depth + 1)
            elif entry.is_symlink():
                real = os.path.realpath(entry.path)
                if real.startswith(real_root) and os.path.isfile(real):
                    yield rel
            elif entry.is_file():
                yield rel

    return visit(os.fspath(root), "", 1)


def _walk_remote(root: Any, max_depth: int | None) -> Iterator[str]:
    """:func:`walk_files` for a UPath: one ``find`` call, names checked, sorted like the local walk.

    Inside an archive (which never changes while open) the result is kept: detection walks the same tree
    once per detector and candidate folder.
    """
    fs = root.fs
    base = root.path.rstrip("/")
    listing = getattr(fs, "all_files", None)  # archives: the index is listed once and filtered here
    if listing is None:
        return iter(_remote_names(fs, root, base, max_depth, None))
    cache = getattr(fs, "_walk_cache", None)
    if cache is None:
        cache = fs._walk_cache = {}
    key = (base, max_depth)
    if key not in cache:
        cache[key] = _remote_names(fs, root, base, max_depth, listing)
    return iter(cache[key])


def _remote_names(fs: Any, root: Any, base: str, max_depth: int | None, listing: Any) -> list[str]:
    try:
        if listing is not None:
            start = base + "/" if base else ""
            found = [full for full in listing() if full.startswith(start)]
            if max_depth is not None:
                found = [full for full in found if full.count("/") - start.count("/") < max_depth]
        else:
            found = [full for full, info in fs.find(root.path, maxdepth=max_depth, detail=True).items()
                     if info.get("type") == "file"]
    except FileNotFoundError:
        found = []
    except OSError as exc:
        raise DatasetError(f"cannot list directory: {exc}", str(root)) from None
    names = []
    for full in found:
        full = full.rstrip("/")
        rel = full[len(base) + 1 :] if base else full.lstrip("/")
        if not rel or (base and not full.startswith(base + "/")):
            continue
        try:
            rel = safe_relative(rel)
        except DatasetError:
            continue  # an object key such as ``a/../b`` cannot be a dataset file
        names.append(rel)
    return sorted(set(names), key=lambda rel: rel.split("/"))


def worth_reading_ahead(path: Any) -> bool:
    """True for a file of an archive or object store (a UPath) that is worth reading in another thread.

    That is, threads may read it while other reads of the same source go on, and reading it costs enough
    (inflating, downloading) to overlap with a writer's work: a deflated member of a ``dszip://`` archive
    (or any member of a remote one), a file on ``memory://`` or on one of fsspec's asynchronous backends
    (``s3://``, ``gs://``, ``az://``, ``http://``). Not a ``dstar://`` member (members share one stream) nor
    a file of another backend, which may not be thread-safe.
    """
    fs = path.fs
    decide = getattr(fs, "worth_reading_ahead", None)
    if decide is not None:
        return bool(decide(path.path))
    protocols = getattr(fs, "protocol", ())
    protocols = (protocols,) if isinstance(protocols, str) else protocols
    return bool(getattr(fs, "async_impl", False)) or "memory" in protocols


def open_binary(path: Path | Any) -> IO[bytes]:
    """Open a file for reading, with a :class:`DatasetError` naming it on failure."""
    try:
        if is_local(path):
            return open(path, "rb")
        return path.open("rb")
    except (OSError, ValueError) as exc:
        raise DatasetError(f"cannot open: {getattr(exc, 'strerror', None) or exc}", str(path)) from None


def read_file(path: str | os.PathLike[str], limit: int | None = None) -> bytes | None:
    """The bytes of a local file (one ``read`` call sized by ``fstat``, without a file object); None when they
    are more than ``limit``. A :class:`DatasetError` naming the file when it cannot be opened or read."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except (OSError, ValueError) as exc:
        raise DatasetError(f"cannot open: {getattr(exc, 'strerror', None) or exc}", os.fspath(path)) from None
    try:
        size = os.fstat(fd).st_size
        if limit is not None and size > limit:
            return None
        data = os.read(fd, size + 1)
        if len(data) != size:  # a short read, or a file changed since fstat: read on to its end
            chunks, got = [data], len(data)
            while chunk := os.read(fd, 1 << 20):
                chunks.append(chunk)
                got += len(chunk)
                if limit is not None and got > limit:
                    return None
            data = b"".join(chunks)
    except OSError as exc:
        raise DatasetError(f"cannot read: {exc.strerror or exc}", os.fspath(path)) from None
    finally:
        os.close(fd)
    return None if limit is not None and len(data) > limit else data
