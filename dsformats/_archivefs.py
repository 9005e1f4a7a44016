"""Hardened fsspec filesystems for archives (imported only when an archive is opened; needs ``fsspec``).

``dszip://`` and ``dstar://`` are fsspec's ``zip://`` and ``tar://`` with the checks of :mod:`dsformats.limits`
applied while the archive is indexed, before any member is inflated:

* member names that would escape the archive (``..``, absolute, drive letters, backslashes) refuse the archive;
* zip members are checked with :class:`~dsformats.limits.ZipBudget` (size, total, compression ratio);
* tar members are checked against the same limits from their headers, before the data is skipped (so a
  ``.tar.gz`` bomb is refused without inflating it);
* symlink, hardlink and device members of tars are left out of the index: they cannot be listed or opened;
* encrypted zip members refuse the archive.

Members are read lazily, one stream at a time; only the index (names and sizes) is held in memory. A zip
member read whole takes one call (:meth:`SafeZipFileSystem.open_member`), and many small deflated members
read ahead together take a few (:meth:`SafeZipFileSystem.read_members`), with the GIL released.
"""

from __future__ import annotations

import bz2
import contextlib
import errno
import functools
import gzip
import io
import lzma
import os
import re
import struct
import tarfile
import threading
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from fsspec.archive import AbstractArchiveFileSystem
from fsspec.compression import compr
from fsspec.implementations.tar import TarFileSystem
from fsspec.implementations.zip import ZipFileSystem
from upath.implementations.tar import TarPath
from upath.implementations.zip import ZipPath

from dsformats.errors import DatasetError
from dsformats.fileaccess import safe_relative
from dsformats.limits import ZipBudget
from dsformats.zipstream import ZipMember

__all__ = ["SafeTarFileSystem", "SafeZipFileSystem"]

_RATIO_FLOOR = 1 << 20


def _display(fo: Any, fallback: str) -> str:
    for attr in ("original", "path", "name"):
        value = getattr(fo, attr, None)
        if isinstance(value, str):
            return value
    return fallback


def _where(archive: str, member: str) -> str:
    return f"{archive}!{member}"


def _member_name(raw: str, where: str | Callable[[], str]) -> str:
    """The normalised member name (``./a//b`` -> ``a/b``); a DatasetError when it escapes the archive.

    ``where`` names the member in the error (a function giving it: built only when needed).
    """
    name = raw.rstrip("/")
    try:
        return safe_relative(re.sub("/+", "/", name) if "//" in name else name)
    except DatasetError as exc:
        where = where if isinstance(where, str) else where()
        raise DatasetError(f"archive member name escapes the archive: {exc.args[0]}", where) from None


#: What reading corrupt member data raises: bad CRC, broken or truncated compressed data, I/O errors.
_CORRUPT: tuple[type[BaseException], ...] = (
    OSError, EOFError, zipfile.BadZipFile, tarfile.TarError, zlib.error, lzma.LZMAError,
)


class MemberStream:
    """A member's stream whose read errors are DatasetErrors naming ``archive!member``.

    So that a corrupt member fails (or is skipped, under ``--skip-bad-items``) like any bad file, whoever
    reads it. ``size`` is the member's inflated size. The member is opened on first use; when ``whole`` is
    given and the first read asks for all of it, ``whole()`` returns it in one call instead.
    """

    def __init__(self, opener: Any, where: str, size: int, whole: Any = None) -> None:
        self._opener = opener
        self._whole = whole
        self._stream: Any = None
        self._where = where
        self.size = size

    @contextlib.contextmanager
    def _checked(self) -> Iterator[None]:
        try:
            yield
        except _CORRUPT as exc:
            raise DatasetError(f"cannot read: {exc}", self._where) from None

    @property
    def stream(self) -> Any:
        """The underlying stream, opened now if not yet."""
        if self._stream is None:
            with self._checked():
                self._stream = self._opener()
        return self._stream

    def read(self, size: int = -1) -> bytes:
        """Read up to ``size`` bytes (all when negative)."""
        with self._checked():
            if self._stream is None and self._whole is not None and (size < 0 or size >= self.size):
                data = self._whole()
                self._stream = io.BytesIO(data)
                self._stream.seek(len(data))
                return data
            return self.stream.read(size)

    def read1(self, size: int = -1) -> bytes:
        """Read up to ``size`` bytes with at most one read of the archive."""
        with self._checked():
            return self.stream.read1(size)

    def readinto(self, buffer: Any) -> int:
        """Read into ``buffer``; return the number of bytes read."""
        with self._checked():
            return self.stream.readinto(buffer)

    def seek(self, offset: int, whence: int = 0) -> int:
        """Move to ``offset`` (seeking back in compressed data reads it again from the start)."""
        with self._checked():
            return self.stream.seek(offset, whence)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)

    def close(self) -> None:
        """Close the underlying stream, if it was opened."""
        if self._stream is not None:
            self._stream.close()

    def __enter__(self) -> MemberStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _gzip_reader() -> Any:
    """ISA-L's multi-member gzip reader (inflates and checks many members in one call), or None without ISA-L."""
    try:
        from isal.isal_zlib import _GzipReader
    except ImportError:
        return None
    return _GzipReader


#: A gzip member header (deflate, no flags, no time): zip members are framed as gzip members for ISA-L.
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
_GZIP_TRAILER = struct.Struct("<II")  # CRC-32 and size of the inflated data
#: The most a local file header (30 bytes, a name and an extra field of up to 65,535 bytes each) takes.
_LOCAL_HEADER_MAX = 30 + 2 * 0xFFFF


def _all_files(fs: Any) -> list[str]:
    """The names of all file members (an archive never changes while open: listed once, then cached)."""
    cached = getattr(fs, "_all_files_cache", None)
    if cached is None:
        cached = [name.rstrip("/") for name, info in fs.find("", detail=True).items() if info.get("type") == "file"]
        fs._all_files_cache = cached
    return cached


class SafeZipFileSystem(ZipFileSystem):
    """Read-only ``zip://`` with member names, sizes and ratios checked when the archive is opened."""

    protocol = "dszip"
    cachable = False

    def __init__(self, fo: Any = "", mode: str = "r", **kwargs: Any) -> None:
        if mode != "r":
            raise ValueError("dszip:// is read-only")
        try:
            super().__init__(fo=fo, mode="r", **kwargs)
        except zipfile.BadZipFile as exc:
            raise DatasetError(f"not a readable zip archive ({exc})", _display(fo, str(fo))) from None
        self.archive_name = _display(self.fo, _display(fo, "archive"))
        try:
            self._fd: int | None = self.fo.fileno()
        except (AttributeError, OSError, ValueError):
            self._fd = None
        try:
            self._check()
        except BaseException:
            self.close()
            raise

    def _check(self) -> None:
        budget = ZipBudget(self.archive_name)
        for info in self.zip.infolist():
            budget.check(info)
            raw = info.filename.rstrip("/")
            if raw in ("", "."):
                continue
            where = functools.partial(_where, self.archive_name, info.filename)  # built for errors only
            name = _member_name(info.filename, where)
            if info.flag_bits & 0x1:
                raise DatasetError("encrypted archive members are not supported", where())
            if name != raw:  # ``./a`` or ``a//b``: reachable only under its raw name
                raise DatasetError("archive member name is not in normal form", where())

    def all_files(self) -> list[str]:
        """The names of all file members, listed once."""
        return _all_files(self)

    def worth_reading_ahead(self, name: str) -> bool:
        """Whether reading ``name`` costs enough to do it in another thread: inflating it, or a remote archive."""
        try:
            info = self.zip.getinfo(name)
        except KeyError:
            return False
        return info.compress_type != zipfile.ZIP_STORED or self._fd is None

    def open_member(self, name: str) -> Any:
        """Open the member ``name`` (a normalised name from the index, e.g. ``a/b.jpg``) for reading.

        What ``open(name, "rb")`` does, without fsspec's protocol stripping and info look-up per call.
        """
        try:
            info = self.zip.getinfo(name)
        except KeyError as exc:
            raise FileNotFoundError(name) from exc
        if info.is_dir():
            raise IsADirectoryError(name)
        whole = None
        if self._fd is not None and info.compress_type in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            whole = functools.partial(self._read_whole, info)
        return MemberStream(functools.partial(self.zip.open, info), f"{self.archive_name}!{name}", info.file_size,
                            whole)

    def _region_end(self, info: zipfile.ZipInfo) -> int:
        """Where the bytes of ``info`` (local header, data, descriptor) end at the latest: the next local header
        or the central directory, and never further than its largest possible local header and its data."""
        ends = getattr(self, "_ends", None)
        if ends is None:
            offsets = sorted({i.header_offset for i in self.zip.infolist()})
            stop = getattr(self.zip, "start_dir", None)
            ends = dict(zip(offsets, [*offsets[1:], stop if isinstance(stop, int) else -1], strict=True))
            self._ends = ends
        bound = info.header_offset + _LOCAL_HEADER_MAX + info.compress_size
        end = ends.get(info.header_offset, -1)
        return bound if end <= info.header_offset else min(end, bound)

    def read_members(self, names: Sequence[str], limit: int, *, budget: int | None = None,
                     first: bool = True) -> list[bytes | None]:
        """The whole data of each member of ``names``, read and inflated in a few calls; None where not read.

        For reading many small deflated members ahead in a thread: members that lie next to each other in the
        archive are read with one positioned read, and all of them are inflated, and their sizes and CRCs
        checked, by one call of ISA-L (each framed as a gzip member), with the GIL released. So the thread
        takes the GIL back a few times per batch instead of several times per member, and seldom makes the
        thread that writes wait for it. Nothing is inflated beyond the sizes the central directory declares.

        None for a member this does not read (not a deflated member of a local archive, over ``limit`` bytes,
        beyond ``budget`` bytes in all, no ISA-L) and for every member of a batch that failed in any way:
        :meth:`open_member` reads those one at a time, and raises the error that names the member. ``first``:
        the first member read may take the total beyond ``budget``.
        """
        out: list[bytes | None] = [None] * len(names)
        fd, reader = self._fd, _gzip_reader()
        if fd is None or reader is None:
            return out
        runs: list[list[tuple[int, zipfile.ZipInfo]]] = []
        run_end, total = -1, 0
        for k, name in enumerate(names):
            info = self.zip.NameToInfo.get(name)
            if (info is None or info.compress_type != zipfile.ZIP_DEFLATED or info.file_size > limit
                    or info.file_size > 0xFFFFFFFF or info.is_dir()
                    or budget is not None and total + info.file_size > budget and (total or not first)):
                run_end = -1
                continue
            total += info.file_size
            if info.header_offset != run_end:
                runs.append([])
            runs[-1].append((k, info))
            run_end = self._region_end(info)
        parts: list[Any] = []
        members: list[tuple[int, int]] = []
        for run in runs:
            start = run[0][1].header_offset
            buffer = memoryview(os.pread(fd, self._region_end(run[-1][1]) - start, start))
            for k, info in run:
                at = info.header_offset - start
                header = buffer[at : at + 30]
                if len(header) != 30 or header[:4] != b"PK\x03\x04":
                    continue  # read alone, to raise its error
                at += 30 + int.from_bytes(header[26:28], "little") + int.from_bytes(header[28:30], "little")
                if at + info.compress_size > len(buffer):
                    continue
                trailer = _GZIP_TRAILER.pack(info.CRC, info.file_size)
                parts += (_GZIP_HEADER, buffer[at : at + info.compress_size], trailer)
                members.append((k, info.file_size))
        if not members:
            return out
        total = sum(size for _, size in members)
        inflated = bytearray(total + 1)  # +1: a member holding more than declared fills it
        try:
            done = reader(b"".join(parts)).readinto(inflated)
        except Exception:  # noqa: BLE001 - corrupt data (BadGzipFile, IsalError, EOFError): read them alone
            return out
        if done != total:
            return out
        view, at = memoryview(inflated), 0
        for k, size in members:
            out[k] = bytes(view[at : at + size])
            at += size
        return out

    def _read_whole(self, info: zipfile.ZipInfo) -> bytes:
        """The whole member (:meth:`dsformats.zipstream.ZipMember.read`: positioned reads of the archive file and
        one inflate by ISA-L, with the GIL released, so threads can read members at the same time). Nothing is
        inflated beyond the size the central directory declares; the local header, size and CRC are checked.
        """
        if self._fd is None:
            raise OSError(errno.EBADF, "the archive is closed")
        return ZipMember(self.zip, info).read()

    @property
    def closed(self) -> bool:
        """True once the archive is closed."""
        return getattr(getattr(self, "zip", None), "fp", None) is None

    def _open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
        if mode != "rb":
            raise ValueError("dszip:// is read-only")
        return self.open_member(re.sub("/+", "/", self._strip_protocol(path)))

    def close(self) -> None:
        """Close the archive and the file it was opened from."""
        self._fd = None
        if hasattr(self, "zip"):
            self.zip.close()
        of = getattr(self, "of", None)
        if of is not None and hasattr(of, "close"):
            of.close()


class SafeTarFileSystem(TarFileSystem):
    """Read-only ``tar://`` (plain, gzip, bz2, xz) whose index is built with the safety limits applied."""

    protocol = "dstar"
    cachable = False

    def __init__(self, fo: Any = "", target_options: dict | None = None, target_protocol: str | None = None,
                 compression: str | None = None, **kwargs: Any) -> None:
        import fsspec

        self._opened = None
        if isinstance(fo, (str, os.PathLike)):
            self._opened = fsspec.open(str(fo), protocol=target_protocol, **(target_options or {})).open()
            fo = self._opened
        self.archive_name = _display(fo, "archive")
        if compression is None:
            lowered = self.archive_name.lower()
            compression = next((c for s, c in _COMPRESSION if lowered.endswith(s)), None)
        raw = fo
        try:
            raw.seek(0, 2)
            self._packed_size = raw.tell()
            raw.seek(0)
        except (OSError, AttributeError):
            self._packed_size = None
        self._compressed = compression is not None
        self._raw = raw
        # fsspec's TarFileSystem.__init__ would infer the compression again from the stream's name: set up here
        AbstractArchiveFileSystem.__init__(self, **kwargs)
        # The standard library's decompressors, not fsspec's registry: that one switches gzip to isal's
        # IGzipFile whenever isal is installed, whose versions before 1.9 fail to seek back after a
        # partial read ("Not a gzipped file"), which reading tar members out of order needs.
        self.fo = (_DECOMPRESSORS.get(compression) or compr[compression])(raw) if compression else raw
        self.index_store = None
        self.index: Any = None
        self.dir_cache = None
        try:
            self.tar = tarfile.TarFile(fileobj=self.fo)
            self._index()
        except (tarfile.TarError, EOFError, OSError) as exc:
            self._close_raw()
            raise DatasetError(f"not a readable tar archive ({exc})", self.archive_name) from None
        except BaseException:
            self._close_raw()
            raise

    def _index(self) -> None:
        budget = ZipBudget(self.archive_name)
        out: dict[str, tuple[dict, int, tarfile.TarInfo]] = {}
        self.skipped_links: list[str] = []
        while True:
            ti = self.tar.next()  # reads one header; the member's data is skipped only by the next call
            if ti is None:
                break
            where = f"{self.archive_name}!{ti.name}"
            if ti.size > budget.max_member:
                raise DatasetError(
                    f"member inflates to {ti.size:,} bytes, over the limit of {budget.max_member:,} "
                    "(DSFORMATS_ZIP_MAX_MEMBER)", where)
            budget.total += ti.size
            if budget.total > budget.max_total:
                raise DatasetError(
                    f"archive inflates to more than {budget.max_total:,} bytes (DSFORMATS_ZIP_MAX_TOTAL)", where)
            end = ti.offset_data + ti.size
            if self._compressed and self._packed_size and end > _RATIO_FLOOR and (
                end > budget.max_ratio * max(self._packed_size, 1)
            ):
                raise DatasetError(
                    f"archive inflates to {end:,} bytes from {self._packed_size:,}, a ratio over "
                    f"{budget.max_ratio} (DSFORMATS_ZIP_MAX_RATIO); this looks like a compression bomb", where)
            if ti.name.strip("/") in ("", "."):
                continue
            name = _member_name(ti.name[2:] if ti.name.startswith("./") else ti.name, where)
            if ti.issym() or ti.islnk():
                self.skipped_links.append(name)  # never followed, in or out of the archive
                continue
            if not (ti.isfile() or ti.isdir()):
                continue
            info = {"name": name, "size": ti.size if ti.isfile() else 0,
                    "type": "file" if ti.isfile() else "directory", "mtime": ti.mtime}
            out[name] = (info, ti.offset_data, ti)
        self.index = out

    def _open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
        if mode != "rb":
            raise ValueError("dstar:// is read-only")
        return self.open_member(re.sub("/+", "/", self._strip_protocol(path)))

    def all_files(self) -> list[str]:
        """The names of all file members, listed once."""
        return _all_files(self)

    def open_member(self, path: str) -> Any:
        """Open the member ``path`` (a normalised name from the index) for reading, by its TarInfo."""
        try:
            details, _, ti = self.index[path]
        except KeyError as exc:
            raise FileNotFoundError(path) from exc
        if details["type"] != "file":
            raise IsADirectoryError(path)
        where = f"{self.archive_name}!{path}"
        return MemberStream(functools.partial(self.tar.extractfile, ti), where, details["size"])  # no link following

    @property
    def closed(self) -> bool:
        """True once the archive is closed."""
        return getattr(getattr(self, "tar", None), "closed", True)

    def _close_raw(self) -> None:
        for stream in (self._raw, self._opened):
            if stream is not None and hasattr(stream, "close"):
                stream.close()

    def close(self) -> None:
        """Close the archive and the file it was opened from."""
        if hasattr(self, "tar"):
            self.tar.close()
        self._close_raw()


_DECOMPRESSORS: dict[str, Any] = {
    "gzip": lambda raw: gzip.GzipFile(fileobj=raw, mode="rb"),
    "bz2": lambda raw: bz2.BZ2File(raw, mode="rb"),
    "xz": lambda raw: lzma.LZMAFile(raw, mode="rb"),
}
_COMPRESSION = ((".tar.gz", "gzip"), (".tgz", "gzip"), (".tar.bz2", "bz2"), (".tbz2", "bz2"), (".tar.xz", "xz"),
                (".txz", "xz"))


#: The archives that unpickled paths opened in this process, by (protocol, storage options): each with the
#: identity of its local file when opened (device, inode, size, modification time). A scale-out worker thus opens
#: and checks an archive once for all its shards, not once per path per shard.
_SHARED: dict[str, tuple[tuple[int, ...], Any]] = {}
_SHARED_LOCK = threading.Lock()
_SHARED_MAX = 8  # archives kept open; the oldest is let go (closed once no path uses it)


def _unpickled(make: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    """Rebuild a pickled archive path, on the filesystem this process already opened for its archive when the
    archive is a local file that has not changed since."""
    path = make(*args)
    options = dict(path.storage_options)
    archive = options.get("fo")
    if options.get("target_protocol") not in ("file", None) or not isinstance(archive, str):
        return path  # an archive on object storage: opened by the path itself, as usual
    try:
        stat = os.stat(archive.removeprefix("file://"))
    except OSError:
        return path  # the path's own opening reports it
    identity = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)
    key = repr((path.protocol, sorted(options.items())))
    with _SHARED_LOCK:
        found = _SHARED.get(key)
        if found is None or found[0] != identity or found[1].closed:
            _SHARED.pop(key, None)
            if len(_SHARED) >= _SHARED_MAX:
                del _SHARED[next(iter(_SHARED))]
            _SHARED[key] = found = (identity, path.fs)
    path._fs_cached = found[1]
    return path


class ZipArchivePath(ZipPath):
    """A path inside a zip archive opened by dsformats (module level, so that it pickles; unpickled paths of one
    archive share its filesystem in a process)."""

    __slots__ = ()

    def __reduce__(self) -> tuple[Any, ...]:
        return _unpickled, super().__reduce__()


class TarArchivePath(TarPath):
    """A path inside a tar archive opened by dsformats (as :class:`ZipArchivePath`)."""

    __slots__ = ()

    def __reduce__(self) -> tuple[Any, ...]:
        return _unpickled, super().__reduce__()


def _path_classes() -> None:
    """Register ``dszip``/``dstar`` with fsspec and universal-pathlib (read-only archive paths)."""
    import fsspec
    from upath.registry import register_implementation

    fsspec.register_implementation("dszip", SafeZipFileSystem, clobber=True)
    fsspec.register_implementation("dstar", SafeTarFileSystem, clobber=True)
    register_implementation("dszip", ZipArchivePath, clobber=True)
    register_implementation("dstar", TarArchivePath, clobber=True)


_path_classes()
