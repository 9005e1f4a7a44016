"""``zipfile`` without a ``ZipInfo`` object per member held in memory, for archives of millions of small files.

``zipfile.ZipFile`` keeps a ``ZipInfo`` (about 500 bytes) for every member: when reading, for the whole
central directory from the moment the archive opens; when writing, for every member written until the
central directory is written at ``close()``. These two subclasses keep none:

- :class:`StreamingZipReader` reads only the end-of-central-directory record when it opens;
  :meth:`~StreamingZipReader.iter_infos` parses the central directory record by record (in chunks) into
  ``ZipInfo`` objects that live as long as the caller keeps them, and ``open(info)`` works as usual.
- :class:`SpoolingZipWriter` spools each written member's central directory record (written by ``zipfile``'s
  own code, from the member's ``ZipInfo``, when the member is complete) to an unnamed temporary file and
  copies them into the archive at ``close()``, so the archive bytes are exactly those ``zipfile.ZipFile``
  writes.

Members can also be moved as their stored (compressed) bytes, without ``zipfile``'s per-member file object:
:func:`compress` compresses bytes exactly as ``zipfile`` does (from any thread: zlib, bz2 and lzma release the
GIL), :meth:`ZipMember.compressed` reads a member's stored bytes without inflating them, and
:meth:`SpoolingZipWriter.write_compressed` appends them with the header ``open(info, "w", force_zip64=True)``
writes.

Member parsing mirrors ``ZipFile._RealGetContents``; everything else (member headers, decompression, CRC
checks, ZIP64 records) is ``zipfile``'s own code.
"""

from __future__ import annotations

import functools
import io
import os
import shutil
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from os import PathLike, fspath
from pathlib import Path
from typing import IO, Any, Literal, NamedTuple
from zlib import crc32

__all__ = [
    "MARK_EVERY", "Compressed", "SpoolingZipWriter", "StreamingZipReader", "ZipMember", "compress", "fast_crc32",
    "raw_inflater", "stored_member_size",
]

_CD = struct.Struct(zipfile.structCentralDir)  # type: ignore[attr-defined]
_LOCAL = struct.Struct(zipfile.structFileHeader)  # type: ignore[attr-defined]
_READ_WHOLE = 1 << 20  # ZipMember.open reads members up to this size whole
_ZIP64_EXTRA = 20  # bytes of the ZIP64 extra field zipfile writes into a local header
_ZIP64_LOCAL = struct.Struct("<HHQQ")  # that field: tag 1, its length, file size, compressed size
#: The version a local header with a ZIP64 field declares, by compression method (zipfile's FileHeader).
_MIN_VERSION = {
    zipfile.ZIP_BZIP2: max(zipfile.BZIP2_VERSION, zipfile.ZIP64_VERSION),  # type: ignore[attr-defined]
    zipfile.ZIP_LZMA: max(zipfile.LZMA_VERSION, zipfile.ZIP64_VERSION),  # type: ignore[attr-defined]
}
_DESCRIPTOR = struct.Struct("<LLQQ")  # a ZIP64 data descriptor: signature, CRC, compressed and file size
_CHUNK = 1 << 18  # bytes of the central directory read at a time
_LENGTHS = struct.Struct("<HHH")  # a central directory record's name, extra field and comment lengths, at 28
_OFFSET = struct.Struct("<L")  # a central directory record's local header offset, its last fixed field
assert _CHUNK >= _CD.size + 3 * 0xFFFF  # the longest central directory record
# since Python 3.12 (and some 3.11 patch releases) ZipInfo._decodeExtra takes the CRC of the raw file name
_EXTRA_TAKES_CRC = zipfile.ZipInfo._decodeExtra.__code__.co_argcount > 1  # type: ignore[attr-defined]
#: :meth:`StreamingZipReader.iter_infos` marks the position of every this many central directory records.
MARK_EVERY = 256


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

    def _records(
        self, start: int = 0, stop: int | None = None, marks: list[int] | None = None
    ) -> Iterator[tuple[bytes, int, tuple[Any, ...]]]:
        """``(buffer, at, fields)`` of every central directory record from ``start`` to ``stop`` (positions in
        the central directory; ``marks`` as :meth:`iter_infos`): the record is ``buffer[at:]``, its fixed fields
        unpacked (signature checked), its name, extra field and comment follow them whole (or the archive ends)."""
        size_cd = self._size_cd if stop is None else min(stop, self._size_cd)
        unpack_from, fixed, signature = _CD.unpack_from, _CD.size, zipfile.stringCentralDir  # type: ignore[attr-defined]
        loaded = position = start  # central directory bytes read so far, and parsed so far
        buffer = b""
        at = 0  # position in buffer
        number = 0  # records parsed
        while position < size_cd:
            if marks is not None and number % MARK_EVERY == 0:
                marks.append(position)
            number += 1
            avail = len(buffer) - at
            if (avail < fixed or avail < fixed + sum(_LENGTHS.unpack_from(buffer, at + 28))) and loaded < size_cd:
                want = min(_CHUNK, size_cd - loaded)  # a chunk holds at least one whole record
                chunk = self._read_at(self.start_dir + loaded, want)
                buffer, at = buffer[at:] + chunk, 0
                loaded = loaded + want if len(chunk) == want else size_cd  # a short read: the file ends
            if len(buffer) - at < fixed:
                raise zipfile.BadZipFile("Truncated central directory")
            fields = unpack_from(buffer, at)
            if fields[0] != signature:
                raise zipfile.BadZipFile("Bad magic number for central directory")
            yield buffer, at, fields
            size = fixed + fields[12] + fields[13] + fields[14]  # short fields at a truncation, as zipfile's
            at += size
            position += size

    def iter_entries(
        self, start: int = 0, stop: int | None = None, marks: list[int] | None = None
    ) -> Iterator[tuple[str, int, int, int]]:
        """``(name, flag bits, compressed size, size)`` of every central directory entry, in order, as
        :meth:`iter_infos` gives them (same arguments), without a ``ZipInfo`` for an entry with no extra field."""
        encoding = getattr(self, "metadata_encoding", None) or "cp437"
        utf8, fixed, max_version = zipfile._MASK_UTF_FILENAME, _CD.size, zipfile.MAX_EXTRACT_VERSION  # type: ignore[attr-defined]
        for buffer, at, fields in self._records(start, stop, marks):
            if fields[13] or fields[3] > max_version:  # ZIP64 sizes in an extra field, or refused: as iter_infos
                info = self._info(buffer, at, fields, encoding)
                yield info.filename, info.flag_bits, info.compress_size, info.file_size
                continue
            name = buffer[at + fixed : at + fixed + fields[12]].decode("utf-8" if fields[5] & utf8 else encoding)
            yield name.partition("\0")[0].replace(os.sep, "/"), fields[5], fields[10], fields[11]  # as ZipInfo has it

    def iter_infos(
        self, start: int = 0, stop: int | None = None, marks: list[int] | None = None
    ) -> Iterator[zipfile.ZipInfo]:
        """Every central directory entry, in order, as a fresh ``ZipInfo`` (as ``infolist()`` would hold it).

        ``start`` and ``stop`` are positions in the central directory (0 and its size by default), such as
        ``marks`` collects: the position of every :data:`MARK_EVERY`-th record from ``start`` on, so that a
        later pass can begin at any of them.
        """
        encoding = getattr(self, "metadata_encoding", None) or "cp437"
        info = self._info
        for buffer, at, fields in self._records(start, stop, marks):
            yield info(buffer, at, fields, encoding)

    def _info(self, buffer: bytes, at: int, fields: tuple[Any, ...], encoding: str) -> zipfile.ZipInfo:
        """The ``ZipInfo`` of the central directory record at ``buffer[at:]`` (``fields``: its fixed fields)."""
        (_magic, create_version, create_system, extract_version, reserved, flags, compress_type, t, d, crc,
         compress_size, file_size, name_len, extra_len, comment_len, volume, internal_attr, external_attr,
         header_offset) = fields
        start = at + _CD.size
        raw_name = buffer[start : start + name_len]
        x = zipfile.ZipInfo(raw_name.decode("utf-8" if flags & zipfile._MASK_UTF_FILENAME else encoding))  # type: ignore[attr-defined]
        x.extra = extra = buffer[start + name_len : start + name_len + extra_len]
        x.comment = buffer[start + name_len + extra_len : start + name_len + extra_len + comment_len]
        x.create_version, x.create_system, x.extract_version, x.reserved = (
            create_version, create_system, extract_version, reserved)
        x.flag_bits, x.compress_type, x.CRC, x.compress_size, x.file_size = (
            flags, compress_type, crc, compress_size, file_size)
        if extract_version > zipfile.MAX_EXTRACT_VERSION:  # type: ignore[attr-defined]
            # zipfile raises NotImplementedError here; a BadZipFile is reported naming the archive
            raise zipfile.BadZipFile(f"unsupported zip file version {extract_version / 10:.1f}")
        x.volume, x.internal_attr, x.external_attr = volume, internal_attr, external_attr
        x.header_offset = header_offset + self._concat
        x._raw_time = t  # type: ignore[attr-defined]
        x.date_time = ((d >> 9) + 1980, (d >> 5) & 0xF, d & 0x1F, t >> 11, (t >> 5) & 0x3F, (t & 0x1F) * 2)
        if extra:
            if _EXTRA_TAKES_CRC:
                x._decodeExtra(crc32(raw_name))  # type: ignore[attr-defined]
            else:
                x._decodeExtra()  # type: ignore[attr-defined]
        return x


@functools.cache
def fast_crc32() -> Any:
    """``crc32(data, value=0)``: ISA-L's (about 3x faster) when ``isal`` is installed, else zlib's; the same values."""
    try:
        from isal import isal_zlib
    except ImportError:  # pragma: no cover - isal is a dependency
        return zlib.crc32
    return isal_zlib.crc32


def raw_inflater() -> Any:
    """A raw-deflate decompressor: ISA-L's (about 1.5x faster on photos) when installed, else zlib's."""
    try:
        from isal import isal_zlib
    except ImportError:  # pragma: no cover - isal is a dependency
        return zlib.decompressobj(-zlib.MAX_WBITS)
    return isal_zlib.decompressobj(-zlib.MAX_WBITS)


class Compressed(NamedTuple):
    """A member's bytes as an archive stores them: ``data`` compressed, the CRC-32 and size of the plain bytes."""

    data: bytes
    crc: int
    file_size: int


def compress(data: bytes, compression: int, compresslevel: int | None = None) -> Compressed:
    """``data`` compressed as ``zipfile`` compresses a member written with these settings (the same bytes).

    Safe to call from several threads at once; zlib, bz2 and lzma release the GIL while they work.
    """
    compressor = zipfile._get_compressor(compression, compresslevel)  # type: ignore[attr-defined]
    packed = compressor.compress(data) + compressor.flush() if compressor is not None else data
    return Compressed(packed, fast_crc32()(data), len(data))


class ZipMember(NamedTuple):
    """A member of an open archive, to be copied as its stored bytes (see :meth:`compressed`)."""

    archive: zipfile.ZipFile
    info: zipfile.ZipInfo

    def compressed(self) -> Compressed:
        """The member's stored bytes, not inflated, with the CRC and size its central directory entry declares.

        The local header is checked as ``ZipFile.open`` checks it (signature, name, no patch data). The CRC is
        not: nothing is inflated. Safe to call from several threads (positional reads, or the archive's lock).
        """
        info = self.info
        where = f"member {info.filename!r}"
        # one read when the local name and extra field are no longer than the central ones plus a ZIP64 field
        slack = len(info.orig_filename.encode("utf-8")) + len(info.extra) + _ZIP64_EXTRA
        head = self._read(info.header_offset, _LOCAL.size + slack + info.compress_size)
        if len(head) < _LOCAL.size:
            raise zipfile.BadZipFile(f"Truncated file header of {where}")
        header = _LOCAL.unpack_from(head)
        if header[zipfile._FH_SIGNATURE] != zipfile.stringFileHeader:  # type: ignore[attr-defined]
            raise zipfile.BadZipFile(f"Bad magic number for file header of {where}")
        if header[zipfile._FH_GENERAL_PURPOSE_FLAG_BITS] & zipfile._MASK_COMPRESSED_PATCH:  # type: ignore[attr-defined]
            raise zipfile.BadZipFile(f"unsupported compressed patched data (flag bit 5) in {where}")
        name_length = header[zipfile._FH_FILENAME_LENGTH]  # type: ignore[attr-defined]
        start = _LOCAL.size + name_length + header[zipfile._FH_EXTRA_FIELD_LENGTH]  # type: ignore[attr-defined]
        flags = header[zipfile._FH_GENERAL_PURPOSE_FLAG_BITS]  # type: ignore[attr-defined]
        encoding = "utf-8" if flags & zipfile._MASK_UTF_FILENAME else (  # type: ignore[attr-defined]
            getattr(self.archive, "metadata_encoding", None) or "cp437")
        if head[_LOCAL.size : _LOCAL.size + name_length].decode(encoding, "replace") != info.orig_filename:
            raise zipfile.BadZipFile(f"File name in directory {info.orig_filename!r} and header differ")
        data = head[start : start + info.compress_size]
        if len(data) < info.compress_size:
            data += self._read(info.header_offset + start + len(data), info.compress_size - len(data))
        if len(data) != info.compress_size:
            raise EOFError(f"{where} is truncated")
        return Compressed(data, info.CRC, info.file_size)

    def read(self) -> bytes:
        """The member's plain bytes, checked against its CRC (stored and deflated members inflated here, the
        others by ``ZipFile.open``). Never more than the declared size is inflated. Thread-safe."""
        info = self.info
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            with self.archive.open(info) as stream:
                return stream.read()
        data = self.compressed().data
        if info.compress_type == zipfile.ZIP_DEFLATED:
            inflater = raw_inflater()
            try:
                data = inflater.decompress(data, info.file_size + 1)  # +1: detects data beyond the declared size
            except Exception as exc:  # noqa: BLE001 - zlib.error, isal's IsalError
                raise zipfile.BadZipFile(f"invalid deflate data ({exc})") from None
            if len(data) == info.file_size and not inflater.eof:
                raise zipfile.BadZipFile(f"Bad deflate stream for file {info.filename!r}")
        if len(data) != info.file_size:
            size = f"{len(data):,} bytes" if len(data) <= info.file_size else "more"
            raise zipfile.BadZipFile(f"member holds {size}, not the {info.file_size:,} bytes declared")
        if fast_crc32()(data) != info.CRC:
            raise zipfile.BadZipFile(f"Bad CRC-32 for file {info.filename!r}")
        return data

    def open(self) -> IO[bytes]:
        """A stream of the plain bytes: a member of up to 1 MiB is read whole now (:meth:`read`: one positional
        read, CRC checked), a larger one is opened with ``ZipFile.open``."""
        if self.info.file_size <= _READ_WHOLE:
            return io.BytesIO(self.read())
        return self.archive.open(self.info)

    def _read(self, offset: int, size: int) -> bytes:
        fp = self.archive.fp
        if fp is None:
            raise ValueError("Attempt to use ZIP archive that was already closed")
        try:
            fd = fp.fileno()
        except (AttributeError, OSError):
            fd = None
        if fd is not None:
            return os.pread(fd, size, offset)
        with self.archive._lock:  # type: ignore[attr-defined]
            fp.seek(offset)
            return fp.read(size)


class _Record:
    """Just what ``ZipFile._write_end_record`` uses, to have zipfile write one member's central directory record."""

    def __init__(self, info: zipfile.ZipInfo) -> None:
        self.fp = io.BytesIO()
        self.filelist = [info]
        self.start_dir = 0
        self._comment = b""
        self._allowZip64 = True
        self.mode = "w"


def _central_record(info: zipfile.ZipInfo) -> bytes:
    """The central directory record zipfile's ``_write_end_record`` packs for the finished member ``info``."""
    record = _Record(info)
    zipfile.ZipFile._write_end_record(record)  # type: ignore[arg-type, attr-defined]
    return bytes(record.fp.getbuffer()[: -zipfile.sizeEndCentDir])  # type: ignore[attr-defined]


class _SpooledRecords:
    """The writer's ``filelist``: ``append`` spools the member's central directory record, as zipfile writes it.

    Iterating yields nothing: :meth:`SpoolingZipWriter._write_end_record` copies the records, and zipfile then
    writes only the end records (``len()`` is the number of members).
    """

    def __init__(self, dir: str | None) -> None:
        self._file: IO[bytes] = tempfile.TemporaryFile(dir=dir)
        self._count = 0

    def append(self, info: zipfile.ZipInfo) -> None:
        self.append_record(_central_record(info))

    def append_record(self, record: bytes | memoryview, count: int = 1) -> None:
        """Spool ``count`` central directory records packed by the caller."""
        self._file.write(record)
        self._count += count

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[zipfile.ZipInfo]:
        return iter(())

    def copy_to(self, target: IO[bytes]) -> None:
        """Write every record, in order, to ``target``."""
        self._file.seek(0)
        shutil.copyfileobj(self._file, target, 1 << 20)

    def close(self) -> None:
        self._file.close()


class _NoNames(dict):  # type: ignore[type-arg]
    """The writer's ``NameToInfo``: remembers nothing (callers check duplicate names themselves)."""

    def __setitem__(self, key: Any, value: Any) -> None:
        return None


class SpoolingZipWriter(zipfile.ZipFile):
    """``zipfile.ZipFile(file, "w", ...)`` whose members' central directory records wait in a temporary file.

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
        infos = _SpooledRecords(None if spool_dir is None else fspath(spool_dir))
        try:
            super().__init__(file, mode, compression, allowZip64, compresslevel)  # type: ignore[call-overload]
        except BaseException:
            infos.close()
            raise
        self.filelist = infos  # type: ignore[assignment]
        self.NameToInfo = _NoNames()

    @classmethod
    def continuing(cls, path: str | PathLike[str], compression: int, check: Callable[[str], None]
                   ) -> SpoolingZipWriter | None:
        """A writer that goes on with the archive at ``path``, one this class wrote with ``compression``: its
        members stay where they are (not copied), its central directory is dropped and written again, after
        the members appended, on closing. The result is what a new writer would give after
        :meth:`append_archive` of that archive.

        None, the file untouched, when it is laid out otherwise (see :meth:`append_archive`). Else ``check``
        is called with each member's name (it may raise) before the file is changed.
        """
        with StreamingZipReader(path) as source:
            planned = _rebased_records(source, 0, compression) or _rebuilt_records(source, 0, compression)
            if planned is None:
                return None
            for name, *_ in source.iter_entries():
                check(name)
        records, count, size = planned
        fp = open(path, "r+b")  # noqa: SIM115 - closed by the writer
        try:
            fp.truncate(size)
            fp.seek(size)
        except BaseException:
            fp.close()
            raise
        writer = cls.owning(fp, compression, Path(fspath(path)).parent)
        writer.filelist.append_record(records, count)  # type: ignore[attr-defined]
        return writer

    @classmethod
    def at_start(cls, path: str | PathLike[str], compression: int) -> SpoolingZipWriter:
        """A writer of a new archive at the start of the existing file ``path``, whose bytes it leaves as they are
        (for :meth:`adopt_archive`); closing it writes the central directory after the members it has."""
        return cls.owning(open(path, "r+b"), compression, Path(fspath(path)).parent)  # noqa: SIM115

    @classmethod
    def owning(cls, stream: IO[bytes], compression: int, spool_dir: str | PathLike[str]) -> SpoolingZipWriter:
        """A writer of a new archive from ``stream``'s position on, which it closes with the archive (or now,
        when it cannot start); its records are spooled in ``spool_dir``."""
        try:
            writer = cls(stream, "w", compression=compression, spool_dir=spool_dir)
        except BaseException:
            stream.close()
            raise
        writer._filePassed = 0  # type: ignore[attr-defined] # zipfile closes the file with the archive
        return writer

    def _write_end_record(self) -> None:  # noqa: D401 - zipfile's
        assert self.fp is not None and isinstance(self.filelist, _SpooledRecords)
        self.filelist.copy_to(self.fp)
        super()._write_end_record()  # type: ignore[misc]

    def close(self) -> None:
        try:
            super().close()
        finally:
            infos = getattr(self, "filelist", None)
            if isinstance(infos, _SpooledRecords):
                infos.close()

    def write_compressed(self, info: zipfile.ZipInfo, member: Compressed) -> None:
        """Append a member whose bytes are already compressed with ``info.compress_type``.

        The archive gets the bytes ``open(info, "w", force_zip64=True)`` would write for the plain bytes (the
        local header with a ZIP64 extra field, the data, and a data descriptor when the file is not seekable),
        given that ``member`` holds that compression of them (:func:`compress`, :meth:`ZipMember.compressed`).
        """
        with self._lock:  # type: ignore[attr-defined]
            if self._writing:  # type: ignore[attr-defined]
                raise ValueError("Can't write to the ZIP file while there is another write handle open on it.")
            info.flag_bits = zipfile._MASK_COMPRESS_OPTION_1 if info.compress_type == zipfile.ZIP_LZMA else 0  # type: ignore[attr-defined]
            if not self._seekable:  # type: ignore[attr-defined]
                info.flag_bits |= zipfile._MASK_USE_DATA_DESCRIPTOR  # type: ignore[attr-defined]
            if not info.external_attr:
                info.external_attr = 0o600 << 16
            info.CRC, info.compress_size, info.file_size = member.crc, len(member.data), member.file_size
            fp = self.fp
            assert fp is not None
            if self._seekable and fp.tell() != self.start_dir:  # type: ignore[attr-defined]
                fp.seek(self.start_dir)
            info.header_offset = self.start_dir
            self._writecheck(info)  # type: ignore[attr-defined]
            self._didModify = True  # type: ignore[attr-defined]
            packed = _usual_headers(info)
            header = info.FileHeader(True) if packed is None else packed[0]
            fp.write(header)
            fp.write(member.data)
            size = len(header) + len(member.data)
            if info.flag_bits & zipfile._MASK_USE_DATA_DESCRIPTOR:  # type: ignore[attr-defined]
                fp.write(_DESCRIPTOR.pack(zipfile._DD_SIGNATURE, info.CRC, info.compress_size, info.file_size))  # type: ignore[attr-defined]
                size += _DESCRIPTOR.size
            self.start_dir += size
            if packed is None:
                self.filelist.append(info)
            else:
                self.filelist.append_record(packed[1])  # type: ignore[attr-defined]

    def append_archive(self, source: StreamingZipReader, check: Callable[[str], None]) -> bool:
        """Append every member of ``source``, an archive this class wrote with the same compression, as it is
        stored: the local headers and data in one block copy, then one central directory record per member.

        The result is what :meth:`write_compressed` of each member would give. Returns False, having written
        nothing, when ``source`` is laid out otherwise (members not back to back from offset 0, another
        compression, other local headers). Else ``check`` is called with each member's name (it may raise)
        before anything is written.
        """
        return self._take_archive(source, check, copy=True)

    def adopt_archive(self, source: StreamingZipReader, check: Callable[[str], None]) -> bool:
        """As :meth:`append_archive`, for a ``source`` whose members already lie in this writer's file where they
        would be appended (a placed part, see :mod:`dsformats.placement`): only its central directory records
        are taken (the bytes stay where they are)."""
        return self._take_archive(source, check, copy=False)

    def _take_archive(self, source: StreamingZipReader, check: Callable[[str], None], *, copy: bool) -> bool:
        if not self._seekable:  # type: ignore[attr-defined] # its members would need data descriptors
            return False
        base = self.start_dir  # type: ignore[attr-defined]
        planned = _rebased_records(source, base, self.compression) or _rebuilt_records(source, base, self.compression)
        if planned is None:
            return False
        records, count, size = planned
        for name, *_ in source.iter_entries():
            check(name)
        with self._lock:  # type: ignore[attr-defined]
            if self._writing:  # type: ignore[attr-defined]
                raise ValueError("Can't write to the ZIP file while there is another write handle open on it.")
            fp, source_fp = self.fp, source.fp
            assert fp is not None and source_fp is not None
            if copy:
                _copy_range(source_fp, fp, base, size)
            self.start_dir = base + size  # type: ignore[attr-defined]
            self._didModify = True  # type: ignore[attr-defined]
            self.filelist.append_record(records, count)  # type: ignore[attr-defined]
        return True

    def truncate(self) -> None:
        """Cut the file at the end of the members written so far (drops bytes a failed placement left beyond)."""
        with self._lock:  # type: ignore[attr-defined]
            assert self.fp is not None
            self.fp.flush()
            self.fp.truncate(self.start_dir)  # type: ignore[attr-defined]


def stored_member_size(name: str, size: int) -> int:
    """The bytes :meth:`SpoolingZipWriter.write_compressed` writes for a stored member ``name`` of ``size`` bytes
    (local header with its ZIP64 field, and the data); ValueError for a name zip cannot hold."""
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"member name {name!r} is not UTF-8") from None
    return _local_size(len(encoded), size)


def _local_size(name_length: int, compress_size: int) -> int:
    """The bytes of a member that :meth:`SpoolingZipWriter.write_compressed` wrote: header, ZIP64 field, data."""
    return _LOCAL.size + name_length + _ZIP64_EXTRA + compress_size


def _rebased_records(source: StreamingZipReader, base: int, compression: int) -> tuple[bytes, int, int] | None:
    """``(central records, count, bytes of members)`` of ``source`` moved ``base`` bytes on, when every record
    is plain (no extra field or comment, below the ZIP64 limits after the move, as :func:`_usual_headers`
    packs it): its bytes with the offset patched, which is what :func:`_rebuilt_records` packs. Else None."""
    limit = zipfile.ZIP64_LIMIT  # type: ignore[attr-defined]
    if source._concat or base + source.start_dir > limit:
        return None
    version = _MIN_VERSION.get(compression, zipfile.ZIP64_VERSION)  # type: ignore[attr-defined]
    descriptor, utf8 = zipfile._MASK_USE_DATA_DESCRIPTOR, zipfile._MASK_UTF_FILENAME  # type: ignore[attr-defined]
    records = bytearray()
    count = at = 0
    for buffer, start, fields in source._records():
        (_magic, create_version, _system, extract_version, _reserved, flags, compress_type, _t, _d, _crc,
         compress_size, file_size, name_len, extra_len, comment_len, volume, _internal, _external, offset) = fields
        end = start + _CD.size + name_len
        if (offset != at or compress_type != compression or extra_len or comment_len or volume
                or flags & descriptor or min(create_version, extract_version) < version
                or max(compress_size, file_size) > limit
                or not (flags & utf8 or buffer[start + _CD.size : end].isascii())):  # else zipfile re-encodes it
            return None
        records += buffer[start:end]
        _OFFSET.pack_into(records, len(records) - name_len - 4, base + offset)
        at += _local_size(name_len, compress_size)
        count += 1
    return (bytes(records), count, at) if at == source.start_dir else None


def _rebuilt_records(source: StreamingZipReader, base: int, compression: int) -> tuple[bytes, int, int] | None:
    """:func:`_rebased_records` for any layout this class writes (ZIP64 records included), packed again from
    each member's ``ZipInfo``; None when ``source`` is laid out otherwise."""
    records = io.BytesIO()
    count = at = 0  # at: where the next member's local header must start in source
    for info in source.iter_infos():
        if (info.header_offset != at or info.compress_type != compression or info.comment
                or (info.extra and zipfile._strip_extra(info.extra, (1,)))):  # type: ignore[attr-defined]
            return None
        if info.flag_bits & zipfile._MASK_USE_DATA_DESCRIPTOR:  # type: ignore[attr-defined]
            return None  # written to a stream: a seekable writer writes no descriptor
        name, _ = info._encodeFilenameFlags()  # type: ignore[attr-defined]
        at += _local_size(len(name), info.compress_size)
        info.header_offset += base
        info.extra = b""  # a ZIP64 field is written again as the new offset needs
        packed = _usual_headers(info)
        records.write(_central_record(info) if packed is None else packed[1])
        count += 1
    return (records.getvalue(), count, at) if at == source.start_dir else None


def _copy_range(source: IO[bytes], target: IO[bytes], offset: int, size: int) -> None:
    """Copy ``source``'s first ``size`` bytes to ``target`` at ``offset``, leaving ``target`` positioned after them
    (in the kernel, with ``copy_file_range``, where both are files that allow it)."""
    target.seek(offset)
    target.flush()
    done = 0
    copy_file_range: Any = getattr(os, "copy_file_range", None)
    try:
        fds = (source.fileno(), target.fileno()) if copy_file_range is not None else None
    except (AttributeError, OSError):
        fds = None
    if fds is not None:
        try:
            while done < size:
                copied = copy_file_range(fds[0], fds[1], min(size - done, 1 << 30), done, offset + done)
                if not copied:
                    break
                done += copied
        except OSError:  # e.g. EXDEV or ENOSYS: copy through user space
            pass
    target.seek(offset + done)
    source.seek(done)
    while done < size:
        chunk = source.read(min(size - done, 1 << 20))
        if not chunk:
            raise EOFError("the archive ends before its central directory")
        target.write(chunk)
        done += len(chunk)


def _usual_headers(info: zipfile.ZipInfo) -> tuple[bytes, bytes] | None:
    """(local header, central directory record) of a finished member, as ``FileHeader(zip64=True)`` and
    ``_write_end_record`` pack them, for the usual member (below 4 GiB in sizes and offset, no extra field,
    no comment, no data descriptor), packed here in one go; None for any other member (zipfile packs it).
    Like ``FileHeader``, raises ``info``'s extract and create versions to what the header declares."""
    limit = zipfile.ZIP64_LIMIT  # type: ignore[attr-defined]
    if (info.extra or info.comment or info.flag_bits & zipfile._MASK_USE_DATA_DESCRIPTOR  # type: ignore[attr-defined]
            or max(info.file_size, info.compress_size, info.header_offset) > limit):
        return None
    version = _MIN_VERSION.get(info.compress_type, zipfile.ZIP64_VERSION)  # type: ignore[attr-defined]
    info.extract_version = extract = max(version, info.extract_version)
    info.create_version = create = max(version, info.create_version)
    name, flags = info._encodeFilenameFlags()  # type: ignore[attr-defined]
    year, month, day, hour, minute, second = info.date_time
    date, time = (year - 1980) << 9 | month << 5 | day, hour << 11 | minute << 5 | second // 2
    local = _LOCAL.pack(zipfile.stringFileHeader, extract, info.reserved, flags, info.compress_type, time, date,  # type: ignore[attr-defined]
                        info.CRC, 0xFFFFFFFF, 0xFFFFFFFF, len(name), _ZIP64_EXTRA)
    extra = _ZIP64_LOCAL.pack(1, _ZIP64_EXTRA - 4, info.file_size, info.compress_size)
    central = _CD.pack(zipfile.stringCentralDir, create, info.create_system, extract, info.reserved, flags,  # type: ignore[attr-defined]
                       info.compress_type, time, date, info.CRC, info.compress_size, info.file_size, len(name), 0, 0,
                       0, info.internal_attr, info.external_attr, info.header_offset)
    return local + name + extra, central + name
