"""Datasets inside archives and on object storage: paths that are not local files.

A dataset root handed to readers is either a local :class:`pathlib.Path` or a universal-pathlib ``UPath``
over an fsspec filesystem: ``dszip://`` / ``dstar://`` for a tree inside a ``.zip`` / ``.tar[.gz|.bz2|.xz]``
(hardened versions of fsspec's ``zip://`` and ``tar://``, see :mod:`dsformats._archivefs`), ``memory://``,
``s3://``, ``gs://`` and any other fsspec URL. fsspec and universal-pathlib are optional
(``pip install 'dsformats[remote]'``) and are imported only when such a path is used.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import re
import shutil
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dsformats.errors import DatasetError

__all__ = [
    "ARCHIVE_SUFFIXES",
    "COMPLETE_MARKER",
    "LEASE",
    "archive_kind",
    "as_input",
    "close_archive",
    "is_archive_file",
    "is_remote",
    "is_url",
    "open_archive",
    "opened_archive",
    "pack_tree",
    "remove_abandoned_temporaries",
    "temporary_prefix",
    "to_upath",
    "tree_candidates",
    "write_lease",
]

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]+://")
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
#: Written last into a directory published on object storage; its presence means the output is complete.
COMPLETE_MARKER = "_DSFORMATS_COMPLETE"
#: Written first into the temporary prefix of an object-storage output, and rewritten while it is in use.
LEASE = "_DSFORMATS_LEASE"
#: Seconds after which a temporary prefix whose lease was not rewritten is abandoned (a live writer rewrites
#: its lease every ``LEASE_REFRESH`` seconds while it uploads and publishes).
STALE_AFTER = 24 * 3600
LEASE_REFRESH = 600
_JUNK = frozenset({"__MACOSX", ".DS_Store", "Thumbs.db", "desktop.ini"})
#: Suffixes stored without compression when packing an output tree (already compressed data).
_STORED = frozenset({".jpg", ".jpeg", ".png", ".gif", ".webp", ".zip", ".gz", ".tgz", ".bz2", ".xz", ".mp4", ".jp2"})


def is_url(value: object) -> bool:
    """True for ``scheme://...`` strings (``s3://``, ``memory://``, ``zip://...::file://...``)."""
    return isinstance(value, str) and bool(_URL.match(value))


def is_remote(path: object) -> bool:
    """True for a path that is not a local :class:`~pathlib.Path` (a UPath of an archive or object store)."""
    return not isinstance(path, (str, os.PathLike)) and hasattr(path, "fs")


def archive_kind(name: str) -> str | None:
    """``"zip"`` or ``"tar"`` from a file name's suffix, else None."""
    lowered = name.lower()
    for suffix in ARCHIVE_SUFFIXES:
        if lowered.endswith(suffix):
            return "zip" if suffix == ".zip" else "tar"
    return None


def require_remote(what: str) -> None:
    """Raise a clear :class:`DatasetError` when the optional fsspec / universal-pathlib are missing."""
    try:
        import fsspec  # noqa: F401
        import upath  # noqa: F401
    except ImportError:
        raise DatasetError(
            f"{what} needs the optional packages fsspec and universal-pathlib: pip install 'dsformats[remote]'"
        ) from None
    import dsformats._archivefs  # noqa: F401  (registers dszip:// and dstar://)


def to_upath(url: str) -> Any:
    """A ``UPath`` for an fsspec URL; ``zip://`` and ``tar://`` are served by the hardened archive filesystems."""
    require_remote(f"{url.split('://', 1)[0]}:// paths")
    from upath import UPath

    for plain, safe in (("zip://", "dszip://"), ("tar://", "dstar://")):
        if url.startswith(plain):
            url = safe + url[len(plain) :]
    return UPath(url)


def as_input(path: str | os.PathLike[str] | Any) -> Any:
    """A local ``Path`` for local paths and ``file://`` URLs, a ``UPath`` for other URLs; UPaths as given."""
    if is_remote(path):
        return path
    if is_url(path):
        assert isinstance(path, str)
        if path.startswith("file://"):
            return Path(path[len("file://") :])
        return to_upath(path)
    return Path(path)


def is_archive_file(path: Any) -> bool:
    """True when ``path`` names an archive file (by suffix) that exists; never for a member of an archive."""
    if is_remote(path) and getattr(path, "protocol", "") in ("dszip", "dstar", "zip", "tar"):
        return False  # nested archives are never opened
    try:
        return archive_kind(path.name) is not None and path.is_file()
    except OSError:
        return False


def open_archive(path: Any) -> Any:
    """The root of the archive ``path`` (local or remote) as a read-only UPath; close it with :func:`close_archive`.

    The archive's index is read and checked here (escaping names, bombs, links): a hostile archive raises
    :class:`DatasetError` before any member is read.
    """
    kind = archive_kind(path.name)
    if kind is None:
        raise DatasetError("not a .zip or .tar archive", str(path))
    require_remote("reading a dataset inside an archive")
    from upath import UPath

    target = "file://" + Path(path).absolute().as_posix() if not is_remote(path) else str(path)
    root = UPath(f"ds{kind}://::{target}")
    try:
        root.fs  # noqa: B018 - opens and checks the archive now
    except DatasetError:
        raise
    except (OSError, ValueError, EOFError) as exc:
        raise DatasetError(f"cannot open the archive ({exc})", str(path)) from None
    return root


def close_archive(root: Any) -> None:
    """Close an archive opened by :func:`open_archive`."""
    with contextlib.suppress(Exception):
        root.fs.close()


@contextlib.contextmanager
def opened_archive(path: Any) -> Iterator[Any]:
    """``with opened_archive(path) as root:`` the archive's root, closed afterwards."""
    root = open_archive(path)
    try:
        yield root
    finally:
        close_archive(root)


def _payload(entries: list[Any]) -> list[Any]:
    return [e for e in entries if e.name not in _JUNK and not e.name.startswith("._")]


def tree_candidates(root: Any) -> list[tuple[str, Any]]:
    """Where a dataset inside an archive may start: the root, and its only top folder when it has just one."""
    candidates = [("", root)]
    entries = _payload(list(root.iterdir()))
    if len(entries) == 1 and entries[0].is_dir():
        candidates.append((entries[0].name, entries[0]))
    return candidates


def pack_tree(src: Path, dst: Path) -> None:
    """Stream the files under ``src`` into a new zip ``dst`` in one pass, in sorted order, reproducibly.

    Media (JPEG, PNG, ...) are stored, other files (JSON, XML, text) deflated; empty directories are kept as
    directory entries. Members carry a fixed date, so the same tree gives the same bytes.
    """
    with zipfile.ZipFile(dst, "w", allowZip64=True) as archive:
        for folder, dirs, files in os.walk(src):
            dirs.sort()
            rel_dir = Path(folder).relative_to(src).as_posix()
            prefix = "" if rel_dir == "." else rel_dir + "/"
            if prefix and not dirs and not files:
                archive.writestr(zipfile.ZipInfo(prefix, date_time=(1980, 1, 1, 0, 0, 0)), b"")
            for name in sorted(files):
                info = zipfile.ZipInfo(prefix + name, date_time=(1980, 1, 1, 0, 0, 0))
                info.external_attr = 0o644 << 16
                stored = Path(name).suffix.lower() in _STORED
                info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
                with open(os.path.join(folder, name), "rb") as source, archive.open(info, "w", force_zip64=True) as out:
                    shutil.copyfileobj(source, out, 1 << 20)


# ------------------------------------------------------------------------- object-storage temporaries


def temporary_prefix(base: str, token: str) -> str:
    """The temporary prefix beside the output ``base`` (a path on its filesystem): ``.<name>.dsformats-<token>.tmp``."""
    parent, _, name = base.rpartition("/")
    return f"{parent}/.{name}.dsformats-{token}.tmp" if parent else f".{name}.dsformats-{token}.tmp"


def _process_space() -> str | None:
    """This kernel boot and PID namespace, within which a PID names one process (Linux); None elsewhere."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return None
    return f"{boot}/{namespace}" if boot else None


def write_lease(fs: Any, temporary: str) -> None:
    """Claim ``temporary`` for this process: who (PID and process space) and when (this machine's clock)."""
    lease = {"by": "dsformats", "pid": os.getpid(), "space": _process_space(), "time": time.time()}
    fs.pipe_file(f"{temporary}/{LEASE}", json.dumps(lease).encode())


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # alive, but not ours
    return False


def _modified(info: dict[str, Any]) -> float | None:
    """An object's modification time (seconds since the epoch) from an fsspec ``info`` dict, if it has one."""
    for key in ("LastModified", "mtime", "updated", "created"):
        value = info.get(key)
        if isinstance(value, datetime.datetime):
            return (value if value.tzinfo else value.replace(tzinfo=datetime.timezone.utc)).timestamp()
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    return None


def _abandoned(fs: Any, temporary: str) -> bool:
    """Whether the writer of ``temporary`` is gone; False whenever that cannot be known for sure."""
    try:
        lease = json.loads(fs.cat_file(f"{temporary}/{LEASE}"))
    except FileNotFoundError:
        lease = None
    except (OSError, ValueError):
        return False
    if isinstance(lease, dict):
        pid, space, when = lease.get("pid"), lease.get("space"), lease.get("time")
        if space is not None and space == _process_space() and isinstance(pid, int) and pid != os.getpid():
            if _gone(pid):
                return True
        return isinstance(when, (int, float)) and time.time() - when > STALE_AFTER
    try:  # no lease (an older dsformats): the newest object's age
        times = [_modified(info) for info in fs.find(temporary, detail=True).values()]
    except OSError:
        return False
    return bool(times) and None not in times and time.time() - max(t for t in times if t is not None) > STALE_AFTER


def remove_abandoned_temporaries(fs: Any, base: str) -> list[str]:
    """Delete the temporary prefixes of the output ``base`` that killed writers left; return them.

    A prefix is abandoned when its lease names a process of this machine's process space (same boot, same
    PID namespace) that no longer exists, or when its lease was last written more than ``STALE_AFTER``
    seconds ago (a live writer rewrites it every ``LEASE_REFRESH`` seconds). Any doubt keeps the prefix.
    """
    parent, _, name = base.rpartition("/")
    start = f".{name}.dsformats-"
    try:
        entries = fs.ls(parent or "", detail=False)
    except (OSError, ValueError):
        return []
    removed = []
    for entry in entries:
        entry = entry.rstrip("/")
        leaf = entry.rpartition("/")[2]
        if leaf.startswith(start) and leaf.endswith(".tmp") and _abandoned(fs, entry):
            with contextlib.suppress(OSError):
                fs.rm(entry, recursive=True)
                removed.append(entry)
    return removed
