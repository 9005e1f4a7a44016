"""``zipfile`` without a ``ZipInfo`` object per member held in memory, for archives of millions of small files.

``zipfile.ZipFile`` keeps a ``ZipInfo`` (about 500 bytes) for every member: when reading, for the whole
central directory from the moment the archive opens; when writing, for every member written until the
central directory is written at ``close()``. These two subclasses keep none:

- :class:`StreamingZipReader` reads only the end-of-central-directory record when it opens;
  :meth:`~StreamingZipReader.iter_infos` parses the central directory record by record (in chunks) into
  ``ZipInfo`` objects that live as long as the caller keeps them, and ``open(info)`` works as usual.
- :class:`SpoolingZipWriter` spools each written member's ``ZipInfo`` (its slots, marshalled) to an unnamed
  temporary file and rebuilds them one at a time when ``zipfile`` writes the central directory, so the
  archive bytes are exactly those ``zipfile.ZipFile`` writes.

Member parsing mirrors ``ZipFile._RealGetContents``; everything else (member headers, decompression, CRC
checks, ZIP64 records) is ``zipfile``'s own code.
"""

from __future__ import annotations

import marshal
import struct
import tempfile
import zipfile
from collections.abc import Iterator
from os import PathLike, fspath
from pathlib import Path
from typing import IO, Any, Literal
from zlib import crc32

__all__ = ["SpoolingZipWriter", "StreamingZipReader"]

_CD = struct.Struct(zipfile.structCentralDir)  # type: ignore[attr-defined]
_CHUNK = 1 << 18
# since Python 3.12 (and some 3.11 patch releases) ZipInfo._decodeExtra takes the CRC of the raw file name
_EXTRA_TAKES_CRC = zipfile.ZipInfo._decodeExtra.__code__.co_argcount > 1  # type: ignore[attr-defined]
_SLOTS = zipfile.ZipInfo.__slots__
_MISSING = ...  # marshal-able stand-in for a slot that was never set


class StreamingZipReader(zipfile.ZipFile):
    """A read-only ``ZipFile`` whose members are parsed on demand; ``infolist()``/``namelist()`` stay empty.

    Attributes after opening: ``start_dir`` (offset of the central directory), ``member_count`` (entries the
    end record declares).
    """

    def __init__(self, file: str | PathLike[str] | IO[bytes], metadata_encoding: str | None = None) -> None:
        kwargs: dict[str, Any] = {}
        if metadata_encoding is not None:
            kwargs["metadata_encoding"] = metadata_encoding
        super().__init__(file, "r", **kwargs)

    def _RealGetContents(self) -> None:  # noqa: N802 - zipfile's name
        """Read and check the end records only (what zipfile does before it parses every member)."""
        fp = self.fp
        try:
            endrec = zipfile._EndRecData(fp)  # type: ignore[attr-defined]
        except OSError:
            raise zipfile.BadZipFile("File is not a zip file") from None
        if not endrec:
            raise zipfile.BadZipFile("File is not a zip file")
        size_cd = endrec[zipfile._ECD_SIZE]  # type: ignore[attr-defined]
        offset_cd = endrec[zipfile._ECD_OFFSET]  # type: ignore[attr-defined]
        self._comment = endrec[zipfile._ECD_COMMENT]  # type: ignore[attr-defined]
        concat = endrec[zipfile._ECD_LOCATION] - size_cd - offset_cd  # type: ignore[attr-defined]
        if endrec[zipfile._ECD_SIGNATURE] == zipfile.stringEndArchive64:  # type: ignore[attr-defined]
            concat -= zipfile.sizeEndCentDir64 + zipfile.sizeEndCentDir64Locator  # type: ignore[attr-defined]
        self.start_dir = offset_cd + concat
        if self.start_dir < 0:
            raise zipfile.BadZipFile("Bad offset for central directory")
        self._concat = concat
        self._size_cd = size_cd
        self.member_count: int = endrec[zipfile._ECD_ENTRIES_TOTAL]  # type: ignore[attr-defined]

    def _read_at(self, offset: int, size: int) -> bytes:
        with self._lock:  # type: ignore[attr-defined]
            assert self.fp is not None
            self.fp.seek(offset)
            return self.fp.read(size)

    def iter_infos(self) -> Iterator[zipfile.ZipInfo]:
        """Every central directory entry, in order, as a fresh ``ZipInfo`` (as ``infolist()`` would hold it)."""
        encoding = getattr(self, "metadata_encoding", None) or "cp437"
        size_cd, concat = self._size_cd, self._concat
        position = 0  # bytes of the central directory consumed
        buffer = b""
        at = 0  # position in buffer

        def need(count: int) -> bool:
            """Make ``count`` bytes from ``at`` available (fewer at the end of the central directory)."""
            nonlocal buffer, at
            if len(buffer) - at >= count:
                return True
            loaded = position + len(buffer) - at  # central directory bytes read so far
            want = min(max(_CHUNK, count), size_cd - loaded)
            buffer = buffer[at:] + (self._read_at(self.start_dir + loaded, want) if want > 0 else b"")
            at = 0
            return len(buffer) >= count

        while position < size_cd:
            if not need(_CD.size):
                raise zipfile.BadZipFile("Truncated central directory")
            centdir = _CD.unpack_from(buffer, at)
            if centdir[zipfile._CD_SIGNATURE] != zipfile.stringCentralDir:  # type: ignore[attr-defined]
                raise zipfile.BadZipFile("Bad magic number for central directory")
            name_len = centdir[zipfile._CD_FILENAME_LENGTH]  # type: ignore[attr-defined]
            extra_len = centdir[zipfile._CD_EXTRA_FIELD_LENGTH]  # type: ignore[attr-defined]
            comment_len = centdir[zipfile._CD_COMMENT_LENGTH]  # type: ignore[attr-defined]
            size = _CD.size + name_len + extra_len + comment_len
            need(size)  # short reads give short fields, as zipfile's own parser does
            start = at + _CD.size
            raw_name = buffer[start : start + name_len]
            extra = buffer[start + name_len : start + name_len + extra_len]
            comment = buffer[start + name_len + extra_len : start + size - _CD.size]
            flags = centdir[zipfile._CD_FLAG_BITS]  # type: ignore[attr-defined]
            filename = raw_name.decode("utf-8" if flags & zipfile._MASK_UTF_FILENAME else encoding)  # type: ignore[attr-defined]
            x = zipfile.ZipInfo(filename)
            x.extra = extra
            x.comment = comment
            x.header_offset = centdir[zipfile._CD_LOCAL_HEADER_OFFSET]  # type: ignore[attr-defined]
            (
                x.create_version,
                x.create_system,
                x.extract_version,
                x.reserved,
                x.flag_bits,
                x.compress_type,
                t,
                d,
                x.CRC,
                x.compress_size,
                x.file_size,
            ) = centdir[1:12]
            if x.extract_version > zipfile.MAX_EXTRACT_VERSION:  # type: ignore[attr-defined]
                # zipfile raises NotImplementedError here; a BadZipFile is reported naming the archive
                raise zipfile.BadZipFile(f"unsupported zip file version {x.extract_version / 10:.1f}")
            x.volume, x.internal_attr, x.external_attr = centdir[15:18]
            x._raw_time = t  # type: ignore[attr-defined]
            x.date_time = ((d >> 9) + 1980, (d >> 5) & 0xF, d & 0x1F, t >> 11, (t >> 5) & 0x3F, (t & 0x1F) * 2)
            if _EXTRA_TAKES_CRC:
                x._decodeExtra(crc32(raw_name))  # type: ignore[attr-defined]
            else:
                x._decodeExtra()  # type: ignore[attr-defined]
            x.header_offset = x.header_offset + concat
            at += size
            position += size
            yield x


class _SpooledInfos:
    """The writer's ``filelist``: ``append`` spools a ``ZipInfo``; iterating rebuilds them in order."""

    def __init__(self, dir: str | None) -> None:
        self._file: IO[bytes] = tempfile.TemporaryFile(dir=dir)
        self._count = 0

    def append(self, info: zipfile.ZipInfo) -> None:
        marshal.dump(tuple(getattr(info, slot, _MISSING) for slot in _SLOTS), self._file)
        self._count += 1

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[zipfile.ZipInfo]:
        stream = self._file
        stream.seek(0)
        try:
            for _ in range(self._count):
                values = marshal.load(stream)
                info = zipfile.ZipInfo.__new__(zipfile.ZipInfo)
                for slot, value in zip(_SLOTS, values, strict=True):
                    if value is not _MISSING:
                        setattr(info, slot, value)
                yield info
        finally:
            stream.seek(0, 2)

    def close(self) -> None:
        self._file.close()


class _NoNames(dict):  # type: ignore[type-arg]
    """The writer's ``NameToInfo``: remembers nothing (callers check duplicate names themselves)."""

    def __setitem__(self, key: Any, value: Any) -> None:
        return None


class SpoolingZipWriter(zipfile.ZipFile):
    """``zipfile.ZipFile(file, "w", ...)`` whose written members' ``ZipInfo`` objects wait in a temporary file.

    The archive is byte for byte what ``zipfile.ZipFile`` writes. ``namelist()``/``infolist()``/``getinfo()``
    know no members and ``zipfile``'s duplicate-name warning is not given: the caller checks names. The spool
    is made in ``spool_dir``, by default beside ``file`` when it is a path (else in the temporary directory).
    """

    def __init__(
        self,
        file: str | PathLike[str] | IO[bytes],
        mode: Literal["w", "x"] = "w",
        compression: int = zipfile.ZIP_STORED,
        allowZip64: bool = True,  # noqa: N803 - zipfile's name
        compresslevel: int | None = None,
        *,
        spool_dir: str | PathLike[str] | None = None,
    ) -> None:
        if mode not in ("w", "x"):
            self.fp = None  # so that close() (also from __del__) has nothing to do
            raise ValueError("SpoolingZipWriter writes new archives only (mode 'w' or 'x')")
        if spool_dir is None and isinstance(file, (str, PathLike)):
            spool_dir = Path(fspath(file)).parent
        infos = _SpooledInfos(None if spool_dir is None else fspath(spool_dir))
        try:
            super().__init__(file, mode, compression, allowZip64, compresslevel)  # type: ignore[call-overload]
        except BaseException:
            infos.close()
            raise
        self.filelist = infos  # type: ignore[assignment]
        self.NameToInfo = _NoNames()

    def close(self) -> None:
        try:
            super().close()
        finally:
            infos = getattr(self, "filelist", None)
            if isinstance(infos, _SpooledInfos):
                infos.close()
